import APIKeyEngine

/// Where the router sends writes, and asks whether the node may serve, in multi-node mode
/// (`APIKeyCluster` implements it). Without one the router writes to its engine directly.
public protocol WriteCoordinator: Sendable {
    /// Runs `write` against the cluster's current state, commits the changes it plans to the
    /// system of record, applies them here, and then calls `completion` with the answer's JSON
    /// text, or with the error to answer (a write the system of record cannot take is
    /// ``EngineError/Code/writesStopped``, HTTP 503, and changes nothing).
    func write(
        _ write: @escaping @Sendable (DeferredWrites) throws(EngineError) -> Written<[UInt8]>,
        completion: @escaping @Sendable (Result<[UInt8], EngineError>) -> Void
    )

    /// Leases more of a key's monthly quota to this node (a verify answered
    /// ``EngineError/Code/quotaLeaseNeeded``), then calls `then` with nil, or with the error to
    /// answer when the cluster cannot be asked.
    func lease(_ request: LeaseRequest, then: @escaping @Sendable (EngineError?) -> Void)

    /// Why the node may not serve yet (it has not caught up with the cluster); nil once it may.
    /// `/health` answers 503 with it.
    var notReadyReason: String? { get }
}

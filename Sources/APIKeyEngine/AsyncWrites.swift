import Dispatch

/// The writes for Swift concurrency: each applies at once, as its blocking twin does, then
/// suspends (without holding a thread) until its journal record is durable under the fsync policy.
/// Under `always` the journal's syncer thread fsyncs for every write waiting at that moment (group
/// commit) and resumes them; under `everysec` and `no` nothing waits. Reads stay synchronous.
///
/// In an `async` function these are the ones Swift picks: `try await engine.create(...)`.
extension Engine {
    /// Suspends until `pending` is durable; throws ``EngineError/Code/writesStopped`` when the
    /// journal failed first. Returns at once for nil.
    public func durable(_ pending: PendingDurability?) async throws(EngineError) {
        guard let pending else { return }
        let failure = await withCheckedContinuation { (continuation: CheckedContinuation<EngineError?, Never>) in
            whenDurable(pending) { continuation.resume(returning: $0) }
        }
        if let failure { throw failure }
    }

    /// The value of `written` once it is durable as the fsync policy asks.
    private func acknowledged<R>(_ written: Written<R>) async throws(EngineError) -> R {
        try await durable(written.pending)
        return written.value
    }

    /// Creates a key for an order and returns its record, with the generated `api_key`, once durable.
    @discardableResult
    public func create(_ request: NewKey) async throws(EngineError) -> KeyRecord {
        try await acknowledged(deferred.create(request))
    }

    /// Changes a key's config, status or expiry, returning once durable.
    public func update(_ changes: KeyChanges) async throws(EngineError) {
        try await acknowledged(deferred.update(changes))
    }

    /// Replaces a key with a newly generated one (see the blocking
    /// ``reset(_:as:graceSeconds:)``), returning the new record once durable.
    @discardableResult
    public func reset(
        _ reference: KeyReference, as requester: Requester = .admin, graceSeconds: Int64 = 0
    ) async throws(EngineError) -> KeyRecord {
        try await acknowledged(deferred.reset(reference, as: requester, graceSeconds: graceSeconds))
    }

    /// Suspends an active key, returning once durable.
    public func suspend(orderID: Int64) async throws(EngineError) {
        try await acknowledged(deferred.suspend(orderID: orderID))
    }

    /// Makes a suspended key active again, returning once durable.
    public func unsuspend(orderID: Int64) async throws(EngineError) {
        try await acknowledged(deferred.unsuspend(orderID: orderID))
    }

    /// Cancels a key that is active or suspended, returning once durable.
    public func cancel(orderID: Int64) async throws(EngineError) {
        try await acknowledged(deferred.cancel(orderID: orderID))
    }

    /// Makes a canceled key active again, returning once durable.
    public func uncancel(orderID: Int64) async throws(EngineError) {
        try await acknowledged(deferred.uncancel(orderID: orderID))
    }

    /// Deletes a key (it stops existing at once), returning once durable.
    public func delete(orderID: Int64) async throws(EngineError) {
        try await acknowledged(deferred.delete(orderID: orderID))
    }

    /// Creates or rotates the API token of `clientID` and returns it once durable.
    public func resetClientToken(clientID: Int64) async throws(EngineError) -> String {
        try await acknowledged(deferred.resetClientToken(clientID: clientID))
    }

    /// Verifies `key` and consumes `cost` when it passes, returning the answer once the use is
    /// durable (see ``DeferredWrites/verify(keyBytes:hash:cost:requestID:_:)``).
    public func verify(
        key: String, cost: Int64 = 1, requestID: String? = nil
    ) async throws(EngineError)
        -> Verification
    {
        try await acknowledged(deferred.verify(key: key, cost: cost, requestID: requestID))
    }

    /// Sets the count of the current month of order `orderID` back to 0, returning once durable.
    public func resetUsage(orderID: Int64) async throws(EngineError) {
        try await acknowledged(deferred.resetUsage(orderID: orderID))
    }

    /// Writes a snapshot now (see the blocking `snapshot(progress:)`), on a thread of its own
    /// rather than one of the cooperative pool's.
    @discardableResult
    public func snapshot(progress: ProgressHandler? = nil) async throws(EngineError) -> SnapshotSummary {
        try await offThePool { () throws(EngineError) in try self.snapshot(progress: progress) }
    }

    /// Closes the engine (see the blocking `close()`): the final snapshot and the journal's
    /// fsync run on a thread of their own while the caller is suspended. Idempotent.
    public func close() async throws(EngineError) {
        try await offThePool { () throws(EngineError) in try self.close() }
    }

    /// Runs `body` on a Dispatch thread and suspends until it returns: for blocking work (writing
    /// a snapshot takes seconds at a million keys) that must not hold a cooperative thread.
    private func offThePool<R: Sendable>(
        _ body: @escaping @Sendable () throws(EngineError) -> R
    ) async throws(EngineError) -> R {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<R, EngineError>, Never>) in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(EngineError) in try body() })
            }
        }
        return try result.get()
    }
}

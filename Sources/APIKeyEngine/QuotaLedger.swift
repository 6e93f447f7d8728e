/// Multi-node mode's share of monthly quotas: a verify of a key with a monthly limit may pass
/// only uses that the cluster leased to this node, and every use that passes is counted here for
/// the cluster instead of in the engine's own meter (the cluster's change log brings the counts
/// of every node back to every meter). Called with the key's usage shard held: keep it short.
package protocol QuotaLedger: Sendable {
    /// Takes `cost` from this node's lease for the order's `month` under `limit`; a cost of 0
    /// takes nothing and passes as a cost of 1 would.
    func take(orderID: Int64, month: UsageMonth, cost: Int64, limit: Int64) -> QuotaTake
    /// Counts a use that passed; `leased` when ``take(orderID:month:cost:limit:)`` granted it.
    func count(orderID: Int64, month: UsageMonth, cost: Int64, leased: Bool)
    /// The uses this node counted for the order's `month` that the cluster's counts do not
    /// hold yet (not flushed).
    func unflushed(orderID: Int64, month: UsageMonth) -> Int64
}

/// What a node's lease allows a use.
package enum QuotaTake: Sendable {
    /// Taken from the lease.
    case taken
    /// The cluster has nothing more to lease this month (until a reset or a higher limit).
    case exhausted
    /// The lease has not enough: ask the cluster for more (``LeaseRequest``), then verify again.
    case needsLease
}

/// A lease a verify waits for in multi-node mode: `cost` of order `orderID`'s quota of `month`
/// under `limit`.
public struct LeaseRequest: Hashable, Sendable {
    /// The order whose quota it is.
    public var orderID: Int64
    /// The month of the quota.
    public var month: UsageMonth
    /// What the waiting verify costs: the least a lease must grant.
    public var cost: Int64
    /// The key's monthly limit.
    public var limit: Int64

    /// A lease of at least `cost` of order `orderID`'s quota of `month` under `limit`.
    package init(orderID: Int64, month: UsageMonth, cost: Int64, limit: Int64) {
        self.orderID = orderID
        self.month = month
        self.cost = cost
        self.limit = limit
    }
}

extension EngineError {
    /// A verify needs more of the key's monthly quota leased to this node (multi-node mode only):
    /// it consumed nothing; lease `request`, then verify again.
    package static func quotaLeaseNeeded(_ request: LeaseRequest) -> EngineError {
        var error = EngineError(.quotaLeaseNeeded, "This node must lease more of the key's monthly quota first")
        error.leaseRequest = request
        return error
    }
}

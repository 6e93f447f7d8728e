/// Where a node of a cluster stands in the cluster's change log: every change up to `position`
/// of the log `logID` is applied to this state, and none after it. Journaled and kept in
/// snapshots, so a node's data directory, a cache of the cluster's table, says from where it
/// must read on after a restart.
public struct ChangePosition: Hashable, Sendable {
    /// The change log's identity: a random number drawn when the cluster's schema was created,
    /// so that a cache of another cluster (or of a database recreated since) is never read on.
    public var logID: UInt64
    /// The position of the last change applied; positions start at 1 and have no gaps.
    public var position: Int64

    /// Every change up to `position` of log `logID`.
    public init(logID: UInt64, position: Int64) {
        self.logID = logID
        self.position = position
    }
}

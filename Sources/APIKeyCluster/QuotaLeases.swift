import APIKeyEngine
import Dispatch
import Synchronization

/// This node's shares of monthly quotas, and the uses counted since the last flush.
///
/// A verify of a limited key takes its cost from the node's lease of that key's month
/// (``take(orderID:month:cost:limit:)``, under the key's usage shard, so it must stay short); when
/// the lease has too little, the server asks PostgreSQL for a block (``ClusterNode``), which never
/// grants more than the limit minus what every node was granted. Every use that passes is counted
/// here until the flush moves the counts to PostgreSQL and the change log.
final class QuotaLeases: QuotaLedger, Sendable {
    struct Key: Hashable, Sendable {
        var orderID: Int64
        var month: UsageMonth
    }

    struct Lease: Sendable {
        /// Units granted to this node and not used yet.
        var units: Int64 = 0
        /// The block size the next lease asks for: doubled while leases run out within a
        /// flush interval, so a busy key asks PostgreSQL about once an interval.
        var block: Int64 = 1
        /// When the cluster said nothing more is left (nanoseconds on the monotonic clock).
        var exhaustedAt: Int64?
        /// When a lease was last granted.
        var grantedAt: Int64 = 0
        /// When a use last took from it.
        var usedAt: Int64 = 0
    }

    /// Uses that passed since the last flush: all of them, and those not taken from a lease
    /// (unlimited keys), which the flush adds to `granted` too.
    struct Counted: Sendable {
        var used: Int64 = 0
        var unleased: Int64 = 0
    }

    private let leases = Mutex<[Key: Lease]>([:])
    private let counted = Mutex<[Key: Counted]>([:])
    /// Unused units of revoked leases, handed back with the next flush.
    private let revoked = Mutex<[Key: Int64]>([:])
    /// How many times each order's leases were revoked: a grant asked for before a revoke is
    /// handed back rather than used under the record it was asked for.
    private let generations = Mutex<[Int64: UInt64]>([:])
    /// How long an `exhausted` answer is believed before PostgreSQL is asked again.
    let exhaustedForNanoseconds: Int64

    init(exhaustedForNanoseconds: Int64) {
        self.exhaustedForNanoseconds = exhaustedForNanoseconds
    }

    func take(orderID: Int64, month: UsageMonth, cost: Int64, limit: Int64) -> QuotaTake {
        let now = ClusterClock.nanoseconds()
        return leases.withLock { leases in
            let key = Key(orderID: orderID, month: month)
            guard var lease = leases[key] else { return .needsLease }
            // A cost of 0 consumes nothing but passes only where a cost of 1 would.
            if lease.units >= max(cost, 1) {
                lease.units -= cost
                lease.usedAt = now
                leases[key] = lease
                return .taken
            }
            if let exhaustedAt = lease.exhaustedAt, now - exhaustedAt < exhaustedForNanoseconds { return .exhausted }
            return .needsLease
        }
    }

    func count(orderID: Int64, month: UsageMonth, cost: Int64, leased: Bool) {
        counted.withLock { counted in
            let key = Key(orderID: orderID, month: month)
            counted[key, default: Counted()].used += cost
            if !leased { counted[key, default: Counted()].unleased += cost }
        }
    }

    func unflushed(orderID: Int64, month: UsageMonth) -> Int64 {
        counted.withLock { $0[Key(orderID: orderID, month: month)]?.used ?? 0 }
    }

    /// The block to ask for so that `request` can pass (at least its cost), and the order's
    /// revoke generation to hand to ``granted(_:for:generation:)``.
    func blockToAsk(for request: LeaseRequest) -> (block: Int64, generation: UInt64) {
        let key = Key(orderID: request.orderID, month: request.month)
        let block = leases.withLock { $0[key]?.block ?? 1 }
        let generation = generations.withLock { $0[request.orderID] ?? 0 }
        return (max(request.cost, min(block, max(1, request.limit / 8))), generation)
    }

    /// Adds what PostgreSQL granted (0: nothing is left) to the lease of `request`'s month; a
    /// grant asked for before the order's leases were revoked (`generation` is old) goes back.
    func granted(_ units: Int64, for request: LeaseRequest, generation: UInt64) {
        let now = ClusterClock.nanoseconds()
        let key = Key(orderID: request.orderID, month: request.month)
        // The generation is read and moved with the leases held, so no revoke falls in between.
        let stale = leases.withLock { leases -> Bool in
            guard generations.withLock({ $0[request.orderID] ?? 0 }) == generation else { return true }
            var lease = leases[key] ?? Lease()
            if units == 0 {
                lease.exhaustedAt = now
            } else {
                // Ran out within an interval: ask for twice as much next time.
                if now - lease.grantedAt < ClusterClock.flushNanoseconds { lease.block = min(lease.block * 2, 1 << 30) }
                lease.units += units
                lease.exhaustedAt = nil
                lease.grantedAt = now
            }
            leases[key] = lease
            return false
        }
        if stale, units > 0 { revoked.withLock { $0[key, default: 0] += units } }
    }

    /// Forgets that the cluster had nothing left for `orderID` (a reset or a new limit arrived).
    func forgetExhaustion(orderID: Int64) {
        leases.withLock { leases in
            for key in leases.keys where key.orderID == orderID { leases[key]!.exhaustedAt = nil }
        }
    }

    /// Takes back every lease of `orderID`, because its record changed (a lower limit must not
    /// let units leased under the old one pass); the unused units go back to PostgreSQL with the
    /// next flush, and the next verify leases under the new limit.
    func revoke(orderID: Int64) {
        let taken = leases.withLock { leases in
            generations.withLock { $0[orderID, default: 0] &+= 1 }
            var taken: [Key: Int64] = [:]
            for (key, lease) in leases where key.orderID == orderID {
                if lease.units > 0 { taken[key] = lease.units }
                leases[key] = nil
            }
            return taken
        }
        guard !taken.isEmpty else { return }
        revoked.withLock { revoked in
            for (key, units) in taken { revoked[key, default: 0] += units }
        }
    }

    /// ``revoke(orderID:)`` of every order (a whole-table load replaced the records).
    func revokeAll() {
        let orders = leases.withLock { Set($0.keys.map(\.orderID)) }
        for orderID in orders { revoke(orderID: orderID) }
    }

    /// Takes the counts to flush; ``restore(_:)`` puts them back when the flush failed.
    func takeCounts() -> [Key: Counted] {
        counted.withLock { counted in
            defer { counted = [:] }
            return counted
        }
    }

    func restore(_ counts: [Key: Counted]) {
        counted.withLock { counted in
            for (key, count) in counts {
                counted[key, default: Counted()].used += count.used
                counted[key, default: Counted()].unleased += count.unleased
            }
        }
    }

    /// Takes back the unused units of leases idle for `idleNanoseconds` (or all, with 0), and of
    /// months before `month`, to hand back to PostgreSQL (earlier months need nothing back), with
    /// those of revoked leases.
    func takeIdle(idleNanoseconds: Int64, currentMonth month: UsageMonth) -> [Key: Int64] {
        let now = ClusterClock.nanoseconds()
        let revoked = self.revoked.withLock { revoked in
            defer { revoked = [:] }
            return revoked
        }
        return leases.withLock { leases in
            var returned = revoked
            for (key, lease) in leases {
                if key.month < month {
                    leases[key] = nil
                } else if now - max(lease.usedAt, lease.grantedAt) >= idleNanoseconds {
                    if lease.units > 0 { returned[key, default: 0] += lease.units }
                    leases[key] = nil
                }
            }
            return returned
        }
    }

    /// Units held by leases now (for the metrics).
    var unitsHeld: Int64 { leases.withLock { $0.values.reduce(0) { $0 + $1.units } } }
}

/// The monotonic clock the cluster's timers read.
enum ClusterClock {
    static func nanoseconds() -> Int64 {
        Int64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds)
    }

    static let flushNanoseconds: Int64 = 1_000_000_000
}

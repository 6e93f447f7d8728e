import Synchronization

/// The usage of every order, beside the key table: each order's ``UsageMeter`` and the
/// ``UsageLimits`` its config sets, changed in place, so counting never rewrites a key record.
///
/// Sharded by the hash of the order's current key (bits other than those that pick the key
/// table's shard), each shard a dictionary by order ID behind a mutex. A verify holds its key's
/// shard while it reads the key table and decides, and every change to an order's record is
/// applied with that order's shard held (both shards when a reset moves the order to a new key),
/// so a verify sees a record and its meter at one moment: the decision is one atomic step.
///
/// An order has an entry only when its config sets a limit or it has been used, so keys that are
/// only ever checked cost nothing here.
final class UsageTable: Sendable {
    /// One order's usage.
    struct Entry: Sendable {
        var limits: UsageLimits
        var meter: UsageMeter
    }

    /// One shard: orders by ID.
    private final class Shard: Sendable {
        let entries = Mutex<[Int64: Entry]>([:])
    }

    private let shards: [Shard]
    private let mask: UInt64
    static let shardCountLog2 = 8

    init() {
        shards = (0..<(1 << Self.shardCountLog2)).map { _ in Shard() }
        mask = (1 << UInt64(Self.shardCountLog2)) - 1
    }

    /// The shard of the key with hash `keyHash`.
    func shardIndex(_ keyHash: UInt64) -> Int { Int((keyHash >> 40) & mask) }

    /// Runs `body` with the entries of the shard of `keyHash` locked.
    func withShard<R, E: Error>(
        keyHash: UInt64, _ body: (inout [Int64: Entry]) throws(E) -> R
    ) throws(E) -> R {
        try shards[shardIndex(keyHash)].entries.withLock { (entries) throws(E) -> R in try body(&entries) }
    }

    /// Applies a put of order `orderID`: runs `change` (the key table's part) with the shards of
    /// the order's old key (nil: a new order) and new key locked, then gives the order's entry
    /// `limits`, moving it to the new key's shard. An entry is kept only while it says something.
    func put(orderID: Int64, from oldHash: UInt64?, to newHash: UInt64, limits: UsageLimits, _ change: () -> Void) {
        let newIndex = shardIndex(newHash)
        let oldIndex = oldHash.map(shardIndex) ?? newIndex
        if oldIndex == newIndex {
            shards[newIndex].entries.withLock { entries in
                change()
                Self.update(&entries[orderID], limits)
            }
        } else {
            withBoth(oldIndex, newIndex) { old, new in
                change()
                var entry = old.removeValue(forKey: orderID)
                Self.update(&entry, limits)
                new[orderID] = entry
            }
        }
    }

    /// Applies a delete of order `orderID` whose key hashes to `keyHash`: runs `change` with
    /// the shard locked, then drops the order's usage.
    func delete(orderID: Int64, keyHash: UInt64, _ change: () -> Void) {
        withShard(keyHash: keyHash) { entries in
            change()
            entries[orderID] = nil
        }
    }

    private static func update(_ entry: inout Entry?, _ limits: UsageLimits) {
        if entry == nil {
            if limits != UsageLimits() { entry = Entry(limits: limits, meter: UsageMeter()) }
        } else {
            entry!.limits = limits
            if entry!.isEmpty { entry = nil }
        }
    }

    /// Runs `body` with shards `first` and `second` (different) locked, the lower index first.
    private func withBoth(
        _ first: Int, _ second: Int, _ body: (inout [Int64: Entry], inout [Int64: Entry]) -> Void
    ) {
        if first < second {
            shards[first].entries.withLock { a in shards[second].entries.withLock { b in body(&a, &b) } }
        } else {
            shards[second].entries.withLock { b in shards[first].entries.withLock { a in body(&a, &b) } }
        }
    }

    /// Runs `body` with every shard locked, in index order, on copies of them (copy-on-write:
    /// each shard is copied only when next changed): the one moment a snapshot takes, when
    /// nothing is counted.
    func withEveryShard<R: Sendable, E: Error>(_ body: ([[Int64: Entry]]) throws(E) -> R) throws(E) -> R {
        func lock(from index: Int, _ copies: inout [[Int64: Entry]]) throws(E) -> R {
            guard index < shards.count else { return try body(copies) }
            return try shards[index].entries.withLock { (entries) throws(E) -> R in
                copies.append(entries)
                return try lock(from: index + 1, &copies)
            }
        }
        var copies: [[Int64: Entry]] = []
        copies.reserveCapacity(shards.count)
        return try lock(from: 0, &copies)
    }

    /// Empties every shard.
    func removeAll() {
        for shard in shards { shard.entries.withLock { $0 = [:] } }
    }

    /// How many orders have an entry.
    var count: Int { shards.reduce(0) { $0 + $1.entries.withLock { $0.count } } }
}

extension UsageTable.Entry {
    /// Whether the entry says nothing: no limit and nothing counted.
    var isEmpty: Bool { limits == UsageLimits() && meter.isEmpty }
}

import Synchronization

/// A key that a reset with a grace period replaced: until `untilNanoseconds` it answers as its
/// order's current key (same order, config, status and usage), then it stops existing.
public struct RetiredKey: Hashable, Sendable {
    /// The replaced key.
    public var key: String
    /// The order it belongs to.
    public var orderID: Int64
    /// The key that replaced it, the order's current key.
    public var currentKey: String
    /// When the grace period ends, in nanoseconds since the Unix epoch.
    public var untilNanoseconds: Int64

    /// The retired `key` of `orderID`, answering as `currentKey` until `untilNanoseconds`.
    public init(key: String, orderID: Int64, currentKey: String, untilNanoseconds: Int64) {
        self.key = key
        self.orderID = orderID
        self.currentKey = currentKey
        self.untilNanoseconds = untilNanoseconds
    }
}

/// The keys in their grace period, beside the key table, at most one per order. A lookup reads
/// them only when the key table has no record of the key, and only when there is any, so checks
/// of current keys never touch this lock.
final class RetiredKeys: Sendable {
    private struct Entries {
        var byKey: [String: RetiredKey] = [:]
        var keyByOrder: [Int64: String] = [:]

        mutating func remove(_ key: String) {
            guard let retired = byKey.removeValue(forKey: key) else { return }
            keyByOrder[retired.orderID] = nil
        }
    }

    private let entries = Mutex(Entries())
    /// How many entries there are, read without the lock.
    private let count = Atomic(0)

    /// Whether no key is in its grace period (read without a lock).
    @inline(__always)
    var isEmpty: Bool { count.load(ordering: .acquiring) == 0 }

    /// The order's current key for the retired key with these bytes, while its grace period lasts
    /// at `now`; a key whose period has ended is removed then.
    func currentKey(of keyBytes: UnsafeRawBufferPointer, nowNanoseconds now: Int64) -> (orderID: Int64, key: String)? {
        guard !isEmpty else { return nil }
        let key = String(decoding: keyBytes, as: UTF8.self)
        return entries.withLock { entries in
            guard let retired = entries.byKey[key] else { return nil }
            guard now < retired.untilNanoseconds else {
                entries.remove(key)
                count.store(entries.byKey.count, ordering: .releasing)
                return nil
            }
            return (retired.orderID, retired.currentKey)
        }
    }

    /// Whether `key` is a retired key (in its grace period or not yet removed).
    func contains(_ key: String) -> Bool {
        guard !isEmpty else { return false }
        return entries.withLock { $0.byKey[key] != nil }
    }

    /// Adds `retired`, ending the grace period of the order's earlier retired key at once.
    func add(_ retired: RetiredKey) {
        entries.withLock { entries in
            if let earlier = entries.keyByOrder[retired.orderID] { entries.remove(earlier) }
            entries.byKey[retired.key] = retired
            entries.keyByOrder[retired.orderID] = retired.key
            count.store(entries.byKey.count, ordering: .releasing)
        }
    }

    /// Ends the grace period of the order's retired key, unless it was retired in favour of
    /// `currentKey` (the put that follows its own reset).
    func endGrace(orderID: Int64, unlessReplacedBy currentKey: String? = nil) {
        guard !isEmpty else { return }
        entries.withLock { entries in
            guard let key = entries.keyByOrder[orderID], entries.byKey[key]?.currentKey != currentKey else { return }
            entries.remove(key)
            count.store(entries.byKey.count, ordering: .releasing)
        }
    }

    /// Removes every key whose grace period has ended at `now`.
    func removeEnded(nowNanoseconds now: Int64) {
        guard !isEmpty else { return }
        entries.withLock { entries in
            for (key, retired) in entries.byKey where retired.untilNanoseconds <= now { entries.remove(key) }
            count.store(entries.byKey.count, ordering: .releasing)
        }
    }

    /// Every retired key, by order ID (for a snapshot; loading removes those that have ended).
    var all: [RetiredKey] {
        guard !isEmpty else { return [] }
        return entries.withLock { entries in entries.byKey.values.sorted { $0.orderID < $1.orderID } }
    }

    func removeAll() {
        entries.withLock { entries in
            entries = Entries()
            count.store(0, ordering: .releasing)
        }
    }
}

import APIKeyLimiter
import CMemoryHints
import Synchronization

/// The usage of every order, beside the key table: each order's limits (read once, at its first
/// verify) and counting state, changed in place, so counting never rewrites a key record.
///
/// Sharded by the hash of the order's current key (bits 40-47; the key table's shard takes the
/// low bits). A shard is an open-addressed table of 64-byte slots (``Slot``: the key hash, the
/// order ID, the limits, this month's count and the bucket), probed linearly from the hash's low
/// bits, so a verify's answer is decided from one cache line that it can start loading before it
/// reads the key table (``prefetch(keyHash:)``). Earlier months, needed only when a month rolls
/// over and by `usage`, sit in a dictionary beside the slots. Each shard has a mutex.
///
/// A verify holds its key's shard while it reads the key table and decides, and every change to
/// an order's record is applied with that order's shard held (both shards when a reset moves the
/// order to a new key), so a verify sees a record and its usage at one moment. An order gets a
/// slot at its first verify, when its limits are read from the record, and keeps it while it has
/// a limit or a count: keys that are only ever checked cost nothing here, at start-up or after.
final class UsageTable: Sendable {
    /// One order's usage, as a value: what ``Slots/entry(at:)`` builds and ``Slots/store(_:)``
    /// keeps.
    struct Entry: Hashable, Sendable {
        var keyHash: UInt64
        var orderID: Int64
        var limits: UsageLimits
        var meter: UsageMeter

        /// Whether the entry says nothing: no limit and nothing counted.
        var isEmpty: Bool { limits == UsageLimits() && meter.isEmpty }
    }

    /// One order's slot: 64 bytes, one cache line.
    struct Slot: Sendable {
        var keyHash: UInt64 = 0
        /// 0 for an empty slot (order IDs are positive).
        var orderID: Int64 = 0
        /// -1 for none.
        var monthlyLimit: Int64 = -1
        /// 0 for none.
        var ratePerSecond: Double = 0
        var rateBurst: Int64 = 0
        var used: Int64 = 0
        /// `Int64.min` while the bucket has not been used.
        var bucketFullAt: Int64 = .min
        /// The current month, as ``UsageMonth/ordinal``.
        var month: Int32 = 0
        /// Whether earlier months are kept in ``Slots/history``.
        var hasHistory = false

        var limits: UsageLimits {
            UsageLimits(
                monthlyLimit: monthlyLimit >= 0 ? monthlyLimit : nil,
                rate: ratePerSecond > 0 ? UsageLimits.Rate(perSecond: ratePerSecond, burst: rateBurst) : nil)
        }

        /// The meter, with its earlier months from `history` (a shard's).
        func meter(history: [Int64: [UsageCount]]) -> UsageMeter {
            meter(earlier: hasHistory ? history[orderID] ?? [] : [])
        }

        /// The meter, with `earlier` as its earlier months.
        func meter(earlier: [UsageCount]) -> UsageMeter {
            UsageMeter(
                current: UsageCount(month: UsageMonth(ordinal: Int(month))!, used: used), earlier: earlier,
                bucket: bucketFullAt == .min ? nil : TokenBucket(fullAtNanoseconds: bucketFullAt))
        }

        mutating func set(_ limits: UsageLimits) {
            monthlyLimit = limits.monthlyLimit ?? -1
            ratePerSecond = limits.rate?.perSecond ?? 0
            rateBurst = limits.rate?.burst ?? 0
        }

        /// Takes the meter's current month and bucket (earlier months are the caller's).
        mutating func set(_ meter: UsageMeter) {
            month = Int32(meter.current.month.ordinal)
            used = meter.current.used
            bucketFullAt = meter.bucket?.fullAtNanoseconds ?? .min
        }
    }

    /// One shard's slots, and the earlier months of its orders. Owns its memory; used only under
    /// its shard's mutex (hence `@unchecked Sendable`: the pointer is what the compiler cannot see).
    struct Slots: ~Copyable, @unchecked Sendable {
        private(set) var base: UnsafeMutablePointer<Slot>
        private(set) var mask: Int
        private(set) var count = 0
        /// Earlier months by order ID, newest first, for orders whose slot says `hasHistory`.
        private(set) var history: [Int64: [UsageCount]] = [:]

        init() {
            mask = 15
            base = Self.allocate(mask + 1)
        }

        deinit { base.deallocate() }

        private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Slot> {
            let slots = UnsafeMutablePointer<Slot>.allocate(capacity: capacity)
            slots.initialize(repeating: Slot(), count: capacity)
            return slots
        }

        /// The slot of order `orderID`, whose key hashes to `keyHash`; nil when it has none.
        @inline(__always)
        func find(keyHash: UInt64, orderID: Int64) -> Int? {
            var index = Int(truncatingIfNeeded: keyHash) & mask
            while base[index].orderID != 0 {
                if base[index].orderID == orderID, base[index].keyHash == keyHash { return index }
                index = (index + 1) & mask
            }
            return nil
        }

        subscript(index: Int) -> Slot {
            get { base[index] }
            nonmutating set { base[index] = newValue }
        }

        /// The whole entry in slot `index`, earlier months included.
        func entry(at index: Int) -> Entry {
            let slot = base[index]
            return Entry(
                keyHash: slot.keyHash, orderID: slot.orderID, limits: slot.limits, meter: slot.meter(history: history))
        }

        /// The entry of order `orderID` (key hash `keyHash`); nil when it has none.
        func entry(keyHash: UInt64, orderID: Int64) -> Entry? {
            find(keyHash: keyHash, orderID: orderID).map { entry(at: $0) }
        }

        /// Keeps `entry` (replacing the order's slot) and returns its slot, or drops the order's
        /// slot when the entry says nothing.
        @discardableResult
        mutating func store(_ entry: Entry) -> Int? {
            if let index = find(keyHash: entry.keyHash, orderID: entry.orderID) {
                if entry.isEmpty {
                    remove(at: index)
                    return nil
                }
                fill(index, entry)
                return index
            }
            guard !entry.isEmpty else { return nil }
            if (count + 1) * 4 > (mask + 1) * 3 { grow() }
            var index = Int(truncatingIfNeeded: entry.keyHash) & mask
            while base[index].orderID != 0 { index = (index + 1) & mask }
            fill(index, entry)
            count += 1
            return index
        }

        private mutating func fill(_ index: Int, _ entry: Entry) {
            var slot = Slot(keyHash: entry.keyHash, orderID: entry.orderID)
            slot.set(entry.limits)
            slot.set(entry.meter)
            slot.hasHistory = !entry.meter.earlier.isEmpty
            base[index] = slot
            if slot.hasHistory {
                history[entry.orderID] = entry.meter.earlier
            } else if !history.isEmpty {
                history[entry.orderID] = nil
            }
        }

        /// Stores a meter whose earlier months are unchanged (a verify in the same month): the
        /// slot alone.
        func storeCurrent(_ meter: UsageMeter, at index: Int) {
            base[index].set(meter)
        }

        /// Removes the order's slot and its earlier months; returns the entry it held.
        @discardableResult
        mutating func remove(keyHash: UInt64, orderID: Int64) -> Entry? {
            guard let index = find(keyHash: keyHash, orderID: orderID) else { return nil }
            let entry = entry(at: index)
            remove(at: index)
            return entry
        }

        /// Empties slot `index`, pulling later members of its probe run back (backward shift),
        /// so every run stays unbroken without tombstones.
        private mutating func remove(at index: Int) {
            if base[index].hasHistory { history[base[index].orderID] = nil }
            var hole = index
            var next = (hole + 1) & mask
            while base[next].orderID != 0 {
                let home = Int(truncatingIfNeeded: base[next].keyHash) & mask
                // The member may move back when its home does not lie in (hole, next].
                if (next - home) & mask >= (next - hole) & mask {
                    base[hole] = base[next]
                    hole = next
                }
                next = (next + 1) & mask
            }
            base[hole] = Slot()
            count -= 1
        }

        private mutating func grow() {
            let old = base
            let oldCapacity = mask + 1
            mask = oldCapacity * 2 - 1
            base = Self.allocate(mask + 1)
            for index in 0..<oldCapacity where old[index].orderID != 0 {
                var target = Int(truncatingIfNeeded: old[index].keyHash) & mask
                while base[target].orderID != 0 { target = (target + 1) & mask }
                base[target] = old[index]
            }
            old.deallocate()
        }

        /// Every entry, in slot order.
        func entries() -> [Entry] {
            (0...mask).compactMap { base[$0].orderID == 0 ? nil : entry(at: $0) }
        }

        /// A copy, for a snapshot.
        func copy() -> Copy {
            Copy(slots: Array(UnsafeBufferPointer(start: base, count: mask + 1)), history: history)
        }

    }

    /// A shard's slots and history as copied for a snapshot (a memcpy and a copy-on-write).
    struct Copy: Sendable {
        var slots: [Slot]
        var history: [Int64: [UsageCount]]

        /// The orders with something counted, and their counts.
        var counts: [(orderID: Int64, counts: [UsageCount])] {
            slots.compactMap { slot in
                guard slot.orderID != 0 else { return nil }
                let meter = slot.meter(history: history)
                return meter.isEmpty ? nil : (slot.orderID, meter.counts)
            }
        }
    }

    /// One shard: its slots behind a mutex, and where its slot table lies, for prefetches taken
    /// without the mutex (a stale address only loads the wrong line).
    private final class Shard: Sendable {
        let slots = Mutex(Slots())
        let prefetchBase = Atomic<UInt>(0)
        let prefetchMask = Atomic<Int>(0)
    }

    private let shards: [Shard]
    private let shardMask: UInt64
    static let shardCountLog2 = 8

    init() {
        shards = (0..<(1 << Self.shardCountLog2)).map { _ in Shard() }
        shardMask = (1 << UInt64(Self.shardCountLog2)) - 1
        for shard in shards { publish(shard) }
    }

    private func shardIndex(_ keyHash: UInt64) -> Int { Int((keyHash >> 40) & shardMask) }

    /// Starts loading the slot a verify of the key with hash `keyHash` reads first. A hint.
    @inline(__always)
    func prefetch(keyHash: UInt64) {
        let shard = shards[shardIndex(keyHash)]
        let base = shard.prefetchBase.load(ordering: .relaxed)
        let index = Int(truncatingIfNeeded: keyHash) & shard.prefetchMask.load(ordering: .relaxed)
        guard let pointer = UnsafeRawPointer(bitPattern: base &+ UInt(index &* MemoryLayout<Slot>.stride)) else {
            return
        }
        apikeyd_prefetch(pointer)
    }

    /// Runs `body` with the slots of the shard of `keyHash` locked.
    func withShard<R, E: Error>(keyHash: UInt64, _ body: (inout Slots) throws(E) -> R) throws(E) -> R {
        let shard = shards[shardIndex(keyHash)]
        return try shard.slots.withLock { (slots) throws(E) -> R in
            defer { publish(shard, slots) }
            return try body(&slots)
        }
    }

    private func publish(_ shard: Shard, _ slots: borrowing Slots) {
        shard.prefetchBase.store(UInt(bitPattern: slots.base), ordering: .relaxed)
        shard.prefetchMask.store(slots.mask, ordering: .relaxed)
    }

    private func publish(_ shard: Shard) {
        shard.slots.withLock { publish(shard, $0) }
    }

    /// Applies a put of order `orderID`: runs `change` (the key table's part) with the shards of
    /// the order's old key and new key locked, then moves the order's slot, if it has one, to the
    /// new key, with the `limits` the new record sets (read only then). A new order (no old key)
    /// has no slot: nothing is locked.
    func put(
        orderID: Int64, from oldHash: UInt64?, to newHash: UInt64, limits: () -> UsageLimits, _ change: () -> Void
    ) {
        guard let oldHash else {
            // A verify that finds the new key meanwhile makes the slot itself, from the record.
            change()
            return
        }
        func moved(_ old: Entry) -> Entry {
            var entry = old
            entry.keyHash = newHash
            entry.limits = limits()
            // A changed rate or burst starts the key's bucket afresh.
            if entry.limits.rate != old.limits.rate { entry.meter.forgetBucket() }
            return entry
        }
        let newIndex = shardIndex(newHash)
        let oldIndex = shardIndex(oldHash)
        if oldIndex == newIndex {
            withShard(keyHash: newHash) { slots in
                change()
                guard let entry = slots.remove(keyHash: oldHash, orderID: orderID) else { return }
                slots.store(moved(entry))
            }
        } else {
            withBoth(oldIndex, newIndex) { old, new in
                change()
                guard let entry = old.remove(keyHash: oldHash, orderID: orderID) else { return }
                new.store(moved(entry))
            }
        }
    }

    /// Applies a delete of order `orderID` whose key hashes to `keyHash`: runs `change` with
    /// the shard locked, then drops the order's usage.
    func delete(orderID: Int64, keyHash: UInt64, _ change: () -> Void) {
        withShard(keyHash: keyHash) { slots in
            change()
            slots.remove(keyHash: keyHash, orderID: orderID)
        }
    }

    /// Runs `body` with shards `first` and `second` (different) locked, the lower index first.
    private func withBoth(_ first: Int, _ second: Int, _ body: (inout Slots, inout Slots) -> Void) {
        let (a, b) = (shards[first], shards[second])
        func run(_ lower: Shard, _ higher: Shard, _ firstIsLower: Bool) {
            lower.slots.withLock { low in
                higher.slots.withLock { high in
                    if firstIsLower { body(&low, &high) } else { body(&high, &low) }
                    publish(higher, high)
                }
                publish(lower, low)
            }
        }
        if first < second { run(a, b, true) } else { run(b, a, false) }
    }

    /// Runs `body` with every shard locked, in index order, on copies of them: the one moment a
    /// snapshot takes, when nothing is counted.
    func withEveryShard<R: Sendable, E: Error>(_ body: ([Copy]) throws(E) -> R) throws(E) -> R {
        func lock(from index: Int, _ copies: inout [Copy]) throws(E) -> R {
            guard index < shards.count else { return try body(copies) }
            return try shards[index].slots.withLock { (slots) throws(E) -> R in
                copies.append(slots.copy())
                return try lock(from: index + 1, &copies)
            }
        }
        var copies: [Copy] = []
        copies.reserveCapacity(shards.count)
        return try lock(from: 0, &copies)
    }

    /// Empties every shard.
    func removeAll() {
        for shard in shards {
            shard.slots.withLock { slots in
                slots = Slots()
                publish(shard, slots)
            }
        }
    }

    /// How many orders have an entry.
    var count: Int { shards.reduce(0) { $0 + $1.slots.withLock { $0.count } } }
}

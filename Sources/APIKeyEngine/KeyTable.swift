import CXXHash
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The in-memory home of every key record: lock-sharded, open-addressed, keyed by the seeded
/// 64-bit XXH3 hash of the key's bytes.
///
/// The low bits of the hash pick a shard (a `Mutex` each); the high 32 bits are the tag stored in
/// the shard's slot array and pick the first slot to probe. A tag match alone never finds a
/// record: the full key bytes are compared. Records are stored densely per shard, so a slot is
/// 8 bytes and a lookup touches the slot array, then one record.
final class KeyTable<Hash: KeyHashFunction>: Sendable {
    private let shards: [KeyShard]
    private let shardMask: UInt64
    private let hashFunction: Hash

    /// A table of `1 << shardCountLog2` shards indexed by `hashFunction`.
    init(shardCountLog2: Int = 8, hashFunction: Hash) {
        precondition((0...16).contains(shardCountLog2), "shard count must be 1 to 65536")
        let count = 1 << shardCountLog2
        shards = (0..<count).map { _ in KeyShard() }
        shardMask = UInt64(count - 1)
        self.hashFunction = hashFunction
    }

    @inline(__always)
    private func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        hashFunction.hash(key)
    }

    /// Runs `body` on the record whose key is exactly `key`, under its shard's lock; nil when
    /// there is none.
    @inline(__always)
    func read<R>(_ key: UnsafeRawBufferPointer, _ body: (borrowing KeyRecord) -> R) -> R? {
        let hash = hash(key)
        let tag = UInt32(truncatingIfNeeded: hash >> 32)
        return shards[Int(hash & shardMask)].storage.withLock { storage in
            guard let found = storage.find(tag: tag, key: key) else { return nil }
            return body(storage.records[found.index])
        }
    }

    /// Runs `body` on the record whose key is exactly `key`; nil when there is none.
    func read<R>(_ key: String, _ body: (borrowing KeyRecord) -> R) -> R? {
        var key = key
        return key.withUTF8 { read(UnsafeRawBufferPointer($0), body) }
    }

    /// Whether a record has exactly this key.
    func contains(_ key: String) -> Bool {
        read(key) { _ in true } ?? false
    }

    /// Adds `record`; false (and no change) when its key is already present.
    func insert(_ record: KeyRecord) -> Bool {
        withHash(record.apiKey) { hash, tag, bytes in
            shards[Int(hash & shardMask)].storage.withLock { storage in
                if storage.find(tag: tag, key: bytes) != nil { return false }
                storage.insert(record, tag: tag)
                return true
            }
        }
    }

    /// Changes the record with this key in place; nil when there is none. `body` must not change
    /// the key (use remove and insert for that).
    func update<R>(_ key: String, _ body: (inout KeyRecord) -> R) -> R? {
        withHash(key) { hash, tag, bytes in
            shards[Int(hash & shardMask)].storage.withLock { storage in
                guard let found = storage.find(tag: tag, key: bytes) else { return nil }
                let result = body(&storage.records[found.index])
                assert(storage.records[found.index].apiKey == key, "update must not change the key")
                return result
            }
        }
    }

    /// Removes and returns the record with this key; nil when there is none.
    @discardableResult
    func remove(_ key: String) -> KeyRecord? {
        withHash(key) { hash, tag, bytes in
            shards[Int(hash & shardMask)].storage.withLock { storage in
                guard let found = storage.find(tag: tag, key: bytes) else { return nil }
                return storage.remove(slot: found.slot, index: found.index)
            }
        }
    }

    /// Every shard's records, each copied under its shard's lock (a copy-on-write copy: the
    /// shard pays for a real copy only if it changes while the snapshot is being written).
    func shardContents() -> [[KeyRecord]] {
        shards.map { shard in shard.storage.withLock { $0.records } }
    }

    /// Sizes every shard for `totalCount` records spread evenly, so loading that many does not
    /// grow the shards step by step.
    func reserveCapacity(_ totalCount: Int) {
        let perShard = totalCount / shards.count + 1
        var capacity = ShardStorage.initialCapacity
        while perShard * 4 > capacity * 3 { capacity *= 2 }
        for shard in shards { shard.storage.withLock { $0.reserve(records: perShard, slots: capacity) } }
    }

    /// Removes every record.
    func removeAll() {
        for shard in shards { shard.storage.withLock { $0 = ShardStorage() } }
    }

    /// The number of records, counted shard by shard (not one atomic moment under writes).
    var count: Int {
        shards.reduce(0) { total, shard in total + shard.storage.withLock { $0.records.count } }
    }

    private func withHash<R>(_ key: String, _ body: (UInt64, UInt32, UnsafeRawBufferPointer) -> R) -> R {
        var key = key
        return key.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            let hash = hash(bytes)
            return body(hash, UInt32(truncatingIfNeeded: hash >> 32), bytes)
        }
    }
}

/// The 64-bit hash a key table indexes keys by.
protocol KeyHashFunction: Sendable {
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64
}

/// XXH3-64 with a seed; pick the seed at random per process, so nobody outside can aim keys at
/// one shard or one probe chain.
struct SeededXXH3: KeyHashFunction {
    let seed: UInt64

    @inline(__always)
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits_withSeed(key.baseAddress, key.count, seed)
    }
}

/// One shard: its lock and what the lock guards.
private final class KeyShard: Sendable {
    let storage = Mutex(ShardStorage())
}

/// An open-addressed index (linear probing, backward-shift deletion) over a dense record array.
private struct ShardStorage {
    /// 0 for an empty slot, else the record's tag in the high 32 bits and its index + 1 in the low.
    var slots: [UInt64] = Array(repeating: 0, count: ShardStorage.initialCapacity)
    /// The records, densely; removal moves the last one into the hole.
    var records: [KeyRecord] = []
    /// The tag of each record, parallel to `records`, so growth and removal need not rehash keys.
    var tags: [UInt32] = []

    static let initialCapacity = 16

    var mask: Int { slots.count - 1 }

    @inline(__always)
    func find(tag: UInt32, key: UnsafeRawBufferPointer) -> (slot: Int, index: Int)? {
        let mask = self.mask
        var slot = Int(tag) & mask
        while true {
            let entry = slots[slot]
            if entry == 0 { return nil }
            if UInt32(truncatingIfNeeded: entry >> 32) == tag {
                let index = Int(UInt32(truncatingIfNeeded: entry)) - 1
                if Self.equal(records[index].apiKey, key) { return (slot, index) }
            }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    static func equal(_ stored: String, _ key: UnsafeRawBufferPointer) -> Bool {
        let matched = stored.utf8.withContiguousStorageIfAvailable { utf8 in
            utf8.count == key.count && (key.count == 0 || memcmp(utf8.baseAddress!, key.baseAddress!, key.count) == 0)
        }
        return matched ?? stored.utf8.elementsEqual(key)
    }

    mutating func insert(_ record: KeyRecord, tag: UInt32) {
        if (records.count + 1) * 4 > slots.count * 3 {
            rebuild(capacity: slots.count * 2)
        }
        records.append(record)
        tags.append(tag)
        place(tag: tag, index: records.count - 1)
    }

    private mutating func place(tag: UInt32, index: Int) {
        let mask = self.mask
        var slot = Int(tag) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = UInt64(tag) << 32 | UInt64(index + 1)
    }

    mutating func reserve(records count: Int, slots capacity: Int) {
        records.reserveCapacity(count)
        tags.reserveCapacity(count)
        if capacity > slots.count { rebuild(capacity: capacity) }
    }

    private mutating func rebuild(capacity: Int) {
        slots = Array(repeating: 0, count: capacity)
        for index in tags.indices { place(tag: tags[index], index: index) }
    }

    mutating func remove(slot: Int, index: Int) -> KeyRecord {
        let mask = self.mask
        // Backward shift: pull later members of the probe run into the hole while their home
        // slot lies at or before the hole, so every run stays unbroken without tombstones.
        var hole = slot
        var next = (hole + 1) & mask
        while slots[next] != 0 {
            let home = Int(UInt32(truncatingIfNeeded: slots[next] >> 32)) & mask
            if (next - home) & mask >= (next - hole) & mask {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = 0

        let removed = records[index]
        let last = records.count - 1
        if index != last {
            // Point the slot of the last record at the hole it moves into.
            let lastTag = tags[last]
            var probe = Int(lastTag) & mask
            while UInt32(truncatingIfNeeded: slots[probe]) != UInt32(last + 1) { probe = (probe + 1) & mask }
            slots[probe] = UInt64(lastTag) << 32 | UInt64(index + 1)
            records[index] = records[last]
            tags[index] = lastTag
        }
        records.removeLast()
        tags.removeLast()
        return removed
    }
}

import Atomics
import CMemoryHints

/// The in-memory home of every key record, built so that `check` and `get_info` take no lock and
/// write nothing shared.
///
/// Layout: the low bits of the key's seeded 64-bit hash pick one of `1 << shardCountLog2` shards.
/// A shard has an open-addressed slot table (linear probing, backward-shift deletion) of 8-byte
/// slots: the hash's high 32 bits as a tag (they also pick the first slot to probe) and a
/// reference into the shard's arena, where a record is one run of bytes (``ArenaRecord``) whose
/// first bytes hold all that `check` reads. A lookup reads the shard header, one slot, the chunk
/// directory entry the slot's reference names, and one record; a tag match alone never finds a
/// record: the full key bytes are compared.
///
/// Concurrency: writers take the shard's mutex. Readers take nothing: each shard has a sequence
/// number (a seqlock) that a writer makes odd while it changes what readers can reach and bumps
/// again when done; a reader notes it, reads, and keeps what it read only if the number is still
/// the same even value, else retries, and takes the mutex after ``optimisticAttempts`` tries.
/// Memory a reader may still be reading is never unmapped while the table lives (``ArenaMemory``):
/// a compacted shard's old chunks are handed back for reuse (their pages read as zeros meanwhile),
/// and replaced slot tables and chunk directories are kept (they total less than the live ones).
/// Every length read without the lock is read once and checked against its chunk before use, so a
/// torn read yields an answer that is thrown away, never a read out of bounds.
final class KeyTable<Hash: KeyHashFunction>: @unchecked Sendable {
    /// Per shard, 64 bytes (a cache line of its own): sequence, slot table, chunk directory.
    private let headers: UnsafeMutableRawPointer
    private let locks: [ShardLock]
    private let memory = ArenaMemory()
    private let shardMask: UInt64
    private let hashFunction: Hash

    /// Lock-free tries before a reader waits for the shard's mutex instead.
    static var optimisticAttempts: Int { 8 }

    /// A table of `1 << shardCountLog2` shards indexed by `hashFunction`.
    init(shardCountLog2: Int = 8, hashFunction: Hash) {
        precondition((0...16).contains(shardCountLog2), "shard count must be 1 to 65536")
        let count = 1 << shardCountLog2
        headers = memory.allocate(byteCount: count * 64)
        for shard in 0..<count {
            let header = ShardHeader(headers + shard * 64)
            header.sequencePointer.initialize(to: .init(0))
            let slots = SlotTable.allocate(capacity: SlotTable.initialCapacity, in: memory)
            header.slotTablePointer.initialize(to: .init(slots.bits))
            header.directoryPointer.initialize(to: .init(ChunkDirectory.allocate(capacity: 8, in: memory).bits))
        }
        locks = (0..<count).map { _ in ShardLock() }
        shardMask = UInt64(count - 1)
        self.hashFunction = hashFunction
    }

    // MARK: - Lock-free reads

    /// The hash that places `key` in the table: compute it once and hand it to ``prefetch(hash:)``
    /// and the lookups.
    @inline(__always)
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        hashFunction.hash(key)
    }

    /// Starts loading the slot a lookup of the key with this hash probes first, so that work done
    /// before the lookup overlaps the wait for memory. Reads only the shard header; a hint, never
    /// wrong.
    func prefetch(hash: UInt64) {
        let (shard, tag) = place(hash: hash)
        let table = header(shard).slotTable
        apikeyd_prefetch(table.slots + (Int(tag) & table.mask))
    }

    /// Starts loading the record a lookup of `key` (whose hash is `hash`) would read: call it once
    /// ``prefetch(hash:)`` has had time to bring the slot in, so that the waits for several keys'
    /// slots, then records, overlap. Reads without the lock and follows only references the
    /// directory bounds; a hint, never wrong.
    func prefetchRecord(_ key: UnsafeRawBufferPointer, hash: UInt64) {
        let (shard, tag) = place(hash: hash)
        let header = self.header(shard)
        let table = header.slotTable
        var slot = Int(tag) & table.mask
        for _ in 0..<Self.prefetchProbes {
            let entry = table.slots[slot]
            if entry == 0 { return }
            if UInt32(truncatingIfNeeded: entry >> 32) == tag {
                guard let record = header.directory.record(UInt32(truncatingIfNeeded: entry) &- 1) else { return }
                // What check reads runs from the record's start to the end of its key.
                apikeyd_prefetch(record.base)
                apikeyd_prefetch(record.base + min(record.available, ArenaRecord.keyOffset + key.count) - 1)
                return
            }
            slot = (slot + 1) & table.mask
        }
    }

    /// Slots ``prefetchRecord(_:hash:)`` looks at before it gives up.
    private static var prefetchProbes: Int { 4 }

    /// Status and expiry of the record whose key is exactly `key` (whose hash is `hash`); nil when
    /// there is none.
    @inline(__always)
    func validity(_ key: UnsafeRawBufferPointer, hash: UInt64) -> KeyValidity? {
        readOptimistically(key, hash: hash) { record, unchanged -> KeyValidity?? in
            guard let record else { return unchanged() ? .some(nil) : nil }
            guard let validity = record.validity, unchanged() else { return nil }
            return .some(validity)
        } locked: { record in
            record?.validity
        }
    }

    /// Calls `body` once with the validity, the order and client IDs and the custom-parameter
    /// text of the record whose key is exactly `key` (whose hash is `hash`), copied out of the
    /// table (on the stack when small); false when there is none. Not generic, so callers in other
    /// modules get this code specialised.
    @inline(__always)
    func withInfo(
        _ key: UnsafeRawBufferPointer, hash: UInt64, _ body: (KeyValidity, KeyOwners, UnsafeRawBufferPointer) -> Void
    ) -> Bool {
        readOptimistically(key, hash: hash) { record, unchanged -> Bool? in
            guard let record else { return unchanged() ? false : nil }
            guard let custom = record.customIfInside, let validity = record.validity,
                let (orderID, clientID) = record.ownersIfInside
            else { return nil }
            return withUnsafeTemporaryAllocation(byteCount: max(custom.count, 1), alignment: 1) { copy in
                let copied = UnsafeMutableRawBufferPointer(rebasing: copy[..<custom.count])
                copied.copyMemory(from: custom)
                guard unchanged() else { return nil }
                body(validity, KeyOwners(orderID: orderID, clientID: clientID), UnsafeRawBufferPointer(copied))
                return true
            }
        } locked: { record in
            guard let record else { return false }
            body(record.validity!, KeyOwners(orderID: record.orderID, clientID: record.clientID), record.custom)
            return true
        }
    }

    /// ``validity(_:hash:)`` hashing `key` itself.
    func validity(_ key: UnsafeRawBufferPointer) -> KeyValidity? { validity(key, hash: hash(key)) }

    /// The seqlock read both lookups share. Probes for `key` without the lock and hands `read`
    /// the record found (nil: none) with `unchanged`, which says whether the shard stayed the
    /// same since the probe began: `read` calls it once it holds what it needs, and returns nil
    /// to retry (a torn read). After ``optimisticAttempts`` retries, `locked` reads under the
    /// shard's mutex, where nothing can be torn.
    @inline(__always)
    private func readOptimistically<R>(
        _ key: UnsafeRawBufferPointer, hash: UInt64,
        _ read: (ArenaRecordView?, _ unchanged: () -> Bool) -> R?,
        locked: (ArenaRecordView?) -> R
    ) -> R {
        let (shard, tag) = place(hash: hash)
        let header = self.header(shard)
        for _ in 0..<Self.optimisticAttempts {
            let before = header.sequence.load(ordering: .acquiring)
            guard before & 1 == 0 else { continue }
            let found: ArenaRecordView?
            switch Self.locate(tag: tag, key: key, in: header) {
            case .inconsistent: continue
            case .absent: found = nil
            case .found(let record): found = record
            }
            let answer = read(found) {
                Atomics.atomicMemoryFence(ordering: Atomics.AtomicUpdateOrdering.acquiring)
                return header.sequence.load(ordering: .relaxed) == before
            }
            if let answer { return answer }
        }
        return self.locked(shard, tag: tag, key: key, locked)
    }

    // MARK: - Reads under the lock

    /// A copy of the record of order `orderID`, whose key hashes to `hash`; nil when there is
    /// none. Lets an index by order hold 8 bytes instead of the key.
    func record(orderID: Int64, hash: UInt64) -> KeyRecord? {
        let (shard, tag) = place(hash: hash)
        return locks[shard].withWriter { _ in
            Self.find(tag: tag, in: header(shard)) { $0.orderID == orderID }?.record.view.record
        }
    }

    /// The hash that indexes `key` (see ``record(orderID:hash:)``).
    func hash(_ key: String) -> UInt64 {
        withBytes(key) { hash($0) }
    }

    /// A copy of the record whose key is exactly `key`; nil when there is none.
    func record(_ key: String) -> KeyRecord? {
        withBytes(key) { bytes in
            let (shard, tag) = place(bytes)
            return locked(shard, tag: tag, key: bytes) { $0?.record }
        }
    }

    /// Whether a record has exactly this key.
    func contains(_ key: String) -> Bool {
        withBytes(key) { validity($0) != nil }
    }

    /// The number of records, counted shard by shard (not one atomic moment under writes).
    var count: Int {
        locks.reduce(0) { total, lock in total + lock.withWriter { $0.count } }
    }

    /// Every shard's records, each shard copied under its lock (a memcpy per record).
    func copyRecords() -> KeyTableCopy {
        KeyTableCopy(
            shards: locks.indices.map { shard in
                locks[shard].withWriter { writer in
                    var bytes: [UInt8] = []
                    bytes.reserveCapacity(writer.count * 256)
                    Self.forEachRecord(in: header(shard)) { record in
                        bytes.append(contentsOf: UnsafeRawBufferPointer(start: record.base, count: record.size))
                    }
                    return bytes
                }
            })
    }

    // MARK: - Writes

    /// Adds `record`; false (and no change) when its key is already present.
    func insert(_ record: KeyRecord) -> Bool {
        withBytes(record.apiKey) { bytes in
            let (shard, tag) = place(bytes)
            let header = self.header(shard)
            return locks[shard].withWriter { writer in
                guard case .absent = Self.locate(tag: tag, key: bytes, in: header) else { return false }
                if (writer.count + 1) * 4 > (header.slotTable.mask + 1) * 3 {
                    growSlots(header, capacity: (header.slotTable.mask + 1) * 2)
                }
                let reference = store(record, header, &writer)
                Self.changing(header) {
                    Self.placeSlot(UInt64(tag) << 32 | UInt64(reference + 1), in: header.slotTable)
                }
                writer.count += 1
                compactIfWasteful(header, &writer)
                return true
            }
        }
    }

    /// Replaces the record that has `record`'s key and returns the client ID and status it had;
    /// nil (and no change) when there is none.
    func replace(_ record: KeyRecord) -> (clientID: Int64, status: KeyStatus)? {
        withBytes(record.apiKey) { bytes in
            let (shard, tag) = place(bytes)
            let header = self.header(shard)
            return locks[shard].withWriter { writer -> (clientID: Int64, status: KeyStatus)? in
                guard let (slot, old) = Self.find(tag: tag, in: header, matching: { $0.keyEquals(bytes) }) else {
                    return nil
                }
                let oldClient = old.view.clientID
                let oldStatus = KeyStatus(code: old.view.statusCode) ?? .active
                let reference = store(record, header, &writer)
                Self.changing(header) { header.slotTable.slots[slot] = UInt64(tag) << 32 | UInt64(reference + 1) }
                writer.release(old.reference, size: old.view.size, header: header, memory: memory)
                compactIfWasteful(header, &writer)
                return (oldClient, oldStatus)
            }
        }
    }

    /// Removes and returns the record of order `orderID`, whose key hashes to `hash`; nil when
    /// there is none.
    @discardableResult
    func remove(orderID: Int64, hash: UInt64) -> KeyRecord? {
        remove(place(hash: hash)) { $0.orderID == orderID }
    }

    /// Removes and returns the record of order `orderID` whose key hashes to `hash` and is not
    /// `key`: the old record, once the order's record with its new key is in.
    @discardableResult
    func remove(orderID: Int64, hash: UInt64, otherThan key: String) -> KeyRecord? {
        withBytes(key) { bytes in remove(place(hash: hash)) { $0.orderID == orderID && !$0.keyEquals(bytes) } }
    }

    private func remove(_ place: (shard: Int, tag: UInt32), matching: (ArenaRecordView) -> Bool) -> KeyRecord? {
        let header = self.header(place.shard)
        return locks[place.shard].withWriter { writer -> KeyRecord? in
            guard let (slot, old) = Self.find(tag: place.tag, in: header, matching: matching) else { return nil }
            let removed = old.view.record
            Self.changing(header) { Self.clearSlot(slot, in: header.slotTable) }
            writer.release(old.reference, size: old.view.size, header: header, memory: memory)
            writer.count -= 1
            compactIfWasteful(header, &writer)
            return removed
        }
    }

    /// Sizes every shard's slot table for `totalCount` records spread evenly, so loading that
    /// many does not grow the tables step by step.
    func reserveCapacity(_ totalCount: Int) {
        let perShard = totalCount / locks.count + 1
        for shard in locks.indices {
            let header = self.header(shard)
            locks[shard].withWriter { _ in
                var capacity = header.slotTable.mask + 1
                while perShard * 4 > capacity * 3 { capacity *= 2 }
                if capacity > header.slotTable.mask + 1 { growSlots(header, capacity: capacity) }
            }
        }
    }

    /// Removes every record and hands the arena's chunks back for the records that come next.
    func removeAll() {
        for shard in locks.indices {
            let header = self.header(shard)
            locks[shard].withWriter { writer in
                Self.changing(header) {
                    let table = header.slotTable
                    table.slots.update(repeating: 0, count: table.mask + 1)
                }
                writer.releaseAll(header: header, memory: memory)
            }
        }
    }

    // MARK: - Verification

    /// What is wrong with the table's structure, checked shard by shard under each lock: every
    /// slot reaches a record that lies inside its chunk, has a valid status, hashes to this shard
    /// and tag, and is found again by a lookup of its key; counts and byte totals agree with the
    /// slots, and no two records overlap. Empty when all is well.
    func structuralProblems() -> [String] {
        var problems: [String] = []
        for shard in locks.indices {
            let header = self.header(shard)
            locks[shard].withWriter { writer in
                let table = header.slotTable
                var count = 0
                var sharedBytes = 0
                var extents: [(start: UInt, end: UInt)] = []
                for slot in 0...table.mask where table.slots[slot] != 0 {
                    count += 1
                    let entry = table.slots[slot]
                    let tag = UInt32(truncatingIfNeeded: entry >> 32)
                    guard let view = header.directory.record(UInt32(truncatingIfNeeded: entry) &- 1),
                        view.liesInsideChunk
                    else {
                        problems.append("shard \(shard) slot \(slot): the reference leaves the arena")
                        continue
                    }
                    let start = UInt(bitPattern: view.base)
                    extents.append((start, start + UInt(view.size)))
                    if !ShardArena.hasOwnChunk(view.size) { sharedBytes += view.size }
                    let order = view.orderID
                    if view.validity == nil { problems.append("order \(order): status byte \(view.statusCode)") }
                    if place(view.key) != (shard, tag) {
                        problems.append("order \(order): its key hashes to another shard or tag")
                    }
                    guard case .found(let found) = Self.locate(tag: tag, key: view.key, in: header),
                        found.base == view.base
                    else {
                        problems.append("order \(order): a lookup of its key does not find it")
                        continue
                    }
                }
                extents.sort { $0.start < $1.start }
                for index in extents.indices.dropFirst() where extents[index].start < extents[index - 1].end {
                    problems.append("shard \(shard): two records overlap")
                }
                if count != writer.count { problems.append("shard \(shard): \(count) slots, \(writer.count) counted") }
                if sharedBytes != writer.liveBytes {
                    problems.append("shard \(shard): \(sharedBytes) live bytes, \(writer.liveBytes) counted")
                }
            }
        }
        return problems
    }

    /// Per shard, the bytes of its live records in shared chunks, of its shared chunks and of the
    /// chunks of records too big to share; for tests of the memory bound.
    func arenaUsage() -> [(liveBytes: Int, sharedChunkBytes: Int, ownChunkBytes: Int)] {
        locks.map { lock in lock.withWriter { ($0.liveBytes, $0.sharedChunkBytes, $0.ownChunkBytes) } }
    }

    /// The table's memory: mapped, and released to the kernel but kept for reuse.
    var memoryUsage: (mappedBytes: Int, pooledBytes: Int) { memory.usage }

    // MARK: - Internals

    /// The 64-byte header of `shard`.
    @inline(__always)
    private func header(_ shard: Int) -> ShardHeader {
        ShardHeader(headers + shard &* 64)
    }

    @inline(__always)
    private func place(_ key: UnsafeRawBufferPointer) -> (shard: Int, tag: UInt32) {
        place(hash: hashFunction.hash(key))
    }

    @inline(__always)
    private func place(hash: UInt64) -> (shard: Int, tag: UInt32) {
        (Int(truncatingIfNeeded: hash & shardMask), UInt32(truncatingIfNeeded: hash >> 32))
    }

    private func withBytes<R>(_ key: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        var key = key
        return key.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    /// Runs `body` on the record with `key` (nil: none) under the shard's mutex, where nothing
    /// can be torn.
    private func locked<R>(
        _ shard: Int, tag: UInt32, key: UnsafeRawBufferPointer, _ body: (ArenaRecordView?) -> R
    )
        -> R
    {
        locks[shard].withWriter { _ in
            body(Self.find(tag: tag, in: header(shard)) { $0.keyEquals(key) }?.record.view)
        }
    }

    /// What an unlocked probe found.
    private enum Lookup {
        case found(ArenaRecordView)
        case absent
        /// A length or reference pointed outside the arena: a writer was busy; retry.
        case inconsistent
    }

    /// Probes for `key`. Safe without the lock: every reference and length is bounds-checked.
    @inline(__always)
    private static func locate(tag: UInt32, key: UnsafeRawBufferPointer, in header: ShardHeader) -> Lookup {
        let table = header.slotTable
        let directory = header.directory
        let mask = table.mask
        var slot = Int(tag) & mask
        for _ in 0...mask {
            let entry = table.slots[slot]
            if entry == 0 { return .absent }
            if UInt32(truncatingIfNeeded: entry >> 32) == tag {
                guard let record = directory.record(UInt32(truncatingIfNeeded: entry) &- 1),
                    let matches = record.keyMatches(key)
                else { return .inconsistent }
                if matches { return .found(record) }
            }
            slot = (slot + 1) & mask
        }
        return .inconsistent
    }

    /// The slot and record with `tag` that `matching` accepts; call with the shard's mutex held.
    private static func find(
        tag: UInt32, in header: ShardHeader, matching: (ArenaRecordView) -> Bool
    )
        -> (slot: Int, record: (view: ArenaRecordView, reference: UInt32))?
    {
        let table = header.slotTable
        let directory = header.directory
        let mask = table.mask
        var slot = Int(tag) & mask
        while true {
            let entry = table.slots[slot]
            if entry == 0 { return nil }
            if UInt32(truncatingIfNeeded: entry >> 32) == tag {
                let reference = UInt32(truncatingIfNeeded: entry) - 1
                let record = directory.record(reference)!
                if matching(record) { return (slot, (record, reference)) }
            }
            slot = (slot + 1) & mask
        }
    }

    /// Calls `body` on every record of a shard; call with the shard's mutex held.
    private static func forEachRecord(in header: ShardHeader, _ body: (ArenaRecordView) -> Void) {
        let table = header.slotTable
        let directory = header.directory
        for slot in 0...table.mask where table.slots[slot] != 0 {
            body(directory.record(UInt32(truncatingIfNeeded: table.slots[slot]) - 1)!)
        }
    }

    /// Runs `change` with the shard's sequence odd, so readers that overlap it retry.
    @inline(__always)
    private static func changing(_ header: ShardHeader, _ change: () -> Void) {
        let sequence = header.sequence.load(ordering: .relaxed)
        header.sequence.store(sequence &+ 1, ordering: .relaxed)
        Atomics.atomicMemoryFence(ordering: Atomics.AtomicUpdateOrdering.releasing)
        change()
        header.sequence.store(sequence &+ 2, ordering: .releasing)
    }

    /// Copies `record` into free arena memory (not yet reachable by readers) and returns its
    /// reference.
    private func store(_ record: KeyRecord, _ header: ShardHeader, _ writer: inout ShardArena) -> UInt32 {
        let size = ArenaRecord.size(of: record)
        let reference = writer.allocate(size, header: header, memory: memory, sizeHint: writer.liveBytes)
        ArenaRecord.write(record, to: header.directory.record(reference)!.base.mutable)
        return reference
    }

    /// Compacts the shard when its garbage outweighs its live records (``ShardArena``): copies
    /// every record in a shared chunk into fresh chunks, points the slots at the copies in one
    /// seqlock step (readers in the old copies retry) and hands the old chunks back.
    private func compactIfWasteful(_ header: ShardHeader, _ writer: inout ShardArena) {
        guard writer.needsCompaction else { return }
        let table = header.slotTable
        var moving: [(slot: Int, view: ArenaRecordView)] = []
        var bytes = 0
        for slot in 0...table.mask where table.slots[slot] != 0 {
            let view = header.directory.record(UInt32(truncatingIfNeeded: table.slots[slot]) - 1)!
            guard !ShardArena.hasOwnChunk(view.size) else { continue }
            moving.append((slot, view))
            bytes += view.size
        }
        let setAside = writer.setSharedChunksAside()
        var entries: [UInt64] = []
        entries.reserveCapacity(moving.count)
        for (slot, view) in moving {
            let reference = writer.allocate(view.size, header: header, memory: memory, sizeHint: bytes)
            header.directory.record(reference)!.base.mutable.copyMemory(from: view.base, byteCount: view.size)
            entries.append(table.slots[slot] & ~0xffff_ffff | UInt64(reference + 1))
        }
        Self.changing(header) {
            for (index, move) in moving.enumerated() { table.slots[move.slot] = entries[index] }
        }
        writer.releaseChunks(setAside, header: header, memory: memory)
    }

    private static func placeSlot(_ entry: UInt64, in table: SlotTable) {
        let mask = table.mask
        var slot = Int(entry >> 32) & mask
        while table.slots[slot] != 0 { slot = (slot + 1) & mask }
        table.slots[slot] = entry
    }

    /// Empties `slot`, pulling later members of its probe run back while their home slot lies at
    /// or before the hole, so every run stays unbroken without tombstones.
    private static func clearSlot(_ slot: Int, in table: SlotTable) {
        let mask = table.mask
        var hole = slot
        var next = (hole + 1) & mask
        while table.slots[next] != 0 {
            let home = Int(table.slots[next] >> 32) & mask
            if (next - home) & mask >= (next - hole) & mask {
                table.slots[hole] = table.slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        table.slots[hole] = 0
    }

    /// Moves the shard to a slot table of `capacity` slots; the old one is kept for readers still
    /// in it.
    private func growSlots(_ header: ShardHeader, capacity: Int) {
        let old = header.slotTable
        let new = SlotTable.allocate(capacity: capacity, in: memory)
        for slot in 0...old.mask where old.slots[slot] != 0 { Self.placeSlot(old.slots[slot], in: new) }
        Self.changing(header) { header.slotTable = new }
    }
}

extension UnsafeRawPointer {
    fileprivate var mutable: UnsafeMutableRawPointer { UnsafeMutableRawPointer(mutating: self) }
}

/// The order and client a key belongs to.
struct KeyOwners {
    var orderID: Int64
    var clientID: Int64
}

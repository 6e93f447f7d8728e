import Atomics
import CMemoryHints

/// The in-memory home of every key record, built so that `check` and `get_info` take no lock and
/// write nothing shared.
///
/// Layout: the low bits of the key's seeded 64-bit hash pick one of `1 << shardCountLog2` shards.
/// A shard has an open-addressed slot table (linear probing, backward-shift deletion) of 32-byte
/// slots (``Slot``): the hash's high 32 bits as a tag (they also pick the first slot to probe), a
/// reference into the shard's arena, where a record is one run of bytes (``ArenaRecord``), and
/// what `check` needs: the key's verifier (``KeyVerifier``) and its status and expiry. So `check`
/// reads the shard header and one slot: a tag and verifier match decides, unless another key of
/// the shard shares both (then the record's key is compared). Every other lookup (`get_info`,
/// verify, writes) reads the record as well and compares the full key bytes.
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
        apikeyd_prefetch(table.slot(Int(tag) & table.mask).words)
    }

    /// The verifier a slot keeps of `key`: compute it once and hand it to
    /// ``slotValidity(hash:verifier:)``.
    @inline(__always)
    func verifier(_ key: UnsafeRawBufferPointer) -> KeyVerifier {
        hashFunction.verifier(key)
    }

    /// Status and expiry of the record whose key is exactly `key` (whose hash is `hash`); nil when
    /// there is none. Reads the slot alone when its tag and verifier match and no other key of
    /// the shard shares them.
    @inline(__always)
    func validity(_ key: UnsafeRawBufferPointer, hash: UInt64) -> KeyValidity? {
        // The slot starts loading while the verifier is computed.
        prefetch(hash: hash)
        switch slotValidity(hash: hash, verifier: hashFunction.verifier(key)) {
        case .valid(let validity): return validity
        case .absent: return nil
        case .needsKey: return validityComparingKey(key, hash: hash)
        }
    }

    /// What the slots alone say of a key.
    enum SlotAnswer {
        /// The key's slot, and its status and expiry.
        case valid(KeyValidity)
        /// No slot holds the key's tag and verifier: the table does not hold it.
        case absent
        /// Its slot shares its tag and verifier with another key's, or writers kept changing the
        /// shard: ask ``validity(_:hash:)``, which compares the key itself.
        case needsKey
    }

    /// Status and expiry of the key with this hash and verifier, from its slot alone: the
    /// lookup ``validity(_:hash:)`` makes first, for callers that computed both ahead.
    @inline(__always)
    func slotValidity(hash: UInt64, verifier: KeyVerifier) -> SlotAnswer {
        let (shard, tag) = place(hash: hash)
        let header = self.header(shard)
        return Self.retryingWhileChanged(header) { before -> SlotAnswer? in
            let probe = Self.probe(tag: tag, verifier: verifier, in: header)
            guard Self.isUnchanged(header, since: before) else { return nil }
            switch probe {
            case .valid(let validity): return .valid(validity)
            case .absent: return .absent
            case .compareKey: return .needsKey
            case .inconsistent: return nil
            }
        } ?? .needsKey
    }

    /// ``validity(_:hash:)`` of a key whose slot shares its verifier: the record's key decides.
    private func validityComparingKey(_ key: UnsafeRawBufferPointer, hash: UInt64) -> KeyValidity? {
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
        let answer = Self.retryingWhileChanged(header) { before -> R? in
            let unchanged = { Self.isUnchanged(header, since: before) }
            switch Self.locate(tag: tag, key: key, in: header) {
            case .inconsistent: return nil
            case .absent: return read(nil, unchanged)
            case .found(let record): return read(record, unchanged)
            }
        }
        return answer ?? self.locked(shard, tag: tag, key: key, locked)
    }

    /// The seqlock's reader side, shared by every lock-free read: up to ``optimisticAttempts``
    /// times, waits for an even sequence number and runs `attempt` with it, which reads and asks
    /// ``isUnchanged(_:since:)`` before it trusts what it read; an attempt's nil (torn, or
    /// changed) tries again. Nil when every attempt failed.
    @inline(__always)
    private static func retryingWhileChanged<R>(_ header: ShardHeader, _ attempt: (_ before: UInt64) -> R?) -> R? {
        for _ in 0..<optimisticAttempts {
            let before = header.sequence.load(ordering: .acquiring)
            guard before & 1 == 0 else { continue }
            if let answer = attempt(before) { return answer }
        }
        return nil
    }

    /// Whether the shard's sequence number is still `before`: no writer touched what was read.
    @inline(__always)
    private static func isUnchanged(_ header: ShardHeader, since before: UInt64) -> Bool {
        Atomics.atomicMemoryFence(ordering: Atomics.AtomicUpdateOrdering.acquiring)
        return header.sequence.load(ordering: .relaxed) == before
    }

    // MARK: - Reads under the lock

    /// A copy of the record of order `orderID`, whose key hashes to `hash`; nil when there is
    /// none. Lets an index by order hold 8 bytes instead of the key.
    func record(orderID: Int64, hash: UInt64) -> KeyRecord? {
        let (shard, tag) = place(hash: hash)
        return locks[shard].withWriter { _ in
            Self.find(tag: tag, in: header(shard)) { $0.orderID == orderID }?.view.record
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
                let verifier = hashFunction.verifier(bytes)
                Self.changing(header) {
                    let shared = Self.markSlots(sharing: tag, verifier, in: header.slotTable)
                    Self.placeSlot(in: header.slotTable, tag: tag) {
                        $0.fill(
                            tag: tag, reference: reference, verifier: verifier, validity: record.validity,
                            sharesVerifier: shared)
                    }
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
                guard let old = Self.find(tag: tag, in: header, matching: { $0.keyEquals(bytes) }) else {
                    return nil
                }
                let oldClient = old.view.clientID
                let oldStatus = KeyStatus(code: old.view.statusCode) ?? .active
                let reference = store(record, header, &writer)
                Self.changing(header) {
                    old.slot.setReference(reference)
                    old.slot.set(record.validity)
                }
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
            guard let old = Self.find(tag: place.tag, in: header, matching: matching) else { return nil }
            let removed = old.view.record
            Self.changing(header) { Self.clearSlot(old.index, in: header.slotTable) }
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
                    table.base.initializeMemory(as: UInt64.self, repeating: 0, count: (table.mask + 1) * Slot.wordCount)
                }
                writer.releaseAll(header: header, memory: memory)
            }
        }
    }

    // MARK: - Verification

    /// What is wrong with the table's structure, checked shard by shard under each lock: every
    /// slot reaches a record that lies inside its chunk, has a valid status, hashes to this shard
    /// and tag, and is found again by a lookup of its key; the slot's verifier, status and expiry
    /// are the record's, and every slot whose tag and verifier another slot shares is marked so;
    /// counts and byte totals agree with the slots, and no two records overlap. Empty when all is
    /// well.
    func structuralProblems() -> [String] {
        var problems: [String] = []
        for shard in locks.indices {
            let header = self.header(shard)
            locks[shard].withWriter { writer in
                let table = header.slotTable
                var count = 0
                var sharedBytes = 0
                var extents: [(start: UInt, end: UInt)] = []
                var slotsByVerifier: [VerifiedTag: [Slot]] = [:]
                for index in 0...table.mask where table.slot(index).entry != 0 {
                    count += 1
                    let slot = table.slot(index)
                    let tag = slot.tag
                    guard let view = header.directory.record(slot.reference), view.liesInsideChunk
                    else {
                        problems.append("shard \(shard) slot \(index): the reference leaves the arena")
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
                    let verifier = hashFunction.verifier(view.key)
                    if !slot.holds(verifier) { problems.append("order \(order): its slot holds another verifier") }
                    if slot.validity != view.validity {
                        problems.append("order \(order): its slot's status or expiry is not the record's")
                    }
                    slotsByVerifier[VerifiedTag(tag: tag, verifier: verifier), default: []].append(slot)
                    guard case .found(let found) = Self.locate(tag: tag, key: view.key, in: header),
                        found.base == view.base
                    else {
                        problems.append("order \(order): a lookup of its key does not find it")
                        continue
                    }
                }
                for slots in slotsByVerifier.values where slots.count > 1 && !slots.allSatisfy(\.sharesVerifier) {
                    problems.append("shard \(shard): \(slots.count) slots share a tag and verifier, not all marked")
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
            body(Self.find(tag: tag, in: header(shard)) { $0.keyEquals(key) }?.view)
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
        let directory = header.directory
        return walkProbeRun(of: tag, in: header.slotTable, ending: Lookup.absent) { slot in
            guard let record = directory.record(slot.reference), let matches = record.keyMatches(key) else {
                return .inconsistent
            }
            return matches ? .found(record) : nil
        } ?? .inconsistent
    }

    /// Walks `tag`'s probe run without the lock, giving `visit` each slot with this tag until it
    /// answers; `ending` when the run ends first, nil when it never ends (a torn table).
    @inline(__always)
    private static func walkProbeRun<R>(of tag: UInt32, in table: SlotTable, ending: R, _ visit: (Slot) -> R?) -> R? {
        let mask = table.mask
        var index = Int(tag) & mask
        for _ in 0...mask {
            let slot = table.slot(index)
            let entry = slot.entry
            if entry == 0 { return ending }
            if UInt32(truncatingIfNeeded: entry >> 32) == tag, let answer = visit(slot) { return answer }
            index = (index + 1) & mask
        }
        return nil
    }

    /// What a probe of the slots alone found.
    private enum SlotProbe {
        case valid(KeyValidity)
        case absent
        /// The slot found shares its tag and verifier with another key's: compare the records.
        case compareKey
        /// A torn slot or a probe that never ended: a writer was busy; retry.
        case inconsistent
    }

    /// Probes the slots for a key with this tag and verifier, reading no record. Safe without the
    /// lock: it reads only the slot table; the caller checks the sequence number before it trusts
    /// the answer.
    @inline(__always)
    private static func probe(tag: UInt32, verifier: KeyVerifier, in header: ShardHeader) -> SlotProbe {
        walkProbeRun(of: tag, in: header.slotTable, ending: SlotProbe.absent) { slot in
            guard slot.holds(verifier) else { return nil }
            if slot.sharesVerifier { return .compareKey }
            guard let validity = slot.validity else { return .inconsistent }
            return .valid(validity)
        } ?? .inconsistent
    }

    /// The slot and record with `tag` that `matching` accepts; call with the shard's mutex held.
    private static func find(
        tag: UInt32, in header: ShardHeader, matching: (ArenaRecordView) -> Bool
    )
        -> (index: Int, slot: Slot, view: ArenaRecordView, reference: UInt32)?
    {
        let table = header.slotTable
        let directory = header.directory
        let mask = table.mask
        var index = Int(tag) & mask
        while true {
            let slot = table.slot(index)
            if slot.entry == 0 { return nil }
            if slot.tag == tag {
                let record = directory.record(slot.reference)!
                if matching(record) { return (index, slot, record, slot.reference) }
            }
            index = (index + 1) & mask
        }
    }

    /// Calls `body` on every record of a shard; call with the shard's mutex held.
    private static func forEachRecord(in header: ShardHeader, _ body: (ArenaRecordView) -> Void) {
        let table = header.slotTable
        let directory = header.directory
        for index in 0...table.mask where table.slot(index).entry != 0 {
            body(directory.record(table.slot(index).reference)!)
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
        var moving: [(slot: Slot, view: ArenaRecordView)] = []
        var bytes = 0
        for index in 0...table.mask where table.slot(index).entry != 0 {
            let slot = table.slot(index)
            let view = header.directory.record(slot.reference)!
            guard !ShardArena.hasOwnChunk(view.size) else { continue }
            moving.append((slot, view))
            bytes += view.size
        }
        let setAside = writer.setSharedChunksAside()
        var references: [UInt32] = []
        references.reserveCapacity(moving.count)
        for (_, view) in moving {
            let reference = writer.allocate(view.size, header: header, memory: memory, sizeHint: bytes)
            header.directory.record(reference)!.base.mutable.copyMemory(from: view.base, byteCount: view.size)
            references.append(reference)
        }
        Self.changing(header) {
            for (index, move) in moving.enumerated() { move.slot.setReference(references[index]) }
        }
        writer.releaseChunks(setAside, header: header, memory: memory)
    }

    /// Marks every slot of `tag`'s probe run that holds `tag` and `verifier` as shared, and says
    /// whether there was one: a key about to be placed with them then shares them too.
    private static func markSlots(sharing tag: UInt32, _ verifier: KeyVerifier, in table: SlotTable) -> Bool {
        var index = Int(tag) & table.mask
        var found = false
        while table.slot(index).entry != 0 {
            let slot = table.slot(index)
            if slot.tag == tag, slot.holds(verifier) {
                slot.markSharedVerifier()
                found = true
            }
            index = (index + 1) & table.mask
        }
        return found
    }

    /// Fills (with `fill`) the first empty slot of `tag`'s probe run.
    private static func placeSlot(in table: SlotTable, tag: UInt32, _ fill: (Slot) -> Void) {
        var index = Int(tag) & table.mask
        while table.slot(index).entry != 0 { index = (index + 1) & table.mask }
        fill(table.slot(index))
    }

    /// Empties slot `index`, pulling later members of its probe run back while their home slot
    /// lies at or before the hole, so every run stays unbroken without tombstones.
    private static func clearSlot(_ index: Int, in table: SlotTable) {
        let mask = table.mask
        var hole = index
        var next = (hole + 1) & mask
        while table.slot(next).entry != 0 {
            let home = Int(table.slot(next).tag) & mask
            if (next - home) & mask >= (next - hole) & mask {
                table.slot(hole).copy(from: table.slot(next))
                hole = next
            }
            next = (next + 1) & mask
        }
        table.slot(hole).clear()
    }

    /// Moves the shard to a slot table of `capacity` slots; the old one is kept for readers still
    /// in it.
    private func growSlots(_ header: ShardHeader, capacity: Int) {
        let old = header.slotTable
        let new = SlotTable.allocate(capacity: capacity, in: memory)
        for index in 0...old.mask where old.slot(index).entry != 0 {
            let slot = old.slot(index)
            Self.placeSlot(in: new, tag: slot.tag) { $0.copy(from: slot) }
        }
        Self.changing(header) { header.slotTable = new }
    }
}

extension UnsafeRawPointer {
    fileprivate var mutable: UnsafeMutableRawPointer { UnsafeMutableRawPointer(mutating: self) }
}

/// A slot's tag and verifier, for finding slots that share them.
private struct VerifiedTag: Hashable {
    var tag: UInt32
    var verifier: KeyVerifier
}

/// The order and client a key belongs to.
struct KeyOwners {
    var orderID: Int64
    var clientID: Int64
}

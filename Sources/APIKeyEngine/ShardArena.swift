import Atomics

/// The arena chunks of one key table shard: a count, a capacity, then one word per chunk.
///
/// | offset | field |
/// |---|---|
/// | 0 | number of entries in use (the highest index + 1), atomic |
/// | 8 | capacity |
/// | 16 + 8 × index | the chunk's address (page-aligned) with log2 of its byte size in the low 6 bits; 0 for an index that holds no chunk |
///
/// One word per chunk means a reader without the lock loads a chunk's address and size together
/// and can never pair one chunk's address with another's size, however indexes are reused.
///
/// A reference is the chunk index times 2^15 plus the offset / 8: shared chunks are at most
/// ``largestSharedChunk`` bytes; a record larger than ``largestSharedRecord`` gets a chunk of its
/// own, at offset 0.
struct ChunkDirectory {
    let base: UnsafeMutableRawPointer

    static let smallestChunk = ArenaMemory.chunkAlignment
    static let largestSharedChunk = 1 << 18
    static let largestSharedRecord = largestSharedChunk / 4
    static let maximumChunks = 1 << 17

    @inline(__always) init(bits: UInt) { base = UnsafeMutableRawPointer(bitPattern: bits)! }
    init(base: UnsafeMutableRawPointer) { self.base = base }

    var bits: UInt { UInt(bitPattern: base) }

    /// Entries in use; read with acquire ordering, so a reader that sees an index counted also
    /// sees its entry (written before the count, with release ordering).
    @inline(__always) var count: Int {
        UnsafeAtomic<Int>(at: base.assumingMemoryBound(to: UnsafeAtomic<Int>.Storage.self)).load(ordering: .acquiring)
    }
    var capacity: Int { base.load(fromByteOffset: 8, as: Int.self) }

    /// The chunk at `index` (below ``count``); nil when that index holds none.
    @inline(__always)
    func chunk(_ index: Int) -> (pointer: UnsafeMutableRawPointer, size: Int)? {
        let word = base.load(fromByteOffset: 16 &+ index &* 8, as: UInt.self)
        guard word != 0 else { return nil }
        return (UnsafeMutableRawPointer(bitPattern: word & ~UInt(ArenaMemory.chunkAlignment - 1))!, 1 << (word & 63))
    }

    /// The record at `reference`, with the bytes left in its chunk; nil when the reference
    /// points outside the arena (possible only in a torn read).
    @inline(__always)
    func record(_ reference: UInt32) -> ArenaRecordView? {
        let index = Int(reference >> 15)
        guard index < count, let (pointer, size) = chunk(index) else { return nil }
        let offset = Int(reference & 0x7fff) &<< 3
        guard offset &+ ArenaRecord.keyOffset <= size else { return nil }
        return ArenaRecordView(base: UnsafeRawPointer(pointer + offset), available: size - offset)
    }

    static func allocate(capacity: Int, in memory: ArenaMemory) -> ChunkDirectory {
        let base = memory.allocate(byteCount: 16 + capacity * 8)
        base.bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1).initialize(to: .init(0))
        base.storeBytes(of: capacity, toByteOffset: 8, as: Int.self)
        return ChunkDirectory(base: base)
    }

    /// Sets the number of entries in use, with release ordering.
    func storeCount(_ count: Int) {
        UnsafeAtomic<Int>(at: base.assumingMemoryBound(to: UnsafeAtomic<Int>.Storage.self)).store(
            count, ordering: .releasing)
    }

    /// Points `index` (below ``capacity``) at a chunk, or at none.
    func set(_ index: Int, _ chunk: (pointer: UnsafeMutableRawPointer, size: Int)?) {
        let word = chunk.map { UInt(bitPattern: $0.pointer) | UInt($0.size.trailingZeroBitCount) } ?? 0
        base.storeBytes(of: word, toByteOffset: 16 + index * 8, as: UInt.self)
    }
}

/// The allocator of one shard's arena, touched only by its writers (under the shard's mutex).
///
/// Records are placed one after another in the chunk being filled (bump allocation); a record
/// that is replaced or removed becomes garbage where it lies, as does the end of a chunk too
/// short for the next record. When the garbage outgrows the live records (and one page), the
/// key table compacts the shard: it copies the live records into fresh chunks, points the slots
/// at the copies in one seqlock step and hands the old chunks back (``ArenaMemory``). So a
/// shard's shared chunks hold at most six times its live bytes or 24 KiB, whichever is more,
/// under any mix of sizes and any churn; a record too big to share a chunk has one of its own,
/// at most twice its size, handed back as soon as the record goes.
struct ShardArena {
    /// Records in the shard.
    var count = 0
    /// Bytes of the records in shared chunks that a slot reaches.
    private(set) var liveBytes = 0
    /// Bytes of shared chunks that no record uses and the allocator will not hand out again.
    private(set) var garbageBytes = 0
    /// Bytes of the shard's shared chunks.
    private(set) var sharedChunkBytes = 0
    /// Bytes of the chunks that each hold one record too big to share.
    private(set) var ownChunkBytes = 0
    /// The shared chunk being filled: its index, where its free space starts, and its size.
    private var filling: (index: Int, offset: Int, size: Int)?
    /// Indexes of shared chunks, the one being filled among them.
    private var sharedChunks: [Int] = []
    /// Directory indexes below the count that hold no chunk.
    private var freeIndexes: [Int] = []

    /// Whether garbage outweighs the live records enough that compacting pays.
    var needsCompaction: Bool { garbageBytes > max(liveBytes, ChunkDirectory.smallestChunk) }

    /// Whether a record of `size` bytes gets a chunk of its own.
    static func hasOwnChunk(_ size: Int) -> Bool { size > ChunkDirectory.largestSharedRecord }

    /// Room for a record of `size` bytes (a multiple of 8), not yet reachable by readers; returns
    /// its reference. `sizeHint` is the bytes the shard is expected to hold, which sets the size
    /// of a new shared chunk.
    mutating func allocate(_ size: Int, header: ShardHeader, memory: ArenaMemory, sizeHint: Int) -> UInt32 {
        if Self.hasOwnChunk(size) {
            let chunkSize = Self.chunkSize(for: size)
            ownChunkBytes += chunkSize
            return UInt32(addChunk(size: chunkSize, header: header, memory: memory)) << 15
        }
        if let current = filling, current.offset + size <= current.size {
            filling!.offset += size
            liveBytes += size
            return UInt32(current.index) << 15 | UInt32(current.offset >> 3)
        }
        if let current = filling { garbageBytes += current.size - current.offset }
        let chunkSize = min(Self.chunkSize(for: max(size, sizeHint)), ChunkDirectory.largestSharedChunk)
        let index = addChunk(size: chunkSize, header: header, memory: memory)
        sharedChunkBytes += chunkSize
        sharedChunks.append(index)
        filling = (index, size, chunkSize)
        liveBytes += size
        return UInt32(index) << 15
    }

    /// Marks a record's memory as garbage (or hands its own chunk back); call only once no slot
    /// reaches it, after the seqlock step that unlinked it, so readers still in it retry.
    mutating func release(_ reference: UInt32, size: Int, header: ShardHeader, memory: ArenaMemory) {
        if Self.hasOwnChunk(size) {
            ownChunkBytes -= releaseChunk(Int(reference >> 15), header: header, memory: memory)
        } else {
            liveBytes -= size
            garbageBytes += size
        }
    }

    /// Starts a compaction: the shared chunks are set aside (returned) and allocation goes on in
    /// fresh ones. Pass what this returns to ``releaseChunks(_:header:memory:)`` once no slot
    /// reaches them.
    mutating func setSharedChunksAside() -> [Int] {
        defer {
            sharedChunks = []
            filling = nil
            liveBytes = 0
            garbageBytes = 0
        }
        return sharedChunks
    }

    /// Hands chunks set aside by ``setSharedChunksAside()`` back to `memory`.
    mutating func releaseChunks(_ indexes: [Int], header: ShardHeader, memory: ArenaMemory) {
        for index in indexes { sharedChunkBytes -= releaseChunk(index, header: header, memory: memory) }
    }

    /// Hands every chunk back, after every record is gone (no slot reaches any).
    mutating func releaseAll(header: ShardHeader, memory: ArenaMemory) {
        releaseChunks(setSharedChunksAside(), header: header, memory: memory)
        // What the directory still holds are the chunks of records too big to share.
        let directory = header.directory
        for index in 0..<directory.count where directory.chunk(index) != nil {
            ownChunkBytes -= releaseChunk(index, header: header, memory: memory)
        }
        count = 0
    }

    /// The chunk size for `bytes`: the power of two at or above it, at least one page.
    private static func chunkSize(for bytes: Int) -> Int {
        max(ChunkDirectory.smallestChunk, 1 << (Int.bitWidth - (max(bytes, 1) - 1).leadingZeroBitCount))
    }

    /// Hands the chunk at `index` back and returns its size.
    @discardableResult
    private mutating func releaseChunk(_ index: Int, header: ShardHeader, memory: ArenaMemory) -> Int {
        let directory = header.directory
        let (pointer, size) = directory.chunk(index)!
        directory.set(index, nil)
        memory.releaseChunk(pointer, byteCount: size)
        freeIndexes.append(index)
        return size
    }

    /// Gives a new chunk of `size` bytes a directory index (a free one, or a new one, replacing a
    /// full directory with a larger copy) and returns the index.
    private mutating func addChunk(size: Int, header: ShardHeader, memory: ArenaMemory) -> Int {
        let pointer = memory.allocateChunk(byteCount: size)
        if let index = freeIndexes.popLast() {
            header.directory.set(index, (pointer, size))
            return index
        }
        var directory = header.directory
        precondition(directory.count < ChunkDirectory.maximumChunks, "a key table shard is full (131072 arena chunks)")
        if directory.count == directory.capacity {
            let larger = ChunkDirectory.allocate(capacity: directory.capacity * 2, in: memory)
            (larger.base + 16).copyMemory(from: directory.base + 16, byteCount: directory.count * 8)
            larger.storeCount(directory.count)
            header.directory = larger
            directory = larger
        }
        let index = directory.count
        directory.set(index, (pointer, size))
        directory.storeCount(index + 1)
        return index
    }
}

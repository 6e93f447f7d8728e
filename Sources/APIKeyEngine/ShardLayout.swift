import Atomics

/// The fields of a shard that readers share, in the shard's 64-byte header.
struct ShardHeader {
    let base: UnsafeMutableRawPointer

    @inline(__always) init(_ base: UnsafeMutableRawPointer) { self.base = base }

    var sequencePointer: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage> {
        base.assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self)
    }
    var slotTablePointer: UnsafeMutablePointer<UnsafeAtomic<UInt>.Storage> {
        (base + 8).assumingMemoryBound(to: UnsafeAtomic<UInt>.Storage.self)
    }
    var directoryPointer: UnsafeMutablePointer<UnsafeAtomic<UInt>.Storage> {
        (base + 16).assumingMemoryBound(to: UnsafeAtomic<UInt>.Storage.self)
    }

    @inline(__always) var sequence: UnsafeAtomic<UInt64> { UnsafeAtomic(at: sequencePointer) }

    /// The current slot table; replaced (never changed in size) by growth.
    @inline(__always) var slotTable: SlotTable {
        get { SlotTable(bits: UnsafeAtomic(at: slotTablePointer).load(ordering: .acquiring)) }
        nonmutating set { UnsafeAtomic(at: slotTablePointer).store(newValue.bits, ordering: .releasing) }
    }

    /// The current chunk directory; replaced by a larger copy when full.
    @inline(__always) var directory: ChunkDirectory {
        get { ChunkDirectory(bits: UnsafeAtomic(at: directoryPointer).load(ordering: .acquiring)) }
        nonmutating set { UnsafeAtomic(at: directoryPointer).store(newValue.bits, ordering: .releasing) }
    }
}

/// A power-of-two array of slots at a 64-byte-aligned address. A slot is 0 when empty, else the
/// tag in the high 32 bits and the arena reference + 1 in the low.
///
/// Its handle (``bits``, what the shard header holds) is the address with log2 of the capacity in
/// the low 6 bits, so one load of the header gives a reader both, and a probe's first read of
/// memory is its slot.
struct SlotTable {
    let base: UnsafeMutableRawPointer
    let mask: Int

    static let initialCapacity = 16

    @inline(__always) init(bits: UInt) {
        base = UnsafeMutableRawPointer(bitPattern: bits & ~63)!
        mask = (1 << Int(bits & 63)) &- 1
    }

    var bits: UInt { UInt(bitPattern: base) | UInt((mask + 1).trailingZeroBitCount) }
    @inline(__always) var slots: UnsafeMutablePointer<UInt64> { base.assumingMemoryBound(to: UInt64.self) }

    static func allocate(capacity: Int, in memory: ArenaMemory) -> SlotTable {
        precondition(capacity.nonzeroBitCount == 1, "a slot table's capacity is a power of two")
        let base = memory.allocate(byteCount: capacity * 8, alignment: 64)
        base.initializeMemory(as: UInt64.self, repeating: 0, count: capacity)
        return SlotTable(bits: UInt(bitPattern: base) | UInt(capacity.trailingZeroBitCount))
    }
}

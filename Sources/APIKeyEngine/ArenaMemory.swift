#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The memory of one key table: shard headers, slot tables, chunk directories and arena chunks,
/// carved one after another from 2 MiB-aligned blocks that the kernel is asked to back with huge
/// pages (`MADV_HUGEPAGE`).
///
/// A lookup lands on a random slot and a random record; with 4 KiB pages each of those also
/// misses the TLB, and the page walk costs as much as the miss itself. With 2 MiB pages the
/// TLB covers gigabytes. Nothing is handed back before the table is deinitialised: readers
/// without locks may still be reading anything the table ever published.
final class ArenaMemory: @unchecked Sendable {
    static let blockSize = 2 << 20

    private let lock = Monitor()
    private var blocks: [(start: UnsafeMutableRawPointer, size: Int)] = []
    private var used = 0

    init() {}

    deinit {
        for block in blocks { munmap(block.start, block.size) }
    }

    /// `byteCount` zeroed bytes aligned to `alignment` (a power of two up to 2 MiB).
    func allocate(byteCount: Int, alignment: Int = 64) -> UnsafeMutableRawPointer {
        lock.withLock {
            var offset = (used + alignment - 1) & ~(alignment - 1)
            if blocks.isEmpty || offset + byteCount > blocks[blocks.count - 1].size {
                let size = (byteCount + Self.blockSize - 1) / Self.blockSize * Self.blockSize
                blocks.append((Self.mapBlock(size), size))
                offset = 0
            }
            used = offset + byteCount
            return blocks[blocks.count - 1].start + offset
        }
    }

    /// Maps `size` bytes (a multiple of the block size) at a block-aligned address.
    private static func mapBlock(_ size: Int) -> UnsafeMutableRawPointer {
        let padded = size + blockSize
        guard let raw = mmap(nil, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            raw != MAP_FAILED
        else { fatalError("key table: out of memory mapping \(padded) bytes (errno \(errno))") }
        let address = UInt(bitPattern: raw)
        let aligned = (address + UInt(blockSize) - 1) & ~UInt(blockSize - 1)
        let before = Int(aligned - address)
        if before > 0 { munmap(raw, before) }
        let after = padded - before - size
        if after > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(size)), after) }
        let start = UnsafeMutableRawPointer(bitPattern: aligned)!
        #if os(Linux)
            _ = madvise(start, size, MADV_HUGEPAGE)
        #endif
        return start
    }
}

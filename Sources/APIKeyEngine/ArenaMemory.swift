import Dispatch

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
/// TLB covers gigabytes.
///
/// Nothing is unmapped before the table is deinitialised: readers without locks may still be
/// reading anything the table ever published. Arena chunks a shard no longer needs come back
/// through ``releaseChunk(_:byteCount:)``: their pages go back to the kernel (`MADV_DONTNEED`,
/// after which a stray reader sees zeros, never a fault) and the address range waits in a pool
/// for the next chunk of its size, from any shard.
///
/// On Linux a few blocks (``spareTarget``) are kept mapped and faulted in ahead
/// (`MADV_POPULATE_WRITE`, on a thread of their own), so that filling the table, loading a
/// snapshot above all, does not wait while the kernel zeroes each new huge page: that zeroing
/// was a fifth of a 1,000,000-key start-up.
final class ArenaMemory: @unchecked Sendable {
    static let blockSize = 2 << 20
    /// Arena chunks are aligned to, and at least, one page.
    static let chunkAlignment = 4096

    private let lock = Monitor()
    private var blocks: [(start: UnsafeMutableRawPointer, size: Int)] = []
    private var used = 0
    /// Released chunks by byte size, their pages given back.
    private var pooledChunks: [Int: [UnsafeMutableRawPointer]] = [:]
    private var pooledBytes = 0
    /// Blocks mapped (and faulted in) ahead for the next allocations that need a new block.
    private var spares: [UnsafeMutableRawPointer] = []
    private var preparingSpares = false
    /// Spare blocks kept ready: with one, a load outran the thread that prepares them about
    /// half the time.
    static let spareTarget = 4
    private static let spareMaker = DispatchQueue(label: "APIKeyEngine.arena-prefault")

    init() {}

    deinit {
        for block in blocks { munmap(block.start, block.size) }
        for spare in spares { munmap(spare, Self.blockSize) }
    }

    /// `byteCount` zeroed bytes aligned to `alignment` (a power of two up to 2 MiB).
    func allocate(byteCount: Int, alignment: Int = 64) -> UnsafeMutableRawPointer {
        lock.withLock {
            var offset = (used + alignment - 1) & ~(alignment - 1)
            if blocks.isEmpty || offset + byteCount > blocks[blocks.count - 1].size {
                let size = (byteCount + Self.blockSize - 1) / Self.blockSize * Self.blockSize
                if size == Self.blockSize, let block = spares.popLast() {
                    blocks.append((block, size))
                } else {
                    blocks.append((Self.mapBlock(size), size))
                }
                offset = 0
                prepareSpares()
            }
            used = offset + byteCount
            return blocks[blocks.count - 1].start + offset
        }
    }

    /// An arena chunk of `byteCount` bytes (a power of two, at least ``chunkAlignment``), zeroed
    /// and page-aligned: a released one of that size when the pool has one.
    func allocateChunk(byteCount: Int) -> UnsafeMutableRawPointer {
        precondition(byteCount >= Self.chunkAlignment && byteCount.nonzeroBitCount == 1, "a chunk is 2^n pages")
        let reused: UnsafeMutableRawPointer? = lock.withLock {
            guard let pointer = pooledChunks[byteCount]?.popLast() else { return nil }
            pooledBytes -= byteCount
            return pointer
        }
        return reused ?? allocate(byteCount: byteCount, alignment: Self.chunkAlignment)
    }

    /// Takes back a chunk from ``allocateChunk(byteCount:)`` that no writer will touch again; its
    /// pages are returned to the kernel and read as zeros until the chunk is handed out again.
    func releaseChunk(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        #if os(Linux)
            _ = madvise(pointer, byteCount, MADV_DONTNEED)
        #else
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        #endif
        lock.withLock {
            pooledChunks[byteCount, default: []].append(pointer)
            pooledBytes += byteCount
        }
    }

    /// Bytes mapped in all (spare blocks included), and bytes of released chunks waiting in
    /// the pool (no longer resident).
    var usage: (mappedBytes: Int, pooledBytes: Int) {
        lock.withLock { (blocks.reduce(spares.count * Self.blockSize) { $0 + $1.size }, pooledBytes) }
    }

    /// Starts mapping and faulting in spare blocks up to ``spareTarget``, unless that is under
    /// way; call with the lock held. Elsewhere than on Linux there are no spares.
    private func prepareSpares() {
        #if os(Linux)
            guard spares.count < Self.spareTarget, !preparingSpares else { return }
            preparingSpares = true
            Self.spareMaker.async { [weak self] in
                while true {
                    let block = Self.mapBlock(Self.blockSize)
                    // Faults every page in without writing (the block stays zero); an older
                    // kernel refuses the advice and the pages fault on first use, as they would.
                    _ = madvise(block, Self.blockSize, MADV_POPULATE_WRITE)
                    guard let self else {
                        munmap(block, Self.blockSize)
                        return
                    }
                    let full: Bool = self.lock.withLock {
                        self.spares.append(block)
                        self.preparingSpares = self.spares.count < Self.spareTarget
                        return !self.preparingSpares
                    }
                    if full { return }
                }
            }
        #endif
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

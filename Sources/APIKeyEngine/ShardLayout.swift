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

/// A power-of-two array of 32-byte slots (``Slot``) at a 64-byte-aligned address, so a slot
/// never straddles two cache lines.
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

    /// The slot at `index` (0...mask).
    @inline(__always) func slot(_ index: Int) -> Slot {
        Slot(words: (base + index &* Slot.byteCount).assumingMemoryBound(to: UInt64.self))
    }

    static func allocate(capacity: Int, in memory: ArenaMemory) -> SlotTable {
        precondition(capacity.nonzeroBitCount == 1, "a slot table's capacity is a power of two")
        let base = memory.allocate(byteCount: capacity * Slot.byteCount, alignment: 64)
        base.initializeMemory(as: UInt64.self, repeating: 0, count: capacity * Slot.wordCount)
        return SlotTable(bits: UInt(bitPattern: base) | UInt(capacity.trailingZeroBitCount))
    }
}

/// One slot of a ``SlotTable``: all a check reads, so it decides from this one cache line.
///
/// | word | bits |
/// |---|---|
/// | 0 | the tag (the key hash's high 32 bits) and the arena reference + 1; 0 when empty |
/// | 1 | the verifier's low 64 bits |
/// | 2 | the verifier's high 48 bits, the status code (8 bits), flags (8 bits) |
/// | 3 | expires at, i64 seconds (0 when there is no expiry) |
///
/// Flags: bit 0, the record has an expiry; bit 1, another key in the shard has this tag and
/// verifier too, so a lookup must compare the record's key. Read without the lock, a slot may
/// be torn; the shard's sequence number tells.
struct Slot {
    let words: UnsafeMutablePointer<UInt64>

    static let byteCount = 32
    static let wordCount = 4
    private static let verifierHighMask: UInt64 = 0xffff_ffff_ffff
    private static let hasExpiryFlag: UInt64 = 1 << 56
    private static let sharedVerifierFlag: UInt64 = 2 << 56

    /// Word 0: 0 when the slot is empty.
    @inline(__always) var entry: UInt64 { words[0] }
    @inline(__always) var tag: UInt32 { UInt32(truncatingIfNeeded: words[0] >> 32) }
    /// The arena reference of the record; only for a slot that is not empty.
    @inline(__always) var reference: UInt32 { UInt32(truncatingIfNeeded: words[0]) &- 1 }

    /// Whether the slot's verifier is `verifier`'s (the 112 bits it keeps).
    @inline(__always) func holds(_ verifier: KeyVerifier) -> Bool {
        words[1] == verifier.low && (words[2] ^ verifier.high) & Self.verifierHighMask == 0
    }

    /// Whether a lookup that reaches this slot must compare the record's key.
    @inline(__always) var sharesVerifier: Bool { words[2] & Self.sharedVerifierFlag != 0 }

    /// Status and expiry; nil when the status byte is not a status (a torn read).
    @inline(__always) var validity: KeyValidity? {
        let word = words[2]
        guard let status = KeyStatus(code: UInt8(truncatingIfNeeded: word >> 48)) else { return nil }
        return KeyValidity(
            status: status, expiresAt: word & Self.hasExpiryFlag != 0 ? Int64(bitPattern: words[3]) : nil)
    }

    /// Fills the slot.
    func fill(tag: UInt32, reference: UInt32, verifier: KeyVerifier, validity: KeyValidity, sharesVerifier: Bool) {
        words[1] = verifier.low
        words[2] = verifier.high & Self.verifierHighMask | (sharesVerifier ? Self.sharedVerifierFlag : 0)
        set(validity)
        words[0] = UInt64(tag) << 32 | UInt64(reference &+ 1)
    }

    /// Points the slot at another copy of its record.
    func setReference(_ reference: UInt32) { words[0] = words[0] & ~0xffff_ffff | UInt64(reference &+ 1) }

    /// Sets status and expiry, keeping the verifier and the shared-verifier flag.
    func set(_ validity: KeyValidity) {
        words[2] =
            words[2] & (Self.verifierHighMask | Self.sharedVerifierFlag) | UInt64(validity.status.code) << 48
            | (validity.expiresAt == nil ? 0 : Self.hasExpiryFlag)
        words[3] = UInt64(bitPattern: validity.expiresAt ?? 0)
    }

    /// Marks the slot as one whose lookups must compare the record's key.
    func markSharedVerifier() { words[2] |= Self.sharedVerifierFlag }

    /// Copies `other`'s four words here.
    @inline(__always) func copy(from other: Slot) { words.update(from: other.words, count: Self.wordCount) }

    /// Empties the slot.
    @inline(__always) func clear() { words.update(repeating: 0, count: Self.wordCount) }
}

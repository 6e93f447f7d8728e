/// SipHash-2-4 with its 128-bit output (Aumasson and Bernstein), a pseudorandom function of a
/// 128-bit secret: without the secret, nobody can find two inputs with the same output, or an
/// input with a given output, faster than by trying about 2^128 of them.
///
/// The key table keeps this code of every key in its slot (``KeyVerifier``), so a check decides
/// from the slot alone. Written here rather than taken from a library: it runs on every check,
/// must not allocate, and swift-crypto has no SipHash.
struct SipHash128: Sendable {
    let key0: UInt64
    let key1: UInt64

    /// The code of `bytes`: the first 8 bytes of SipHash's output as `low`, the next 8 as `high`,
    /// each read little-endian.
    @inline(__always)
    func code(_ bytes: UnsafeRawBufferPointer) -> KeyVerifier {
        var state = State(
            v0: key0 ^ 0x736f_6d65_7073_6575, v1: key1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
            v2: key0 ^ 0x6c79_6765_6e65_7261, v3: key1 ^ 0x7465_6462_7974_6573)
        let count = bytes.count
        let fullBlocks = count / 8
        var offset = 0
        for _ in 0..<fullBlocks {
            state.absorb(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
            offset &+= 8
        }
        var last = UInt64(truncatingIfNeeded: count) << 56
        var shift: UInt64 = 0
        while offset < count {
            last |= UInt64(bytes[offset]) << shift
            shift &+= 8
            offset &+= 1
        }
        state.absorb(last)
        state.v2 ^= 0xee
        state.rounds(4)
        let low = state.v0 ^ state.v1 ^ state.v2 ^ state.v3
        state.v1 ^= 0xdd
        state.rounds(4)
        return KeyVerifier(low: low, high: state.v0 ^ state.v1 ^ state.v2 ^ state.v3)
    }

    private struct State {
        var v0: UInt64
        var v1: UInt64
        var v2: UInt64
        var v3: UInt64

        @inline(__always)
        mutating func absorb(_ block: UInt64) {
            v3 ^= block
            rounds(2)
            v0 ^= block
        }

        @inline(__always)
        mutating func rounds(_ count: Int) {
            for _ in 0..<count {
                v0 &+= v1
                v1 = v1.rotatedLeft(13) ^ v0
                v0 = v0.rotatedLeft(32)
                v2 &+= v3
                v3 = v3.rotatedLeft(16) ^ v2
                v0 &+= v3
                v3 = v3.rotatedLeft(21) ^ v0
                v2 &+= v1
                v1 = v1.rotatedLeft(17) ^ v2
                v2 = v2.rotatedLeft(32)
            }
        }
    }
}

/// A 128-bit code of a key (``SipHash128``) that a key-table slot keeps, 112 bits of it (with
/// the 32-bit tag, 144 bits of the key's hashes must agree before a check trusts a slot).
struct KeyVerifier: Hashable, Sendable {
    var low: UInt64
    var high: UInt64
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ bits: UInt64) -> UInt64 { self << bits | self >> (64 &- bits) }
}

import CXXHash

/// The hashes a key table keeps of a key: a 64-bit hash that places it (shard, tag, first
/// slot), and a verifier its slot holds so that a check needs no other read.
protocol KeyHashFunction: Sendable {
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64
    func verifier(_ key: UnsafeRawBufferPointer) -> KeyVerifier
}

/// XXH3-64 with a seed places keys; SipHash-2-4 with a 128-bit secret verifies them. Draw both
/// at random per process, so nobody outside can aim keys at one shard or one probe chain, nor
/// make another key's slot answer for theirs.
struct SeededKeyHash: KeyHashFunction {
    let seed: UInt64
    let verifierKey: SipHash128

    init(seed: UInt64, verifierKey: (UInt64, UInt64)) {
        self.seed = seed
        self.verifierKey = SipHash128(key0: verifierKey.0, key1: verifierKey.1)
    }

    @inline(__always)
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits_withSeed(key.baseAddress, key.count, seed)
    }

    @inline(__always)
    func verifier(_ key: UnsafeRawBufferPointer) -> KeyVerifier { verifierKey.code(key) }
}

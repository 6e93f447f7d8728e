import CXXHash

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

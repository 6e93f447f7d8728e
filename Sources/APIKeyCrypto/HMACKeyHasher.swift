import APIKeyEngine
import CSHA256
import Crypto

/// HMAC-SHA-256 (RFC 2104) under a secret, for ``KeyStorage/hashed(_:)``.
///
/// The SHA-256 states after the secret's inner and outer padded blocks are computed once; each
/// code starts from copies of them, so a key of up to 55 bytes costs two compressions. On a CPU
/// with the x86 SHA extensions the compressions run in `CSHA256`, with no allocation; elsewhere
/// on swift-crypto's `SHA256`. The tests hold both to swift-crypto's `HMAC<SHA256>` and to RFC 4231.
public final class HMACKeyHasher: KeyHasher {
    /// The shortest secret accepted, in bytes: SHA-256's output size.
    public static let minimumSecretBytes = 32

    private enum Engine {
        /// The inner and outer states, a to h, for `CSHA256`.
        case accelerated(inner: SIMD8<UInt32>, outer: SIMD8<UInt32>)
        case portable(inner: SHA256, outer: SHA256)
    }

    private let engine: Engine

    /// Whether codes are computed with the CPU's SHA extensions.
    public var isAccelerated: Bool {
        if case .accelerated = engine { return true }
        return false
    }

    /// A hasher under `secret`; nil when it is shorter than ``minimumSecretBytes``. With
    /// `accelerated` false it uses swift-crypto's SHA-256 even where the CPU has SHA extensions.
    public init?(secret: [UInt8], accelerated: Bool = true) {
        guard secret.count >= Self.minimumSecretBytes else { return nil }
        // A secret longer than the block is replaced by its digest.
        var block = secret.count > 64 ? Array(SHA256.hash(data: secret)) : secret
        block += Array(repeating: 0, count: 64 - block.count)
        let innerBlock = block.map { $0 ^ 0x36 }
        let outerBlock = block.map { $0 ^ 0x5c }
        if accelerated, apikeyd_sha256_accelerated() != 0 {
            engine = .accelerated(inner: Self.compressed(innerBlock), outer: Self.compressed(outerBlock))
        } else {
            var inner = SHA256()
            inner.update(data: innerBlock)
            var outer = SHA256()
            outer.update(data: outerBlock)
            engine = .portable(inner: inner, outer: outer)
        }
    }

    public func authenticationCode(of bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        switch engine {
        case .accelerated(var inner, var outer):
            Self.withWords(&inner) { inner in
                Self.withWords(&outer) { outer in
                    apikeyd_hmac_sha256(
                        inner, outer, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count,
                        output.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        case .portable(var inner, var outer):
            inner.update(bufferPointer: bytes)
            inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
            outer.finalize().withUnsafeBytes { output.copyMemory(from: $0) }
        }
    }

    /// SHA-256's initial state after compressing one 64-byte `block`.
    private static func compressed(_ block: [UInt8]) -> SIMD8<UInt32> {
        // The first 32 bits of the fractional parts of the square roots of the first 8 primes.
        var state = SIMD8<UInt32>(
            0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19)
        withWords(&state) { words in block.withUnsafeBufferPointer { apikeyd_sha256_blocks(words, $0.baseAddress, 1) } }
        return state
    }

    private static func withWords<R>(_ state: inout SIMD8<UInt32>, _ body: (UnsafeMutablePointer<UInt32>) -> R) -> R {
        withUnsafeMutableBytes(of: &state) { body($0.baseAddress!.assumingMemoryBound(to: UInt32.self)) }
    }
}

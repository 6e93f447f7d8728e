import APIKeyEngine
import Crypto

/// HMAC-SHA-256 (swift-crypto) under a secret, for ``KeyStorage/hashed(_:)``.
///
/// The keyed state is made once: each code copies it and hashes only the key's bytes, not the
/// secret's padded block again.
public struct HMACKeyHasher: KeyHasher {
    /// The shortest secret accepted, in bytes: SHA-256's output size.
    public static let minimumSecretBytes = 32

    private let keyed: HMAC<SHA256>

    /// A hasher under `secret`; nil when it is shorter than ``minimumSecretBytes``.
    public init?(secret: [UInt8]) {
        guard secret.count >= Self.minimumSecretBytes else { return nil }
        keyed = HMAC<SHA256>(key: SymmetricKey(data: secret))
    }

    public func authenticationCode(of bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        var hmac = keyed
        hmac.update(data: bytes)
        let code = hmac.finalize()
        code.withUnsafeBytes { output.copyMemory(from: $0) }
    }
}

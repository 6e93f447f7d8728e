/// The keyed hash that hashed key storage holds instead of each key and client token: a
/// message authentication code under a secret, so that a copy of the table, the journal or a
/// snapshot tells nobody a key, and nobody without the secret can test guesses against it.
/// apikeyd's is HMAC-SHA-256 (`APIKeyCrypto`'s `HMACKeyHasher`). A class, so that a check reaches
/// it through one reference.
public protocol KeyHasher: AnyObject, Sendable {
    /// Writes the 32-byte code of `bytes` to `output`, which holds 32 bytes; the same bytes give
    /// the same code for the same secret.
    func authenticationCode(of bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer)
}

/// How an engine holds keys and client API tokens: as they are (`plain`, FOSSBilling's way,
/// where `get` shows a key), or as a keyed hash of each (`hashed`), where a key or token is shown
/// only in the answer that made it.
///
/// A stored hash is the text `hmac-sha256:` and the 32-byte code in unpadded base64url: records,
/// journal, snapshots and exports hold that text where a plain engine holds the key. Two engines
/// compare equal when both are plain or both hash under the same secret (by ``fingerprint``).
public struct KeyStorage: Hashable, Sendable, CustomStringConvertible {
    let hasher: (any KeyHasher)?
    /// Names the secret of a hashed storage without revealing it (16 hex digits, the start of the
    /// code of a fixed label); nil for plain storage.
    public let fingerprint: String?

    private init(hasher: (any KeyHasher)?) {
        self.hasher = hasher
        fingerprint = hasher.map { hasher in
            var label = Array("apikeyd key storage fingerprint".utf8)
            let code = label.withUnsafeMutableBytes { label in Self.code(of: UnsafeRawBufferPointer(label), hasher) }
            return code.prefix(8).map { byte in String(byte, radix: 16).leftPadded(to: 2) }.joined()
        }
    }

    /// Keys and tokens as they are.
    public static let plain = KeyStorage(hasher: nil)

    /// Keys and tokens as their code under `hasher`.
    public static func hashed(_ hasher: any KeyHasher) -> KeyStorage { KeyStorage(hasher: hasher) }

    /// Whether keys are held as hashes.
    public var isHashed: Bool { hasher != nil }

    /// `plain`, or `hashed` and the fingerprint.
    public var description: String { fingerprint.map { "hashed (secret \($0))" } ?? "plain" }

    /// Two storages are equal when they hash alike: both plain, or hashed with one secret.
    public static func == (left: KeyStorage, right: KeyStorage) -> Bool { left.fingerprint == right.fingerprint }
    /// Hashes the fingerprint, the same value `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }

    /// What a stored hash begins with.
    public static let hashPrefix = "hmac-sha256:"
    /// The length of a stored hash: the prefix and 43 base64url characters.
    static let storedHashBytes = hashPrefix.utf8.count + 43

    /// Whether `text` has the form of a stored hash: the prefix and the 43 base64url characters
    /// of 32 bytes (so the last one encodes 4 bits and 2 zero bits).
    public static func isStoredHash(_ text: String) -> Bool {
        let utf8 = text.utf8
        guard utf8.count == storedHashBytes, utf8.starts(with: hashPrefix.utf8) else { return false }
        let code = utf8.dropFirst(hashPrefix.utf8.count)
        guard code.allSatisfy({ Base64URL.value(of: $0) != nil }) else { return false }
        return Base64URL.value(of: code.last!)! & 0b11 == 0
    }

    /// Whether `text` begins as a stored hash does (in any letter case): what an import must
    /// not take for a plain key when it is no well-formed stored hash.
    static func looksLikeStoredHash(_ text: String) -> Bool {
        text.utf8.count >= hashPrefix.utf8.count && text.prefix(hashPrefix.count).lowercased() == hashPrefix
    }

    /// What the engine holds for a key or token presented as `text`: the text itself in plain
    /// storage, its stored hash in hashed storage.
    public func stored(_ text: String) -> String {
        guard let hasher else { return text }
        var text = text
        return text.withUTF8 { utf8 in
            Self.withStoredHash(of: UnsafeRawBufferPointer(utf8), hasher) { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// Calls `body` with the stored hash of the key or token with these bytes, built on the stack.
    @inline(never)
    static func withStoredHash<R, E: Error>(
        of bytes: UnsafeRawBufferPointer, _ hasher: any KeyHasher, _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let result: Result<R, E> = withUnsafeTemporaryAllocation(byteCount: storedHashBytes + 32, alignment: 8) {
            buffer in
            let code = UnsafeMutableRawBufferPointer(rebasing: buffer[storedHashBytes...])
            hasher.authenticationCode(of: bytes, into: code)
            let prefix = hashPrefix.utf8
            var offset = 0
            for byte in prefix {
                buffer[offset] = byte
                offset += 1
            }
            Base64URL.encode(
                UnsafeRawBufferPointer(code), into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
            do throws(E) {
                return .success(try body(UnsafeRawBufferPointer(rebasing: buffer[..<storedHashBytes])))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// What an import stores for a key or token: a stored hash as it is (hashed storage only:
    /// plain storage refuses one, since it could never be matched), anything else as
    /// ``stored(_:)`` makes it.
    func imported(_ text: String, _ name: String) throws(EngineError) -> String {
        guard Self.isStoredHash(text) else {
            // A damaged hash (cut, padded, re-cased) hashed as a key would match nothing, silently.
            guard !Self.looksLikeStoredHash(text) else {
                throw EngineError.invalid(
                    "\(name) begins as a stored hash but is none (\(Self.hashPrefix) and 43 base64url characters of 32 bytes)"
                )
            }
            return stored(text)
        }
        guard isHashed else {
            throw EngineError.invalid(
                "\(name) is a stored hash (\(Self.hashPrefix)...); import it into an engine with hashed key storage and the same secret"
            )
        }
        return text
    }

    private static func code(of bytes: UnsafeRawBufferPointer, _ hasher: any KeyHasher) -> [UInt8] {
        var code = [UInt8](repeating: 0, count: 32)
        code.withUnsafeMutableBytes { hasher.authenticationCode(of: bytes, into: $0) }
        return code
    }
}

/// Unpadded base64url (RFC 4648, section 5), for stored hashes.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// The value of one base64url character; nil for any other byte.
    static func value(of byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }

    /// Writes the encoding of `bytes` (ceil(4n/3) characters) to the start of `output`.
    @inline(__always)
    static func encode(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        var out = 0
        var index = 0
        // Whole groups of three bytes, then the rest.
        alphabet.withUnsafeBufferPointer { alphabet in
            while index + 3 <= bytes.count {
                let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                output[out] = alphabet[Int(group >> 18)]
                output[out + 1] = alphabet[Int(group >> 12 & 63)]
                output[out + 2] = alphabet[Int(group >> 6 & 63)]
                output[out + 3] = alphabet[Int(group & 63)]
                out += 4
                index += 3
            }
        }
        while index < bytes.count {
            let remaining = bytes.count - index
            let first = UInt32(bytes[index])
            let second = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let third = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = first << 16 | second << 8 | third
            let characters = remaining >= 3 ? 4 : remaining + 1
            for position in 0..<characters {
                output[out] = alphabet[Int(group >> UInt32(18 - 6 * position) & 63)]
                out += 1
            }
            index += 3
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}

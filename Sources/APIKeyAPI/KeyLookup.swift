import APIKeyEngine

/// The two endpoints called on every request of a customer's application, defined once: their
/// path, how a request names the key, and their answers. The router's table and the
/// transports' fast paths both take them from here.
///
/// A request takes the fast path when it asks in one of the ways FOSSBilling's documentation
/// shows and its key needs no decoding (RFC 3986 unreserved characters only):
/// - `GET <path>?key=K`;
/// - `POST <path>` with `Content-Type: application/json` and the body `{"key": "K"}`;
/// - `POST <path>` with a form body `key=K` (`application/x-www-form-urlencoded`, or no type).
///
/// Anything else (more parameters, escapes, another media type) takes the general path, which
/// gives the same answer.
public enum KeyLookup: Sendable, CaseIterable {
    case check, getInfo

    /// The request path.
    public var path: StaticString {
        switch self {
        case .check: "/api/guest/serviceapikey/check"
        case .getInfo: "/api/guest/serviceapikey/get_info"
        }
    }

    /// The name of the endpoint in the router's table: the path after `/api/`.
    var endpointName: String { String(describing: path).dropFirst("/api/".count).description }

    /// The lookup whose path `target` is exactly; nil for any other target.
    public static func matching(path target: UnsafeRawBufferPointer) -> KeyLookup? {
        allCases.first { lookup in
            target.count == lookup.path.utf8CodeUnitCount && startsWith(target, lookup.path)
        }
    }

    /// The lookup a `GET` target `<path>?key=K` asks for, and where `K` starts in it; nil for any
    /// other target. `K` is the rest of the target: check it with ``isPlainKey(_:)``.
    public static func matching(query target: UnsafeRawBufferPointer) -> (KeyLookup, keyStart: Int)? {
        for lookup in allCases {
            let length = lookup.path.utf8CodeUnitCount
            guard target.count > length + 4, startsWith(target, lookup.path) else { continue }
            let rest = UnsafeRawBufferPointer(rebasing: target[length...])
            if startsWith(rest, "?key=") { return (lookup, length + 5) }
        }
        return nil
    }

    /// Where the key lies in the body of a `POST` of `contentType` (nil: none given) that names
    /// only the key: `{"key": "K"}` for JSON, `key=K` for a form. Nil for any other body, and
    /// for a key that is not plain (``isPlainKey(_:)``).
    public static func key(
        inBody body: UnsafeRawBufferPointer, contentType: UnsafeRawBufferPointer?
    ) -> Range<Int>? {
        let range: Range<Int>?
        switch MediaType(contentType) {
        case .json: range = keyInJSON(body)
        case .form: range = startsWith(body, "key=") ? 4..<body.count : nil
        case .other: range = nil
        }
        guard let range, isPlainKey(UnsafeRawBufferPointer(rebasing: body[range])) else { return nil }
        return range
    }

    /// Whether `key` is non-empty and every byte is RFC 3986 unreserved (letters, digits, `-._~`),
    /// so that no decoding could change it. One bit per byte value below 128 in two masks,
    /// checked without a branch per byte.
    public static func isPlainKey(_ key: UnsafeRawBufferPointer) -> Bool {
        var refused: UInt64 = key.isEmpty ? 1 : 0
        for byte in key {
            let mask = byte < 64 ? unreservedBelow64 : unreservedFrom64
            refused |= ~(mask >> UInt64(byte & 63)) & 1 | UInt64(byte >> 7)
        }
        return refused == 0
    }

    /// Bits 45, 46 and 48-57: `-`, `.`, `0`-`9`.
    private static let unreservedBelow64: UInt64 = 1 << 45 | 1 << 46 | 0x3FF << 48
    /// Bits 1-26, 31, 33-58 and 62 (byte minus 64): `A`-`Z`, `_`, `a`-`z`, `~`.
    private static let unreservedFrom64: UInt64 = 0x3FF_FFFF << 1 | 1 << 31 | 0x3FF_FFFF << 33 | 1 << 62

    /// The media types the general path decodes as it would the fast path's bodies.
    private enum MediaType {
        case json, form, other

        /// `application/json` or `application/x-www-form-urlencoded` (any case), alone or before
        /// `;` and parameters; no type at all is a form, as on the general path.
        init(_ contentType: UnsafeRawBufferPointer?) {
            guard let contentType else {
                self = .form
                return
            }
            if KeyLookup.isMediaType(contentType, "application/json") {
                self = .json
            } else if KeyLookup.isMediaType(contentType, "application/x-www-form-urlencoded") {
                self = .form
            } else {
                self = .other
            }
        }
    }

    private static func isMediaType(_ value: UnsafeRawBufferPointer, _ type: StaticString) -> Bool {
        let length = type.utf8CodeUnitCount
        guard value.count == length || (value.count > length && value[length] == UInt8(ascii: ";")) else {
            return false
        }
        return ASCII.equalIgnoringCase(value, 0..<length, type)
    }

    /// The key in `{"key": "K"}` with any JSON white space between the tokens, where `K` has no
    /// escape; nil for any other text.
    private static func keyInJSON(_ body: UnsafeRawBufferPointer) -> Range<Int>? {
        var index = 0
        func skipSpace() {
            while index < body.count, [0x20, 0x09, 0x0A, 0x0D].contains(body[index]) { index += 1 }
        }
        func take(_ token: StaticString) -> Bool {
            let rest = UnsafeRawBufferPointer(rebasing: body[index...])
            guard startsWith(rest, token) else { return false }
            index += token.utf8CodeUnitCount
            return true
        }
        skipSpace()
        guard take("{") else { return nil }
        skipSpace()
        guard take(#""key""#) else { return nil }
        skipSpace()
        guard take(":") else { return nil }
        skipSpace()
        guard take(#"""#) else { return nil }
        let start = index
        while index < body.count, body[index] != UInt8(ascii: "\""), body[index] != UInt8(ascii: "\\") {
            index += 1
        }
        let end = index
        guard take(#"""#) else { return nil }
        skipSpace()
        guard take("}") else { return nil }
        skipSpace()
        return index == body.count ? start..<end : nil
    }

    /// Whether `bytes` start with `prefix`.
    private static func startsWith(_ bytes: UnsafeRawBufferPointer, _ prefix: StaticString) -> Bool {
        let length = prefix.utf8CodeUnitCount
        return bytes.count >= length && ASCII.equal(bytes, 0..<length, prefix)
    }
}

/// What a key lookup answers, handed to the caller's closure (the custom-parameter text lives
/// only during the call).
public enum KeyLookupAnswer {
    /// `check` found the key: valid or not.
    case check(Bool)
    /// `get_info` found the key: validity and the custom parameters as JSON object text.
    case info(valid: Bool, customParameters: UnsafeRawBufferPointer)
    /// Any other answer (unknown key, rate limit), as ``APIRouter/respond(to:client:)`` gives it.
    case response(APIResponse)

    /// The whole answer as a response; the fast paths write the same bytes from
    /// ``KeyLookupBodies`` without building one.
    public var response: APIResponse {
        switch self {
        case .check(let valid): .success(ResponseEncoding.boolean(valid))
        case .info(let valid, let custom): .success(ResponseEncoding.info(valid: valid, customParameters: custom))
        case .response(let response): response
        }
    }
}

/// The bodies of the found answers of ``KeyLookup``, encoded once by ``ResponseEncoding``: whole
/// for `check`, around the custom parameters for `get_info`. Hold the shared instance: reading
/// its properties skips the lazy-initialisation check a static property costs on every access.
public final class KeyLookupBodies: Sendable {
    /// The one instance.
    public static let shared = KeyLookupBodies()

    /// `check`'s body for a valid key.
    public let checkValid: [UInt8]
    /// `check`'s body for a key that is not valid.
    public let checkInvalid: [UInt8]
    /// `get_info`'s body up to the custom parameters, for a valid key.
    public let infoValidPrefix: [UInt8]
    /// `get_info`'s body up to the custom parameters, for a key that is not valid.
    public let infoInvalidPrefix: [UInt8]
    /// `get_info`'s body after the custom parameters.
    public let infoSuffix: [UInt8]

    private init() {
        checkValid = KeyLookupAnswer.check(true).response.body
        checkInvalid = KeyLookupAnswer.check(false).response.body
        (infoValidPrefix, infoSuffix) = Self.infoParts(valid: true)
        infoInvalidPrefix = Self.infoParts(valid: false).prefix
    }

    /// The `get_info` body around a marker byte, split at the marker.
    private static func infoParts(valid: Bool) -> (prefix: [UInt8], suffix: [UInt8]) {
        let body = [UInt8](unsafeUninitializedCapacity: 1) { marker, count in
            marker[0] = 1
            count = 1
        }.withUnsafeBytes { marker in KeyLookupAnswer.info(valid: valid, customParameters: marker).response.body }
        let split = body.firstIndex(of: 1)!
        return (Array(body[..<split]), Array(body[(split + 1)...]))
    }
}

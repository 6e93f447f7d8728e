import APIKeyEngine

/// The endpoints called on every request of a customer's application, defined once: their
/// path, how a request names the key (and, for `verify`, the cost and request ID), and their
/// answers. The router's table and the transports' fast paths both take them from here.
///
/// A request takes the fast path when it asks in one of the ways FOSSBilling's documentation
/// shows and its values need no decoding (RFC 3986 unreserved characters only; a cost in plain
/// digits):
/// - `GET <path>?key=K` (for `verify` also `&cost=N` and `&request_id=R`, in any order);
/// - `POST <path>` with `Content-Type: application/json` and the body `{"key": "K"}` (for
///   `verify` also `"cost": N` or `"cost": "N"`, and `"request_id": "R"`);
/// - `POST <path>` with a form body `key=K` (`application/x-www-form-urlencoded`, or no type),
///   for `verify` with `cost` and `request_id` as in the query.
///
/// Anything else (other parameters, a name twice, escapes, another media type) takes the general
/// path, which gives the same answer.
public enum KeyLookup: Sendable, CaseIterable {
    case check, getInfo, verify

    /// The request path.
    public var path: StaticString {
        switch self {
        case .check: "/api/guest/serviceapikey/check"
        case .getInfo: "/api/guest/serviceapikey/get_info"
        case .verify: "/api/guest/serviceapikey/verify"
        }
    }

    /// The name of the endpoint in the router's table: the path after `/api/`.
    var endpointName: String { String(describing: path).dropFirst("/api/".count).description }

    /// Every lookup by ``endpointName``, built once.
    static let byEndpointName = Dictionary(uniqueKeysWithValues: allCases.map { ($0.endpointName, $0) })

    /// What a fast-path request names: where the key (and request ID) lie in the bytes parsed,
    /// and the cost.
    public struct Arguments: Hashable, Sendable {
        public var key: Range<Int>
        public var cost: Int64?
        public var requestID: Range<Int>?

        public init(key: Range<Int>, cost: Int64? = nil, requestID: Range<Int>? = nil) {
            self.key = key
            self.cost = cost
            self.requestID = requestID
        }
    }

    /// The lookup whose path `target` is exactly; nil for any other target.
    public static func matching(path target: UnsafeRawBufferPointer) -> KeyLookup? {
        allCases.first { lookup in
            target.count == lookup.path.utf8CodeUnitCount && startsWith(target, lookup.path)
        }
    }

    /// The lookup a `GET` target `<path>?<query>` asks for and its arguments (ranges into
    /// `target`); nil for any other target or a query the fast path does not take.
    public static func matching(query target: UnsafeRawBufferPointer) -> (KeyLookup, Arguments)? {
        for lookup in allCases {
            let length = lookup.path.utf8CodeUnitCount
            guard target.count > length + 1, startsWith(target, lookup.path), target[length] == UInt8(ascii: "?")
            else { continue }
            return lookup.formArguments(target, from: length + 1).map { (lookup, $0) }
        }
        return nil
    }

    /// The arguments in the body of a `POST` of `contentType` (nil: none given), as ranges into
    /// `body`: `{"key": "K", ...}` for JSON, `key=K&...` for a form. Nil for any other body.
    public func arguments(
        inBody body: UnsafeRawBufferPointer, contentType: UnsafeRawBufferPointer?
    ) -> Arguments? {
        switch MediaType(contentType) {
        case .json: jsonArguments(body)
        case .form: formArguments(body, from: 0)
        case .other: nil
        }
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

    /// The parameters a lookup takes on the fast path.
    private enum Name {
        case key, cost, requestID
    }

    /// The parameter `bytes[range]` names, when this lookup takes it.
    private func name(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Name? {
        if ASCII.equal(bytes, range, "key") { return .key }
        guard self == .verify else { return nil }
        if ASCII.equal(bytes, range, "cost") { return .cost }
        if ASCII.equal(bytes, range, "request_id") { return .requestID }
        return nil
    }

    /// Collects one parameter; false for a name given twice or a value the fast path does not
    /// take as it stands.
    private static func collect(
        _ name: Name, _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>, into found: inout Found
    ) -> Bool {
        let text = UnsafeRawBufferPointer(rebasing: bytes[value])
        switch name {
        case .key:
            guard found.key == nil, isPlainKey(text) else { return false }
            found.key = value
        case .requestID:
            guard found.requestID == nil, isPlainKey(text) else { return false }
            found.requestID = value
        case .cost:
            guard found.cost == nil, let cost = wholeNumber(text) else { return false }
            found.cost = cost
        }
        return true
    }

    /// Parameters found so far.
    private struct Found {
        var key: Range<Int>?
        var cost: Int64?
        var requestID: Range<Int>?

        var arguments: Arguments? { key.map { Arguments(key: $0, cost: cost, requestID: requestID) } }
    }

    /// 1 to 10 decimal digits, nothing else.
    private static func wholeNumber(_ text: UnsafeRawBufferPointer) -> Int64? {
        guard (1...10).contains(text.count) else { return nil }
        var value: Int64 = 0
        for byte in text {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// `name=value` pairs joined by `&`, from `start` to the end of `bytes`.
    private func formArguments(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Arguments? {
        var found = Found()
        var pairStart = start
        while pairStart <= bytes.count {
            var pairEnd = pairStart
            while pairEnd < bytes.count, bytes[pairEnd] != UInt8(ascii: "&") { pairEnd += 1 }
            var equals = pairStart
            while equals < pairEnd, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
            guard equals < pairEnd, let name = name(bytes, pairStart..<equals),
                Self.collect(name, bytes, (equals + 1)..<pairEnd, into: &found)
            else { return nil }
            pairStart = pairEnd + 1
        }
        return found.arguments
    }

    /// `{"name": value, ...}` with any JSON white space between the tokens, where each value is
    /// a string without escapes (or, for `cost`, digits); nil for any other text.
    private func jsonArguments(_ body: UnsafeRawBufferPointer) -> Arguments? {
        var index = 0
        func skipSpace() {
            while index < body.count, JSONValue.isSpace(body[index]) { index += 1 }
        }
        func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < body.count, body[index] == byte else { return false }
            index += 1
            return true
        }
        /// The inside of a string without escapes.
        func string() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < body.count, body[index] != UInt8(ascii: "\""), body[index] != UInt8(ascii: "\\") {
                index += 1
            }
            let end = index
            return take(UInt8(ascii: "\"")) ? start..<end : nil
        }
        var found = Found()
        guard take(UInt8(ascii: "{")) else { return nil }
        repeat {
            guard let nameRange = string(), let name = name(body, nameRange), take(UInt8(ascii: ":")) else {
                return nil
            }
            skipSpace()
            let value: Range<Int>
            if name == .cost, index < body.count, body[index] != UInt8(ascii: "\"") {
                let start = index
                while index < body.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(body[index]) { index += 1 }
                // JSON allows no leading zero (`007`): the general path refuses such a body.
                guard index - start == 1 || body[start] != UInt8(ascii: "0") else { return nil }
                value = start..<index
            } else {
                guard let text = string() else { return nil }
                value = text
            }
            guard Self.collect(name, body, value, into: &found) else { return nil }
        } while take(UInt8(ascii: ","))
        guard take(UInt8(ascii: "}")) else { return nil }
        skipSpace()
        return index == body.count ? found.arguments : nil
    }

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
    /// `verify` decided (any code, `NOT_FOUND` included), with the key's custom parameters.
    case verification(Verification, customParameters: UnsafeRawBufferPointer)
    /// Any other answer (unknown key, rate limit), as ``APIRouter/respond(to:client:)`` gives it.
    case response(APIResponse)

    /// The whole answer as a response; the fast paths write the same bytes from
    /// ``KeyLookupBodies`` without building one.
    public var response: APIResponse {
        switch self {
        case .check(let valid): .success(ResponseEncoding.boolean(valid))
        case .info(let valid, let custom): .success(ResponseEncoding.info(valid: valid, customParameters: custom))
        case .verification(let verification, let custom):
            .success(VerificationEncoding.result(verification, customParameters: custom))
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
    /// The envelope before and after a result (`verify`'s, written by ``VerificationEncoding``).
    public let resultPrefix: [UInt8]
    public let resultSuffix: [UInt8]

    private init() {
        checkValid = KeyLookupAnswer.check(true).response.body
        checkInvalid = KeyLookupAnswer.check(false).response.body
        (infoValidPrefix, infoSuffix) = Self.infoParts(valid: true)
        infoInvalidPrefix = Self.infoParts(valid: false).prefix
        let envelope = ResponseEncoding.success([1])
        let split = envelope.firstIndex(of: 1)!
        (resultPrefix, resultSuffix) = (Array(envelope[..<split]), Array(envelope[(split + 1)...]))
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

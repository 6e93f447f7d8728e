import APIKeyEngine

/// The parameters of one API call, from the query string, a form body or a JSON body, as one
/// JSON object; typed accessors turn them into engine values or clear module errors.
struct RequestParameters: Sendable {
    /// The most parameters one request may carry (PHP's `max_input_vars` default).
    static let maximumCount = 1000
    /// The deepest bracket nesting a form name may use (`a[b][c]` is 3).
    static let maximumNameDepth = 8

    private(set) var object: JSONValue

    init(_ object: JSONValue = .object([])) {
        self.object = object
    }

    /// Merges `other` over these parameters: a name in both takes `other`'s value.
    mutating func merge(_ other: RequestParameters) {
        guard case .object(let members) = other.object else { return }
        for member in members { Self.set(&object, path: [.name(member.name)], member.value) }
    }

    // MARK: Decoding

    /// Decodes `application/x-www-form-urlencoded` text (also a query string), with PHP's
    /// bracket convention for nested values: `config[custom_tier]=pro`, `ids[]=1&ids[]=2`.
    static func decodeForm<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(MalformedRequest) -> RequestParameters {
        var object = JSONValue.object([])
        var count = 0
        for pair in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            count += 1
            guard count <= maximumCount else {
                throw MalformedRequest("Malformed form: more than \(maximumCount) parameters")
            }
            let separator = pair.firstIndex(of: UInt8(ascii: "="))
            let rawName = separator.map { pair[pair.startIndex..<$0] } ?? pair[...]
            let rawValue = separator.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...]
            let name = try percentDecode(rawName)
            let value = try percentDecode(rawValue)
            guard !name.isEmpty else { continue }
            set(&object, path: try namePath(name), .string(value))
        }
        return RequestParameters(object)
    }

    /// Decodes a JSON body, which must be one object.
    static func decodeJSON<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(MalformedRequest) -> RequestParameters {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw MalformedRequest("Malformed JSON body: \(error)")
        }
        guard case .object = value else { throw MalformedRequest("Malformed JSON body: expected an object") }
        return RequestParameters(value)
    }

    private static func percentDecode<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(MalformedRequest) -> String {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                decoded.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                let high = bytes.index(after: index)
                guard high != bytes.endIndex, bytes.index(after: high) != bytes.endIndex,
                    let highValue = ASCII.hexDigitValue(bytes[high]),
                    let lowValue = ASCII.hexDigitValue(bytes[bytes.index(after: high)])
                else { throw MalformedRequest("Malformed form encoding: '%' must be followed by two hex digits") }
                decoded.append(highValue << 4 | lowValue)
                index = bytes.index(after: high)
            } else {
                decoded.append(byte)
            }
            index = bytes.index(after: index)
        }
        guard let text = String(validating: decoded, as: UTF8.self) else {
            throw MalformedRequest("Malformed form encoding: invalid UTF-8")
        }
        return text
    }

    private enum PathStep: Hashable {
        case name(String)
        case append
    }

    /// `config[custom_tier]` as ["config", "custom_tier"]; `ids[]` as ["ids", append]. A name
    /// whose brackets do not close is taken literally, as PHP does.
    private static func namePath(_ name: String) throws(MalformedRequest) -> [PathStep] {
        guard let open = name.firstIndex(of: "["), open != name.startIndex else { return [.name(name)] }
        var path: [PathStep] = [.name(String(name[..<open]))]
        var rest = name[open...]
        while rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { return [.name(name)] }
            let inner = rest[rest.index(after: rest.startIndex)..<close]
            path.append(inner.isEmpty ? .append : .name(String(inner)))
            rest = rest[rest.index(after: close)...]
            guard path.count <= maximumNameDepth + 1 else {
                throw MalformedRequest("Malformed form: parameter names nest deeper than \(maximumNameDepth)")
            }
        }
        return path
    }

    private static func set(_ target: inout JSONValue, path: some Collection<PathStep>, _ value: JSONValue) {
        guard let step = path.first else {
            target = value
            return
        }
        let rest = path.dropFirst()
        switch step {
        case .append:
            var elements: [JSONValue] = []
            if case .array(let existing) = target { elements = existing }
            var element = JSONValue.null
            set(&element, path: rest, value)
            elements.append(element)
            target = .array(elements)
        case .name(let name):
            var members: [JSONMember] = []
            if case .object(let existing) = target { members = existing }
            if let index = members.firstIndex(where: { $0.name == name }) {
                set(&members[index].value, path: rest, value)
            } else {
                var element = JSONValue.null
                set(&element, path: rest, value)
                members.append(JSONMember(name, element))
            }
            target = .object(members)
        }
    }

    // MARK: Typed access

    /// A text parameter; nil when absent or null. Numbers are taken as their text.
    func string(_ name: String) throws(EngineError) -> String? {
        switch object[name] {
        case nil, .null: return nil
        case .string(let text): return text
        case .number(let text): return text
        default: throw EngineError(.invalidArgument, "\(name) must be a string")
        }
    }

    /// A positive 64-bit integer parameter, as a JSON number or a decimal string; nil when absent,
    /// null or empty.
    func positiveInteger(_ name: String) throws(EngineError) -> Int64? {
        guard let value = try integer(name) else { return nil }
        guard value > 0 else { throw EngineError(.invalidArgument, "\(name) must be a positive integer") }
        return value
    }

    /// A 64-bit integer parameter; nil when absent, null or empty.
    func integer(_ name: String) throws(EngineError) -> Int64? {
        switch object[name] {
        case nil, .null, .string(""): return nil
        case .number(let text), .string(let text):
            if let value = Int64(text.utf8.first == UInt8(ascii: "+") ? String(text.dropFirst()) : text) {
                return value
            }
            // Whole numbers written as decimals (`16.0`, `1e3`), read exactly from their digits
            // (through a double, `9007199254740993.0` became ...992), below 9e18 as before.
            if let value = CustomParameters.wholeNumber(text), value.magnitude < 9_000_000_000_000_000_000 {
                return value
            }
            throw EngineError(.invalidArgument, "\(name) must be an integer")
        default:
            throw EngineError(.invalidArgument, "\(name) must be an integer")
        }
    }

    /// A boolean parameter: true, false, 1, 0, "1", "0", "true", "false"; nil when absent, null
    /// or empty.
    func boolean(_ name: String) throws(EngineError) -> Bool? {
        switch object[name] {
        case nil, .null, .string(""): return nil
        case .bool(let flag): return flag
        case .number(let text), .string(let text):
            switch text.lowercased() {
            case "1", "true": return true
            case "0", "false": return false
            default: throw EngineError(.invalidArgument, "\(name) must be a boolean (true, false, 1 or 0)")
            }
        default:
            throw EngineError(.invalidArgument, "\(name) must be a boolean (true, false, 1 or 0)")
        }
    }

    /// A config object: a JSON object, or a text holding one; nil when absent or null.
    func config(_ name: String) throws(EngineError) -> JSONValue? {
        switch object[name] {
        case nil, .null: return nil
        case .object(let members): return .object(members)
        case .string(""): return .object([])
        case .string(let text):
            guard let parsed = try? JSONValue.parse(text), case .object = parsed else {
                throw EngineError(.invalidArgument, "\(name) must be a JSON object")
            }
            return parsed
        case .array(let elements) where elements.isEmpty: return .object([])
        default:
            throw EngineError(.invalidArgument, "\(name) must be a JSON object")
        }
    }

    /// A status parameter; nil when absent, null or empty.
    func status(_ name: String) throws(EngineError) -> KeyStatus? {
        guard let text = try string(name), !text.isEmpty else { return nil }
        guard let status = KeyStatus(rawValue: text) else {
            throw EngineError(.invalidArgument, "\(name) must be one of active, suspended, canceled")
        }
        return status
    }

    /// A time parameter: `.some(nil)` for null or empty (no expiry), `.some(t)` for a time text or
    /// a number of seconds since the Unix epoch, nil when absent.
    func time(_ name: String) throws(EngineError) -> Int64?? {
        switch object[name] {
        case nil: return nil
        case .null, .string(""): return .some(nil)
        case .number(let text):
            guard let seconds = Int64(text) else { throw timeError(name) }
            return .some(seconds)
        case .string(let text):
            if let seconds = Timestamp.parse(text) { return .some(seconds) }
            if let seconds = Int64(text) { return .some(seconds) }
            throw timeError(name)
        default:
            throw timeError(name)
        }
    }

    private func timeError(_ name: String) -> EngineError {
        EngineError(
            .invalidArgument, "\(name) must be a time as YYYY-MM-DD HH:MM:SS (UTC), YYYY-MM-DD, or Unix seconds")
    }
}

/// A request the server cannot read: answered with HTTP 400 and code 400.
struct MalformedRequest: Error, Hashable, Sendable {
    /// Starts with `Malformed`.
    var message: String

    init(_ message: String) { self.message = message }
}

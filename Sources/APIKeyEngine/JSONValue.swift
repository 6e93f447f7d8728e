/// A JSON value that keeps object members in the order they were written.
///
/// The engine stores configs "as given" and returns custom parameters "in stored order", which
/// rules out an unordered dictionary. Numbers keep their original text, so nothing is lost or
/// reformatted between input and storage.
public enum JSONValue: Hashable, Sendable {
    /// The literal `null`.
    case null
    /// The literal `true` or `false`.
    case bool(Bool)
    /// A number, as its JSON text (for example `250`, `1.50`, `-3e2`).
    case number(String)
    /// A string, as its decoded text (``encodeString(_:into:)`` escapes it again).
    case string(String)
    /// An array's elements in order.
    case array([JSONValue])
    /// An object's members in order; a name appears at most once.
    case object([JSONMember])

    /// The value of the member `name` when this is an object that has one.
    public subscript(name: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.name == name })?.value
    }

    /// A number value made from an integer.
    public static func integer<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }

    /// This value as JSON text, in UTF-8 (see ``encode(into:)``).
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        encode(into: &bytes)
        return bytes
    }

    /// Appends this value as JSON text to `bytes`, on one line, with a space after each `:` and
    /// `,` (the style of the API's documentation: `{"result": true, "error": null}`).
    public func encode(into bytes: inout [UInt8]) {
        switch self {
        case .null: bytes.append(contentsOf: "null".utf8)
        case .bool(let flag): bytes.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let text): bytes.append(contentsOf: text.utf8)
        case .string(let text): JSONValue.encodeString(text, into: &bytes)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: " ")]) }
                element.encode(into: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { bytes.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: " ")]) }
                JSONValue.encodeString(member.name, into: &bytes)
                bytes.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
                member.value.encode(into: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `text` as a quoted JSON string, escaping what JSON requires.
    public static func encodeString(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// One member of a JSON object: a name and its value.
public struct JSONMember: Hashable, Sendable {
    /// The member's name.
    public var name: String
    /// The member's value.
    public var value: JSONValue

    /// A member named `name` holding `value`.
    public init(_ name: String, _ value: JSONValue) {
        self.name = name
        self.value = value
    }
}

/// Why a text is not valid JSON, and where.
public struct JSONParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, in a few words.
    public var reason: String
    /// The offset of the offending byte from the start of the input.
    public var offset: Int

    /// The reason followed by the offset of the offending byte.
    public var description: String { "\(reason) at byte \(offset)" }
}

extension JSONValue {
    /// What keeps this value from being written as JSON that parses back to it: a number whose
    /// text is not a JSON number (`.number("abc")`, or text that would inject members), nesting
    /// deeper than ``maximumDepth``, or an object naming a member twice; nil when there is none.
    /// Values the parser made never have one; values built by hand may.
    public var encodingProblem: String? { encodingProblem(depth: 1) }

    private func encodingProblem(depth: Int) -> String? {
        switch self {
        case .null, .bool, .string: return nil
        case .number(let text):
            return Self.isNumberText(text) ? nil : "\(text.debugDescription) is not a JSON number"
        case .array(let elements):
            guard depth <= Self.maximumDepth else { return "nesting deeper than \(Self.maximumDepth) levels" }
            for element in elements { if let problem = element.encodingProblem(depth: depth + 1) { return problem } }
            return nil
        case .object(let members):
            guard depth <= Self.maximumDepth else { return "nesting deeper than \(Self.maximumDepth) levels" }
            var names = Set<String>()
            for member in members {
                guard names.insert(member.name).inserted else {
                    return "the member \(member.name.debugDescription) appears twice"
                }
                if let problem = member.value.encodingProblem(depth: depth + 1) { return problem }
            }
            return nil
        }
    }

    /// Whether `text` is a number as JSON writes one: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    static func isNumberText(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var index = 0
        func digits() -> Int {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - start
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { return false }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            return false
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return false }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard digits() > 0 else { return false }
        }
        return index == bytes.count
    }

    /// The value of one hexadecimal digit of a `\u` escape; nil for another byte.
    static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The deepest nesting of arrays and objects the parser accepts.
    public static let maximumDepth = 64

    /// Parses one JSON value (RFC 8259) from UTF-8 `bytes`; surrounding white space is allowed,
    /// anything else after the value is an error. Duplicate object names keep the first position
    /// and the last value.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(JSONParseError) -> JSONValue {
        let input = Array(bytes)
        var parser = JSONParser(input: input)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.position != input.count {
            throw parser.failure("unexpected text after the value")
        }
        return value
    }

    /// Parses JSON text.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8))
    }
}

/// A recursive-descent parser over a byte array; every failure is a thrown ``JSONParseError``.
private struct JSONParser {
    let input: [UInt8]
    var position = 0

    init(input: [UInt8]) { self.input = input }

    func failure(_ reason: String) -> JSONParseError { JSONParseError(reason: reason, offset: position) }

    mutating func skipWhitespace() {
        while position < input.count, JSONValue.isSpace(input[position]) { position += 1 }
    }

    mutating func expectLiteral(_ literal: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard position + count <= input.count else { throw failure("unexpected end of input") }
        for index in 0..<count where input[position + index] != literal.utf8Start[index] {
            throw failure("invalid literal")
        }
        position += count
        return value
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard position < input.count else { throw failure("unexpected end of input") }
        switch input[position] {
        case UInt8(ascii: "n"): return try expectLiteral("null", .null)
        case UInt8(ascii: "t"): return try expectLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try expectLiteral("false", .bool(false))
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "["):
            guard depth < JSONValue.maximumDepth else { throw failure("nesting deeper than \(JSONValue.maximumDepth)") }
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "{"):
            guard depth < JSONValue.maximumDepth else { throw failure("nesting deeper than \(JSONValue.maximumDepth)") }
            return try parseObject(depth: depth + 1)
        default: throw failure("unexpected character")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if position < input.count, input[position] == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard position < input.count else { throw failure("unexpected end of input in an array") }
            if input[position] == UInt8(ascii: ",") {
                position += 1
            } else if input[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            } else {
                throw failure("expected ',' or ']'")
            }
        }
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        position += 1
        var members: [JSONMember] = []
        var indexByName: [String: Int] = [:]
        skipWhitespace()
        if position < input.count, input[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < input.count, input[position] == UInt8(ascii: "\"") else {
                throw failure("expected a member name")
            }
            let name = try parseString()
            skipWhitespace()
            guard position < input.count, input[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            position += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            if let existing = indexByName[name] {
                members[existing].value = value
            } else {
                indexByName[name] = members.count
                members.append(JSONMember(name, value))
            }
            skipWhitespace()
            guard position < input.count else { throw failure("unexpected end of input in an object") }
            if input[position] == UInt8(ascii: ",") {
                position += 1
            } else if input[position] == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            } else {
                throw failure("expected ',' or '}'")
            }
        }
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = position
        if input[position] == UInt8(ascii: "-") { position += 1 }
        guard position < input.count, isDigit(input[position]) else { throw failure("invalid number") }
        if input[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == UInt8(ascii: ".") {
            position += 1
            guard position < input.count, isDigit(input[position]) else { throw failure("invalid number") }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == UInt8(ascii: "e") || input[position] == UInt8(ascii: "E") {
            position += 1
            if position < input.count, input[position] == UInt8(ascii: "+") || input[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard position < input.count, isDigit(input[position]) else { throw failure("invalid number") }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        return .number(String(decoding: input[start..<position], as: UTF8.self))
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    mutating func parseString() throws(JSONParseError) -> String {
        position += 1
        var bytes: [UInt8] = []
        while true {
            guard position < input.count else { throw failure("unterminated string") }
            let byte = input[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw failure("invalid UTF-8 in a string")
                }
                return text
            case UInt8(ascii: "\\"):
                position += 1
                try parseEscape(into: &bytes)
            case 0x00..<0x20:
                throw failure("control character in a string")
            default:
                bytes.append(byte)
                position += 1
            }
        }
    }

    mutating func parseEscape(into bytes: inout [UInt8]) throws(JSONParseError) {
        guard position < input.count else { throw failure("unterminated escape") }
        let byte = input[position]
        position += 1
        switch byte {
        case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
        case UInt8(ascii: "/"): bytes.append(UInt8(ascii: "/"))
        case UInt8(ascii: "b"): bytes.append(0x08)
        case UInt8(ascii: "f"): bytes.append(0x0C)
        case UInt8(ascii: "n"): bytes.append(0x0A)
        case UInt8(ascii: "r"): bytes.append(0x0D)
        case UInt8(ascii: "t"): bytes.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try parseHex4()
            if (0xD800..<0xDC00).contains(scalar) {
                guard position + 1 < input.count, input[position] == UInt8(ascii: "\\"),
                    input[position + 1] == UInt8(ascii: "u")
                else { throw failure("unpaired surrogate") }
                position += 2
                let low = try parseHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw failure("unpaired surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw failure("unpaired surrogate")
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw failure("invalid escape") }
            bytes.append(contentsOf: String(Character(unicode)).utf8)
        default:
            throw failure("invalid escape")
        }
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard position + 4 <= input.count else { throw failure("unterminated escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = JSONValue.hexDigitValue(input[position]) else {
                throw failure("invalid hex digit in an escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }
}

extension JSONValue {
    /// Whether `byte` is JSON white space: space, tab, line feed or carriage return.
    @inline(__always)
    package static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A key's custom parameters, read in place from the JSON object text the engine keeps encoded
/// (names without the `custom_` prefix, numeric strings already plain numbers, as `get_info`
/// shows them): `view.string("tier")`, `view.int64("monthlyLimit")`.
///
/// Each accessor scans the text once and allocates nothing, except ``string(_:)`` for a value
/// longer than Swift keeps inline (15 UTF-8 bytes) or holding escapes. The text is borrowed: use
/// the view only inside the call that handed it out (``Engine/withKey(key:_:)``), or keep a copy
/// in ``CustomParameterValues``.
public struct CustomParameterView {
    /// The JSON object text.
    public let json: UnsafeRawBufferPointer

    /// A view of `json`, a JSON object text as the engine encodes custom parameters.
    public init(json: UnsafeRawBufferPointer) { self.json = json }

    /// Whether a parameter named `name` exists (whatever its value, `null` included).
    public func contains(_ name: String) -> Bool { valueRange(name) != nil }

    /// The parameter's value as JSON text (a number's digits, a string with its quotes), valid
    /// as long as the view; nil when there is no such parameter.
    public func jsonValue(_ name: String) -> UnsafeRawBufferPointer? {
        valueRange(name).map { UnsafeRawBufferPointer(rebasing: json[$0]) }
    }

    /// The parameter as a whole number: a JSON number without fraction or exponent that fits in
    /// 64 bits; nil otherwise.
    public func int64(_ name: String) -> Int64? {
        guard let value = jsonValue(name), !value.isEmpty else { return nil }
        var index = 0
        let negative = value[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        guard index < value.count else { return nil }
        var result: Int64 = 0
        while index < value.count {
            let digit = value[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (shifted, overflowShift) = result.multipliedReportingOverflow(by: 10)
            let (next, overflowAdd) =
                negative
                ? shifted.subtractingReportingOverflow(Int64(digit)) : shifted.addingReportingOverflow(Int64(digit))
            guard !overflowShift, !overflowAdd else { return nil }
            result = next
            index += 1
        }
        return result
    }

    /// The parameter as a number (a JSON number, as a `Double`); nil for another kind of value.
    public func double(_ name: String) -> Double? {
        guard let value = jsonValue(name), let first = value.first,
            first == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
            value.count < 64
        else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: value.count + 1) { text in
            for index in 0..<value.count { text[index] = CChar(bitPattern: value[index]) }
            text[value.count] = 0
            var end: UnsafeMutablePointer<CChar>?
            let number = strtod(text.baseAddress!, &end)
            guard let end, end == text.baseAddress! + value.count else { return nil }
            return number
        }
    }

    /// The parameter as a Boolean (JSON `true` or `false`); nil for another kind of value.
    public func bool(_ name: String) -> Bool? {
        guard let value = jsonValue(name) else { return nil }
        if value.elementsEqual("true".utf8) { return true }
        if value.elementsEqual("false".utf8) { return false }
        return nil
    }

    /// The parameter as text (a JSON string, unescaped); nil for another kind of value.
    public func string(_ name: String) -> String? {
        guard let value = jsonValue(name), Self.isQuoted(value) else { return nil }
        let inner = UnsafeRawBufferPointer(rebasing: value[1..<(value.count - 1)])
        guard inner.contains(UInt8(ascii: "\\")) else { return String(decoding: inner, as: UTF8.self) }
        var bytes: [UInt8] = []
        var scanner = JSONStringScanner(inner)
        while let byte = scanner.next() { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether the parameter is a JSON string equal to `text`, compared without allocating.
    public func string(_ name: String, equals text: String) -> Bool {
        guard let value = jsonValue(name), Self.isQuoted(value) else { return false }
        return JSONStringScanner(UnsafeRawBufferPointer(rebasing: value[1..<(value.count - 1)]))
            .elementsEqual(text.utf8)
    }

    /// Whether `value` is a whole JSON string, quotes at both ends (not one cut short).
    private static func isQuoted(_ value: UnsafeRawBufferPointer) -> Bool {
        value.count >= 2 && value.first == UInt8(ascii: "\"") && value.last == UInt8(ascii: "\"")
    }

    /// Where the value of the member named `name` lies in ``json``; nil when there is none (or
    /// the text is not an object).
    func valueRange(_ name: String) -> Range<Int>? {
        var index = skipSpace(0)
        guard index < json.count, json[index] == UInt8(ascii: "{") else { return nil }
        index = skipSpace(index + 1)
        while index < json.count, json[index] == UInt8(ascii: "\"") {
            let nameEnd = stringEnd(index)
            let matches = JSONStringScanner(UnsafeRawBufferPointer(rebasing: json[(index + 1)..<(nameEnd - 1)]))
                .elementsEqual(name.utf8)
            index = skipSpace(nameEnd)
            guard index < json.count, json[index] == UInt8(ascii: ":") else { return nil }
            let valueStart = skipSpace(index + 1)
            let valueEnd = self.valueEnd(valueStart)
            if matches { return valueStart..<valueEnd }
            index = skipSpace(valueEnd)
            guard index < json.count, json[index] == UInt8(ascii: ",") else { return nil }
            index = skipSpace(index + 1)
        }
        return nil
    }

    private func skipSpace(_ start: Int) -> Int {
        var index = start
        while index < json.count, [0x20, 0x09, 0x0A, 0x0D].contains(json[index]) { index += 1 }
        return index
    }

    /// The index past the closing quote of the string whose opening quote is at `start`.
    private func stringEnd(_ start: Int) -> Int {
        var index = start + 1
        while index < json.count {
            switch json[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return json.count
    }

    /// The index past the value that starts at `start`.
    private func valueEnd(_ start: Int) -> Int {
        guard start < json.count else { return start }
        switch json[start] {
        case UInt8(ascii: "\""):
            return stringEnd(start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var index = start
            while index < json.count {
                switch json[index] {
                case UInt8(ascii: "\""):
                    index = stringEnd(index)
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return index + 1 }
                default: break
                }
                index += 1
            }
            return json.count
        default:
            var index = start
            while index < json.count,
                ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D]
                    .contains(json[index])
            {
                index += 1
            }
            return index
        }
    }
}

/// The UTF-8 bytes a JSON string's body (between the quotes) stands for, escapes decoded one
/// byte at a time.
struct JSONStringScanner: Sequence, IteratorProtocol {
    private let body: UnsafeRawBufferPointer
    private var index = 0
    /// Bytes of a decoded `\u` escape not yet handed out.
    private var pending: (UInt8, UInt8, UInt8) = (0, 0, 0)
    private var pendingCount = 0

    init(_ body: UnsafeRawBufferPointer) { self.body = body }

    mutating func next() -> UInt8? {
        if pendingCount > 0 {
            let byte = pending.0
            pending = (pending.1, pending.2, 0)
            pendingCount -= 1
            return byte
        }
        guard index < body.count else { return nil }
        let byte = body[index]
        index += 1
        guard byte == UInt8(ascii: "\\"), index < body.count else { return byte }
        let escape = body[index]
        index += 1
        switch escape {
        case UInt8(ascii: "n"): return 0x0A
        case UInt8(ascii: "r"): return 0x0D
        case UInt8(ascii: "t"): return 0x09
        case UInt8(ascii: "b"): return 0x08
        case UInt8(ascii: "f"): return 0x0C
        case UInt8(ascii: "u"): return unicodeEscape()
        default: return escape
        }
    }

    /// Decodes `XXXX` (and a following `\uXXXX` low surrogate) after `\u`, returning the first
    /// UTF-8 byte and keeping the rest pending.
    private mutating func unicodeEscape() -> UInt8? {
        guard var scalar = hexQuad() else { return nil }
        if (0xD800..<0xDC00).contains(scalar), index + 1 < body.count, body[index] == UInt8(ascii: "\\"),
            body[index + 1] == UInt8(ascii: "u")
        {
            index += 2
            if let low = hexQuad(), (0xDC00..<0xE000).contains(low) {
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
        }
        let value = Unicode.Scalar(scalar) ?? "\u{FFFD}"
        var bytes: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        var count = 0
        UTF8.encode(value) { byte in
            switch count {
            case 0: bytes.0 = byte
            case 1: bytes.1 = byte
            case 2: bytes.2 = byte
            default: bytes.3 = byte
            }
            count += 1
        }
        pending = (bytes.1, bytes.2, bytes.3)
        pendingCount = count - 1
        return bytes.0
    }

    private mutating func hexQuad() -> UInt32? {
        guard index + 4 <= body.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = JSONValue.hexDigitValue(body[index]) else { return nil }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}

/// A key's custom parameters kept beyond the call that read them: a copy of the JSON text, with
/// the accessors of ``CustomParameterView``. What the web-framework middleware hands a handler.
public struct CustomParameterValues: Hashable, Sendable {
    /// The JSON object text.
    public let json: [UInt8]

    /// A copy of the text `view` reads.
    public init(_ view: CustomParameterView) { self.json = Array(view.json) }

    /// Parameters from a JSON object text as the engine encodes them (`{}` for none).
    public init(json: [UInt8]) { self.json = json }

    /// Runs `body` on a view of the copy.
    public func withView<R>(_ body: (CustomParameterView) -> R) -> R {
        json.withUnsafeBytes { body(CustomParameterView(json: $0)) }
    }

    /// See ``CustomParameterView/contains(_:)``.
    public func contains(_ name: String) -> Bool { withView { $0.contains(name) } }
    /// See ``CustomParameterView/int64(_:)``.
    public func int64(_ name: String) -> Int64? { withView { $0.int64(name) } }
    /// See ``CustomParameterView/double(_:)``.
    public func double(_ name: String) -> Double? { withView { $0.double(name) } }
    /// See ``CustomParameterView/bool(_:)``.
    public func bool(_ name: String) -> Bool? { withView { $0.bool(name) } }
    /// See ``CustomParameterView/string(_:)``.
    public func string(_ name: String) -> String? { withView { $0.string(name) } }
    /// See ``CustomParameterView/string(_:equals:)``.
    public func string(_ name: String, equals text: String) -> Bool { withView { $0.string(name, equals: text) } }
}

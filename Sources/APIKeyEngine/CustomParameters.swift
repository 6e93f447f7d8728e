/// Custom parameters (SPEC section 4): the config members whose names begin with `custom_`.
public enum CustomParameters {
    /// The prefix that marks a config member as a custom parameter.
    public static let prefix = "custom_"

    /// The custom parameters of `config` as the JSON object `get_info` returns: prefix removed,
    /// stored order kept, numbers and numeric strings written as plain JSON numbers.
    public static func encodedObject(of config: JSONValue) -> [UInt8] {
        guard case .object(let members) = config else { return Array("{}".utf8) }
        var parameters: [JSONMember] = []
        for member in members where member.name.hasPrefix(prefix) {
            let name = String(member.name.dropFirst(prefix.count))
            parameters.append(JSONMember(name, presented(member.value)))
        }
        return JSONValue.object(parameters).encoded
    }

    /// The value as `get_info` shows it.
    static func presented(_ value: JSONValue) -> JSONValue {
        switch value {
        case .number(let text), .string(let text):
            if let number = normalizedNumber(text) { return .number(number) }
            return value
        default:
            return value
        }
    }

    /// `text` as a JSON number without a needless fraction or exponent, when it reads as a finite
    /// decimal number (an optional sign, digits with an optional point, an optional exponent);
    /// nil otherwise.
    ///
    /// `"250"` gives `250`, `"1.50"` gives `1.5`, `"-3"` gives `-3` and `"1e3"` gives `1000`.
    /// Whole numbers that fit in 64 bits are written exactly; others keep Swift's shortest
    /// round-tripping form of the nearest double.
    public static func normalizedNumber(_ text: String) -> String? {
        guard isDecimalNumber(text) else { return nil }
        if let integer = Int64(text) { return String(integer) }
        if text.first == "+", let integer = Int64(text.dropFirst()) { return String(integer) }
        guard let double = Double(text), double.isFinite else { return nil }
        if double == double.rounded(), abs(double) < 9_007_199_254_740_992 {
            return String(Int64(double))
        }
        return String(double)
    }

    /// The whole number decimal `text` (``isDecimalNumber(_:)``: `250`, `2.5e2`, `1e16`,
    /// `9007199254740993.0`) stands for, computed on its digits, never rounded through a double;
    /// nil for other text, a fraction, or a value outside 64 bits.
    package static func wholeNumber(_ number: String) -> Int64? {
        guard isDecimalNumber(number) else { return nil }
        let text = Array(number.utf8)
        var index = 0
        var negative = false
        if index < text.count, text[index] == UInt8(ascii: "+") || text[index] == UInt8(ascii: "-") {
            negative = text[index] == UInt8(ascii: "-")
            index += 1
        }
        var digits: [UInt8] = []
        var pointAt: Int?
        while index < text.count, text[index] != UInt8(ascii: "e"), text[index] != UInt8(ascii: "E") {
            if text[index] == UInt8(ascii: ".") { pointAt = digits.count } else { digits.append(text[index] - 48) }
            index += 1
        }
        var exponent = 0
        if index < text.count {
            index += 1
            var exponentNegative = false
            if text[index] == UInt8(ascii: "+") || text[index] == UInt8(ascii: "-") {
                exponentNegative = text[index] == UInt8(ascii: "-")
                index += 1
            }
            for byte in text[index...] {
                exponent = min(exponent * 10 + Int(byte - 48), 10_000)
            }
            if exponentNegative { exponent = -exponent }
        }
        // The value is digits × 10^(exponent − digits after the point).
        let shift = exponent - (digits.count - (pointAt ?? digits.count))
        var kept = digits
        if shift < 0 {
            guard -shift <= kept.count, kept.suffix(-shift).allSatisfy({ $0 == 0 }) else { return nil }
            kept.removeLast(-shift)
        } else {
            guard shift <= 19 else { return kept.allSatisfy { $0 == 0 } ? 0 : nil }
            kept += Array(repeating: 0, count: shift)
        }
        var magnitude: UInt64 = 0
        for digit in kept {
            let (times, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times.addingReportingOverflow(UInt64(digit))
            guard !overflow, !carry else { return nil }
            magnitude = sum
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// Whether `text` is `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`.
    static func isDecimalNumber(_ text: String) -> Bool {
        var bytes = text.utf8[...]
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        func digitRun() -> Int {
            var count = 0
            while let byte = bytes.first, isDigit(byte) {
                bytes.removeFirst()
                count += 1
            }
            return count
        }
        if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes.removeFirst() }
        var mantissaDigits = digitRun()
        if bytes.first == UInt8(ascii: ".") {
            bytes.removeFirst()
            mantissaDigits += digitRun()
        }
        guard mantissaDigits > 0 else { return false }
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes.removeFirst()
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes.removeFirst() }
            guard digitRun() > 0 else { return false }
        }
        return bytes.isEmpty
    }
}

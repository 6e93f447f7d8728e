import APIKeyEngine

/// The `verify` result as JSON, written in pieces without allocating, so the general path
/// (which collects the pieces) and the transports' fast paths (which write them straight into
/// their output) send the same bytes:
///
/// `{"valid": 1, "code": "VALID", "config": {...}, "usage": {"limit": L, "used": U, "remaining": R,
/// "reset_at": "YYYY-MM-01 00:00:00"}, "rate_limit": {"limit": B, "remaining": N, "reset_in_ms": T}}`
///
/// `usage` only for a key with a monthly limit, `rate_limit` only for one with its own rate.
public enum VerificationEncoding {
    /// Hands the result's bytes to `write`, piece by piece.
    public static func writeResult(
        _ verification: Verification, customParameters: UnsafeRawBufferPointer,
        _ write: (UnsafeRawBufferPointer) -> Void
    ) {
        func text(_ literal: StaticString) {
            write(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        }
        /// A member's name and separators, then its value.
        func number(_ before: StaticString, _ value: Int64) {
            text(before)
            decimal(value, write)
        }
        text(verification.isValid ? #"{"valid": 1, "code": ""# : #"{"valid": 0, "code": ""#)
        text(verification.code.name)
        text(#"", "config": "#)
        write(customParameters)
        if let usage = verification.usage {
            number(#", "usage": {"limit": "#, usage.limit)
            number(#", "used": "#, usage.used)
            number(#", "remaining": "#, usage.remaining)
            text(#", "reset_at": ""#)
            if let next = usage.month.next {
                decimal(Int64(next.year), minimumDigits: 4, write)
                text("-")
                decimal(Int64(next.month), minimumDigits: 2, write)
            } else {
                text("10000-01")
            }
            text(#"-01 00:00:00"}"#)
        }
        if let rate = verification.rateLimit {
            number(#", "rate_limit": {"limit": "#, rate.limit)
            number(#", "remaining": "#, rate.remaining)
            number(#", "reset_in_ms": "#, rate.resetInMilliseconds)
            text("}")
        }
        text("}")
    }

    /// The result's length in bytes.
    public static func resultLength(_ verification: Verification, customParameters: UnsafeRawBufferPointer) -> Int {
        var length = 0
        writeResult(verification, customParameters: customParameters) { length += $0.count }
        return length
    }

    /// The result as bytes.
    static func result(_ verification: Verification, customParameters: some Collection<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        Array(customParameters).withUnsafeBytes { custom in
            writeResult(verification, customParameters: custom) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    /// `value` in decimal, at least `minimumDigits` long (zeros in front), from a stack buffer.
    private static func decimal(
        _ value: Int64, minimumDigits: Int = 1, _ write: (UnsafeRawBufferPointer) -> Void
    ) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var rest = value.magnitude
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0 || digits.count - start < minimumDigits
            if value < 0 {
                start -= 1
                digits[start] = UInt8(ascii: "-")
            }
            write(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: digits[start...])))
        }
    }
}

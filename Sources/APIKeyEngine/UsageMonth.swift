/// A calendar month in UTC: the period of a monthly quota, which resets at 00:00:00 on the first
/// day of the next month. Years 1 to 9999, as every time the API takes.
public struct UsageMonth: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The year, 1 to 9999.
    public let year: Int
    /// The month, 1 (January) to 12.
    public let month: Int

    /// The month `year`-`month`; nil outside 0001-01 ... 9999-12.
    public init?(year: Int, month: Int) {
        guard (1...9999).contains(year), (1...12).contains(month) else { return nil }
        self.year = year
        self.month = month
    }

    /// The month that holds `seconds` since the Unix epoch, clamped to the years 1 to 9999.
    public init(containingSeconds seconds: Int64) {
        let clamped = min(max(seconds, Timestamp.minimumSeconds), Timestamp.maximumSeconds)
        let (whole, rest) = clamped.quotientAndRemainder(dividingBy: 86_400)
        let days = rest < 0 ? whole - 1 : whole
        let date = Timestamp.civilDate(fromDays: days)
        year = Int(date.year)
        month = Int(date.month)
    }

    /// The month that holds `nanoseconds` since the Unix epoch (rounded down to the second).
    public init(containingNanoseconds nanoseconds: Int64) {
        let (seconds, rest) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        self.init(containingSeconds: rest < 0 ? seconds - 1 : seconds)
    }

    /// `YYYY-MM`, exactly seven characters; nil for any other text or a month that does not exist.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        guard bytes.count == 7, bytes[4] == UInt8(ascii: "-"),
            let year = Self.digits(bytes[0..<4]), let month = Self.digits(bytes[5..<7])
        else { return nil }
        self.init(year: year, month: month)
    }

    private static func digits(_ bytes: ArraySlice<UInt8>) -> Int? {
        var value = 0
        for byte in bytes {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// Months since 0001-01: the difference of two gives how many months lie between them.
    public var ordinal: Int { year * 12 + month - 13 }

    /// The month `ordinal` months after 0001-01; nil outside 0001-01 ... 9999-12.
    public init?(ordinal: Int) {
        guard ordinal >= 0 else { return nil }
        self.init(year: ordinal / 12 + 1, month: ordinal % 12 + 1)
    }

    /// The first second of the month, since the Unix epoch.
    public var firstSecond: Int64 {
        Timestamp.daysSinceEpoch(year: Int64(year), month: Int64(month), day: 1) * 86_400
    }

    /// The month after this one; nil after 9999-12.
    public var next: UsageMonth? {
        month == 12 ? UsageMonth(year: year + 1, month: 1) : UsageMonth(year: year, month: month + 1)
    }

    /// When the month's quota resets, as the API writes times: the first instant of the next
    /// month, `YYYY-MM-01 00:00:00` (`10000-01-01 00:00:00` after 9999-12).
    public var resetAt: String {
        guard let next else { return "10000-01-01 00:00:00" }
        return Timestamp.format(next.firstSecond)
    }

    /// `YYYY-MM`.
    public var description: String {
        let yearText = String(year)
        let monthText = String(month)
        return String(repeating: "0", count: 4 - yearText.count) + yearText + "-"
            + (month < 10 ? "0" : "") + monthText
    }

    /// Whether `left` is an earlier month than `right`.
    public static func < (left: UsageMonth, right: UsageMonth) -> Bool { left.ordinal < right.ordinal }
}

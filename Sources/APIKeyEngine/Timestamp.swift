/// Conversions between seconds since the Unix epoch and the API's time texts, in UTC.
///
/// The API writes times as `YYYY-MM-DD HH:MM:SS`. It reads that form, a date alone
/// (`YYYY-MM-DD`, midnight), and ISO 8601 with a `T` and an optional `Z` or `+00:00`.
/// Years run from 1 to 9999.
public enum Timestamp {
    /// The earliest time the API accepts: 0001-01-01 00:00:00.
    public static let minimumSeconds: Int64 = -62_135_596_800
    /// The latest time the API accepts: 9999-12-31 23:59:59.
    public static let maximumSeconds: Int64 = 253_402_300_799

    /// `seconds` since the epoch as `YYYY-MM-DD HH:MM:SS`.
    public static func format(_ seconds: Int64) -> String {
        let clamped = min(max(seconds, minimumSeconds), maximumSeconds)
        var days = clamped / 86_400
        var secondOfDay = clamped % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (year, month, day) = civilDate(fromDays: days)
        var text = ""
        text.reserveCapacity(19)
        text += padded(year, 4) + "-" + padded(month, 2) + "-" + padded(day, 2) + " "
        text += padded(secondOfDay / 3600, 2) + ":" + padded(secondOfDay % 3600 / 60, 2) + ":"
        text += padded(secondOfDay % 60, 2)
        return text
    }

    /// Parses one of the accepted forms into seconds since the epoch; nil when it is none of them
    /// or names a day or time that does not exist.
    public static func parse(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 10 else { return nil }
        guard let year = digits(bytes, 0, 4), bytes[4] == UInt8(ascii: "-"),
            let month = digits(bytes, 5, 2), bytes[7] == UInt8(ascii: "-"),
            let day = digits(bytes, 8, 2)
        else { return nil }
        guard year >= 1, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year) else {
            return nil
        }
        var hour: Int64 = 0
        var minute: Int64 = 0
        var second: Int64 = 0
        if bytes.count > 10 {
            guard bytes.count >= 19, bytes[10] == UInt8(ascii: " ") || bytes[10] == UInt8(ascii: "T"),
                let parsedHour = digits(bytes, 11, 2), bytes[13] == UInt8(ascii: ":"),
                let parsedMinute = digits(bytes, 14, 2), bytes[16] == UInt8(ascii: ":"),
                let parsedSecond = digits(bytes, 17, 2),
                parsedHour < 24, parsedMinute < 60, parsedSecond < 60
            else { return nil }
            let suffix = String(decoding: bytes[19...], as: UTF8.self)
            guard ["", "Z", "+00:00", "+0000"].contains(suffix) else { return nil }
            (hour, minute, second) = (parsedHour, parsedMinute, parsedSecond)
        }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        return days * 86_400 + hour * 3600 + minute * 60 + second
    }

    private static func digits(_ bytes: [UInt8], _ start: Int, _ count: Int) -> Int64? {
        var value: Int64 = 0
        for index in start..<(start + count) {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func padded(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    private static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to the given proleptic Gregorian date (the "days from civil" method:
    /// years counted from March so the leap day falls last in a 400-year era).
    static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let monthFromMarch = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * monthFromMarch + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of ``daysSinceEpoch(year:month:day:)``.
    static func civilDate(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

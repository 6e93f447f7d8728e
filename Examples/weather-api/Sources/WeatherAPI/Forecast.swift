import Foundation
import Hummingbird

/// A forecast: made up from the city's name and the date, the same for everyone on a given day,
/// so the example needs no weather service behind it.
public struct Forecast: ResponseCodable, Equatable {
    /// One day of it.
    public struct Day: Codable, Sendable, Equatable {
        public var date: String
        public var summary: String
        public var highCelsius: Int
        public var lowCelsius: Int
    }

    public var city: String
    public var tier: String
    public var days: [Day]
    /// Calls left this month (nil when the key has no monthly limit).
    public var remainingThisMonth: Int64?

    /// The forecast for `city` from the day of `now`, `days` long.
    public init(city: String, tier: String, days: Int, remainingThisMonth: Int64?, now: Date = Date()) {
        self.city = city
        self.tier = tier
        self.remainingThisMonth = remainingThisMonth
        let summaries = ["sunny", "cloudy", "rain", "showers", "windy", "snow", "fog"]
        let dayNumber = Int(now.timeIntervalSince1970) / 86_400
        var cityHash = 5381
        for byte in city.lowercased().utf8 { cityHash = (cityHash &* 33 &+ Int(byte)) & 0x7FFF_FFFF }
        self.days = (0..<days).map { offset in
            let seed = (cityHash &+ (dayNumber + offset) &* 7919) & 0x7FFF_FFFF
            let high = seed % 35 - 5
            let date = Date(timeIntervalSince1970: TimeInterval((dayNumber + offset) * 86_400))
            return Day(
                date: date.formatted(.iso8601.year().month().day()), summary: summaries[seed % summaries.count],
                highCelsius: high, lowCelsius: high - 3 - seed % 8)
        }
    }
}

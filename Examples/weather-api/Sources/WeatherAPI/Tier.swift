import APIKeyEngine

/// The plans the weather API sells, stored on each key as `custom_tier`, with the limits apikeyd
/// enforces for it (`custom_monthlyLimit`, `custom_rateLimit`, `custom_rateBurst`).
public enum Tier: String, Codable, Sendable, CaseIterable {
    case free
    case pro

    /// Forecast calls a month.
    public var monthlyLimit: Int64 {
        switch self {
        case .free: 1_000
        case .pro: 100_000
        }
    }

    /// Calls a second, sustained, and the burst above it.
    public var rate: (perSecond: Int, burst: Int) {
        switch self {
        case .free: (2, 10)
        case .pro: (50, 200)
        }
    }

    /// Days of forecast a call returns.
    public var forecastDays: Int {
        switch self {
        case .free: 1
        case .pro: 7
        }
    }

    /// The key's config: the tier and its limits, as apikeyd's custom parameters.
    public var config: JSONValue {
        .object([
            JSONMember("custom_tier", .string(rawValue)),
            JSONMember("custom_monthlyLimit", .integer(monthlyLimit)),
            JSONMember("custom_rateLimit", .integer(rate.perSecond)),
            JSONMember("custom_rateBurst", .integer(rate.burst)),
        ])
    }
}

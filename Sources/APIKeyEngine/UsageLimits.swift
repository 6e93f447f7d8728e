/// The usage limits a key's config sets, read from its custom parameters:
/// - `custom_monthlyLimit`: successful uses per calendar month (UTC), a whole number of at least 0;
/// - `custom_rateLimit`: the key's own requests per second, above 0 (fractions allowed), at most
///   ``maximumRate``;
/// - `custom_rateBurst`: that bucket's burst, a whole number from 1 to ``maximumBurst``; without
///   it, `max(1, ceil(custom_rateLimit))`.
///
/// Each is a JSON number or a numeric string (`250`, `"250"`, `"2.5e2"`). Absent means unlimited.
/// Any other value, `null` and booleans included, is refused on `create` and `update` with an
/// error that names the parameter, so a stored config always reads.
public struct UsageLimits: Hashable, Sendable {
    /// The per-key rate: a token bucket of `burst` tokens regaining `perSecond` a second.
    public struct Rate: Hashable, Sendable {
        public var perSecond: Double
        public var burst: Int64

        public init(perSecond: Double, burst: Int64) {
            self.perSecond = perSecond
            self.burst = burst
        }
    }

    /// Successful uses allowed per calendar month; nil for unlimited (uses are still counted).
    public var monthlyLimit: Int64?
    /// The key's own rate; nil for none.
    public var rate: Rate?

    /// Limits set directly (no limit where nil).
    public init(monthlyLimit: Int64? = nil, rate: Rate? = nil) {
        self.monthlyLimit = monthlyLimit
        self.rate = rate
    }

    /// The fastest per-key rate a config may set, in requests per second.
    public static let maximumRate = 1_000_000_000.0
    /// The largest per-key burst a config may set.
    public static let maximumBurst: Int64 = 1_000_000_000

    /// The limits `config` sets; throws ``EngineError/Code/invalidArgument`` naming the first
    /// parameter that is out of range or of the wrong kind.
    public init(config: JSONValue) throws(EngineError) {
        let prefix = CustomParameters.prefix
        if let value = config[prefix + "monthlyLimit"] {
            guard let limit = Self.wholeNumber(value), limit >= 0 else {
                throw EngineError.invalid("custom_monthlyLimit must be a whole number of at least 0")
            }
            monthlyLimit = limit
        }
        let burst = try config[prefix + "rateBurst"].map { (value) throws(EngineError) -> Int64 in
            guard let burst = Self.wholeNumber(value), (1...Self.maximumBurst).contains(burst) else {
                throw EngineError.invalid("custom_rateBurst must be a whole number from 1 to \(Self.maximumBurst)")
            }
            return burst
        }
        if let value = config[prefix + "rateLimit"] {
            guard let perSecond = Self.number(value), perSecond > 0, perSecond <= Self.maximumRate else {
                throw EngineError.invalid("custom_rateLimit must be a number above 0 and at most 1000000000")
            }
            rate = Rate(perSecond: perSecond, burst: burst ?? max(1, Int64(perSecond.rounded(.up))))
        } else if burst != nil {
            throw EngineError.invalid("custom_rateBurst needs custom_rateLimit")
        }
    }

    /// The limits the config of a stored `record` sets. The config is parsed only when its text
    /// names one of the parameters; one that does not read (a config stored before they were
    /// checked) sets no limit.
    init(stored record: KeyRecord) {
        let text = record.configJSON
        guard Self.contains(text, Self.monthlyLimitName) || Self.contains(text, Self.ratePrefix),
            let config = try? JSONValue.parse(text), let limits = try? UsageLimits(config: config)
        else {
            self.init()
            return
        }
        self = limits
    }

    private static let monthlyLimitName = Array(#""custom_monthlyLimit""#.utf8)
    private static let ratePrefix = Array(#""custom_rate"#.utf8)

    private static func contains(_ text: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard text.count >= needle.count, let first = needle.first else { return false }
        var index = text.startIndex
        while let found = text[index...].firstIndex(of: first) {
            guard text.endIndex - found >= needle.count else { return false }
            if text[found..<(found + needle.count)].elementsEqual(needle) { return true }
            index = found + 1
        }
        return false
    }

    /// A JSON number or numeric string as written in decimal, normalised; nil for anything else.
    private static func numericText(_ value: JSONValue) -> String? {
        switch value {
        case .number(let text), .string(let text): CustomParameters.normalizedNumber(text)
        default: nil
        }
    }

    private static func wholeNumber(_ value: JSONValue) -> Int64? {
        numericText(value).flatMap { Int64($0) }
    }

    private static func number(_ value: JSONValue) -> Double? {
        numericText(value).flatMap { Double($0) }.flatMap { $0.isFinite ? $0 : nil }
    }
}

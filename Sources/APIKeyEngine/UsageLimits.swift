/// The usage limits a key's config sets, read from its custom parameters:
/// - `custom_monthlyLimit`: successful uses per calendar month (UTC), a whole number of at least 0;
/// - `custom_rateLimit`: the key's own requests per second, above 0 (fractions allowed), at most
///   ``maximumRate``;
/// - `custom_rateBurst`: that bucket's burst, a whole number from 1 to ``maximumBurst``; without
///   it, `max(1, ceil(custom_rateLimit))`. The burst over the rate (the seconds to refill it all)
///   may be at most ``maximumRefillSeconds``.
///
/// Each is a JSON number or a numeric string (`250`, `"250"`, `"2.5e2"`). Absent means unlimited.
/// Any other value, `null` and booleans included, is refused on `create` and `update` with an
/// error that names the parameter, so a stored config always reads.
public struct UsageLimits: Hashable, Sendable {
    /// The per-key rate: a token bucket of `burst` tokens regaining `perSecond` a second.
    public struct Rate: Hashable, Sendable {
        /// The tokens the bucket regains each second: the rate allowed over time.
        public var perSecond: Double
        /// The tokens the bucket holds when full: the most requests allowed at once.
        public var burst: Int64

        /// A bucket of `burst` tokens regaining `perSecond` tokens a second.
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
    /// The longest a per-key bucket may take to refill its whole burst, in seconds (about 63
    /// years): beyond it the bucket's arithmetic would not fit 64-bit nanoseconds.
    public static let maximumRefillSeconds = 2_000_000_000.0

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
            let rate = Rate(perSecond: perSecond, burst: burst ?? max(1, Int64(perSecond.rounded(.up))))
            guard Double(rate.burst) / perSecond <= Self.maximumRefillSeconds else {
                throw EngineError.invalid(
                    "custom_rateBurst / custom_rateLimit, the seconds to refill the whole burst, must be at most 2000000000"
                )
            }
            self.rate = rate
        } else if burst != nil {
            throw EngineError.invalid("custom_rateBurst needs custom_rateLimit")
        }
    }

    /// The limits the config of a stored `record` sets (on replay and updates). Only the top level
    /// of the config's text is scanned (``StoredConfigScan``); a value that does not read (a config
    /// stored before the parameters were checked) sets no limit.
    init(stored record: KeyRecord) {
        self.init(scanning: record.configJSON, names: Self.configNames)
    }

    /// The limits a key's custom-parameter text (its `get_info` object, names without the
    /// prefix) sets: what a key's first verify reads. Allocates nothing for a text without them.
    init(customParameters text: UnsafeRawBufferPointer) {
        self.init(scanning: text, names: Self.customNames)
    }

    private init<Text: RandomAccessCollection<UInt8>>(scanning text: Text, names: [[UInt8]]) {
        var values: [Range<Text.Index>?] = []
        var monthly: Range<Text.Index>?
        var others = false
        let followed = StoredConfigScan.scan(text, named: names) { name, value in
            if name == 0 && monthly == nil && !others {
                monthly = value
            } else {
                // Rare: a rate, or several parameters; collected for the general reading below.
                if values.isEmpty { values = [monthly, nil, nil] }
                values[name] = value
                others = true
            }
        }
        guard followed, monthly != nil || others else {
            self.init()
            return
        }
        // The common case, a monthly limit alone written in digits, read without building values.
        if !others, let monthly, let limit = Self.digits(text[monthly]) {
            self.init(monthlyLimit: limit)
            return
        }
        if values.isEmpty { values = [monthly, nil, nil] }
        var members: [JSONMember] = []
        for (name, value) in values.enumerated() {
            guard let value else { continue }
            guard let parsed = try? JSONValue.parse(text[value]) else {
                self.init()
                return
            }
            members.append(JSONMember(CustomParameters.prefix + Self.parameterNames[name], parsed))
        }
        self = (try? UsageLimits(config: .object(members))) ?? UsageLimits()
    }

    private static let parameterNames = ["monthlyLimit", "rateLimit", "rateBurst"]
    private static let configNames = parameterNames.map { Array((CustomParameters.prefix + $0).utf8) }
    private static let customNames = parameterNames.map { Array($0.utf8) }

    /// 1 to 18 decimal digits, with white space after them; nil for anything else.
    private static func digits(_ text: some Collection<UInt8>) -> Int64? {
        var value: Int64 = 0
        var count = 0
        var ended = false
        for byte in text {
            if !ended, count < 18, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                count += 1
            } else if count > 0, JSONValue.isSpace(byte) {
                ended = true
            } else {
                return nil
            }
        }
        return count > 0 ? value : nil
    }

    /// A JSON number or numeric string as written in decimal, normalised; nil for anything else.
    private static func numericText(_ value: JSONValue) -> String? {
        switch value {
        case .number(let text), .string(let text): CustomParameters.normalizedNumber(text)
        default: nil
        }
    }

    /// A JSON number or numeric string that is a whole number within 64 bits, read exactly from
    /// its decimal text (`250`, `"2.5e2"`, `1e16`, `"9007199254740993.0"`); nil for anything else.
    private static func wholeNumber(_ value: JSONValue) -> Int64? {
        switch value {
        case .number(let text), .string(let text): CustomParameters.wholeNumber(text)
        default: nil
        }
    }

    private static func number(_ value: JSONValue) -> Double? {
        numericText(value).flatMap { Double($0) }.flatMap { $0.isFinite ? $0 : nil }
    }
}

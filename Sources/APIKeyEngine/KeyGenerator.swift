/// The letter case of generated keys.
public enum KeyLetterCase: String, Sendable, CaseIterable {
    /// Upper-case letters: `A` to `F`.
    case upper
    /// Lower-case letters: `a` to `f`.
    case lower
    /// Each letter upper or lower case at random.
    case mixed
}

/// The generation options of SPEC section 3, read from a record's config.
public struct KeyGenerationOptions: Hashable, Sendable {
    /// Characters of key material, dashes not counted: 1...255.
    public var length: Int = 32
    /// Whether to insert dashes.
    public var split: Bool = true
    /// Characters between dashes: at least 1.
    public var splitInterval: Int = 8
    /// Letter case of the hexadecimal digits a-f.
    public var letterCase: KeyLetterCase = .upper

    /// The allowed key lengths.
    public static let lengthRange = 1...255

    /// The defaults: 32 characters, dashes every 8, upper case.
    public init() {}

    /// Options given directly; throws when one is out of range.
    public init(
        length: Int, split: Bool = true, splitInterval: Int = 8, letterCase: KeyLetterCase = .upper
    )
        throws(EngineError)
    {
        guard Self.lengthRange.contains(length) else { throw Self.badLength(String(length)) }
        guard splitInterval >= 1 else { throw Self.badSplitInterval(String(splitInterval)) }
        self.length = length
        self.split = split
        self.splitInterval = splitInterval
        self.letterCase = letterCase
    }

    /// Reads `length`, `split`, `split_interval` and `case` from a config object. Each may be a
    /// JSON number, a boolean or a numeric string; a missing, null or empty-string option takes
    /// its default (except `split`, where `""` turns dashes off).
    public init(config: JSONValue) throws(EngineError) {
        if let value = config["length"], let length = try Self.integer(value, error: Self.badLength) {
            guard Self.lengthRange.contains(length) else { throw Self.badLength(Self.describe(value)) }
            self.length = length
        }
        if let value = config["split"] {
            self.split = Self.truthy(value)
        }
        if let value = config["split_interval"],
            let interval = try Self.integer(value, error: Self.badSplitInterval)
        {
            guard interval >= 1 else { throw Self.badSplitInterval(Self.describe(value)) }
            self.splitInterval = interval
        }
        if let value = config["case"] {
            switch value {
            case .null, .string(""): break
            case .string(let text):
                guard let letterCase = KeyLetterCase(rawValue: text.lowercased()) else {
                    throw Self.badCase(text)
                }
                self.letterCase = letterCase
            default:
                throw Self.badCase(Self.describe(value))
            }
        }
    }

    private static func badLength(_ given: String) -> EngineError {
        EngineError.invalid("Invalid API key length '\(given)'. The length must be an integer from 1 to 255.")
    }

    private static func badSplitInterval(_ given: String) -> EngineError {
        EngineError.invalid("Invalid split_interval '\(given)'. The split interval must be an integer of at least 1.")
    }

    private static func badCase(_ given: String) -> EngineError {
        EngineError.invalid(
            "Unknown uppercase option '\(given)'. API generator only accepts 'lower', 'upper', or 'mixed'.")
    }

    /// The option as the caller wrote it, for error messages.
    private static func describe(_ value: JSONValue) -> String {
        if case .string(let text) = value { return text }
        return String(decoding: value.encoded, as: UTF8.self)
    }

    /// `false`, `0`, `"0"` and `""` are false; null counts as "not given", which means true.
    private static func truthy(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return true
        case .bool(let flag): return flag
        case .number(let text): return (Double(text) ?? 1) != 0
        case .string(let text): return text != "0" && !text.isEmpty
        case .array, .object: return true
        }
    }

    /// An integer option: nil when not given (null or `""`), the value when it is a whole number
    /// written as a number, a numeric string or a boolean (true is 1, false is 0).
    private static func integer(_ value: JSONValue, error: (String) -> EngineError) throws(EngineError) -> Int? {
        switch value {
        case .null, .string(""): return nil
        case .bool(let flag): return flag ? 1 : 0
        case .number(let text), .string(let text):
            let trimmed = text.trimmingCharacters(in: " \t")
            if let integer = Int(trimmed) { return integer }
            if let double = Double(trimmed), double.isFinite, double == double.rounded(),
                abs(double) < 1e15
            {
                return Int(double)
            }
            throw error(text)
        case .array, .object:
            throw error(describe(value))
        }
    }
}

/// Generates API keys as SPEC section 3 describes: hex digits from the operating system's
/// cryptographic random source, dashes, then letter case.
public struct KeyGenerator: Sendable {
    /// How many keys are drawn before giving up on finding one that is not taken.
    public static let maximumAttempts = 10

    private let random: any RandomSource

    /// A generator drawing from `random` (the system's cryptographic source by default).
    public init(random: any RandomSource = SystemRandomSource()) {
        self.random = random
    }

    /// One key with the given options.
    public func generate(_ options: KeyGenerationOptions) -> String {
        let hexDigits = Array("0123456789abcdef".utf8)
        let material = random.bytes((options.length + 1) / 2)
        var digits: [UInt8] = []
        digits.reserveCapacity(material.count * 2)
        for byte in material {
            digits.append(hexDigits[Int(byte >> 4)])
            digits.append(hexDigits[Int(byte & 0x0F)])
        }
        digits.removeLast(digits.count - options.length)

        var key: [UInt8] = []
        key.reserveCapacity(options.length + options.length / options.splitInterval)
        for (index, digit) in digits.enumerated() {
            if options.split, index > 0, index % options.splitInterval == 0 {
                key.append(UInt8(ascii: "-"))
            }
            key.append(digit)
        }

        switch options.letterCase {
        case .lower:
            break
        case .upper:
            for index in key.indices where key[index] >= UInt8(ascii: "a") {
                key[index] -= 32
            }
        case .mixed:
            let coins = random.bytes((key.count + 7) / 8)
            for index in key.indices where key[index] >= UInt8(ascii: "a") {
                if coins[index / 8] & (1 << UInt8(index % 8)) != 0 { key[index] -= 32 }
            }
        }
        return String(decoding: key, as: UTF8.self)
    }

    /// A key that `isTaken` rejects at most ``maximumAttempts`` - 1 times; throws
    /// ``EngineError/generationExhausted`` when every attempt is taken.
    public func generateUnique(
        _ options: KeyGenerationOptions, isTaken: (String) -> Bool
    ) throws(EngineError)
        -> String
    {
        for _ in 0..<Self.maximumAttempts {
            let key = generate(options)
            if !isTaken(key) { return key }
        }
        throw EngineError.generationExhausted
    }
}

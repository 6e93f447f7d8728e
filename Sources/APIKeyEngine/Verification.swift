/// The answer to a verify (`Engine.verify(key:cost:requestID:)`): what was decided, in the order
/// the rules run (the key exists, its status, its expiry, its own rate, its monthly quota), with
/// the figures after the call.
public struct Verification: Hashable, Sendable {
    /// What a verify decided; only ``valid`` consumed anything.
    public enum Code: UInt8, Hashable, Sendable, CaseIterable {
        /// The key may make the call; a cost above 0 was counted and took one token of its own rate, if any.
        case valid
        /// No key with these bytes exists.
        case notFound
        /// The key's order is suspended.
        case suspended
        /// The key's order is canceled.
        case canceled
        /// The key's order is active but the key's expiry has passed.
        case expired
        /// The key's own token bucket had no token left.
        case rateLimited
        /// The monthly quota has no room left for the cost.
        case usageExceeded

        /// The code as the API writes it: `VALID`, `NOT_FOUND`, ... (a literal, so writing it
        /// allocates nothing).
        public var name: StaticString {
            switch self {
            case .valid: "VALID"
            case .notFound: "NOT_FOUND"
            case .suspended: "SUSPENDED"
            case .canceled: "CANCELED"
            case .expired: "EXPIRED"
            case .rateLimited: "RATE_LIMITED"
            case .usageExceeded: "USAGE_EXCEEDED"
            }
        }
    }

    /// The monthly quota after the call.
    public struct Usage: Hashable, Sendable {
        /// The month counted; its quota resets at ``UsageMonth/resetAt``.
        public var month: UsageMonth
        /// The monthly limit the key's config sets.
        public var limit: Int64
        /// The uses counted in ``month`` after the call.
        public var used: Int64
        /// What is left of the limit after the call.
        public var remaining: Int64

        /// The quota of `month`: its `limit`, what is `used` and what is `remaining`.
        public init(month: UsageMonth, limit: Int64, used: Int64, remaining: Int64) {
            self.month = month
            self.limit = limit
            self.used = used
            self.remaining = remaining
        }
    }

    /// The key's own token bucket after the call.
    public struct RateLimit: Hashable, Sendable {
        /// The bucket's burst.
        public var limit: Int64
        /// Whole tokens left.
        public var remaining: Int64
        /// Milliseconds until one more token is back (0 when the bucket is full), rounded up.
        public var resetInMilliseconds: Int64

        /// A bucket of burst `limit` holding `remaining` whole tokens, the next one back in
        /// `resetInMilliseconds`.
        public init(limit: Int64, remaining: Int64, resetInMilliseconds: Int64) {
            self.limit = limit
            self.remaining = remaining
            self.resetInMilliseconds = resetInMilliseconds
        }
    }

    /// What the verify decided.
    public var code: Code
    /// The key's order and client; 0 for ``Code/notFound``.
    public var orderID: Int64
    /// The client that owns the key; 0 for ``Code/notFound``.
    public var clientID: Int64
    /// Present when the key has a monthly limit.
    public var usage: Usage?
    /// Present when the key has its own rate.
    public var rateLimit: RateLimit?

    /// An answer with `code`; the IDs are 0 and the usage and rate figures nil unless given.
    public init(code: Code, orderID: Int64 = 0, clientID: Int64 = 0, usage: Usage? = nil, rateLimit: RateLimit? = nil) {
        self.code = code
        self.orderID = orderID
        self.clientID = clientID
        self.usage = usage
        self.rateLimit = rateLimit
    }

    /// Whether the key may make the call (``Code/valid``).
    public var isValid: Bool { code == .valid }

    /// The answer for a key that does not exist.
    public static let notFound = Verification(code: .notFound)
}

/// A verify's answer kept for its request ID (see `Engine.verify(key:cost:requestID:)`).
public struct RememberedVerification: Hashable, Sendable {
    /// A 128-bit hash of the key and the request ID.
    public var digest: RequestDigest
    /// When the first answer was given, in nanoseconds since the Unix epoch.
    public var atNanoseconds: Int64
    /// The answer first given, which a verify with the same key and request ID gets again.
    public var verification: Verification
    /// The use the answer counted (its month and cost), journaled in the same record so that a
    /// crash keeps both or neither; nil for none, and in a snapshot (whose counts hold it).
    public var consumed: UsageCount?

    /// An answer `verification` remembered under `digest`, first given at `atNanoseconds`, with the
    /// use it counted (nil for none).
    public init(
        digest: RequestDigest, atNanoseconds: Int64, verification: Verification, consumed: UsageCount? = nil
    ) {
        self.digest = digest
        self.atNanoseconds = atNanoseconds
        self.verification = verification
        self.consumed = consumed
    }
}

/// The hash under which a verify's answer is remembered: XXH3-128 of the request ID, seeded with
/// XXH3-64 of the key. Unseeded by the process, so it is the same after a restart.
public struct RequestDigest: Hashable, Sendable {
    /// The low 64 bits of the hash.
    public var low: UInt64
    /// The high 64 bits of the hash.
    public var high: UInt64

    /// A digest made of its two halves.
    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }
}

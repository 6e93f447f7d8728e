/// A token bucket: holds up to `capacity` tokens, gains `refillPerSecond` tokens a second, and
/// lets a request through when it can pay for it.
///
/// Kept as the generic cell rate algorithm: one timestamp, the moment the bucket will be full
/// again. A token is worth a fixed interval of nanoseconds, so arithmetic is exact integers and
/// no fraction of a token is ever lost between requests. Pure arithmetic on an explicit time, so
/// tests drive it with a manual clock. A request that is refused costs nothing.
public struct TokenBucket: Hashable, Sendable {
    /// How a bucket is shaped.
    public struct Rate: Hashable, Sendable {
        /// The most tokens the bucket holds: the burst a quiet client may spend at once.
        public var capacity: Int
        /// Tokens regained per second, from 0 (never) up.
        public var refillPerSecond: Double

        public init(capacity: Int, refillPerSecond: Double) {
            precondition(capacity >= 1 && refillPerSecond >= 0, "a bucket needs capacity >= 1 and refill >= 0")
            self.capacity = capacity
            self.refillPerSecond = refillPerSecond
        }

        /// Nanoseconds one token takes to come back. A bucket that never refills, or refills so
        /// slowly that its interval would not fit (a rate of 1e-300), uses an interval so long
        /// that its whole capacity spans a quarter of the `Int64` range.
        var tokenNanoseconds: Int64 {
            let never = Int64.max / 4 / Int64(capacity)
            guard refillPerSecond > 0 else { return never }
            let interval = (1e9 / refillPerSecond).rounded()
            guard interval < Double(never) else { return never }
            return max(1, Int64(interval))
        }

        /// The nanoseconds the full bucket spans.
        var spanNanoseconds: Int64 { tokenNanoseconds * Int64(capacity) }
    }

    /// The answer to a request for tokens.
    public enum Decision: Hashable, Sendable {
        case allowed
        /// Refused; enough tokens will be there after this many nanoseconds (nil: never).
        case refused(retryAfterNanoseconds: Int64?)
    }

    /// When the bucket is full again; at or before now means full.
    public private(set) var fullAtNanoseconds: Int64

    /// A full bucket at `nowNanoseconds`.
    public init(rate: Rate, nowNanoseconds: Int64) {
        fullAtNanoseconds = nowNanoseconds
    }

    /// The bucket that is full again at `fullAtNanoseconds` (what ``fullAtNanoseconds`` gave):
    /// for keeping a bucket in a compact form elsewhere.
    public init(fullAtNanoseconds: Int64) {
        self.fullAtNanoseconds = fullAtNanoseconds
    }

    /// The same bucket owing at most a full bucket of `rate` at `nowNanoseconds`: after a rate
    /// changes, what the old rate left can never take longer to refill than the new rate's span.
    public func limited(to rate: Rate, nowNanoseconds: Int64) -> TokenBucket {
        TokenBucket(fullAtNanoseconds: min(fullAtNanoseconds, nowNanoseconds + rate.spanNanoseconds))
    }

    /// Tokens held at `nowNanoseconds`, in whole tokens.
    public func tokens(rate: Rate, nowNanoseconds: Int64) -> Int {
        let missing = max(0, fullAtNanoseconds - nowNanoseconds)
        let missingTokens = (missing + rate.tokenNanoseconds - 1) / rate.tokenNanoseconds
        return max(0, rate.capacity - Int(missingTokens))
    }

    /// Whether the bucket has returned to full capacity by `nowNanoseconds`: then it holds no
    /// information and may be forgotten.
    public func isFull(rate: Rate, nowNanoseconds: Int64) -> Bool {
        fullAtNanoseconds <= nowNanoseconds
    }

    /// Nanoseconds from `nowNanoseconds` until the bucket holds one more whole token; 0 when it
    /// is full.
    public func nanosecondsUntilNextToken(rate: Rate, nowNanoseconds: Int64) -> Int64 {
        let missing = fullAtNanoseconds - nowNanoseconds
        guard missing > 0 else { return 0 }
        return (missing - 1) % rate.tokenNanoseconds + 1
    }

    /// Whether `cost` tokens are there, without taking them.
    public func check(cost: Int = 1, rate: Rate, nowNanoseconds: Int64) -> Decision {
        guard cost <= rate.capacity else { return .refused(retryAfterNanoseconds: nil) }
        let start = max(fullAtNanoseconds, nowNanoseconds)
        let fullAfter = start + Int64(cost) * rate.tokenNanoseconds
        let excess = fullAfter - nowNanoseconds - rate.spanNanoseconds
        if excess <= 0 { return .allowed }
        return .refused(retryAfterNanoseconds: rate.refillPerSecond > 0 ? excess : nil)
    }

    /// Takes `cost` tokens when they are there; a refusal changes nothing.
    public mutating func take(cost: Int = 1, rate: Rate, nowNanoseconds: Int64) -> Decision {
        let decision = check(cost: cost, rate: rate, nowNanoseconds: nowNanoseconds)
        if decision == .allowed {
            fullAtNanoseconds = max(fullAtNanoseconds, nowNanoseconds) + Int64(cost) * rate.tokenNanoseconds
        }
        return decision
    }

    /// Returns `cost` tokens taken by an earlier ``take(cost:rate:nowNanoseconds:)`` whose
    /// request was then refused for another reason; never fills the bucket past its capacity.
    public mutating func giveBack(cost: Int = 1, rate: Rate) {
        fullAtNanoseconds -= Int64(cost) * rate.tokenNanoseconds
    }
}

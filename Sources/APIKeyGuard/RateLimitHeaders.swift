import APIKeyEngine

/// The IETF draft's `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds) for
/// a verify's figures: for the key's own rate, for its monthly quota, and for whichever of the
/// two has the fewer requests left.
struct RateLimitHeaders {
    /// The headers of the key's own token bucket (none without a rate).
    let rate: [HeaderField]
    /// Seconds until the bucket holds a token again, at least 1.
    let rateRetryAfter: Int64
    /// The headers of the monthly quota (none without a limit).
    let quota: [HeaderField]
    /// Seconds until the quota resets, at least 1.
    let quotaRetryAfter: Int64
    /// The headers of the limit closest to running out.
    let closest: [HeaderField]

    init(_ verification: Verification, nowSeconds: Int64) {
        var rateRemaining: Int64?
        if let rateLimit = verification.rateLimit {
            let reset = (rateLimit.resetInMilliseconds + 999) / 1000
            rateRetryAfter = max(1, reset)
            rate = Self.fields(limit: rateLimit.limit, remaining: rateLimit.remaining, reset: reset)
            rateRemaining = rateLimit.remaining
        } else {
            rateRetryAfter = 1
            rate = []
        }
        if let usage = verification.usage {
            let resetSecond = usage.month.next?.firstSecond ?? Int64.max
            let reset = max(0, resetSecond - nowSeconds)
            quotaRetryAfter = max(1, reset)
            quota = Self.fields(limit: usage.limit, remaining: usage.remaining, reset: reset)
            closest = (rateRemaining.map { $0 < usage.remaining } ?? false) ? rate : quota
        } else {
            quotaRetryAfter = 1
            quota = []
            closest = rate
        }
    }

    private static func fields(limit: Int64, remaining: Int64, reset: Int64) -> [HeaderField] {
        [
            HeaderField("RateLimit-Limit", String(limit)),
            HeaderField("RateLimit-Remaining", String(max(0, remaining))),
            HeaderField("RateLimit-Reset", String(reset)),
        ]
    }
}

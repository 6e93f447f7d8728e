import APIKeyLimiter

/// What one order has used: the count of its current month, the counts of the months before it
/// (``keptMonths`` of them), and its own rate bucket. A value, decided against and changed in one
/// step by ``use(cost:limits:nowNanoseconds:)``, so a verify's rules are tested here alone.
///
/// The rules, in order: the key's bucket must hold a token (else ``Outcome/rateLimited``), then
/// the monthly quota must have room for the cost (else ``Outcome/usageExceeded``); only then is
/// the cost counted and one token taken. A cost of 0 asks whether a use of 1 would pass and
/// consumes nothing. A denied use consumes nothing. The month rolls over lazily, at the first use
/// in a new month.
struct UsageMeter: Hashable, Sendable {
    /// What a use came to.
    enum Outcome: Hashable, Sendable {
        case valid, rateLimited, usageExceeded
    }

    /// A use's outcome with the figures after it.
    struct Decision: Hashable, Sendable {
        var outcome: Outcome
        /// The month counted, and its count after this use.
        var current: UsageCount
        /// The monthly limit, and what is left of it; nil without a limit.
        var limit: Int64?
        var remaining: Int64?
        /// The bucket's burst, its whole tokens after this use, and the nanoseconds until one
        /// more is back; nil without a per-key rate.
        var rateBurst: Int64?
        var rateRemaining: Int64?
        var nanosecondsUntilNextToken: Int64?
    }

    /// Months kept before the current one.
    static let keptMonths = 12

    private(set) var current: UsageCount
    /// Earlier months with a count, newest first, at most ``keptMonths``.
    private(set) var earlier: [UsageCount] = []
    private(set) var bucket: TokenBucket?

    /// A meter from its parts, as ``UsageTable`` keeps them (`earlier` newest first).
    init(current: UsageCount, earlier: [UsageCount], bucket: TokenBucket?) {
        self.current = current
        self.earlier = earlier
        self.bucket = bucket
    }

    /// Starts the bucket afresh (full at the next use): what a changed rate or burst does.
    mutating func forgetBucket() {
        bucket = nil
    }

    /// Whether a use at `month` would roll the current month over into ``earlier`` (then a
    /// meter built without its earlier months must be given them first).
    func rollsOver(to month: UsageMonth) -> Bool { month > current.month && current.used > 0 }

    /// Nothing used yet, counting from the month of `nowNanoseconds`.
    init(nowNanoseconds: Int64) {
        current = UsageCount(month: UsageMonth(containingNanoseconds: nowNanoseconds), used: 0)
    }

    /// Nothing used yet; the first use sets the month.
    init() {
        current = UsageCount(month: UsageMonth(year: 1, month: 1)!, used: 0)
    }

    /// Whether nothing is counted in any month.
    var isEmpty: Bool { current.used == 0 && earlier.isEmpty }

    /// Every month with a count, newest first: what a snapshot keeps (the bucket is not kept; it
    /// starts full after a restart).
    var counts: [UsageCount] { (current.used > 0 ? [current] : []) + earlier }

    /// Replaces every count with `counts` (any order); the bucket stays.
    mutating func setCounts(_ counts: [UsageCount]) {
        current = UsageCount(month: UsageMonth(year: 1, month: 1)!, used: 0)
        earlier = []
        for count in counts.sorted(by: { $0.month < $1.month }) { add(count.used, in: count.month) }
    }

    /// Adds `count` to the count of `month` (replaying a use): rolls over to `month` when it is
    /// later than the current one; a month older than those kept is dropped.
    mutating func add(_ count: Int64, in month: UsageMonth) {
        roll(to: month)
        if month == current.month {
            current.used = Self.saturatingSum(current.used, count)
        } else if current.month.ordinal - month.ordinal <= Self.keptMonths {
            if let index = earlier.firstIndex(where: { $0.month == month }) {
                earlier[index].used = Self.saturatingSum(earlier[index].used, count)
            } else {
                earlier.append(UsageCount(month: month, used: count))
                earlier.sort { $0.month > $1.month }
            }
        }
    }

    /// Sets the count of `month` back to 0, rolling over to it when it is later.
    mutating func reset(month: UsageMonth) {
        roll(to: month)
        if month == current.month {
            current.used = 0
        } else {
            earlier.removeAll { $0.month == month }
        }
    }

    private static func saturatingSum(_ left: Int64, _ right: Int64) -> Int64 {
        let (sum, overflow) = left.addingReportingOverflow(right)
        return overflow ? .max : sum
    }

    /// Decides a use of `cost` (at least 0) at `nowNanoseconds` under `limits`, and counts it
    /// when it passes (unless not `counting`: a cluster node's counts come back through the
    /// cluster's change log; the decision's figures include the use all the same).
    mutating func use(cost: Int64, limits: UsageLimits, nowNanoseconds: Int64, counting: Bool = true) -> Decision {
        precondition(cost >= 0, "a use costs at least 0")
        roll(to: UsageMonth(containingNanoseconds: nowNanoseconds))
        let rate = limits.rate.map { TokenBucket.Rate(capacity: Int($0.burst), refillPerSecond: $0.perSecond) }
        var outcome = Outcome.valid
        if let rate {
            let held =
                bucket?.limited(to: rate, nowNanoseconds: nowNanoseconds)
                ?? TokenBucket(rate: rate, nowNanoseconds: nowNanoseconds)
            if held.check(rate: rate, nowNanoseconds: nowNanoseconds) != .allowed { outcome = .rateLimited }
            bucket = held
        }
        if outcome == .valid, let limit = limits.monthlyLimit, max(cost, 1) > limit - min(current.used, limit) {
            outcome = .usageExceeded
        }
        if outcome == .valid, cost > 0 {
            if let rate { _ = bucket!.take(rate: rate, nowNanoseconds: nowNanoseconds) }
            if counting { current.used = Self.saturatingSum(current.used, cost) }
        }
        var figures = current
        if !counting, outcome == .valid { figures.used = Self.saturatingSum(figures.used, cost) }
        var decision = Decision(outcome: outcome, current: figures)
        if let limit = limits.monthlyLimit {
            decision.limit = limit
            decision.remaining = max(0, limit - min(figures.used, limit))
        }
        if let rate, let bucket {
            decision.rateBurst = Int64(rate.capacity)
            decision.rateRemaining = Int64(bucket.tokens(rate: rate, nowNanoseconds: nowNanoseconds))
            decision.nanosecondsUntilNextToken = bucket.nanosecondsUntilNextToken(
                rate: rate, nowNanoseconds: nowNanoseconds)
        }
        return decision
    }

    /// The count of `month`: 0 for a month with no use or no longer kept.
    func used(in month: UsageMonth) -> Int64 {
        if month == current.month { return current.used }
        return earlier.first { $0.month == month }?.used ?? 0
    }

    /// Makes `month` the current one when it is later, keeping the months that fall within
    /// ``keptMonths`` of it. A clock that goes back never rolls back.
    private mutating func roll(to month: UsageMonth) {
        guard month > current.month else { return }
        if current.used > 0 { earlier.insert(current, at: 0) }
        if !earlier.isEmpty { earlier.removeAll { month.ordinal - $0.month.ordinal > Self.keptMonths } }
        current = UsageCount(month: month, used: 0)
    }
}

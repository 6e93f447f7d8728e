import Testing

@testable import APIKeyEngine

/// The counting rules of a verify, on one order's meter with an explicit clock.
@Suite struct UsageMeterTests {
    /// 2026-03-31 23:59:59.999999999 UTC, the last nanosecond of March.
    static let lastOfMarch: Int64 = 1_775_001_599 * 1_000_000_000 + 999_999_999
    static let second: Int64 = 1_000_000_000
    static let march = UsageMonth(year: 2026, month: 3)!
    static let april = UsageMonth(year: 2026, month: 4)!

    private func limits(monthly: Int64? = nil, rate: Double? = nil, burst: Int64? = nil) -> UsageLimits {
        UsageLimits(
            monthlyLimit: monthly,
            rate: rate.map { UsageLimits.Rate(perSecond: $0, burst: burst ?? max(1, Int64($0.rounded(.up)))) })
    }

    @Test func theQuotaAllowsExactlyItsLimitAndCostsCountInFull() {
        var meter = UsageMeter(nowNanoseconds: Self.lastOfMarch - 10 * Self.second)
        let quota = limits(monthly: 5)
        let now = Self.lastOfMarch - Self.second
        #expect(meter.use(cost: 3, limits: quota, nowNanoseconds: now).outcome == .valid)
        // 2 left: a cost of 3 is refused whole and consumes nothing.
        let refused = meter.use(cost: 3, limits: quota, nowNanoseconds: now)
        #expect(refused.outcome == .usageExceeded && refused.current.used == 3 && refused.remaining == 2)
        // A cost of 0 answers as a cost of 1 would, and consumes nothing.
        let asked = meter.use(cost: 0, limits: quota, nowNanoseconds: now)
        #expect(asked.outcome == .valid && asked.current.used == 3)
        #expect(meter.use(cost: 2, limits: quota, nowNanoseconds: now).remaining == 0)
        #expect(meter.use(cost: 0, limits: quota, nowNanoseconds: now).outcome == .usageExceeded)
        #expect(meter.use(cost: 1, limits: quota, nowNanoseconds: Self.lastOfMarch).outcome == .usageExceeded)
        #expect(meter.used(in: Self.march) == 5)
        // The first nanosecond of April starts a new count; March's is kept.
        let april = meter.use(cost: 1, limits: quota, nowNanoseconds: Self.lastOfMarch + 1)
        #expect(april.outcome == .valid && april.current == .init(month: Self.april, used: 1) && april.remaining == 4)
        #expect(meter.used(in: Self.march) == 5 && meter.used(in: Self.april) == 1)
        #expect(Self.march.resetAt == "2026-04-01 00:00:00")
    }

    @Test func aZeroLimitAllowsNothingAndNoLimitCountsEverything() {
        var meter = UsageMeter(nowNanoseconds: 0)
        #expect(meter.use(cost: 1, limits: limits(monthly: 0), nowNanoseconds: 0).outcome == .usageExceeded)
        #expect(meter.use(cost: 0, limits: limits(monthly: 0), nowNanoseconds: 0).outcome == .usageExceeded)
        let unlimited = meter.use(cost: 1_000_000_000, limits: limits(), nowNanoseconds: 0)
        #expect(unlimited.outcome == .valid && unlimited.current.used == 1_000_000_000 && unlimited.limit == nil)
        #expect(unlimited.rateBurst == nil && unlimited.remaining == nil)
        for _ in 0..<20 { _ = meter.use(cost: 1_000_000_000_000_000_000, limits: limits(), nowNanoseconds: 0) }
        #expect(meter.used(in: UsageMonth(containingNanoseconds: 0)) == .max, "the count saturates")
    }

    @Test func theBucketBurstsThenRefillsAndADenialTakesNothing() {
        var meter = UsageMeter(nowNanoseconds: 0)
        let rated = limits(monthly: 100, rate: 2, burst: 3)
        for expected in [2, 1, 0] as [Int64] {
            let decision = meter.use(cost: 1, limits: rated, nowNanoseconds: 0)
            #expect(decision.outcome == .valid && decision.rateRemaining == expected && decision.rateBurst == 3)
        }
        let limited = meter.use(cost: 1, limits: rated, nowNanoseconds: 0)
        #expect(limited.outcome == .rateLimited && limited.current.used == 3 && limited.rateRemaining == 0)
        // Three tokens out at 2 a second: the first is back after half a second.
        #expect(limited.nanosecondsUntilNextToken == Self.second / 2)
        #expect(meter.use(cost: 0, limits: rated, nowNanoseconds: Self.second / 2 - 1).outcome == .rateLimited)
        let back = meter.use(cost: 1, limits: rated, nowNanoseconds: Self.second / 2)
        #expect(back.outcome == .valid && back.current.used == 4 && back.rateRemaining == 0)
        // A cost of 0 takes no token either.
        let full = meter.use(cost: 0, limits: rated, nowNanoseconds: 10 * Self.second)
        #expect(full.rateRemaining == 3 && full.nanosecondsUntilNextToken == 0 && full.current.used == 4)
    }

    @Test func theBucketIsCheckedBeforeTheQuota() {
        var meter = UsageMeter(nowNanoseconds: 0)
        let tight = limits(monthly: 1, rate: 1, burst: 1)
        #expect(meter.use(cost: 1, limits: tight, nowNanoseconds: 0).outcome == .valid)
        #expect(meter.use(cost: 1, limits: tight, nowNanoseconds: 0).outcome == .rateLimited)
        #expect(meter.use(cost: 1, limits: tight, nowNanoseconds: Self.second).outcome == .usageExceeded)
    }

    @Test func keepsTwelveEarlierMonthsAndNeverRollsBack() {
        var meter = UsageMeter(nowNanoseconds: 0)
        var month = UsageMonth(containingNanoseconds: 0)
        for count in 1...15 as ClosedRange<Int64> {
            _ = meter.use(cost: count, limits: limits(), nowNanoseconds: month.firstSecond * Self.second)
            if count < 15 { month = month.next! }
        }
        #expect(meter.used(in: month) == 15)
        #expect(meter.earlier.count == UsageMeter.keptMonths)
        var earlier = month
        for back in 1...14 as ClosedRange<Int64> {
            earlier = UsageMonth(
                year: earlier.month == 1 ? earlier.year - 1 : earlier.year,
                month: earlier.month == 1 ? 12 : earlier.month - 1)!
            #expect(meter.used(in: earlier) == (back <= 12 ? 15 - back : 0), "\(earlier)")
        }
        // A clock that goes back counts into the current month.
        _ = meter.use(cost: 1, limits: limits(), nowNanoseconds: 0)
        #expect(meter.used(in: month) == 16)
        meter.reset(month: UsageMonth(containingNanoseconds: month.firstSecond * Self.second))
        #expect(meter.used(in: month) == 0 && meter.earlier.count == UsageMeter.keptMonths)
    }
}

import PropertyBased
import TestSupport
import Testing

@testable import APIKeyLimiter

@Suite struct TokenBucketTests {
    private let second: Int64 = 1_000_000_000

    @Test func burstThenRefillThenRetryAfter() {
        let rate = TokenBucket.Rate(capacity: 3, refillPerSecond: 2)
        var bucket = TokenBucket(rate: rate, nowNanoseconds: 0)
        for _ in 0..<3 { #expect(bucket.take(rate: rate, nowNanoseconds: 0) == .allowed) }
        #expect(bucket.take(rate: rate, nowNanoseconds: 0) == .refused(retryAfterNanoseconds: second / 2))
        #expect(bucket.take(rate: rate, nowNanoseconds: second / 4) == .refused(retryAfterNanoseconds: second / 4))
        #expect(bucket.take(rate: rate, nowNanoseconds: second / 2) == .allowed)
        #expect(bucket.tokens(rate: rate, nowNanoseconds: 10 * second) == 3)
        #expect(bucket.isFull(rate: rate, nowNanoseconds: 10 * second))
    }

    @Test func aRefusalCostsNothing() {
        let rate = TokenBucket.Rate(capacity: 1, refillPerSecond: 1)
        var bucket = TokenBucket(rate: rate, nowNanoseconds: 0)
        #expect(bucket.take(rate: rate, nowNanoseconds: 0) == .allowed)
        for step in 1...9 {
            #expect(bucket.take(rate: rate, nowNanoseconds: Int64(step) * second / 10) != .allowed)
        }
        // Had the refusals cost tokens, this would still be refused.
        #expect(bucket.take(rate: rate, nowNanoseconds: second) == .allowed)
    }

    @Test func checkNeverTakes() {
        let rate = TokenBucket.Rate(capacity: 1, refillPerSecond: 0)
        let bucket = TokenBucket(rate: rate, nowNanoseconds: 0)
        for _ in 0..<5 { #expect(bucket.check(rate: rate, nowNanoseconds: 0) == .allowed) }
        var taken = bucket
        #expect(taken.take(rate: rate, nowNanoseconds: 0) == .allowed)
        #expect(taken.take(rate: rate, nowNanoseconds: 1_000 * second) == .refused(retryAfterNanoseconds: nil))
        #expect(taken.check(cost: 2, rate: rate, nowNanoseconds: 0) == .refused(retryAfterNanoseconds: nil))
    }

    /// Rates so slow that a token's interval does not fit 64 bits take the interval of a bucket
    /// that never refills (its whole capacity spanning a quarter of the `Int64` range) instead of
    /// trapping: a bucket of 1 then regains nothing in 11 days, one of 1,000,000,000 a token about
    /// every 2.3 s.
    @Test func ratesTooSlowForAnIntervalTakeTheLongestOne() {
        for refill in [1e-300, 1e-12, 1e-10, Double.leastNonzeroMagnitude] {
            for capacity in [1, 1_000_000_000] {
                let rate = TokenBucket.Rate(capacity: capacity, refillPerSecond: refill)
                #expect(rate.tokenNanoseconds == Int64.max / 4 / Int64(capacity))
                var bucket = TokenBucket(rate: rate, nowNanoseconds: 1_775_000_000 * second)
                #expect(bucket.take(cost: capacity, rate: rate, nowNanoseconds: 1_775_000_000 * second) == .allowed)
                let later = bucket.tokens(rate: rate, nowNanoseconds: 1_776_000_000 * second)
                #expect(capacity == 1 ? later == 0 : later < capacity / 1000)
                #expect(bucket.nanosecondsUntilNextToken(rate: rate, nowNanoseconds: 1_775_000_000 * second) > 0)
            }
        }
    }

    /// Random requests at random times against a model in exact rational arithmetic (tokens in
    /// nanosecond-token units): both agree on every decision.
    @Test func agreesWithAModel() async {
        await propertyCheck(
            count: 200, input: Gen.int(in: 1...20), Gen.int(in: 1...50),
            Gen.int(in: 0...300_000_000).array(of: 1...80)
        ) { capacity, perSecond, gaps in
            let rate = TokenBucket.Rate(capacity: capacity, refillPerSecond: Double(perSecond))
            var bucket = TokenBucket(rate: rate, nowNanoseconds: 0)
            // Model: tokens × 1e9, refilled by elapsed nanoseconds × rate, capped.
            let full = Int64(capacity) * 1_000_000_000
            var modelTokens = full
            var modelTime: Int64 = 0
            var now: Int64 = 0
            for gap in gaps {
                now += Int64(gap)
                let refilled = min(full, modelTokens + (now - modelTime) * Int64(perSecond))
                let modelAllows = refilled >= 1_000_000_000
                let decision = bucket.take(rate: rate, nowNanoseconds: now)
                // Within one microtoken of the boundary the two roundings may differ.
                if abs(refilled - 1_000_000_000) > 2_000 {
                    #expect((decision == .allowed) == modelAllows, "capacity \(capacity) rate \(perSecond) at \(now)")
                }
                if decision == .allowed {
                    modelTokens = refilled - 1_000_000_000
                    modelTime = now
                } else if case .refused(let wait?) = decision {
                    let needed = 1_000_000_000 - refilled
                    #expect(abs(wait - needed / Int64(perSecond)) <= 3_000 / Int64(perSecond) + 2)
                }
            }
        }
    }
}

@Suite struct AddressLimiterTests {
    @Test func aMillionDistinctAddressesStayUnderTheCap() async {
        await HeavyWork.run {
            let limiter = AddressLimiter(rate: TokenBucket.Rate(capacity: 5, refillPerSecond: 1), capacity: 10_000)
            for index in 0..<1_000_000 {
                _ = limiter.take(IPAddress(ipv4: UInt32(index)), nowNanoseconds: Int64(index))
            }
            #expect(limiter.count <= limiter.capacity)
            #expect(limiter.count >= limiter.capacity - 16)
        }
    }

    @Test func limitsOneAddressWithoutTouchingAnother() {
        let limiter = AddressLimiter(rate: TokenBucket.Rate(capacity: 2, refillPerSecond: 0))
        let first = IPAddress("10.0.0.1")!
        let second = IPAddress("10.0.0.2")!
        #expect(limiter.take(first, nowNanoseconds: 0) == .allowed)
        #expect(limiter.take(first, nowNanoseconds: 0) == .allowed)
        #expect(limiter.take(first, nowNanoseconds: 0) == .refused(retryAfterNanoseconds: nil))
        #expect(limiter.take(second, nowNanoseconds: 0) == .allowed)
        #expect(limiter.take(second, nowNanoseconds: 0) == .allowed)
    }

    @Test func aTokenGivenBackCanBeTakenAgainButNeverOverfills() {
        let rate = TokenBucket.Rate(capacity: 2, refillPerSecond: 0)
        let limiter = AddressLimiter(rate: rate)
        let address = IPAddress("10.0.0.1")!
        #expect(limiter.take(address, nowNanoseconds: 0) == .allowed)
        #expect(limiter.take(address, nowNanoseconds: 0) == .allowed)
        limiter.giveBack(address)
        #expect(limiter.take(address, nowNanoseconds: 0) == .allowed)
        #expect(limiter.take(address, nowNanoseconds: 0) == .refused(retryAfterNanoseconds: nil))
        // Giving back to a full bucket leaves it at its capacity.
        var bucket = TokenBucket(rate: rate, nowNanoseconds: 0)
        bucket.giveBack(rate: rate)
        #expect(bucket.tokens(rate: rate, nowNanoseconds: 0) == 2)
        // An address without an entry (a full bucket) gets nothing and no entry.
        limiter.giveBack(IPAddress("10.0.0.2")!)
        #expect(limiter.count == 1)
    }

    @Test func evictionPrefersRefilledEntriesOverBusyOnes() {
        let rate = TokenBucket.Rate(capacity: 1, refillPerSecond: 1)
        let limiter = AddressLimiter(rate: rate, capacity: 16)
        // Fill the table with spent buckets, at time 0.
        var spent: [IPAddress] = []
        var index: UInt32 = 0
        while limiter.count < limiter.capacity {
            let address = IPAddress(ipv4: index)
            index += 1
            if limiter.take(address, nowNanoseconds: 0) == .allowed { spent.append(address) }
        }
        // Much later every bucket has refilled, so a flood evicts freely and forgets nothing.
        for _ in 0..<1000 {
            _ = limiter.take(IPAddress(ipv4: index), nowNanoseconds: 10_000_000_000)
            index += 1
        }
        #expect(limiter.count <= limiter.capacity)
        for address in spent { #expect(limiter.take(address, nowNanoseconds: 10_000_000_000) == .allowed) }
    }
}

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1"), ("::1", "0:0:0:0:0:0:0:1"),
        ("2001:db8::8a2e:370:7334", "2001:db8:0:0:0:8a2e:370:7334"),
        ("::ffff:10.1.2.3", "10.1.2.3"), ("fe80::1%eth0", "fe80:0:0:0:0:0:0:1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ])
    func parsesAndPrints(_ text: String, _ printed: String) throws {
        #expect(try #require(IPAddress(text)).description == printed)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01234.1.1.1", "1:2:3:4:5:6:7:8:9", "1::2::3", ":::", "g::1", "12345::",
        "1.2.3.-4", "localhost",
    ])
    func rejectsMalformedAddresses(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func rangesAndSlash64Keys() throws {
        let range = try #require(CIDRRange("10.1.0.0/16"))
        #expect(range.contains(IPAddress("10.1.255.7")!))
        #expect(!range.contains(IPAddress("10.2.0.1")!))
        #expect(CIDRRange("0.0.0.0/0")!.contains(IPAddress("8.8.8.8")!))
        #expect(!CIDRRange("0.0.0.0/0")!.contains(IPAddress("::1")!))
        let v6 = try #require(CIDRRange("2001:db8::/32"))
        #expect(v6.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!v6.contains(IPAddress("2001:db9::1")!))
        #expect(CIDRRange("10.0.0.1")!.contains(IPAddress("10.0.0.1")!))
        #expect(CIDRRange("10.0.0.0/33") == nil)
        #expect(CIDRRange("::/129") == nil)
        #expect(IPAddress("2001:db8:1:2:aaaa::1")!.limiterKey == IPAddress("2001:db8:1:2:bbbb::9")!.limiterKey)
        #expect(IPAddress("10.0.0.1")!.limiterKey != IPAddress("10.0.0.2")!.limiterKey)
    }
}

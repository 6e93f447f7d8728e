import Foundation
import Synchronization
import TestSupport
import Testing

@testable import APIKeyEngine

/// `verify`, the usage reads and `usage_reset` through the engine's own API, with an injected
/// clock: the decision rules in their order, what is consumed, month boundaries, durability and
/// idempotency across restarts, and exactness under contention.
@Suite struct VerifyTests {
    /// 2026-03-31 23:59:59 UTC: one second before April.
    static let lastSecondOfMarch: Int64 = 1_775_001_599
    static let now: Int64 = lastSecondOfMarch - 100
    static let march = UsageMonth(year: 2026, month: 3)!
    static let april = UsageMonth(year: 2026, month: 4)!

    private func engine(_ clock: ManualClock, idempotencyEntries: Int = 1000) -> Engine {
        var configuration = EngineConfiguration()
        configuration.idempotencyEntries = idempotencyEntries
        return Engine(configuration: configuration, clock: clock)
    }

    private func config(_ members: (String, JSONValue)...) -> JSONValue {
        .object(members.map { JSONMember($0.0, $0.1) })
    }

    @discardableResult
    private func create(_ engine: Engine, order: Int64, client: Int64 = 1, _ config: JSONValue) throws -> KeyRecord {
        try engine.create(NewKey(orderID: order, clientID: client, config: config))
    }

    @Test func theQuotaAllowsExactlyItsLimitAndCostZeroAsks() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        let key = try create(engine, order: 1, config(("custom_monthlyLimit", .string("5")))).apiKey

        let first = try engine.verify(key: key, cost: 3)
        #expect(first.code == .valid && first.orderID == 1 && first.clientID == 1)
        #expect(first.usage == Verification.Usage(month: Self.march, limit: 5, used: 3, remaining: 2))
        #expect(first.rateLimit == nil)
        // Too dear for what is left: refused whole, nothing consumed.
        let refused = try engine.verify(key: key, cost: 3)
        #expect(refused.code == .usageExceeded && refused.usage?.used == 3)
        // Cost 0 answers as cost 1 would and consumes nothing.
        #expect(try engine.verify(key: key, cost: 0).code == .valid)
        #expect(try engine.usage(.orderID(1)).used == 3)
        #expect(try engine.verify(key: key, cost: 2).usage?.remaining == 0)
        #expect(try engine.verify(key: key, cost: 0).code == .usageExceeded)
        #expect(try engine.verify(key: key).code == .usageExceeded)
        // check and get_info are unchanged by the quota.
        #expect(try engine.check(key: key))
        #expect(try engine.getInfo(key: key).valid)
        #expect(try engine.usage(.orderID(1)) == OrderUsage(orderID: 1, month: Self.march, used: 5, limit: 5))
    }

    @Test func theMonthEndsAtTheLastNanosecondAndUsageIsKeptPerMonth() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch)
        clock.advance(nanoseconds: 999_999_999)
        let engine = engine(clock)
        let key = try create(engine, order: 1, config(("custom_monthlyLimit", .integer(2)))).apiKey
        #expect(try engine.verify(key: key, cost: 2).usage?.month == Self.march)
        #expect(try engine.verify(key: key).code == .usageExceeded)
        clock.advance(nanoseconds: 1)
        let april = try engine.verify(key: key)
        #expect(april.code == .valid && april.usage == .init(month: Self.april, limit: 2, used: 1, remaining: 1))
        #expect(april.usage?.month.resetAt == "2026-05-01 00:00:00")
        #expect(try engine.usage(.orderID(1), month: Self.march).used == 2)
        #expect(try engine.usage(.key(key)).used == 1)
        #expect(try engine.usage(.orderID(1), month: UsageMonth(year: 2025, month: 12)!).used == 0)
    }

    @Test func theKeysOwnBucketLimitsBurstAndRefills() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        let key = try create(
            engine, order: 1, config(("custom_rateLimit", .string("0.5")), ("custom_rateBurst", .integer(2)))
        ).apiKey
        let first = try engine.verify(key: key)
        #expect(first.code == .valid && first.rateLimit == .init(limit: 2, remaining: 1, resetInMilliseconds: 2000))
        #expect(try engine.verify(key: key).rateLimit?.remaining == 0)
        let limited = try engine.verify(key: key)
        #expect(limited.code == .rateLimited && limited.usage == nil)
        #expect(limited.rateLimit == .init(limit: 2, remaining: 0, resetInMilliseconds: 2000))
        // Denied uses are not counted; the month's count has the two that passed.
        #expect(try engine.usage(.orderID(1)).used == 2 && engine.usage(.orderID(1)).limit == nil)
        clock.advance(nanoseconds: 1_999_999_999)
        #expect(try engine.verify(key: key).rateLimit?.resetInMilliseconds == 1)
        clock.advance(nanoseconds: 1)
        #expect(try engine.verify(key: key).code == .valid)
        #expect(try engine.verify(key: key).code == .rateLimited)
    }

    /// The slowest rate a config may set refills its whole burst in 2,000,000,000 seconds; slower
    /// ones are refused (their interval would not fit), and one at the edge allows its burst, then
    /// nothing for hours.
    @Test func theSlowestRatesAreBoundedByTheirBurst() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        for (rate, burst) in [("1e-300", 2), ("0.0000000001", 2), ("0.4", 1_000_000_000)] as [(String, Int64)] {
            expectEngineError(
                .invalidArgument,
                "custom_rateBurst / custom_rateLimit, the seconds to refill the whole burst, must be at most 2000000000"
            ) {
                try create(
                    engine, order: 9, config(("custom_rateLimit", .string(rate)), ("custom_rateBurst", .integer(burst)))
                )
            }
        }
        let key = try create(
            engine, order: 1, config(("custom_rateLimit", .string("0.000000001")), ("custom_rateBurst", .integer(2)))
        ).apiKey
        #expect(try engine.verify(key: key).code == .valid)
        #expect(try engine.verify(key: key).code == .valid)
        clock.advance(seconds: 3600)
        let limited = try engine.verify(key: key)
        #expect(limited.code == .rateLimited && limited.rateLimit?.remaining == 0)
    }

    /// A changed rate or burst applies at the next verify: the old rate's debt does not carry
    /// over (a hostile pass found a key that stayed limited for 5,000 s at its new 1,000/s), and
    /// removing the rate forgets the bucket.
    @Test func aChangedRateStartsTheBucketAfresh() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        let slow = config(("custom_rateLimit", .string("0.001")), ("custom_rateBurst", .integer(10)))
        let key = try create(engine, order: 1, slow).apiKey
        for _ in 0..<10 { _ = try engine.verify(key: key) }
        #expect(try engine.verify(key: key).code == .rateLimited)
        try engine.update(
            KeyChanges(
                orderID: 1, config: config(("custom_rateLimit", .integer(1000)), ("custom_rateBurst", .integer(1000)))))
        let fast = try engine.verify(key: key)
        #expect(fast.code == .valid && fast.rateLimit == .init(limit: 1000, remaining: 999, resetInMilliseconds: 1))
        try engine.update(KeyChanges(orderID: 1, config: slow))
        for _ in 0..<10 { #expect(try engine.verify(key: key).code == .valid) }
        try engine.update(KeyChanges(orderID: 1, config: config()))
        _ = try engine.verify(key: key)
        try engine.update(KeyChanges(orderID: 1, config: slow))
        #expect(try engine.verify(key: key).code == .valid)
        // An unchanged rate keeps its bucket across other config changes.
        for _ in 0..<9 { _ = try engine.verify(key: key) }
        try engine.update(
            KeyChanges(
                orderID: 1,
                config: config(
                    ("custom_rateLimit", .string("0.001")), ("custom_rateBurst", .integer(10)),
                    ("custom_tier", .string("pro")))))
        #expect(try engine.verify(key: key).code == .rateLimited)
    }

    /// With `idempotencyEntries` 0 a request ID changes nothing: each verify counts, nothing is
    /// journaled for it, and a later engine that remembers answers finds none.
    @Test func noRememberedAnswersMeansRequestIDsAreIgnored() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        var configuration = EngineConfiguration()
        configuration.idempotencyEntries = 0
        var engine = try Engine.open(directory: directory.path, configuration: configuration, clock: clock)
        let key = try create(engine, order: 1, config()).apiKey
        _ = try engine.verify(key: key, requestID: "once")
        _ = try engine.verify(key: key, requestID: "once")
        #expect(try engine.usage(.orderID(1)).used == 2)
        engine.abandonForTesting()
        configuration.idempotencyEntries = 10
        engine = try Engine.open(directory: directory.path, configuration: configuration, clock: clock)
        _ = try engine.verify(key: key, requestID: "once")
        #expect(try engine.usage(.orderID(1)).used == 3)
        try engine.close()
    }

    /// Under `always`, a repeated request ID is answered only once the first answer's record is
    /// durable: the repeat waits for the same record.
    @Test func aRepeatWaitsForTheFirstAnswersRecord() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var options = StorageOptions()
        options.fsync = .always
        let engine = try Engine.open(directory: directory.path, options: options, clock: ManualClock(seconds: Self.now))
        let key = try create(engine, order: 1, config()).apiKey
        let first = try engine.deferred.verify(key: key, requestID: "r")
        let repeated = try engine.deferred.verify(key: key, requestID: "r")
        #expect(first.pending != nil && repeated.pending == first.pending && repeated.value == first.value)
        try engine.waitUntilDurable(repeated.pending)
        try engine.close()
    }

    @Test func theBucketIsAskedBeforeTheQuota() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        let key = try create(
            engine, order: 1, config(("custom_monthlyLimit", .integer(1)), ("custom_rateLimit", .integer(1)))
        ).apiKey
        #expect(try engine.verify(key: key).code == .valid)
        // Both are exhausted: the bucket answers first, and the quota's figures still come along.
        let both = try engine.verify(key: key)
        #expect(both.code == .rateLimited && both.usage?.remaining == 0)
        clock.advance(seconds: 1)
        #expect(try engine.verify(key: key).code == .usageExceeded)
    }

    @Test func statusAndExpiryComeBeforeLimitsAndConsumeNothing() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        let key = try create(engine, order: 1, config(("custom_monthlyLimit", .integer(10)))).apiKey
        try engine.suspend(orderID: 1)
        let suspended = try engine.verify(key: key)
        #expect(suspended.code == .suspended && !suspended.isValid && suspended.usage?.used == 0)
        try engine.unsuspend(orderID: 1)
        try engine.cancel(orderID: 1)
        #expect(try engine.verify(key: key).code == .canceled)
        try engine.uncancel(orderID: 1)
        // A key expires at its expiry instant.
        try engine.update(KeyChanges(orderID: 1, expiresAt: Self.lastSecondOfMarch - 100))
        #expect(try engine.verify(key: key).code == .expired)
        try engine.update(KeyChanges(orderID: 1, expiresAt: Self.lastSecondOfMarch - 99))
        #expect(try engine.verify(key: key).code == .valid)
        #expect(try engine.usage(.orderID(1)).used == 1)
    }

    @Test func anUnknownKeyIsNotFoundWithAnEmptyConfig() throws {
        let engine = engine(ManualClock(seconds: Self.lastSecondOfMarch))
        var custom = ""
        var answer: Verification?
        let pending = try engine.deferred.verify(keyBytes: UnsafeRawBufferPointer(start: "nope", count: 4)) {
            verification, text in
            answer = verification
            custom = String(decoding: text, as: UTF8.self)
        }
        #expect(pending == nil && answer == .notFound && custom == "{}")
        expectEngineError(.missingKey, EngineError.missingKey.message) { try engine.verify(key: "") }
        #expect(engine.verificationCounts[.notFound] == 1)
    }

    @Test func badCostsAndRequestIDsAreRefusedAndConsumeNothing() throws {
        let engine = engine(ManualClock(seconds: Self.lastSecondOfMarch))
        let key = try create(engine, order: 1, config(("custom_monthlyLimit", .integer(10)))).apiKey
        for cost in [-1, 1_000_000_001, Int64.max, Int64.min] as [Int64] {
            expectEngineError(.invalidArgument, "cost must be a whole number from 0 to 1000000000") {
                try engine.verify(key: key, cost: cost)
            }
        }
        for requestID in ["", String(repeating: "r", count: 129)] {
            expectEngineError(.invalidArgument, "request_id must be 1 to 128 bytes") {
                try engine.verify(key: key, requestID: requestID)
            }
        }
        #expect(try engine.verify(key: key, cost: 10, requestID: String(repeating: "r", count: 128)).code == .valid)
        #expect(try engine.usage(.orderID(1)).used == 10)
    }

    @Test func usageBelongsToTheOrder() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        let key = try create(engine, order: 7, client: 3, config(("custom_monthlyLimit", .integer(3)))).apiKey
        try create(engine, order: 8, client: 3, config())
        _ = try engine.verify(key: key, cost: 2)
        // A reset (rotation) keeps the count: the new key has one use left, the old is gone.
        let rotated = try engine.reset(.orderID(7)).apiKey
        #expect(try engine.verify(key: key).code == .notFound)
        #expect(try engine.verify(key: rotated, cost: 2).code == .usageExceeded)
        #expect(try engine.verify(key: rotated).usage?.remaining == 0)
        // An update's new limit applies at the next verify.
        try engine.update(KeyChanges(orderID: 7, config: config(("custom_monthlyLimit", .integer(4)))))
        #expect(try engine.verify(key: rotated).code == .valid)
        try engine.update(KeyChanges(orderID: 7, config: config()))
        #expect(try engine.verify(key: rotated, cost: 100).usage == nil)
        let other = try engine.get(.orderID(8)).apiKey
        _ = try engine.verify(key: other, cost: 5)
        let client = try engine.usage(clientID: 3)
        #expect(client.used == 109 && client.keys.map(\.orderID) == [7, 8] && client.keys.map(\.used) == [104, 5])
        // usage_reset sets this month back to 0.
        try engine.resetUsage(orderID: 7)
        #expect(try engine.usage(.orderID(7)).used == 0)
        // A delete removes it: an order created again under the same ID starts from nothing.
        try engine.delete(orderID: 7)
        #expect(try engine.verify(key: rotated).code == .notFound)
        try create(engine, order: 7, client: 3, config())
        #expect(try engine.usage(.orderID(7)).used == 0)
        expectEngineError(.orderNotFound, "Order not found") { try engine.usage(.orderID(99)) }
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.usage(.orderID(8), as: .client(4)) }
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.usage(clientID: 3, as: .client(4)) }
        #expect(try engine.usage(.orderID(8), as: .client(3)).used == 5)
    }

    @Test func aRepeatedRequestIDGetsTheFirstAnswerAndConsumesNothing() throws {
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        let engine = engine(clock)
        let key = try create(engine, order: 1, config(("custom_monthlyLimit", .integer(3)))).apiKey
        let other = try create(engine, order: 2, config(("custom_monthlyLimit", .integer(3)))).apiKey
        let first = try engine.verify(key: key, cost: 2, requestID: "req-1")
        clock.advance(seconds: 10)
        #expect(try engine.verify(key: key, cost: 2, requestID: "req-1") == first)
        #expect(try engine.verify(key: key, cost: 1, requestID: "req-1") == first)
        #expect(try engine.usage(.orderID(1)).used == 2)
        // The same request ID on another key is another request.
        #expect(try engine.verify(key: other, cost: 2, requestID: "req-1").code == .valid)
        // A denied answer is remembered too.
        let denied = try engine.verify(key: key, cost: 2, requestID: "req-2")
        #expect(denied.code == .usageExceeded)
        try engine.resetUsage(orderID: 1)
        #expect(try engine.verify(key: key, cost: 2, requestID: "req-2") == denied)
        // After 24 hours the ID is forgotten and the request counts again.
        clock.advance(seconds: 24 * 3600)
        #expect(try engine.verify(key: key, cost: 2, requestID: "req-1").usage?.used == 2)
    }

    @Test func rememberedAnswersAreBoundedOldestFirst() throws {
        let engine = engine(ManualClock(seconds: Self.lastSecondOfMarch - 100), idempotencyEntries: 3)
        let key = try create(engine, order: 1, config()).apiKey
        for id in 1...4 { _ = try engine.verify(key: key, requestID: "id-\(id)") }
        #expect(try engine.usage(.orderID(1)).used == 4)
        for id in 2...4 { _ = try engine.verify(key: key, requestID: "id-\(id)") }
        #expect(try engine.usage(.orderID(1)).used == 4)
        _ = try engine.verify(key: key, requestID: "id-1")  // dropped when id-4 came
        #expect(try engine.usage(.orderID(1)).used == 5)
        #expect(engine.state.remembered.withLock { $0.count } == 3)
    }

    @Test(arguments: [false, true])
    func usesAndRememberedAnswersSurviveARestart(snapshotFirst: Bool) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock(seconds: Self.lastSecondOfMarch - 100)
        var options = StorageOptions()
        options.snapshotOnClose = false
        var engine = try Engine.open(directory: directory.path, options: options, clock: clock)
        let key = try create(engine, order: 1, config(("custom_monthlyLimit", .integer(10)))).apiKey
        try create(engine, order: 2, config())
        let remembered = try engine.verify(key: key, cost: 3, requestID: "once")
        _ = try engine.verify(key: engine.get(.orderID(2)).apiKey, cost: 7)
        clock.advance(seconds: 101)  // April
        _ = try engine.verify(key: key, cost: 4)
        if snapshotFirst {
            try engine.snapshot()
            _ = try engine.verify(key: key, cost: 1)
            try engine.resetUsage(orderID: 2)
        } else {
            _ = try engine.verify(key: key, cost: 1)
            try engine.resetUsage(orderID: 2)
        }
        engine.abandonForTesting()
        engine = try Engine.open(directory: directory.path, options: options, clock: clock)
        #expect(try engine.usage(.orderID(1), month: Self.march).used == 3)
        #expect(try engine.usage(.orderID(1)).used == 5)
        #expect(try engine.usage(.orderID(2), month: Self.march).used == 7)
        #expect(try engine.usage(.orderID(2)).used == 0)
        #expect(try engine.verify(key: key, cost: 3, requestID: "once") == remembered)
        #expect(try engine.usage(.orderID(1)).used == 5)
        #expect(engine.integrityProblems().isEmpty)
        try engine.close()
    }

    @Test func concurrentVerifiesNeverPassTheQuota() throws {
        let engine = engine(ManualClock(seconds: Self.lastSecondOfMarch - 100))
        let limit: Int64 = 5000
        let key = try create(engine, order: 1, config(("custom_monthlyLimit", .integer(limit)))).apiKey
        let passed = Atomic<Int64>(0)
        let threads = 4
        let done = DispatchGroup()
        for thread in 0..<threads {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                for index in 0..<3000 {
                    let cost = Int64((thread + index) % 3)  // 0, 1 and 2
                    if let answer = try? engine.verify(key: key, cost: cost), answer.code == .valid {
                        passed.add(cost, ordering: .relaxed)
                    }
                }
            }
        }
        done.wait()
        let used = try engine.usage(.orderID(1)).used
        #expect(used == passed.load(ordering: .relaxed))
        #expect(used <= limit && used >= limit - 1)
    }
}

import Foundation
import PropertyBased
import Synchronization
import TestSupport
import Testing

@testable import APIKeyEngine

/// Verify and usage against a plain model: random sequences of verifies (costs 0 to 4, some with
/// request IDs), clock jumps across month ends, limit changes, rotations, usage resets, status
/// changes, deletes, snapshots and restarts on a real data directory; and verifies from several
/// threads at once, whose outcomes must be explainable by some order of one at a time.
@Suite struct UsageModelTests {
    static let limits: [Int64?] = [nil, 0, 1, 5, 20]

    private struct Order {
        var key: String
        var limit: Int64?
        var status: KeyStatus = .active
        var counts: [UsageMonth: Int64] = [:]
    }

    private static func config(_ limit: Int64?) -> JSONValue {
        .object(limit.map { [JSONMember("custom_monthlyLimit", .integer($0))] } ?? [])
    }

    @Test func matchesAModelAcrossMonthsAndRestarts() async throws {
        let runs = FuzzBudget.scaled(25)
        await HeavyWork.run {
            await propertyCheck(count: runs, input: Gen.uint64(in: 0...UInt64.max).array(of: 30...120)) { operations in
                try Self.run(operations)
            }
        }
    }

    static func run(_ operations: [UInt64]) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        // 2026-01-31 20:00:00 UTC: month ends come soon.
        let clock = ManualClock(seconds: 1_769_889_600)
        func open() throws -> Engine {
            var configuration = EngineConfiguration()
            configuration.idempotencyEntries = 1000
            let engine = try Engine.open(
                directory: directory.path, options: .forModelTests, configuration: configuration, clock: clock)
            #expect(engine.integrityProblems() == [])
            return engine
        }
        var engine = try open()
        var orders: [Int64: Order] = [:]
        for orderID in 1...3 as ClosedRange<Int64> {
            let limit = limits[Int(orderID) % limits.count]
            let record = try engine.create(NewKey(orderID: orderID, clientID: 1, config: config(limit)))
            orders[orderID] = Order(key: record.apiKey, limit: limit)
        }
        // Answers by key and request ID, with when they were given: kept for 24 hours.
        var remembered: [String: (answer: Verification, at: Int64)] = [:]
        for operation in operations {
            let orderID = Int64(operation >> 32 % 3) % 3 + 1
            let month = UsageMonth(containingNanoseconds: clock.nowNanoseconds())
            switch operation % 16 {
            case 0...7:
                let cost = Int64(operation >> 8 % 5) % 5
                let requestID = operation >> 16 % 4 == 0 ? "r\(operation >> 20 % 6)" : nil
                var order = orders[orderID]!
                let answer = try engine.verify(key: order.key, cost: cost, requestID: requestID)
                if let requestID, let earlier = remembered[order.key + "/" + requestID],
                    clock.nowNanoseconds() - earlier.at < RememberedAnswers.lifetimeNanoseconds
                {
                    #expect(answer == earlier.answer)
                    continue
                }
                let used = order.counts[month, default: 0]
                let expected: Verification.Code
                switch order.status {
                case .suspended: expected = .suspended
                case .canceled: expected = .canceled
                case .active:
                    expected = order.limit.map { max(cost, 1) > $0 - min(used, $0) } == true ? .usageExceeded : .valid
                }
                #expect(
                    answer.code == expected,
                    "order \(orderID) cost \(cost) used \(used) limit \(String(describing: order.limit))")
                if expected == .valid { order.counts[month, default: 0] += cost }
                let after = order.counts[month, default: 0]
                #expect(
                    answer.usage
                        == order.limit.map {
                            .init(month: month, limit: $0, used: after, remaining: max(0, $0 - min(after, $0)))
                        })
                orders[orderID] = order
                if let requestID { remembered[order.key + "/" + requestID] = (answer, clock.nowNanoseconds()) }
            case 8:
                // Up to 20 days on: month ends pass.
                clock.advance(seconds: Int64(operation >> 8 % 1_728_000) % 1_728_000)
            case 9:
                let limit = limits[Int(operation >> 8 % 5) % 5]
                try engine.update(KeyChanges(orderID: orderID, config: config(limit)))
                orders[orderID]!.limit = limit
            case 10:
                orders[orderID]!.key = try engine.reset(.orderID(orderID)).apiKey
            case 11:
                try engine.resetUsage(orderID: orderID)
                orders[orderID]!.counts[month] = 0
            case 12:
                if orders[orderID]!.status == .active {
                    try engine.suspend(orderID: orderID)
                    orders[orderID]!.status = .suspended
                } else {
                    try engine.unsuspend(orderID: orderID)
                    orders[orderID]!.status = .active
                }
            case 13:
                try engine.delete(orderID: orderID)
                let limit = orders[orderID]!.limit
                let record = try engine.create(NewKey(orderID: orderID, clientID: 1, config: config(limit)))
                orders[orderID] = Order(key: record.apiKey, limit: limit)
            case 14:
                try engine.snapshot()
            default:
                if operation >> 8 % 2 == 0 {
                    try engine.close()
                } else {
                    engine.abandonForTesting()
                }
                engine = try open()
            }
            for (id, order) in orders {
                for (countedMonth, count) in order.counts {
                    #expect(
                        try engine.usage(.orderID(id), month: countedMonth).used == count, "order \(id) \(countedMonth)"
                    )
                }
            }
        }
        try engine.close()
    }

    /// Several threads verify one key with random costs: what passed adds up to the count, the
    /// count never passes the limit, and every refusal asked for more than was left at the end
    /// (what is left only shrinks, so it asked for more than was left when it was refused).
    @Test func concurrentVerifiesAreExplainedBySomeOrder() async throws {
        let runs = FuzzBudget.scaled(12)
        await HeavyWork.run {
            await propertyCheck(
                count: runs, input: Gen.int(in: 0...400), Gen.int(in: 2...4), Gen.uint64(in: 0...UInt64.max)
            ) { limit, threads, seed in
                let engine = Engine(clock: ManualClock(seconds: 1_769_889_600))
                let key = try engine.create(NewKey(clientID: 1, config: Self.config(Int64(limit)))).apiKey
                let passed = Atomic<Int64>(0)
                let refusals = Mutex<[Int64]>([])
                let done = DispatchGroup()
                for thread in 0..<threads {
                    done.enter()
                    Thread.detachNewThread {
                        defer { done.leave() }
                        var random = SplitMix64(seed: seed &+ UInt64(thread))
                        for _ in 0..<300 {
                            let cost = Int64(random.next() % 6)
                            guard let answer = try? engine.verify(key: key, cost: cost) else { continue }
                            if answer.code == .valid {
                                passed.add(cost, ordering: .relaxed)
                            } else {
                                refusals.withLock { $0.append(max(cost, 1)) }
                            }
                        }
                    }
                }
                done.wait()
                let used = try engine.usage(.orderID(1)).used
                #expect(used == passed.load(ordering: .relaxed))
                #expect(used <= Int64(limit))
                let left = Int64(limit) - used
                #expect(refusals.withLock { $0.allSatisfy { $0 > left } }, "limit \(limit), used \(used)")
            }
        }
    }
}

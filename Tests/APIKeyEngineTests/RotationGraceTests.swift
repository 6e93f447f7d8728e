import Foundation
import Synchronization
import TestSupport
import Testing

@testable import APIKeyEngine

/// `reset` with a grace period: the old key answers as the order's key until the deadline, on
/// the same usage, through snapshots and journal replay, and a later reset or delete ends it.
@Suite struct RotationGraceTests {
    static let start: Int64 = 1_800_000_000

    @Test func theOldKeyAnswersForTheOrderUntilTheDeadline() throws {
        let clock = ManualClock(seconds: Self.start)
        let engine = Engine(clock: clock)
        let config = JSONValue.object([
            JSONMember("custom_tier", .string("pro")), JSONMember("custom_monthlyLimit", .integer(10)),
        ])
        let old = try engine.create(NewKey(orderID: 7, clientID: 3, config: config))
        #expect(try engine.verify(key: old.apiKey).code == .valid)
        let new = try engine.reset(.orderID(7), graceSeconds: 60)
        #expect(new.apiKey != old.apiKey)
        #expect(try engine.check(key: old.apiKey))
        #expect(try engine.check(key: new.apiKey))
        #expect(try engine.getInfo(key: old.apiKey) == engine.getInfo(key: new.apiKey))
        #expect(try engine.get(.key(old.apiKey)) == new)
        // One usage for both keys of the order.
        #expect(try engine.verify(key: old.apiKey).usage?.used == 2)
        #expect(try engine.verify(key: new.apiKey).usage?.used == 3)
        // The old key follows the order's status.
        try engine.suspend(orderID: 7)
        #expect(try engine.check(key: old.apiKey) == false)
        #expect(try engine.verify(key: old.apiKey).code == .suspended)
        try engine.unsuspend(orderID: 7)

        clock.advance(seconds: 59)
        #expect(try engine.check(key: old.apiKey))
        clock.advance(seconds: 1)
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: old.apiKey) }
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.getInfo(key: old.apiKey) }
        #expect(try engine.verify(key: old.apiKey).code == .notFound)
        #expect(try engine.check(key: new.apiKey))
        // Gone for good, even if the clock were set back.
        clock.advance(seconds: -30)
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: old.apiKey) }
    }

    @Test func withoutGraceTheOldKeyStopsAtOnceAsInFOSSBilling() throws {
        let engine = Engine(clock: ManualClock(seconds: Self.start))
        let old = try engine.create(NewKey(orderID: 1, clientID: 1))
        try engine.reset(.orderID(1))
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: old.apiKey) }
    }

    @Test func aLaterResetOrADeleteEndsTheGraceAtOnce() throws {
        let engine = Engine(clock: ManualClock(seconds: Self.start))
        let first = try engine.create(NewKey(orderID: 1, clientID: 1))
        let second = try engine.reset(.orderID(1), graceSeconds: 3600)
        let third = try engine.reset(.key(first.apiKey), graceSeconds: 3600)
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: first.apiKey) }
        #expect(try engine.check(key: second.apiKey))
        try engine.reset(.orderID(1))
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: second.apiKey) }
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: third.apiKey) }

        let other = try engine.create(NewKey(orderID: 2, clientID: 1))
        try engine.reset(.orderID(2), graceSeconds: 3600)
        try engine.delete(orderID: 2)
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: other.apiKey) }
        #expect(engine.integrityProblems().isEmpty)
    }

    @Test func graceOutOfRangeIsRefusedAndChangesNothing() throws {
        let engine = Engine()
        let record = try engine.create(NewKey(orderID: 1, clientID: 1))
        for grace: Int64 in [-1, DeferredWrites.maximumGraceSeconds + 1, .max] {
            expectEngineError(.invalidArgument, "grace_seconds must be a whole number from 0 to 2592000") {
                try engine.reset(.orderID(1), graceSeconds: grace)
            }
        }
        #expect(try engine.get(.orderID(1)) == record)
        try engine.reset(.orderID(1), graceSeconds: DeferredWrites.maximumGraceSeconds)
        #expect(try engine.check(key: record.apiKey))
    }

    @Test(arguments: [true, false])
    func theGraceSurvivesARestartAndEndsOnReplayAfterTheDeadline(orderly: Bool) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock(seconds: Self.start)
        var options = StorageOptions()
        options.fsync = .always
        options.snapshotOnClose = orderly
        let engine = try Engine.open(directory: directory.path, options: options, clock: clock)
        let old = try engine.create(NewKey(orderID: 5, clientID: 2))
        let new = try engine.reset(.orderID(5), graceSeconds: 100)
        if orderly {
            try engine.close()
        } else {
            engine.abandonForTesting()
        }

        clock.advance(seconds: 50)
        let reopened = try Engine.open(directory: directory.path, options: options, clock: clock)
        #expect(try reopened.check(key: old.apiKey))
        #expect(try reopened.check(key: new.apiKey))
        // A snapshot now carries the retired key; read back, it still answers until the deadline.
        try reopened.snapshot()
        try reopened.close()

        let loaded = try Engine.load(directory: directory.path, clock: clock)
        #expect(try loaded.check(key: old.apiKey))
        clock.advance(seconds: 50)
        let late = try Engine.open(directory: directory.path, options: options, clock: clock)
        expectEngineError(.keyNotFound, "API key does not exist") { try late.check(key: old.apiKey) }
        #expect(try late.check(key: new.apiKey))
        #expect(late.state.retired.isEmpty)
        try late.close()
    }

    /// Readers of the old key, racing the reset that retires it, never see it missing (with the
    /// put removing the old record before adding the new one, this failed in two runs of four).
    @Test func checksOfTheOldKeyNeverMissDuringTheReset() async throws {
        try await HeavyWork.run {
            let engine = Engine()
            for round in 0..<1000 {
                let old = try engine.create(NewKey(orderID: Int64(round + 1), clientID: 1))
                let misses = Atomic(0)
                let checks = Atomic(0)
                let done = Atomic(false)
                let reader = Thread {
                    while !done.load(ordering: .acquiring) {
                        if (try? engine.check(key: old.apiKey)) != true { misses.add(1, ordering: .relaxed) }
                        checks.add(1, ordering: .releasing)
                    }
                }
                reader.start()
                while checks.load(ordering: .acquiring) == 0 { usleep(10) }
                try engine.reset(.orderID(Int64(round + 1)), graceSeconds: 600)
                #expect(try engine.check(key: old.apiKey))
                done.store(true, ordering: .releasing)
                while !reader.isFinished { usleep(100) }
                #expect(misses.load(ordering: .relaxed) == 0, "round \(round)")
            }
        }
    }
}

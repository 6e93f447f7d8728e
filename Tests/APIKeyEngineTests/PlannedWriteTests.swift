import TestSupport
import Testing

@testable import APIKeyEngine

/// The engine's side of multi-node mode: planning a write changes nothing, replicated changes
/// take effect with their change position, and both survive a restart from the journal and
/// from a snapshot.
@Suite struct PlannedWriteTests {
    private func options() -> StorageOptions {
        var options = StorageOptions()
        options.fsync = .no
        options.snapshotOnClose = false
        options.snapshotIntervalSeconds = 0
        return options
    }

    @Test func planningAWriteChangesNothingUntilItIsApplied() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: options())
        let existing = try engine.create(NewKey(clientID: 1))
        let planned = try engine.plan { writes throws(EngineError) in
            try writes.create(NewKey(clientID: 2, config: .object([JSONMember("custom_tier", .string("pro"))])))
        }
        #expect(planned.mutations.count == 1)
        #expect(engine.keyCount == 1)
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: planned.value.apiKey) }
        // A suspend planned changes nothing either, and a refused one throws as the write would.
        let suspend = try engine.plan { writes throws(EngineError) in try writes.suspend(orderID: existing.orderID) }
        #expect(suspend.mutations.count == 1)
        #expect(try engine.check(key: existing.apiKey) == true)
        #expect(throws: EngineError.self) {
            try engine.plan { writes throws(EngineError) in try writes.unsuspend(orderID: existing.orderID) }
        }

        let position = ChangePosition(logID: 77, position: 1)
        _ = try engine.applyReplicated(planned.mutations, position: position)
        #expect(try engine.check(key: planned.value.apiKey) == true)
        #expect(try engine.get(.orderID(planned.value.orderID)) == planned.value)
        #expect(engine.changePosition == position)
        try engine.close()
    }

    @Test func replicatedChangesAndTheirPositionSurviveARestartFromTheJournalAndASnapshot() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var engine = try Engine.open(directory: directory.path, options: options())
        #expect(engine.changePosition == nil)
        var expected: [KeyRecord] = []
        for position in Int64(1)...20 {
            let planned = try engine.plan { writes throws(EngineError) in try writes.create(NewKey(clientID: position))
            }
            _ = try engine.applyReplicated(planned.mutations, position: ChangePosition(logID: 5, position: position))
            expected.append(planned.value)
        }
        // A change of no mutation of this node's (a use elsewhere of an order it lacks) still moves the position.
        _ = try engine.applyReplicated(
            [.use(orderID: 999, month: UsageMonth(year: 2026, month: 12)!, count: 3)],
            position: ChangePosition(logID: 5, position: 21))
        try engine.close()

        engine = try Engine.open(directory: directory.path, options: options())
        #expect(engine.changePosition == ChangePosition(logID: 5, position: 21))
        #expect(engine.allRecords() == expected)
        _ = try engine.snapshot()
        let suspend = try engine.plan { writes throws(EngineError) in try writes.suspend(orderID: expected[0].orderID) }
        _ = try engine.applyReplicated(suspend.mutations, position: ChangePosition(logID: 5, position: 22))
        try engine.close()

        engine = try Engine.open(directory: directory.path, options: options())
        #expect(engine.recoveryReport?.snapshot != nil)
        #expect(engine.changePosition == ChangePosition(logID: 5, position: 22))
        #expect(try engine.check(key: expected[0].apiKey) == false)
        #expect(try engine.check(key: expected[1].apiKey) == true)
        // A snapshot alone (no journal after it) carries the position too.
        _ = try engine.snapshot()
        try engine.close()
        engine = try Engine.open(directory: directory.path, options: options())
        #expect(engine.changePosition == ChangePosition(logID: 5, position: 22))
        #expect(engine.orderIDs == expected.map(\.orderID))
        try engine.close()
    }

    @Test func aRememberedAnswerNeverTravels() throws {
        let engine = Engine()
        let record = try engine.create(NewKey(clientID: 1))
        let other = Engine()
        // A remembered answer that counted a use of 5: applied, it would count those 5 here.
        let month = UsageMonth(containingNanoseconds: SystemClock().nowNanoseconds())
        let remembered = RememberedVerification(
            digest: RequestDigest(low: 1, high: 2), atNanoseconds: SystemClock().nowNanoseconds(),
            verification: Verification(code: .valid), consumed: UsageCount(month: month, used: 5))
        _ = try other.applyReplicated(
            [.put(record), .remember(remembered)], position: ChangePosition(logID: 1, position: 1))
        #expect(try other.check(key: record.apiKey) == true)
        #expect(try other.usage(.orderID(record.orderID)).used == 0)
    }

    @Test func aBatchOfEveryKindOfMutationRoundTripsAndACutOneIsRefused() throws {
        let month = UsageMonth(year: 2026, month: 11)!
        let record = KeyRecord(
            orderID: 42, clientID: 7, apiKey: "abcDEF0123456789abcDEF0123456789",
            config: .object([JSONMember("custom_n", .integer(3))]), status: .suspended, expiresAt: nil,
            createdAt: 1_700_000_000_000_000_000, updatedAt: 1_700_000_000_000_000_001)
        let mutations: [KeyMutation] = [
            .put(record), .delete(orderID: 43), .setClientToken(clientID: 7, token: "tok"),
            .use(orderID: 42, month: month, count: 9), .resetUsage(orderID: 42, month: month),
            .setUsage(orderID: 42, counts: [UsageCount(month: month, used: 12)]),
            .retire(
                RetiredKey(
                    key: "old", orderID: 42, currentKey: record.apiKey, untilNanoseconds: 1_800_000_000_000_000_000)),
            .changePosition(ChangePosition(logID: .max, position: .max)),
        ]
        let bytes = MutationBatch.encode(mutations)
        #expect(MutationBatch.decode(bytes) == mutations)
        #expect(MutationBatch.decode([]) == [])
        for cut in [1, 4, bytes.count / 2, bytes.count - 1] {
            #expect(MutationBatch.decode(Array(bytes.prefix(cut))) == nil, "cut at \(cut)")
        }
        var unknown = bytes
        unknown[0] = 250
        #expect(MutationBatch.decode(unknown) == nil)
    }
}

import Foundation
import TestSupport
import Testing

@testable import APIKeyEngine

/// Imports: every record checked as `create` checks, duplicates refused against the engine and
/// the batch, everything added at once and made durable by one snapshot.
@Suite struct KeyImportTests {
    static func record(
        _ orderID: Int64, client: Int64 = 1, key: String, config: JSONValue = .object([]),
        status: KeyStatus = .active, expiresAt: Int64? = nil
    ) -> KeyRecord {
        KeyRecord(
            orderID: orderID, clientID: client, apiKey: key, config: config, status: status, expiresAt: expiresAt,
            createdAt: 1_600_000_000, updatedAt: 1_600_000_100)
    }

    @Test func badRecordsAreRefusedWithTheReason() throws {
        let engine = Engine()
        _ = try engine.create(NewKey(orderID: 9, clientID: 1))
        let taken = try engine.get(.orderID(9)).apiKey
        var batch = engine.makeImport()
        try batch.add(Self.record(1, key: "KEY-1"))
        expectEngineError(.orderExists, "Order 1 appears twice in the import") {
            try batch.add(Self.record(1, key: "KEY-2"))
        }
        expectEngineError(.keyExists, "The key of order 2 is already the key of order 1 in the import") {
            try batch.add(Self.record(2, key: "KEY-1"))
        }
        expectEngineError(.orderExists, "Order 9 already has an API key") { try batch.add(Self.record(9, key: "K9")) }
        expectEngineError(.keyExists, "The key of order 3 is already the key of order 9") {
            try batch.add(Self.record(3, key: taken))
        }
        expectEngineError(.invalidArgument, "order_id must be a positive integer") {
            try batch.add(Self.record(0, key: "K0"))
        }
        for key in ["A\nB", "A\u{7F}B", "A\u{85}B"] {
            expectEngineError(.invalidArgument, "api_key must not contain control characters") {
                try batch.add(Self.record(4, key: key))
            }
        }
        expectEngineError(.invalidArgument, "api_key is 1025 bytes; the limit is 1024") {
            try batch.add(Self.record(4, key: String(repeating: "K", count: 1025)))
        }
        expectEngineError(.invalidArgument, "expires_at must lie between the years 1 and 9999") {
            try batch.add(Self.record(4, key: "K4", expiresAt: Timestamp.maximumSeconds + 1))
        }
        #expect(throws: EngineError.self) {
            try batch.add(Self.record(4, key: "K4", config: .object([JSONMember("custom_monthlyLimit", .string("x"))])))
        }
        try batch.addClientToken(clientID: 5, token: "token-5")
        expectEngineError(.keyExists, "The API token of client 6 is already client 5's") {
            try batch.addClientToken(clientID: 6, token: "token-5")
        }
        expectEngineError(.keyExists, "Client 5 has two API tokens in the import") {
            try batch.addClientToken(clientID: 5, token: "token-5b")
        }
        #expect(batch.recordCount == 1 && batch.tokenCount == 1)
        // Nothing reached the engine.
        #expect(engine.keyCount == 1)
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: "KEY-1") }
    }

    @Test func aCommittedImportAnswersAtOnceAndAfterARestart() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock(seconds: 1_700_000_000)
        var options = StorageOptions()
        options.snapshotOnClose = false
        let engine = try Engine.open(directory: directory.path, options: options, clock: clock)
        let existing = try engine.create(NewKey(orderID: 50, clientID: 2))
        var batch = engine.makeImport()
        let config = JSONValue.object([JSONMember("custom_tier", .string("pro")), JSONMember("length", .string("16"))])
        // Out of order, as a dump may list them.
        for orderID: Int64 in [30, 10, 20, 100] {
            try batch.add(
                Self.record(
                    orderID, client: orderID == 20 ? 2 : 1, key: "IMPORTED-\(orderID)", config: config,
                    status: orderID == 20 ? .suspended : .active, expiresAt: orderID == 30 ? 1_600_000_000 : nil))
        }
        try batch.addClientToken(clientID: 1, token: "client-one-token")
        let summary = try #require(try engine.commit(batch))
        #expect(summary.entries == 6)

        func verify(_ engine: Engine) throws {
            #expect(try engine.check(key: "IMPORTED-10"))
            #expect(try engine.check(key: "IMPORTED-20") == false)
            #expect(try engine.check(key: "IMPORTED-30") == false)
            #expect(try engine.check(key: existing.apiKey))
            #expect(
                String(decoding: try engine.getInfo(key: "IMPORTED-10").customParametersJSON, as: UTF8.self)
                    == #"{"tier": "pro"}"#)
            #expect(engine.authenticateClient(token: "client-one-token") == 1)
            #expect(try engine.list(clientID: 2).list.map(\.orderID) == [20, 50])
            #expect(try engine.list().list.map(\.orderID) == [10, 20, 30, 50, 100])
            #expect(try engine.get(.orderID(10)).createdAt == 1_600_000_000)
            // The next assigned order follows the highest imported one.
            #expect(engine.integrityProblems().isEmpty)
        }
        try verify(engine)
        // A reset of an imported key generates by its config.
        #expect(try engine.reset(.orderID(10)).apiKey.count == 17)
        try engine.reset(.orderID(10))
        try engine.close()

        let reopened = try Engine.open(directory: directory.path, options: options, clock: clock)
        #expect(try reopened.create(NewKey(clientID: 1)).orderID == 101)
        #expect(try reopened.list().total == 6)
        #expect(try reopened.check(key: "IMPORTED-20") == false)
        try reopened.close()
    }

    @Test func listingByCursorSkipsNothingWhenEarlierRecordsGo() throws {
        let engine = Engine()
        for orderID in 1...10 {
            try engine.create(NewKey(orderID: Int64(orderID * 10), clientID: orderID % 2 == 0 ? 2 : 3))
        }
        let first = try engine.list(afterOrderID: 0, perPage: 4)
        #expect(first.list.map(\.orderID) == [10, 20, 30, 40] && first.total == 10)
        // Deleting what was already listed moves nothing past the cursor.
        for orderID: Int64 in [10, 20, 30] { try engine.delete(orderID: orderID) }
        let second = try engine.list(afterOrderID: 40, perPage: 4)
        #expect(second.list.map(\.orderID) == [50, 60, 70, 80] && second.total == 6)
        #expect(try engine.list(afterOrderID: 45, perPage: 4).list.first?.orderID == 50)
        #expect(try engine.list(clientID: 2, afterOrderID: 40).list.map(\.orderID) == [60, 80, 100])
        try engine.suspend(orderID: 90)
        #expect(try engine.list(status: .active, afterOrderID: 50).list.map(\.orderID) == [60, 70, 80, 100])
        #expect(try engine.list(afterOrderID: 100).list.isEmpty)
        #expect(try engine.list(afterOrderID: -5).total == 7)
    }

    @Test func aCommitRefusesWhatWasTakenSinceAndAddsNothing() throws {
        let engine = Engine()
        var batch = engine.makeImport()
        try batch.add(Self.record(1, key: "A"))
        try batch.add(Self.record(2, key: "B"))
        _ = try engine.create(NewKey(orderID: 2, clientID: 1))
        #expect(throws: EngineError.self) { try engine.commit(batch) }
        expectEngineError(.keyNotFound, "API key does not exist") { try engine.check(key: "A") }
        #expect(engine.keyCount == 1)
    }

    @Test func loadReadsADirectoryInUseWithoutChangingIt() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var options = StorageOptions()
        options.fsync = .always
        let engine = try Engine.open(directory: directory.path, options: options)
        for client in 1...50 { try engine.create(NewKey(clientID: Int64(client))) }
        try engine.snapshot()
        for client in 51...60 { try engine.create(NewKey(clientID: Int64(client))) }
        #expect(Engine.isInUse(directory: directory.path))
        let names = directory.names()
        let bytes = names.map(directory.read)
        let loaded = try Engine.load(directory: directory.path)
        #expect(loaded.keyCount == 60)
        var seen: [Int64] = []
        loaded.forEachRecord { seen.append($0.orderID) }
        #expect(seen == Array(1...60))
        #expect(directory.names() == names)
        #expect(directory.names().map(directory.read) == bytes)
        try engine.close()
        #expect(!Engine.isInUse(directory: directory.path))
    }
}

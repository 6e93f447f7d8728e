import Synchronization
import TestSupport
import Testing

@testable import APIKeyEngine

/// The engine's life as an embedder sees it: the `async` writes suspend until durable without
/// holding a thread, closing is idempotent and asynchronous, a write after close is refused as
/// closed (not logged as a failure), and dropping the last reference releases the directory.
@Suite(.serialized) struct EmbeddingLifecycleTests {
    private func durableOptions(_ fsync: FsyncPolicy = .always) -> StorageOptions {
        var options = StorageOptions()
        options.fsync = fsync
        return options
    }

    /// The blocking forms, which an `async` function cannot name directly (Swift picks the
    /// `async` overloads there).
    private func closeBlocking(_ engine: Engine) throws { try engine.close() }
    private func createBlocking(_ engine: Engine, _ key: NewKey) throws -> KeyRecord { try engine.create(key) }

    @Test func closingTwiceDoesNothingTheSecondTime() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: durableOptions())
        let record = try await engine.create(NewKey(clientID: 1))
        try await engine.close()
        try await engine.close()
        try closeBlocking(engine)
        #expect(engine.writeAvailability == .closed)
        let reopened = try Engine.open(directory: directory.path)
        #expect(try reopened.check(key: record.apiKey))
        try await reopened.close()
    }

    @Test func aWriteAfterCloseIsRefusedAsClosedAndNotLoggedAsAJournalFailure() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = CapturedLog()
        let engine = try Engine.open(directory: directory.path, logger: log.logger)
        let record = try createBlocking(engine, NewKey(clientID: 1))
        try await engine.close()
        expectEngineError(.closed, "The engine is closed: writes are refused, reads go on.") {
            try createBlocking(engine, NewKey(clientID: 2))
        }
        await #expect(throws: EngineError.closed) { try await engine.suspend(orderID: record.orderID) }
        #expect(try engine.check(key: record.apiKey), "reads go on after close")
        #expect(log.lines.filter { $0.level >= .error }.isEmpty, "\(log.lines.map(\.message))")
    }

    /// Opens `directory`, writes one key without waiting for an fsync, and lets the engine go.
    private func writeAndDrop(_ directory: String, log: CapturedLog) throws -> String {
        let engine = try Engine.open(directory: directory, options: durableOptions(.no), logger: log.logger)
        return try engine.create(NewKey(clientID: 1)).apiKey
    }

    @Test func releasingTheLastReferenceReleasesTheDirectoryWithTheJournalSynced() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = CapturedLog()
        let key = try writeAndDrop(directory.path, log: log)
        #expect(log.lines(containing: "engine released without close()").count == 1)
        let reopened = try Engine.open(directory: directory.path)
        #expect(try reopened.check(key: key))
        try reopened.close()
    }

    @Test func anAsyncWriteUnderAlwaysFailsWhenItsFsyncFails() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 1)
        let engine = try Engine.open(directory: directory.path, options: durableOptions(), files: files)
        files.setFailSyncs(true)
        await #expect(throws: EngineError(.writesStopped, "")) { try await engine.create(NewKey(clientID: 1)) }
        guard case .stopped = engine.writeAvailability else {
            Issue.record("writes should be stopped, not \(engine.writeAvailability)")
            return
        }
        engine.storageForTesting?.abandon()
    }

    @Test func anAsyncWriteUnderEverysecReturnsBeforeAnyFsync() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 1)
        let engine = try Engine.open(directory: directory.path, options: durableOptions(.everysec), files: files)
        files.setFailSyncs(true)
        let record = try await engine.create(NewKey(clientID: 1))
        #expect(record.orderID == 1)
        engine.storageForTesting?.abandon()
    }

    private final class Counter: Sendable { let value = Atomic(0) }

    /// Eight writes wait on a one-second fsync; had they blocked their threads, the two-thread
    /// cooperative pool could run nothing else until it ended.
    @Test func asyncWritesWaitingOnASlowFsyncLeaveTheCooperativePoolFree() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 1)
        let engine = try Engine.open(directory: directory.path, options: durableOptions(), files: files)
        files.setSyncDelay(microseconds: 1_000_000)
        let finished = Counter()
        let finishedWhenOtherWorkRan = try await withThrowingTaskGroup(of: Int?.self) { group in
            for client in 1...8 {
                group.addTask {
                    try await engine.create(NewKey(clientID: Int64(client)))
                    finished.value.add(1, ordering: .relaxed)
                    return nil
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(50))
                return finished.value.load(ordering: .relaxed)
            }
            var seen: Int?
            for try await value in group { if let value { seen = value } }
            return seen
        }
        #expect(finishedWhenOtherWorkRan == 0)
        #expect(finished.value.load(ordering: .relaxed) == 8)
        try await engine.close()
    }

    @Test func asyncCloseWritesTheFinalSnapshot() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: durableOptions(.everysec))
        for client in 1...100 { try await engine.create(NewKey(clientID: Int64(client))) }
        try await engine.close()
        #expect(directory.names().contains { $0.hasPrefix("snapshot-") && $0.hasSuffix(".snap") })
        let reopened = try Engine.open(directory: directory.path)
        #expect(reopened.keyCount == 100)
        #expect(reopened.recoveryReport?.replayedRecords == 0)
        try await reopened.close()
    }

    @Test func inMemoryEnginesTakeALogger() {
        let log = CapturedLog()
        let engine = Engine(logger: log.logger)
        engine.logger.info("hello")
        #expect(log.lines(containing: "hello").count == 1)
        #expect(engine.writeAvailability.isAccepting)
    }

    /// The README's error-handling snippet, compiled and run.
    @Test func errorsAreSwitchedOverByCode() {
        let engine = Engine()
        func describe(_ key: String) -> String {
            do {
                return try engine.check(key: key) ? "valid" : "invalid"
            } catch {
                switch error.code {
                case .missingKey, .keyNotFound: return "unknown key"
                case .writesStopped, .closed: return "try again later"
                default: return "error: \(error.message)"
                }
            }
        }
        #expect(describe("") == "unknown key")
        #expect(describe("nope") == "unknown key")
    }
}

import Dispatch
import Foundation
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

    /// Writes racing close(): each is either acknowledged and found after reopening, or refused as
    /// closed and not found; none is refused as failed, and a pending write from before close
    /// counts as durable after it.
    @Test func writesRacingCloseAreAcknowledgedOrRefusedAsClosed() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: durableOptions())
        let before = try engine.deferred.create(NewKey(orderID: 100_000, clientID: 1)).pending
        let outcomes = await withTaskGroup(of: (Int64, EngineError.Code?).self) { group in
            for order in Int64(1)...600 {
                group.addTask {
                    do throws(EngineError) {
                        try await engine.create(NewKey(orderID: order, clientID: 1))
                        return (order, nil)
                    } catch {
                        return (order, error.code)
                    }
                }
                if order == 300 {
                    group.addTask {
                        try? await engine.close(); return (0, nil)
                    }
                }
            }
            var outcomes: [(Int64, EngineError.Code?)] = []
            for await outcome in group where outcome.0 > 0 { outcomes.append(outcome) }
            return outcomes
        }
        try closeBlocking(engine)
        #expect(throws: Never.self) { try engine.waitUntilDurable(before) }
        await #expect(throws: EngineError.closed) { try await engine.snapshot() }
        #expect(
            outcomes.allSatisfy { $0.1 == nil || $0.1 == .closed },
            "\(outcomes.filter { $0.1 != nil && $0.1 != .closed })")
        let reopened = try Engine.open(directory: directory.path)
        for (order, code) in outcomes {
            let found = (try? reopened.get(.orderID(order))) != nil
            #expect(found == (code == nil), "order \(order): \(String(describing: code)), found \(found)")
        }
        try await reopened.close()
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

    /// Eight writes wait on an fsync the disk holds until other work on the cooperative pool has
    /// run: had the writes blocked their threads, the two-thread pool could run nothing else, and
    /// only the safety release (a Dispatch timer, off the pool) would end the wait.
    @Test func asyncWritesWaitingOnAHeldFsyncLeaveTheCooperativePoolFree() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 1)
        let engine = try Engine.open(directory: directory.path, options: durableOptions(), files: files)
        files.holdSyncs()
        let finished = Counter()
        let releasedByTimer = Counter()
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) {
            releasedByTimer.value.store(1, ordering: .relaxed)
            files.releaseSyncs()
        }
        let finishedWhenOtherWorkRan = try await withThrowingTaskGroup(of: Int?.self) { group in
            for client in 1...8 {
                group.addTask {
                    try await engine.create(NewKey(clientID: Int64(client)))
                    finished.value.add(1, ordering: .relaxed)
                    return nil
                }
            }
            group.addTask {
                // Give the writes time to reach the held fsync; then this is the other work.
                try await Task.sleep(for: .milliseconds(200))
                let seen = finished.value.load(ordering: .relaxed)
                files.releaseSyncs()
                return seen
            }
            var seen: Int?
            for try await value in group { if let value { seen = value } }
            return seen
        }
        #expect(releasedByTimer.value.load(ordering: .relaxed) == 0, "the pool ran nothing while the writes waited")
        #expect(finishedWhenOtherWorkRan == 0, "no write may finish before its fsync")
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

    /// The README's error-handling snippet (``describe(_:in:)`` below), run; and the README holds
    /// exactly that code, so the two cannot drift apart.
    @Test func errorsAreSwitchedOverByCodeAsTheReadmeShows() throws {
        let engine = Engine()
        #expect(describe("", in: engine) == "unknown key")
        #expect(describe("nope", in: engine) == "unknown key")
        let key = try engine.create(NewKey(clientID: 1)).apiKey
        #expect(describe(key, in: engine) == "valid")
        let readme = try String(contentsOfFile: Self.repository + "/README.md", encoding: .utf8)
        let thisFile = try String(contentsOfFile: #filePath, encoding: .utf8)
        let snippet = thisFile.components(separatedBy: "// README snippet begins\n")[1]
            .components(separatedBy: "// README snippet ends")[0]
        #expect(readme.contains("```swift\n" + snippet + "```"), "README.md must show the function below as is")
    }

    private static let repository = #filePath.split(separator: "/").dropLast(3).reduce("") { $0 + "/" + $1 }
}

// README snippet begins
func describe(_ key: String, in engine: Engine) -> String {
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
// README snippet ends

import APIKeyEngine
import TestSupport
import Testing

/// What the engine reports for monitoring: keys by status as records change, journal bytes,
/// the last snapshot, and writes stopped, which is logged once however many writes it refuses.
@Suite struct EngineStatisticsTests {
    @Test func keyCountsFollowEveryKindOfChange() throws {
        let engine = Engine()
        func counts() -> [Int] { KeyStatus.allCases.map { engine.statistics.keysByStatus[$0] } }
        let first = try engine.create(NewKey(clientID: 1))
        let second = try engine.create(NewKey(clientID: 1, status: .suspended))
        _ = try engine.create(NewKey(clientID: 2))
        #expect(counts() == [2, 1, 0])
        try engine.cancel(orderID: first.orderID)
        #expect(counts() == [1, 1, 1])
        try engine.unsuspend(orderID: second.orderID)
        #expect(counts() == [2, 0, 1])
        // A reset replaces the key (a new hash): the status is counted once still.
        _ = try engine.reset(.orderID(second.orderID))
        #expect(counts() == [2, 0, 1])
        try engine.update(KeyChanges(orderID: second.orderID, status: .suspended))
        #expect(counts() == [1, 1, 1])
        try engine.delete(orderID: first.orderID)
        #expect(counts() == [1, 1, 0])
        #expect(engine.integrityProblems() == [])
    }

    @Test func countsSurviveASnapshotAndTheJournal() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var engine = try Engine.open(directory: directory.path)
        let order = try engine.create(NewKey(clientID: 1)).orderID
        try engine.snapshot()
        #expect(engine.statistics.lastSnapshotSeconds != nil)
        #expect(engine.statistics.journalBytes == 0)
        try engine.suspend(orderID: order)
        _ = try engine.create(NewKey(clientID: 1))
        #expect(engine.statistics.journalBytes > 0)
        engine.abandonForTesting()
        engine = try Engine.open(directory: directory.path)
        defer { try? engine.close() }
        #expect(engine.statistics.keysByStatus[.active] == 1)
        #expect(engine.statistics.keysByStatus[.suspended] == 1)
        #expect(engine.statistics.lastSnapshotSeconds == nil, "no snapshot written by this process yet")
        #expect(engine.integrityProblems() == [])
    }

    @Test func writesStoppedIsLoggedOnceAndReported() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 3)
        let log = CapturedLog()
        var options = StorageOptions()
        options.fsync = .always
        options.snapshotOnClose = false
        let engine = try Engine.open(directory: directory.path, options: options, files: files, logger: log.logger)
        _ = try engine.create(NewKey(clientID: 1))
        #expect(!engine.statistics.writesStopped)
        files.setFailSyncs(true)
        for _ in 0..<17 {
            #expect(throws: EngineError.self) { _ = try engine.create(NewKey(clientID: 1)) }
        }
        #expect(engine.statistics.writesStopped)
        let stopped = log.lines(containing: "writes are stopped")
        #expect(stopped.count == 1, "\(log.lines.map(\.message))")
        #expect(stopped.first?.level == .critical)
        try? engine.close()
    }
}

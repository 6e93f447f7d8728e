import TestSupport
import Testing

@testable import APIKeyEngine

/// Snapshots: round trips, fallback, and crashes inside the snapshot protocol.
@Suite struct SnapshotTests {
    private func options(_ fsync: FsyncPolicy = .always) -> StorageOptions {
        var options = StorageOptions()
        options.fsync = fsync
        options.snapshotOnClose = false
        options.snapshotIntervalSeconds = 0
        return options
    }

    /// Creates, changes and deletes keys; returns the records that should survive.
    @discardableResult
    private func populate(_ engine: Engine, count: Int, seed: Int = 0) throws -> [KeyRecord] {
        for index in 0..<count {
            let config = JSONValue.object([
                JSONMember("custom_tier", .string(["free", "pro"][index % 2])),
                JSONMember("custom_n", .integer(seed + index)),
            ])
            try engine.create(NewKey(clientID: Int64(index % 7 + 1), config: config))
        }
        let records = engine.allRecords()
        for record in records where record.orderID % 5 == 0 && record.status == .active {
            try engine.suspend(orderID: record.orderID)
        }
        for record in records where record.orderID % 11 == 0 { try engine.reset(.orderID(record.orderID)) }
        for record in records where record.orderID % 13 == 0 { try engine.delete(orderID: record.orderID) }
        return engine.allRecords()
    }

    @Test func aSnapshotAndTheJournalAfterItRestoreEverything() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: options(.no))
        try populate(engine, count: 300)
        let token = try engine.resetClientToken(clientID: 4)
        let summary = try engine.snapshot()
        #expect(summary.entries == UInt64(engine.keyCount + 1))
        try populate(engine, count: 50, seed: 1000)
        try engine.delete(orderID: engine.allRecords().last!.orderID)
        let expected = engine.allRecords()
        let expectedNext = try engine.create(NewKey(clientID: 1)).orderID
        try engine.delete(orderID: expectedNext)
        try engine.close()

        let reopened = try Engine.open(directory: directory.path, options: options(.no))
        #expect(reopened.recoveryReport?.snapshot == SnapshotFile.names.name(summary.lastSequence))
        #expect(reopened.recoveryReport?.replayedRecords ?? 0 > 0)
        #expect(reopened.allRecords() == expected)
        #expect(reopened.authenticateClient(token: token) == 4)
        for record in expected { #expect(try reopened.check(key: record.apiKey) == (record.status == .active)) }
        // Order IDs are not reused after a restart, even when the highest was deleted.
        #expect(try reopened.create(NewKey(clientID: 1)).orderID == expectedNext + 1)
        try reopened.close()
    }

    @Test func aCorruptNewestSnapshotFallsBackToThePreviousOne() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: options(.no))
        try populate(engine, count: 100)
        try engine.snapshot()
        try populate(engine, count: 100, seed: 500)
        let newest = try engine.snapshot()
        try populate(engine, count: 20, seed: 900)
        try engine.snapshot()
        let expected = engine.allRecords()
        try engine.close()
        let snapshots = directory.names().filter { $0.hasSuffix(".snap") }
        #expect(snapshots.count == 2, "keeps the two newest: \(directory.names())")

        let newestName = try #require(snapshots.last)
        var bytes = directory.read(newestName)
        bytes[bytes.count / 2] ^= 0x10
        directory.write(newestName, bytes)
        let reopened = try Engine.open(directory: directory.path, options: options(.no))
        let report = try #require(reopened.recoveryReport)
        #expect(report.rejectedSnapshots.count == 1)
        #expect(report.snapshot == SnapshotFile.names.name(newest.lastSequence))
        #expect(reopened.allRecords() == expected)
        try reopened.close()
        // The rejected snapshot was set aside (kept, renamed), so it is no candidate any more.
        #expect(directory.names().contains { $0.hasPrefix(newestName + ".corrupt-") }, "\(directory.names())")
        #expect(try Engine.verifyData(directory: directory.path).rejectedSnapshots == [])
    }

    @Test func verifyDataChangesNothing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: options(.no))
        try populate(engine, count: 30)
        try engine.close()
        let segment = try #require(directory.names().first { $0.hasPrefix("journal-") })
        var bytes = directory.read(segment)
        bytes.removeLast(5)
        directory.write(segment, bytes)
        let before = directory.names().map { ($0, directory.read($0)) }
        let report = try Engine.verifyData(directory: directory.path)
        #expect(report.tornTail != nil)
        let after = directory.names().map { ($0, directory.read($0)) }
        #expect(before.map(\.0) == after.map(\.0))
        #expect(before.map(\.1) == after.map(\.1))
    }

    @Test func allSnapshotsCorruptAndTheJournalPrunedRefusesToStart() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: options(.no))
        for round in 0..<3 {
            try populate(engine, count: 10, seed: round * 100)
            try engine.snapshot()
        }
        try engine.close()
        for name in directory.names() where name.hasSuffix(".snap") {
            var bytes = directory.read(name)
            bytes[10] ^= 0xFF
            directory.write(name, bytes)
        }
        #expect(throws: StorageError.self) { try Engine.open(directory: directory.path, options: options(.no)) }
    }

    /// A snapshot that fails for want of space removes its temporary file, costs the journal
    /// nothing, and later writes go on; everything survives a restart.
    @Test func aSnapshotThatFindsTheDiskFullLeavesNothingBehind() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 5)
        let engine = try Engine.open(directory: directory.path, options: options(.always), files: files)
        try populate(engine, count: 50)
        files.setNoSpace(forPathsEnding: ".snap.tmp")
        #expect(throws: EngineError.self) { try engine.snapshot() }
        #expect(!directory.names().contains { $0.hasSuffix(".tmp") }, "\(directory.names())")
        #expect(!directory.names().contains { $0.hasSuffix(".snap") })
        files.setNoSpace(forPathsEnding: nil)
        try populate(engine, count: 10, seed: 700)
        let expected = engine.allRecords()
        try engine.close()
        let reopened = try Engine.open(directory: directory.path, options: options(.always))
        #expect(reopened.allRecords() == expected)
        #expect(reopened.integrityProblems() == [])
        try reopened.close()
    }

    /// A final snapshot that fails (the disk is full) still leaves the journal synced and closed.
    @Test func aFailedFinalSnapshotStillClosesTheJournal() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 6)
        var closing = options(.no)
        closing.snapshotOnClose = true
        let engine = try Engine.open(directory: directory.path, options: closing, files: files)
        try populate(engine, count: 40)
        let expected = engine.allRecords()
        files.setNoSpace(forPathsEnding: ".snap.tmp")
        #expect(throws: EngineError.self) { try engine.close() }
        // Unsynced bytes are lost at a power cut: only what close fsynced survives.
        files.simulatePowerCut()
        let reopened = try Engine.open(directory: directory.path, options: options(.no))
        #expect(reopened.allRecords() == expected)
        try reopened.close()
    }

    /// Two corruptions in a row: the newest snapshot is corrupt, the engine falls back; a new
    /// snapshot is written and more keys after it; then the new newest is corrupt too. Pruning
    /// counted only verified snapshots, so the fallback still has all it needs.
    @Test func aSecondCorruptionAfterAFallbackLosesNothing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        func corruptNewest() throws {
            let newest = try #require(directory.names().filter { $0.hasSuffix(".snap") }.last)
            var bytes = directory.read(newest)
            bytes[bytes.count / 2] ^= 0x04
            directory.write(newest, bytes)
        }
        var engine = try Engine.open(directory: directory.path, options: options(.no))
        for round in 0..<3 {
            try populate(engine, count: 30, seed: round * 100)
            try engine.snapshot()
        }
        try populate(engine, count: 30, seed: 300)
        var expected = engine.allRecords()
        try engine.close()
        for round in 0..<3 {
            try corruptNewest()
            engine = try Engine.open(directory: directory.path, options: options(.no))
            #expect(engine.allRecords() == expected, "round \(round): \(engine.recoveryReport!)")
            #expect(engine.recoveryReport?.rejectedSnapshots.count == 1)
            try populate(engine, count: 30, seed: 1000 + round * 100)
            try engine.snapshot()
            try populate(engine, count: 30, seed: 1050 + round * 100)
            expected = engine.allRecords()
            engine.abandonForTesting()
        }
        try corruptNewest()
        engine = try Engine.open(directory: directory.path, options: options(.no))
        #expect(engine.allRecords() == expected)
        #expect(engine.integrityProblems() == [])
        try engine.close()
    }

    /// Damage inside the journal, then damage to the snapshot written when recovering from it:
    /// the fallback to an older snapshot replays through the intact start of the damaged
    /// segment (kept in the chain) and then the journal written since, so nothing read or
    /// written after the first recovery is lost.
    @Test func aCorruptRecoverySnapshotFallsBackThroughTheDamagedSegment() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var small = options(.no)
        small.segmentBytes = 8192
        let engine = try Engine.open(directory: directory.path, options: small)
        try populate(engine, count: 50)
        try engine.snapshot()
        for record in engine.allRecords() {
            try engine.update(
                KeyChanges(orderID: record.orderID, config: .object([JSONMember("custom_v", .integer(2))])))
        }
        try engine.snapshot()
        for record in engine.allRecords() {
            try engine.update(
                KeyChanges(orderID: record.orderID, config: .object([JSONMember("custom_v", .integer(3))])))
        }
        engine.abandonForTesting()
        let segments = directory.names().filter { $0.hasPrefix("journal-") && directory.read($0).count > 4096 }
        let damaged = try #require(segments.last)
        var bytes = directory.read(damaged)
        bytes[bytes.count / 2] ^= 0x20
        directory.write(damaged, bytes)

        let recovered = try Engine.open(directory: directory.path, options: small)
        #expect(recovered.recoveryReport?.corruption != nil)
        #expect(directory.names().contains(damaged), "the intact start stays in the chain: \(directory.names())")
        for client in 1...100 { try recovered.create(NewKey(clientID: Int64(client))) }
        let expected = recovered.allRecords()
        recovered.abandonForTesting()
        let newest = try #require(directory.names().filter { $0.hasSuffix(".snap") }.last)
        var snapshot = directory.read(newest)
        snapshot[snapshot.count / 2] ^= 0x01
        directory.write(newest, snapshot)

        let reopened = try Engine.open(directory: directory.path, options: small)
        #expect(reopened.recoveryReport?.corruption == nil, "\(reopened.recoveryReport!)")
        #expect(reopened.allRecords() == expected)
        #expect(reopened.integrityProblems() == [])
        try reopened.close()
    }

    /// A record that passes every checksum yet is not what the engine writes (a config that is
    /// no JSON object, custom parameters that do not follow from the config, an order ID out of
    /// range) loads without a trap, and verify-data reports it.
    @Test func verifyDataChecksEveryRecord() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: options(.no))
        try populate(engine, count: 5)
        try engine.close()
        #expect(try Engine.verifyData(directory: directory.path).integrityProblems == [])
        let bad = [
            KeyRecord(
                orderID: 900, clientID: 1, apiKey: "BAD-CONFIG", configJSON: Array("not json".utf8)[...],
                customParametersJSON: Array("{}".utf8)[...], status: .active, expiresAt: nil, createdAt: 0, updatedAt: 0
            ),
            KeyRecord(
                orderID: 901, clientID: 1, apiKey: "BAD-CUSTOM", configJSON: Array(#"{"custom_a": 1}"#.utf8)[...],
                customParametersJSON: Array(#"{"b": 2}"#.utf8)[...], status: .active, expiresAt: nil, createdAt: 0,
                updatedAt: 0),
            KeyRecord(
                orderID: -5, clientID: 1, apiKey: "BAD-ORDER", config: .object([]), status: .active,
                expiresAt: .max, createdAt: 0, updatedAt: 0),
        ]
        let last = try Engine.verifyData(directory: directory.path).lastSequence
        var segment = JournalFormat.segmentHeader(firstSequence: last + 1)
        for (index, record) in bad.enumerated() {
            segment += JournalFormat.record(sequence: last + 1 + UInt64(index), mutation: .put(record))
        }
        directory.write(JournalFormat.segmentNames.name(last + 1), segment)
        let problems = try Engine.verifyData(directory: directory.path).integrityProblems
        #expect(problems.contains { $0.hasPrefix("order 900: the config text") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("order 901: the custom parameters") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("order -5:") }, "\(problems)")
    }

    /// A crash at each step of the snapshot protocol loses nothing that was acknowledged.
    @Test(arguments: [SnapshotFile.Step.temporaryWritten, .temporarySynced, .renamed])
    func crashesInsideTheSnapshotProtocol(_ step: SnapshotFile.Step) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: 11)
        let engine = try Engine.open(directory: directory.path, options: options(.always), files: files)
        try populate(engine, count: 60)
        try engine.snapshot()
        try populate(engine, count: 40, seed: 300)
        let expected = engine.allRecords()
        engine.storageForTesting?.snapshotStepHook = { (reached) throws(StorageError) in
            if reached == step {
                files.simulatePowerCut()
                throw StorageError("simulated crash at \(step)")
            }
        }
        #expect(throws: EngineError.self) { try engine.snapshot() }
        engine.abandonForTesting()

        let reopened = try Engine.open(directory: directory.path, options: options(.always))
        #expect(reopened.allRecords() == expected, "crash at \(step): \(reopened.recoveryReport!)")
        #expect(reopened.recoveryReport?.corruption == nil)
        try reopened.close()
    }
}

import Foundation
import Synchronization
import TestSupport
import Testing

@testable import APIKeyEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Journal format and replay, on real files.
@Suite struct JournalTests {
    /// Writes a journal of assorted mutations through an engine (usage ones among them) and
    /// returns its directory, the single segment's name and the mutations.
    private func writeJournal(writes: Int = 12) throws -> (TemporaryDirectory, String, [KeyMutation]) {
        let directory = TemporaryDirectory()
        var options = StorageOptions()
        options.fsync = .no
        options.snapshotOnClose = false
        let engine = try Engine.open(directory: directory.path, options: options)
        for index in 0..<writes {
            switch index % 4 {
            case 0, 1:
                try engine.create(
                    NewKey(clientID: Int64(index + 1), config: .object([JSONMember("custom_n", .integer(index))])))
            case 2: try engine.suspend(orderID: Int64(index / 4 * 2 + 1))
            default: _ = try engine.resetClientToken(clientID: Int64(index))
            }
        }
        // A use, a use with its remembered answer (one record), and a usage reset: three records.
        let key = try engine.get(.orderID(2)).apiKey
        _ = try engine.verify(key: key, cost: 3)
        _ = try engine.verify(key: key, cost: 1, requestID: "request-1")
        try engine.resetUsage(orderID: 2)
        try engine.close()
        let segment = try #require(directory.names().first { $0.hasPrefix("journal-") })
        let bytes = directory.read(segment)
        let mutations = JournalFormat.scan(bytes, expectedSequence: nil).records.map(\.mutation)
        #expect(mutations.count == writes + 3)
        #expect(mutations.filter { if case .use = $0 { true } else { false } }.count == 1)
        #expect(mutations.contains { if case .remember(let answer) = $0 { answer.consumed?.used == 1 } else { false } })
        #expect(
            mutations.last
                == .resetUsage(orderID: 2, month: UsageMonth(containingNanoseconds: SystemClock().nowNanoseconds())))
        return (directory, segment, mutations)
    }

    /// The end offset of each record in a segment.
    private func recordEnds(_ bytes: [UInt8]) -> [Int] {
        var ends: [Int] = []
        var offset = JournalFormat.segmentHeaderSize
        while offset < bytes.count {
            var reader = ByteReader(bytes[offset...])
            offset += JournalFormat.recordHeaderSize + Int(reader.uint32()!)
            ends.append(offset)
        }
        return ends
    }

    /// Runs `body(0..<count)` on as many real threads and returns once all have finished: the
    /// concurrency pool is only as wide as the machine has cores.
    private static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let finished = DispatchGroup()
        for index in 0..<count {
            finished.enter()
            Thread.detachNewThread {
                body(index)
                finished.leave()
            }
        }
        finished.wait()
    }

    /// An engine on `directory` over a fault-injecting layer, with no snapshot on close.
    private func openFaulty(
        _ directory: TemporaryDirectory, seed: UInt64, fsync: FsyncPolicy
    ) throws -> (
        Engine, FaultyFileLayer, StorageOptions
    ) {
        let files = FaultyFileLayer(seed: seed)
        var options = StorageOptions()
        options.fsync = fsync
        options.snapshotOnClose = false
        return (try Engine.open(directory: directory.path, options: options, files: files), files, options)
    }

    private func recover(_ directory: TemporaryDirectory) throws -> (RecoveryReport, [KeyMutation]) {
        let target = CollectingTarget()
        let report = try Recovery.recover(directory: directory.path, files: PosixFileLayer(), into: target)
        return (report, target.mutations)
    }

    @Test func everyTruncationRecoversExactlyTheWholeRecordsBeforeIt() async throws {
        try await HeavyWork.run {
            let (source, segment, mutations) = try writeJournal()
            defer { source.remove() }
            let bytes = source.read(segment)
            let ends = recordEnds(bytes)
            let scratch = TemporaryDirectory()
            defer { scratch.remove() }
            for cut in 0...bytes.count {
                scratch.write(segment, Array(bytes[0..<cut]))
                let (report, recovered) = try recover(scratch)
                let whole = ends.filter { $0 <= cut }.count
                #expect(recovered == Array(mutations.prefix(whole)), "cut at \(cut)")
                #expect(report.corruption == nil, "cut at \(cut)")
                let atBoundary = cut == bytes.count || ends.contains(cut) || cut == JournalFormat.segmentHeaderSize
                #expect((report.tornTail == nil) == atBoundary, "cut at \(cut): \(report)")
            }
        }
    }

    @Test func openingATornJournalCutsTheTailAndKeepsWriting() throws {
        let (source, segment, mutations) = try writeJournal()
        defer { source.remove() }
        let bytes = source.read(segment)
        let ends = recordEnds(bytes)
        for cut in [3, ends[4] - 7, ends[9] + 10, bytes.count - 1] {
            let scratch = TemporaryDirectory()
            defer { scratch.remove() }
            scratch.write(segment, Array(bytes[0..<cut]))
            var options = StorageOptions()
            options.snapshotOnClose = false
            let engine = try Engine.open(directory: scratch.path, options: options)
            #expect(engine.recoveryReport?.tornTail != nil)
            let kept = ends.filter { $0 <= cut }.count
            let created = try engine.create(NewKey(clientID: 99))
            try engine.close()
            let (report, recovered) = try recover(scratch)
            #expect(report.tornTail == nil && report.corruption == nil, "\(report)")
            #expect(recovered.prefix(kept) == mutations.prefix(kept))
            #expect(recovered.count == kept + 1)
            #expect(recovered.last == .put(created))
        }
    }

    @Test func aFlippedByteStopsReplayAtThatRecord() async throws {
        try await HeavyWork.run {
            let (source, segment, mutations) = try writeJournal()
            defer { source.remove() }
            let bytes = source.read(segment)
            let ends = recordEnds(bytes)
            let scratch = TemporaryDirectory()
            defer { scratch.remove() }
            let damaged = 5
            let start = ends[damaged - 1]
            // Every header byte (length, sequence, type, payload checksum, header checksum) and a
            // spread of payload bytes.
            let positions =
                Array(start..<(start + JournalFormat.recordHeaderSize))
                + Array(
                    stride(
                        from: start + JournalFormat.recordHeaderSize, to: ends[damaged], by: 7))
            for position in positions {
                var copy = bytes
                copy[position] ^= 0x5A
                scratch.write(segment, copy)
                let (report, recovered) = try recover(scratch)
                #expect(recovered == Array(mutations.prefix(damaged)), "flip at \(position)")
                #expect(report.corruption != nil, "flip at \(position): \(report)")
                #expect(report.tornTail == nil)
            }
            // The same damage in the last record is a torn tail: dropped quietly.
            var copy = bytes
            copy[ends[ends.count - 2] + 30] ^= 0x01
            scratch.write(segment, copy)
            let (report, recovered) = try recover(scratch)
            #expect(recovered == Array(mutations.dropLast()))
            #expect(report.tornTail != nil && report.corruption == nil)
            // A damaged segment header is corruption, not a torn tail.
            copy = bytes
            copy[2] ^= 0xFF
            scratch.write(segment, copy)
            let (headerReport, none) = try recover(scratch)
            #expect(none.isEmpty)
            #expect(headerReport.corruption != nil)
        }
    }

    /// Writes `count` keys with `segmentBytes` and leaves the engine as a crash would: the live
    /// segment keeps its reserved zeros.
    private func abandonedJournal(count: Int, segmentBytes: Int = 64 << 20) throws -> (TemporaryDirectory, [KeyRecord])
    {
        let directory = TemporaryDirectory()
        var options = StorageOptions()
        options.fsync = .always
        options.snapshotOnClose = false
        options.snapshotIntervalSeconds = 0
        options.segmentBytes = segmentBytes
        let engine = try Engine.open(directory: directory.path, options: options)
        let records = try (0..<count).map { try engine.create(NewKey(clientID: Int64($0 + 1))) }
        engine.abandonForTesting()
        return (directory, records)
    }

    @Test func theLiveSegmentReservesZerosThatRecoveryReadsAsItsEnd() throws {
        let (directory, records) = try abandonedJournal(count: 40)
        defer { directory.remove() }
        let segment = try #require(directory.names().first { $0.hasPrefix("journal-") })
        let bytes = directory.read(segment)
        let scan = JournalFormat.scan(bytes, expectedSequence: nil)
        #expect(scan.records.count == 40 && scan.damage == nil)
        // The first append reserves 256 KiB past its own record; 40 records fit in that.
        var firstHeader = ByteReader(bytes[JournalFormat.segmentHeaderSize...])
        let firstRecordEnd =
            JournalFormat.segmentHeaderSize + JournalFormat.recordHeaderSize + Int(firstHeader.uint32()!)
        #expect(bytes.count == firstRecordEnd + Journal.reservationBytes)
        #expect(bytes.count > scan.validLength && bytes[scan.validLength...].allSatisfy { $0 == 0 })

        let (report, recovered) = try recover(directory)
        #expect(report.tornTail == nil && report.corruption == nil, "\(report)")
        #expect(recovered == records.map { .put($0) })
        var options = StorageOptions()
        options.snapshotOnClose = false
        let engine = try Engine.open(directory: directory.path, options: options)
        #expect(try engine.allRecords().count == 40)
        // Recovery cut the zeros off: a newer segment follows now, and a finished segment must
        // end at its last record (else a stray byte in its spare space would read as damage).
        #expect(directory.read(segment).count == scan.validLength)
        let created = try engine.create(NewKey(clientID: 99))
        try engine.close()
        #expect(try recover(directory).1 == records.map { .put($0) } + [.put(created)])
        for name in directory.names() where name.hasPrefix("journal-") && name != segment {
            let closed = directory.read(name)
            #expect(
                JournalFormat.scan(closed, expectedSequence: nil).validLength == closed.count, "closing trims \(name)")
        }
    }

    @Test func aRecordCutShortBeforeTheReservedZerosIsATornTail() throws {
        let (directory, records) = try abandonedJournal(count: 10)
        defer { directory.remove() }
        let segment = try #require(directory.names().first { $0.hasPrefix("journal-") })
        var bytes = directory.read(segment)
        let end = JournalFormat.scan(bytes, expectedSequence: nil).validLength
        for index in (end - 7)..<end { bytes[index] = 0 }
        directory.write(segment, bytes)
        let (report, recovered) = try recover(directory)
        #expect(report.tornTail != nil && report.corruption == nil, "\(report)")
        #expect(recovered == records.prefix(9).map { .put($0) })
    }

    @Test func rotationTrimsTheFinishedSegmentToItsRecords() throws {
        let (directory, records) = try abandonedJournal(count: 120, segmentBytes: 4096)
        defer { directory.remove() }
        let segments = directory.names().filter { $0.hasPrefix("journal-") }
        try #require(segments.count >= 3)
        for name in segments.dropLast() {
            let bytes = directory.read(name)
            let scan = JournalFormat.scan(bytes, expectedSequence: nil)
            #expect(scan.damage == nil && scan.validLength == bytes.count, "\(name): \(bytes.count) bytes")
        }
        let live = directory.read(segments.last!)
        #expect(live.count == 4096, "the live segment reserves up to the segment limit")
        #expect(try recover(directory).1 == records.map { .put($0) })
    }

    @Test func zerosAtTheEndOfAFinishedSegmentAreDamageInThatSegment() throws {
        let (directory, records) = try abandonedJournal(count: 120, segmentBytes: 4096)
        defer { directory.remove() }
        let segments = directory.names().filter { $0.hasPrefix("journal-") }
        try #require(segments.count >= 3)
        let middle = segments[1]
        var bytes = directory.read(middle)
        let ends = recordEnds(bytes)
        let kept = JournalFormat.scan(directory.read(segments[0]), expectedSequence: nil).records.count + 5
        for index in ends[4]..<bytes.count { bytes[index] = 0 }
        directory.write(middle, bytes)
        let (report, recovered) = try recover(directory)
        #expect(report.corruption?.hasPrefix(middle) == true, "\(report)")
        #expect(recovered == records.prefix(kept).map { .put($0) })
    }

    @Test func strictRecoveryRefusesCorruptionAndLenientRecoverySetsItAside() throws {
        let (directory, segment, mutations) = try writeJournal()
        defer { directory.remove() }
        var bytes = directory.read(segment)
        bytes[recordEnds(bytes)[2] + 3] ^= 0xFF
        directory.write(segment, bytes)
        var strict = StorageOptions()
        strict.strictRecovery = true
        #expect(throws: StorageError.self) { try Engine.open(directory: directory.path, options: strict) }

        var lenient = StorageOptions()
        lenient.snapshotOnClose = false
        let engine = try Engine.open(directory: directory.path, options: lenient)
        #expect(engine.recoveryReport?.corruption != nil)
        try engine.create(NewKey(clientID: 5))
        try engine.close()
        #expect(directory.names().contains { $0.hasPrefix(segment + ".corrupt-") })
        let (report, _) = try recover(directory)
        #expect(report.corruption == nil, "\(report)")
        let reopened = try Engine.open(directory: directory.path, options: lenient)
        // Replay stopped before the fourth record: orders 1 (suspended) and 2, then the new key.
        #expect(reopened.allRecords().map(\.orderID) == [1, 2, 3])
        #expect(try reopened.get(.orderID(1)).status == .suspended)
        #expect(mutations.count == 15)
        try reopened.close()
    }

    @Test func aFailedFsyncStopsWritesButNotReads() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (engine, files, _) = try openFaulty(directory, seed: 1, fsync: .always)
        let kept = try engine.create(NewKey(clientID: 1))
        files.setFailSyncs(true)
        #expect { try engine.create(NewKey(clientID: 2)) } throws: { ($0 as? EngineError)?.code == .writesStopped }
        files.setFailSyncs(false)
        #expect { try engine.create(NewKey(clientID: 3)) } throws: { ($0 as? EngineError)?.code == .writesStopped }
        #expect { try engine.delete(orderID: kept.orderID) } throws: { ($0 as? EngineError)?.code == .writesStopped }
        #expect(try engine.check(key: kept.apiKey))
        engine.abandonForTesting()
    }

    @Test func aFailedWriteStopsWritesAndChangesNothing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (engine, files, _) = try openFaulty(directory, seed: 2, fsync: .everysec)
        files.setFailWrites(true)
        #expect { try engine.create(NewKey(clientID: 2)) } throws: { ($0 as? EngineError)?.code == .writesStopped }
        #expect(engine.keyCount == 0)
        files.setFailWrites(false)
        #expect { try engine.create(NewKey(clientID: 2)) } throws: { ($0 as? EngineError)?.code == .writesStopped }
        engine.abandonForTesting()
    }

    @Test func concurrentWritersShareFsyncs() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (engine, files, options) = try openFaulty(directory, seed: 3, fsync: .always)
        let before = files.syncCount
        let writers = 16
        let writesEach = 25
        Self.onThreads(writers) { writer in
            for _ in 0..<writesEach { _ = try! engine.create(NewKey(clientID: Int64(writer + 1))) }
        }
        let syncs = files.syncCount - before
        #expect(engine.keyCount == writers * writesEach)
        #expect(syncs < writers * writesEach / 2, "\(syncs) fsyncs for \(writers * writesEach) writes")
        try engine.close()
        let reopened = try Engine.open(directory: directory.path, options: options)
        #expect(reopened.keyCount == writers * writesEach)
        try reopened.close()
    }

    @Test func deferredWritesAreAcknowledgedByTheSyncer() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (engine, files, _) = try openFaulty(directory, seed: 4, fsync: .always)
        let syncsBefore = files.syncCount
        let written = try engine.deferred.create(NewKey(clientID: 1))
        let record = written.value
        let waiting = try #require(written.pending)
        #expect(files.syncCount == syncsBefore, "a deferred write does not fsync by itself")
        let outcome = Mutex<[EngineError?]>([])
        let done = DispatchSemaphore(value: 0)
        engine.whenDurable(waiting) { failure in
            outcome.withLock { $0.append(failure) }
            done.signal()
        }
        done.wait()
        #expect(outcome.withLock { $0 } == [nil])
        #expect(files.syncCount > syncsBefore)
        #expect(try engine.check(key: record.apiKey))

        files.setFailSyncs(true)
        let failing = try engine.deferred.create(NewKey(clientID: 2)).pending
        engine.whenDurable(try #require(failing)) { failure in
            outcome.withLock { $0.append(failure) }
            done.signal()
        }
        done.wait()
        #expect(outcome.withLock { $0.last??.code } == .writesStopped)
        engine.abandonForTesting()
    }

    @Test func writersAnsweredByTheSyncerGatherIntoFullGroups() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (engine, files, _) = try openFaulty(directory, seed: 6, fsync: .always)
        // A disk whose fsync takes a while, so a group has time to gather.
        files.setSyncDelay(microseconds: 400)
        let before = files.syncCount
        let writers = 16
        let writesEach = 40
        // Each writer writes as the server does: a deferred write, then the next one only once the
        // syncer has answered the last.
        Self.onThreads(writers) { writer in
            let answered = DispatchSemaphore(value: 0)
            for _ in 0..<writesEach {
                let pending = try! engine.deferred.create(NewKey(clientID: Int64(writer + 1))).pending!
                engine.whenDurable(pending) { _ in answered.signal() }
                answered.wait()
            }
        }
        let syncs = files.syncCount - before
        #expect(engine.keyCount == writers * writesEach)
        // Groups of 11-12 on average here (5-6 with gathering turned off).
        #expect(syncs <= writers * writesEach / 8, "\(syncs) fsyncs for \(writers * writesEach) writes")
        engine.abandonForTesting()
    }

    @Test func everysecFsyncsInTheBackground() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (engine, files, _) = try openFaulty(directory, seed: 5, fsync: .everysec)
        let before = files.syncCount
        try await engine.create(NewKey(clientID: 1))
        #expect(files.syncCount == before, "everysec does not fsync on the write path")
        var waited = 0
        while files.syncCount == before && waited < 40 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        #expect(files.syncCount > before, "the background tick fsynced within about a second")
        engine.abandonForTesting()
    }

    @Test func journalGrowthTriggersABackgroundSnapshot() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var options = StorageOptions()
        options.fsync = .no
        options.snapshotOnClose = false
        options.snapshotAfterJournalBytes = 2000
        let engine = try Engine.open(directory: directory.path, options: options)
        for client in 1...30 { try await engine.create(NewKey(clientID: Int64(client))) }
        var waited = 0
        while !directory.names().contains(where: { $0.hasSuffix(".snap") }) && waited < 40 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        #expect(directory.names().contains { $0.hasSuffix(".snap") })
        try await engine.close()
        let reopened = try Engine.open(directory: directory.path, options: options)
        #expect(reopened.keyCount == 30)
        #expect(reopened.recoveryReport?.snapshot != nil)
        try await reopened.close()
    }

    @Test func aSecondEngineCannotOpenTheSameDirectory() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path)
        #expect(throws: StorageError.self) { try Engine.open(directory: directory.path) }
        try engine.close()
    }

    /// A child forked while the engine holds the directory keeps a duplicate of the lock's
    /// descriptor until it execs or exits; closing the engine must free the directory anyway, so
    /// the next open does not find it "in use by another process".
    @Test func closingFreesTheDirectoryWhileAForkedChildHoldsTheLock() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path)
        let child = fork()
        if child == 0 {
            // Only async-signal-safe calls in the child: it holds the duplicate, then leaves.
            usleep(3_000_000)
            _exit(0)
        }
        try #require(child > 0)
        defer {
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
        }
        try engine.close()
        let reopened = try Engine.open(directory: directory.path)
        try reopened.close()
    }

    @Test func dataFilesAreOwnerOnly() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path + "/store")
        try engine.create(NewKey(clientID: 1))
        try engine.snapshot()
        try engine.close()
        for name in try PosixFileLayer().list(directory.path + "/store") {
            #expect(fileMode(directory.path + "/store/" + name) == 0o600, "\(name)")
        }
        #expect(fileMode(directory.path + "/store") == 0o700)
        for name in try PosixFileLayer().list(directory.path + "/store") { unlink(directory.path + "/store/" + name) }
        rmdir(directory.path + "/store")
    }
}

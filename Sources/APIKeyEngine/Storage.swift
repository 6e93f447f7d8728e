import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How the engine keeps its state on disk.
public struct StorageOptions: Hashable, Sendable {
    /// When the journal fsyncs.
    public var fsync: FsyncPolicy = .everysec
    /// A journal segment is closed and a new one started past this size.
    public var segmentBytes: Int = 64 << 20
    /// A background snapshot starts once the journal has grown by this much since the last one.
    public var snapshotAfterJournalBytes: Int = 64 << 20
    /// A background snapshot starts when this many seconds have passed since the last one and
    /// something was written; 0 turns the timer off.
    public var snapshotIntervalSeconds: Int = 3600
    /// Refuse to start when replay stops at corruption (instead of starting with what it read).
    public var strictRecovery = false
    /// Write a snapshot when the engine is closed.
    public var snapshotOnClose = true
    /// zlib level of snapshots, 1 (fastest) to 9 (smallest).
    public var compressionLevel: Int32 = 1

    /// The defaults: `everysec`, 64 MiB segments, a snapshot every 64 MiB of journal or every hour.
    public init() {}
}

/// What a snapshot wrote.
public struct SnapshotSummary: Hashable, Sendable {
    /// The snapshot file.
    public var path: String
    /// The last journal sequence number it covers.
    public var lastSequence: UInt64
    /// Records (keys and client tokens) in it.
    public var entries: UInt64
    /// Its size on disk.
    public var bytes: UInt64
    /// Nanoseconds from the start of the copy to the directory fsync.
    public var nanoseconds: Int64
}

/// The engine's durable half: the data directory, its lock, the journal, snapshots and the
/// background work (the once-a-second journal tick, snapshot triggers).
///
/// ``open(directory:options:into:clock:files:logger:)`` is where recovery's findings are acted
/// on: ``Recovery`` only reads and reports; this removes temporary files, sets rejected
/// snapshots and unreadable segments aside, cuts a torn tail, and only then starts the journal.
final class Storage: @unchecked Sendable {
    let directory: String
    let files: any FileLayer
    let options: StorageOptions
    let journal: Journal
    let logger: Logger
    private let state: EngineState
    private let clock: any EngineClock
    private let lock: DirectoryLock
    /// Held while a snapshot runs: one at a time.
    private let snapshotGate = Mutex(false)
    /// Journal bytes appended when the last snapshot started, and when (seconds on the clock).
    private let lastSnapshot: Mutex<(bytes: Int, seconds: Int64)>
    private let timer: any DispatchSourceTimer
    private let snapshotQueue = DispatchQueue(label: "APIKeyEngine.snapshot")
    /// Sequence numbers of the snapshots known to be good: the one recovery loaded and those this
    /// process wrote. Only these count when pruning decides what a fallback still needs.
    private let verifiedSnapshots: Mutex<Set<UInt64>>
    /// When the newest snapshot this process wrote finished (seconds since 1970); nil before one.
    private let lastSuccess = Mutex<Int64?>(nil)
    /// Whether the journal's failure (writes stopped) has been logged: once per engine.
    private let stopLogged = Atomic(false)
    /// Whether ``close()`` (or ``release()``) has begun: from then on every later call is a no-op.
    private let closing = Atomic(false)
    /// Where tests stop a snapshot half-way to simulate a crash.
    var snapshotStepHook: (SnapshotFile.Step) throws(StorageError) -> Void = { _ throws(StorageError) in }

    private init(
        directory: String, files: any FileLayer, options: StorageOptions, state: EngineState, clock: any EngineClock,
        lock: DirectoryLock, lastSequence: UInt64, verifiedSnapshots: Set<UInt64>, logger: Logger
    ) throws(StorageError) {
        self.verifiedSnapshots = Mutex(verifiedSnapshots)
        self.directory = directory
        self.files = files
        self.options = options
        self.state = state
        self.clock = clock
        self.lock = lock
        self.logger = logger
        self.journal = try Journal(
            directory: directory, files: files, policy: options.fsync, segmentBytesLimit: options.segmentBytes,
            lastSequence: lastSequence)
        self.lastSnapshot = Mutex((0, clock.nowSeconds()))
        self.timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "APIKeyEngine.storage-timer"))
    }

    // MARK: - Opening

    /// Locks (creating when missing) the data directory, recovers the newest snapshot and the
    /// journal after it into `state`, repairs what recovery found, and starts the journal and
    /// the background work.
    ///
    /// A torn last journal record is dropped (and cut off the file). Damage before the end stops
    /// replay there; with ``StorageOptions/strictRecovery`` that refuses to start, otherwise what
    /// was read becomes a snapshot and the unreadable segments are renamed `*.corrupt-<seconds>`.
    static func open(
        directory: String, options: StorageOptions, keyStorage: KeyStorage, into state: EngineState,
        clock: any EngineClock, files: any FileLayer, logger: Logger, progress: ProgressHandler? = nil
    ) throws(StorageError) -> (Storage, RecoveryReport) {
        try createDirectory(directory)
        let lock = try DirectoryLock(directory: directory)
        for name in try files.list(directory) where name.hasSuffix(".snap.tmp") {
            try files.remove(directory + "/" + name)
        }
        let report = try state.recover(directory: directory, files: files, clock: clock, progress: progress)
        let holdsHashes = state.withLock { $0.holdsStoredHashes }
        try KeyStorageMarker.check(
            directory: directory, storage: keyStorage, isFresh: report.lastSequence == 0 && report.snapshotEntries == 0,
            holdsHashes: holdsHashes, files: files)
        var verifiedSnapshots = Set<UInt64>()
        if let loaded = report.snapshot.flatMap(SnapshotFile.names.sequence(of:)) { verifiedSnapshots.insert(loaded) }
        let repair = Repair(directory: directory, files: files, nowSeconds: clock.nowSeconds(), logger: logger)
        try repair.setAsideRejectedSnapshots(report)
        if let corruption = report.corruption {
            logger.critical("journal corruption, replay stopped: \(corruption)")
            if options.strictRecovery {
                throw StorageError("refusing to start (strict recovery): journal corruption at \(corruption)")
            }
            // What was read becomes a snapshot before the damaged segments are set aside, so a
            // crash in between never leaves a journal that starts after a gap.
            let contents = state.withLock { writeState in
                state.snapshotContents(writeState) { report.lastSequence }
            }
            _ = try SnapshotFile.write(contents, directory: directory, files: files)
            verifiedSnapshots.insert(report.lastSequence)
            try repair.setAsideUnreadableSegments(report)
        }
        try repair.cutTornTail(report)
        try files.syncDirectory(directory)
        logger.debug(
            "recovered \(state.table.count) keys: \(report.snapshot ?? "no snapshot") (\(report.snapshotEntries) entries), \(report.replayedRecords) journal records, last sequence \(report.lastSequence)"
        )
        let storage = try Storage(
            directory: directory, files: files, options: options, state: state, clock: clock, lock: lock,
            lastSequence: report.lastSequence, verifiedSnapshots: verifiedSnapshots, logger: logger)
        storage.startBackgroundWork()
        return (storage, report)
    }

    /// The repairs recovery's findings call for.
    private struct Repair {
        let directory: String
        let files: any FileLayer
        let nowSeconds: Int64
        let logger: Logger

        /// A snapshot that fails verification is set aside, so it is never again taken for one
        /// that a fallback could use, and kept for inspection.
        func setAsideRejectedSnapshots(_ report: RecoveryReport) throws(StorageError) {
            for rejected in report.rejectedSnapshots { logger.critical("snapshot rejected: \(rejected)") }
            for name in report.rejectedSnapshotNames {
                let path = directory + "/" + name
                try files.rename(path, to: path + ".corrupt-\(nowSeconds)")
                logger.critical("set aside rejected snapshot \(name)")
            }
        }

        /// Renames the segments replay could not read. The intact start of the damaged one goes
        /// back in its place, so the journal still reaches from older snapshots to the one just
        /// written: if that one is ever corrupt too, a fallback replays through here instead of
        /// stopping at a gap.
        func setAsideUnreadableSegments(_ report: RecoveryReport) throws(StorageError) {
            for name in report.unreplayedSegments {
                let path = directory + "/" + name
                let setAside = path + ".corrupt-\(nowSeconds)"
                try files.rename(path, to: setAside)
                logger.critical("set aside unreadable journal segment \(name)")
                if let intact = report.corruptSegment, intact.name == name,
                    intact.validLength > JournalFormat.segmentHeaderSize
                {
                    let bytes = try files.read(setAside)
                    let file = try files.openForAppend(path)
                    try file.write(Array(bytes[0..<intact.validLength]))
                    try file.sync()
                    logger.critical("kept the intact start of \(name) (\(intact.validLength) bytes) in the journal")
                }
            }
        }

        /// Cuts a torn last record (a write a crash cut short) off its segment, and the reserved
        /// zeros a crash left after the last segment's records: once a newer segment follows, a
        /// segment must end at its last record (``JournalFormat/scan(_:expectedSequence:endsInReservedSpace:)``).
        func cutTornTail(_ report: RecoveryReport) throws(StorageError) {
            if let reserved = report.reservedTail {
                logger.info("cut the reserved space a crash left at the end of \(reserved.name)")
                try files.truncate(directory + "/" + reserved.name, to: reserved.validLength)
            }
            guard let torn = report.tornSegment else { return }
            logger.warning("dropped a torn journal record (a write cut short by a crash): \(report.tornTail ?? "")")
            let path = directory + "/" + torn.name
            if torn.validLength == 0 { try files.remove(path) } else { try files.truncate(path, to: torn.validLength) }
        }
    }

    // MARK: - Background work

    /// Starts the once-a-second tick: the journal's `everysec` fsync and the snapshot triggers.
    private func startBackgroundWork() {
        timer.schedule(deadline: .now() + 1, repeating: 1)
        // Weak: the timer must not keep the storage, and with it the directory's lock, alive
        // once the engine is gone.
        timer.setEventHandler { [weak self] in
            // A tick that began as close() cancelled the timer does nothing.
            guard let self, !self.isClosed else { return }
            do throws(StorageError) {
                try journal.secondElapsed()
            } catch {
                writesStopped(by: error)
            }
            let (bytes, seconds) = lastSnapshot.withLock { $0 }
            let grown = journal.appendedBytes - bytes
            let due =
                grown >= options.snapshotAfterJournalBytes
                || (options.snapshotIntervalSeconds > 0 && grown > 0
                    && clock.nowSeconds() - seconds >= Int64(options.snapshotIntervalSeconds))
            if due && !snapshotGate.withLock({ $0 }) {
                snapshotQueue.async { [self] in
                    guard !isClosed else { return }
                    do throws(SnapshotFailure) {
                        _ = try snapshot()
                    } catch {
                        logger.error("background snapshot failed", metadata: ["error": "\(error)"])
                    }
                }
            }
        }
        timer.resume()
    }

    /// Stops the background tick and waits for a running snapshot to end.
    func stopBackgroundWork() {
        timer.cancel()
        snapshotQueue.sync {}
    }

    // MARK: - Snapshots

    /// Why a snapshot was not written.
    enum SnapshotFailure: Error, CustomStringConvertible {
        /// Another snapshot is running.
        case running
        /// The engine is closing or closed (only its own final snapshot runs then).
        case closed
        /// The journal could not be rotated: writes are stopped.
        case journal(StorageError)
        /// Writing, fsyncing or pruning failed.
        case write(StorageError)

        var description: String {
            switch self {
            case .running: "a snapshot is already running"
            case .closed: "the engine is closed"
            case .journal(let error), .write(let error): error.message
            }
        }
    }

    /// Writes a snapshot of the whole state now, then removes what it makes redundant. Checks go
    /// on meanwhile; writes pause only while the shards are copied.
    /// `final` is close's own snapshot; any other is refused once closing has begun.
    func snapshot(progress: ProgressHandler? = nil, final: Bool = false) throws(SnapshotFailure) -> SnapshotSummary {
        let started = snapshotGate.withLock { running in
            if running { return false as Bool? }
            if !final && isClosed { return nil }
            running = true
            return true
        }
        guard let started else { throw .closed }
        guard started else { throw .running }
        defer { snapshotGate.withLock { $0 = false } }
        let startNanoseconds = SystemClock.monotonicNanoseconds()
        let contents = try state.withLock { (writeState) throws(SnapshotFailure) -> SnapshotFile.Contents in
            try state.snapshotContents(writeState) { () throws(SnapshotFailure) -> UInt64 in
                do throws(StorageError) {
                    return try journal.rotate()
                } catch {
                    throw .journal(error)
                }
            }
        }
        lastSnapshot.withLock { $0 = (journal.appendedBytes, clock.nowSeconds()) }
        do throws(StorageError) {
            let (path, header) = try SnapshotFile.write(
                contents, directory: directory, files: files, compressionLevel: options.compressionLevel,
                progress: progress, afterStep: snapshotStepHook)
            verifiedSnapshots.withLock { _ = $0.insert(header.lastSequence) }
            try pruneAfterSnapshot()
            let summary = SnapshotSummary(
                path: path, lastSequence: header.lastSequence, entries: header.entryCount,
                bytes: header.compressedBytes + UInt64(SnapshotFile.magic.count + SnapshotFile.trailerSize),
                nanoseconds: SystemClock.monotonicNanoseconds() - startNanoseconds)
            lastSuccess.withLock { $0 = SystemClock().nowSeconds() }
            logger.info(
                "snapshot written",
                metadata: [
                    "path": "\(summary.path)", "entries": "\(summary.entries)", "bytes": "\(summary.bytes)",
                    "milliseconds": "\(summary.nanoseconds / 1_000_000)",
                ])
            return summary
        } catch {
            throw .write(error)
        }
    }

    /// Whether a verified snapshot already holds every record the journal has.
    private var isCoveredBySnapshot: Bool {
        let newest = verifiedSnapshots.withLock { $0.max() }
        return newest == journal.lastAppendedSequence
    }

    /// Keeps the two newest verified snapshots and removes every older snapshot and every journal
    /// segment whose records the older of the two covers, so that a corrupt newest snapshot can
    /// still fall back without loss. A snapshot that never verified counts for nothing: with
    /// fewer than two verified, nothing is removed.
    private func pruneAfterSnapshot() throws(StorageError) {
        let names = try files.list(directory)
        let snapshots = SnapshotFile.names.files(in: names)
        let verified = verifiedSnapshots.withLock { $0 }
        let kept = snapshots.filter { verified.contains($0.sequence) }.suffix(2)
        guard kept.count == 2, let floor = kept.first?.sequence else { return }
        for (name, sequence) in snapshots where sequence < floor { try files.remove(directory + "/" + name) }
        verifiedSnapshots.withLock { $0 = $0.filter { $0 >= floor } }
        let segments = JournalFormat.segmentNames.files(in: names)
        for index in segments.indices.dropLast() where segments[index + 1].sequence <= floor + 1 {
            try files.remove(directory + "/" + segments[index].name)
        }
        try files.syncDirectory(directory)
    }

    // MARK: - Health

    /// Logs, once per engine, that writes are stopped by `error`: every later write is refused
    /// with the same cause, and repeating the line on each would flood the log. Nothing is logged
    /// once the engine is closing: its refusals are not failures.
    func writesStopped(by error: StorageError) {
        guard !isClosed else { return }
        guard stopLogged.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        logger.critical(
            "writes are stopped: the journal failed, reads go on; restart once the cause is fixed",
            metadata: ["error": "\(error)"])
    }

    /// Journal bytes appended since the newest snapshot began (what a restart would replay
    /// beyond it, besides journal left from before this start), when that snapshot finished,
    /// and whether writes are stopped.
    var health: (journalBytes: Int, lastSnapshotSeconds: Int64?, writesStopped: Bool) {
        let bytes = lastSnapshot.withLock { $0.bytes }
        return (journal.appendedBytes - bytes, lastSuccess.withLock { $0 }, journal.latchedFailure != nil)
    }

    // MARK: - Closing

    /// Whether ``close()`` or ``release()`` has begun.
    var isClosed: Bool { closing.load(ordering: .acquiring) }

    /// Stops background work, writes a final snapshot (when configured and anything was written
    /// since the newest one), fsyncs and closes the journal, and releases the directory. A final
    /// snapshot that fails (a full disk) still leaves the journal fsynced and closed; its failure
    /// is returned: nothing is lost, the next start replays the journal. Throws when the journal
    /// itself cannot be closed. Only the first call does anything; later ones return nil.
    func close() throws(StorageError) -> SnapshotFailure? {
        guard beginClosing() else { return nil }
        defer { abandon() }
        var snapshotFailure: SnapshotFailure?
        if options.snapshotOnClose, journal.latchedFailure == nil, !isCoveredBySnapshot {
            do throws(SnapshotFailure) {
                _ = try snapshot(final: true)
            } catch {
                logger.error("final snapshot failed, the journal keeps everything: \(error)")
                snapshotFailure = error
            }
        }
        try journal.close()
        return snapshotFailure
    }

    /// What ``close()`` and ``release()`` both begin with: the first caller sets the closing flag
    /// (false for every later one), stops background work and waits until a snapshot under way
    /// (one asked for on another thread) has ended, so that closing changes nothing in the
    /// directory after it returns. New snapshots are refused once the flag is set.
    private func beginClosing() -> Bool {
        guard closing.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        stopBackgroundWork()
        while snapshotGate.withLock({ $0 }) { usleep(1000) }
        return true
    }

    /// What happens when the engine is released without ``close()``: the journal is fsynced and
    /// closed and the directory released, without a final snapshot (the next start replays the
    /// journal). Does nothing after ``close()``.
    func release() {
        guard beginClosing() else { return }
        defer { abandon() }
        do throws(StorageError) {
            try journal.close()
            logger.notice(
                "engine released without close(): journal fsynced and directory released, no final snapshot",
                metadata: ["directory": "\(directory)"])
        } catch {
            logger.error(
                "engine released without close(), and the journal could not be closed: \(error)",
                metadata: ["directory": "\(directory)"])
        }
    }

    /// Stops background work and gives the directory up, syncing nothing (after ``Journal/close()``
    /// that is a clean close; alone it is what a crash leaves behind, and releasing the engine
    /// later syncs nothing either).
    func abandon() {
        closing.store(true, ordering: .releasing)
        stopBackgroundWork()
        lock.release()
    }
}

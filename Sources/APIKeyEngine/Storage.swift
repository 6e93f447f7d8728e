import Dispatch
import Logging
import Synchronization

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

/// The engine's durable half: the data directory, its lock, the journal, and the background work
/// (the `everysec` fsync, snapshot triggers).
final class Storage: @unchecked Sendable {
    let directory: String
    let files: any FileLayer
    let options: StorageOptions
    let journal: Journal
    let logger: Logger
    private let lock: DirectoryLock
    /// Held while a snapshot runs: one at a time.
    let snapshotGate = Mutex(false)
    /// Journal bytes appended when the last snapshot started, and when (seconds on the clock).
    let lastSnapshot: Mutex<(bytes: Int, seconds: Int64)>
    private let timer: any DispatchSourceTimer
    private let snapshotQueue = DispatchQueue(label: "APIKeyEngine.snapshot")
    /// Sequence numbers of the snapshots known to be good: the one recovery loaded and those this
    /// process wrote. Only these count when pruning decides what a fallback still needs.
    private let verifiedSnapshots: Mutex<Set<UInt64>>
    /// Where tests stop a snapshot half-way to simulate a crash.
    var snapshotStepHook: (SnapshotFile.Step) throws(StorageError) -> Void = { _ throws(StorageError) in }

    init(
        directory: String, files: any FileLayer, options: StorageOptions, lock: DirectoryLock, lastSequence: UInt64,
        verifiedSnapshots: Set<UInt64>, nowSeconds: Int64, logger: Logger
    ) throws(StorageError) {
        self.verifiedSnapshots = Mutex(verifiedSnapshots)
        self.directory = directory
        self.files = files
        self.options = options
        self.lock = lock
        self.logger = logger
        self.journal = try Journal(
            directory: directory, files: files, policy: options.fsync, segmentBytesLimit: options.segmentBytes,
            lastSequence: lastSequence)
        self.lastSnapshot = Mutex((0, nowSeconds))
        self.timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "APIKeyEngine.storage-timer"))
    }

    /// Starts the once-a-second tick: the `everysec` fsync and the snapshot triggers.
    func startBackgroundWork(clock: any EngineClock, snapshot: @escaping @Sendable () -> Void) {
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [self] in
            if options.fsync == .everysec {
                do {
                    try journal.sync()
                } catch {
                    logger.critical("journal fsync failed, writes are stopped: \(error)")
                }
            }
            let (bytes, seconds) = lastSnapshot.withLock { $0 }
            let grown = journal.appendedBytes - bytes
            let due =
                grown >= options.snapshotAfterJournalBytes
                || (options.snapshotIntervalSeconds > 0 && grown > 0
                    && clock.nowSeconds() - seconds >= Int64(options.snapshotIntervalSeconds))
            if due && !snapshotGate.withLock({ $0 }) {
                snapshotQueue.async(execute: snapshot)
            }
        }
        timer.resume()
    }

    /// Stops the background tick and waits for a running snapshot to end.
    func stopBackgroundWork() {
        timer.cancel()
        snapshotQueue.sync {}
    }

    /// Stops background work and gives the directory up, syncing nothing (after ``Journal/close()``
    /// that is a clean close; alone it is what a crash leaves behind).
    func abandon() {
        stopBackgroundWork()
        lock.release()
    }

    /// Records that the snapshot covering `sequence` was written and fsynced by this process.
    func snapshotWritten(_ sequence: UInt64) {
        verifiedSnapshots.withLock { _ = $0.insert(sequence) }
    }

    /// Whether a verified snapshot already holds every record the journal has.
    var isCoveredBySnapshot: Bool {
        let newest = verifiedSnapshots.withLock { $0.max() }
        return newest == journal.lastAppendedSequence
    }

    /// Keeps the two newest verified snapshots and removes every older snapshot and every journal
    /// segment whose records the older of the two covers, so that a corrupt newest snapshot can
    /// still fall back without loss. A snapshot that never verified counts for nothing: with
    /// fewer than two verified, nothing is removed.
    func pruneAfterSnapshot() throws(StorageError) {
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
}

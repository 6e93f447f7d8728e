import CoreMetrics
import Dispatch

/// When the journal calls `fsync`, as Redis' `appendfsync`.
public enum FsyncPolicy: String, Hashable, Sendable, CaseIterable {
    /// Acknowledge a write only after it is fsynced; concurrent writers share one fsync.
    case always
    /// Fsync once a second in the background: a power failure loses at most about a second of
    /// acknowledged writes, a process crash none.
    case everysec
    /// Never fsync on the write path; the operating system writes back when it likes.
    case no
}

/// The write-ahead journal: append-only segment files of checksummed, numbered records.
///
/// The journal owns the fsync policy: ``append(_:)`` returns what the caller must wait for
/// before acknowledging (something only under `always`), and ``secondElapsed()`` is the
/// `everysec` fsync. Appends happen under the engine's write lock, in sequence order. Durability
/// waits happen
/// outside it: the first waiter becomes the leader, fsyncs everything written so far and wakes
/// the others (group commit). The first failed write or fsync latches: from then on every append
/// and every wait fails, because nothing after it can be promised to be on disk.
final class Journal: @unchecked Sendable {
    let directory: String
    private let policy: FsyncPolicy
    private let files: any FileLayer
    private let segmentBytesLimit: Int
    private let monitor = Monitor()
    /// How long each fsync takes (a histogram where a metrics backend is bootstrapped).
    private let fsyncDurations = Timer(label: "apikeyd_journal_fsync_duration_seconds")

    /// How far ahead of its records a segment is filled with zeros: fsyncs of writes into
    /// allocated space have no size or block allocation to write, and cost about half as much.
    /// Small, so that a nearly full disk loses little to it.
    static let reservationBytes = 256 << 10

    // Guarded by `monitor`.
    private var segment: any AppendFile
    private var segmentPath: String
    /// The bytes of records (and the header) in the current segment.
    private var segmentBytes: Int
    /// How long the current segment file is: its records, then reserved zeros.
    private var segmentFileBytes: Int
    private var lastSequence: UInt64
    private var durableSequence: UInt64
    private var syncing = false
    private var failure: StorageError?
    private var bytesAppended: Int = 0
    /// Callbacks waiting for their sequence number to become durable, and whether the syncer
    /// thread that serves them runs.
    private var callbacks: [(sequence: UInt64, callback: @Sendable (StorageError?) -> Void)] = []
    private var syncerRunning = false
    private var syncerStopped = false
    /// How many writers the syncer expects in its next group: those its last fsync answered
    /// (they come back with their next write when they write in a loop) and those already
    /// waiting then. 0 while it is not gathering one.
    private var gatherTarget = 0
    /// How long the last fsync took: the longest the syncer waits for its group to gather.
    private var lastFsyncNanoseconds: Int64 = 0
    /// The longest a group waits for its writers, whatever the disk.
    static let longestGatherNanoseconds: Int64 = 1_000_000
    /// Set by ``close()`` before its last fsync: appends are refused from then on, so every record
    /// appended before is covered by that fsync.
    private var closed = false
    private static let closedFailure = StorageError("the engine is closed")

    /// Starts a new segment after `lastSequence` (everything up to it is already durable).
    init(
        directory: String, files: any FileLayer, policy: FsyncPolicy, segmentBytesLimit: Int, lastSequence: UInt64
    ) throws(StorageError) {
        self.directory = directory
        self.files = files
        self.policy = policy
        self.segmentBytesLimit = segmentBytesLimit
        self.lastSequence = lastSequence
        self.durableSequence = lastSequence
        (segment, segmentPath) = try Self.createSegment(
            directory: directory, files: files, firstSequence: lastSequence + 1)
        segmentBytes = JournalFormat.segmentHeaderSize
        segmentFileBytes = segmentBytes
    }

    private static func createSegment(
        directory: String, files: any FileLayer, firstSequence: UInt64
    )
        throws(StorageError) -> (any AppendFile, String)
    {
        let path = directory + "/" + JournalFormat.segmentNames.name(firstSequence)
        try files.remove(path)
        let file = try files.openForAppend(path)
        try file.write(JournalFormat.segmentHeader(firstSequence: firstSequence))
        try file.sync()
        try files.syncDirectory(directory)
        return (file, path)
    }

    /// The sequence number of the last record appended.
    var lastAppendedSequence: UInt64 { monitor.withLock { lastSequence } }

    /// Bytes appended since this journal was opened.
    var appendedBytes: Int { monitor.withLock { bytesAppended } }

    /// The latched failure, if a write or fsync has failed.
    var latchedFailure: StorageError? { monitor.withLock { failure } }

    /// Writes one record (not yet necessarily durable) and returns what must become durable
    /// before the write may be acknowledged: the record under `always`, nil otherwise.
    func append(_ mutation: KeyMutation) throws(StorageError) -> PendingDurability? {
        try monitor.withLock { () throws(StorageError) -> PendingDurability? in
            if let failure { throw failure }
            if closed { throw Self.closedFailure }
            let sequence = lastSequence + 1
            let record = JournalFormat.record(sequence: sequence, mutation: mutation)
            do throws(StorageError) {
                if segmentBytes + record.count > segmentBytesLimit && segmentBytes > JournalFormat.segmentHeaderSize {
                    try rotateLocked()
                }
                if segmentBytes + record.count > segmentFileBytes { reserveLocked(for: segmentBytes + record.count) }
                try segment.write(record)
            } catch {
                failure = error
                monitor.broadcast()
                throw error
            }
            segmentBytes += record.count
            bytesAppended += record.count
            lastSequence = sequence
            return policy == .always ? PendingDurability(sequence: sequence) : nil
        }
    }

    /// Closes the current segment (fsynced) and starts the next; returns the last sequence
    /// number of the closed one. Call with the engine's write lock held, so nothing is appended
    /// meanwhile.
    func rotate() throws(StorageError) -> UInt64 {
        try monitor.withLock { () throws(StorageError) -> UInt64 in
            if let failure { throw failure }
            do throws(StorageError) {
                try rotateLocked()
            } catch {
                failure = error
                monitor.broadcast()
                throw error
            }
            return lastSequence
        }
    }

    private func rotateLocked() throws(StorageError) {
        try segment.sync()
        durableSequence = lastSequence
        try trimLocked()
        (segment, segmentPath) = try Self.createSegment(
            directory: directory, files: files, firstSequence: lastSequence + 1)
        segmentBytes = JournalFormat.segmentHeaderSize
        segmentFileBytes = segmentBytes
        monitor.broadcast()
    }

    /// Fills the segment with zeros past `end` (the end of the record about to be written), up to
    /// the segment limit. Best effort: on a disk too full for all of it, the record is written
    /// all the same and its own write says whether it fits.
    private func reserveLocked(for end: Int) {
        segmentFileBytes = max(min(end + Self.reservationBytes, segmentBytesLimit), end)
        try? segment.reserve(through: segmentFileBytes)
    }

    /// Cuts the current segment's reserved zeros off (durably), so a finished segment ends at its
    /// last record.
    private func trimLocked() throws(StorageError) {
        guard segmentFileBytes > segmentBytes else { return }
        try files.truncate(segmentPath, to: segmentBytes)
        segmentFileBytes = segmentBytes
    }

    /// Returns once the record `sequence` is durable, fsyncing as the group's leader if no fsync
    /// is under way; throws when the journal has failed.
    func waitUntilDurable(_ sequence: UInt64) throws(StorageError) {
        monitor.lock()
        defer { monitor.unlock() }
        while true {
            // Durable first: a record the last fsync covered is durable whatever failed later.
            if durableSequence >= sequence { return }
            if let failure { throw failure }
            if syncing {
                monitor.wait()
            } else {
                syncLocked()
            }
        }
    }

    /// Calls `callback` (nil for success) once the record `sequence` is durable, without blocking
    /// the caller: a syncer thread fsyncs for every waiting callback at once, as soon as the
    /// previous fsync ends, so the disk works while the callers go on. Callbacks run on the
    /// syncer thread, or on the caller's when no wait is needed.
    func whenDurable(_ sequence: UInt64, _ callback: @escaping @Sendable (StorageError?) -> Void) {
        monitor.lock()
        if failure != nil || durableSequence >= sequence {
            let result = durableSequence >= sequence ? nil : failure
            monitor.unlock()
            callback(result)
            return
        }
        callbacks.append((sequence, callback))
        if !syncerRunning {
            syncerRunning = true
            DispatchQueue(label: "APIKeyEngine.journal-syncer").async { [self] in runSyncer() }
        } else if callbacks.count == 1 || callbacks.count == gatherTarget {
            monitor.broadcast()
        }
        monitor.unlock()
    }

    /// The syncer thread: while callbacks wait, gather a group, fsync (unless another fsync is
    /// under way), then run the callbacks that fsync covered.
    ///
    /// Writers that write in a loop come back soon after their answer. Starting the next fsync
    /// at once would cover only the few that were quickest and split the rest into fsyncs of
    /// their own; so the syncer first waits for as many writers as its last group had, for at
    /// most as long as its last fsync took (and never over ``longestGatherNanoseconds``). A lone
    /// writer never waits: its group was one.
    private func runSyncer() {
        monitor.lock()
        var expected = 0
        while !syncerStopped || !callbacks.isEmpty {
            if callbacks.isEmpty || syncing {
                monitor.wait()
                continue
            }
            if callbacksNeedFsyncLocked {
                gatherLocked(expected)
                // A blocked writer may have become the leader while the group gathered.
                if syncing { continue }
                if callbacksNeedFsyncLocked { syncLocked() }
            }
            let failure = self.failure
            let durable = durableSequence
            let ready = callbacks.filter { $0.sequence <= durable || failure != nil }
            callbacks.removeAll { $0.sequence <= durable || failure != nil }
            expected = ready.count + callbacks.count
            monitor.unlock()
            for entry in ready { entry.callback(entry.sequence <= durable ? nil : failure) }
            monitor.lock()
        }
        syncerRunning = false
        monitor.unlock()
    }

    /// Whether a waiting callback's record is not yet durable and an fsync could still make it
    /// so (the journal has not failed); lock held, callbacks waiting.
    private var callbacksNeedFsyncLocked: Bool {
        failure == nil && durableSequence < callbacks.map(\.sequence).max()!
    }

    /// Waits, lock held, until `expected` callbacks wait, the last fsync's duration has passed,
    /// or the journal closes.
    private func gatherLocked(_ expected: Int) {
        guard callbacks.count < expected else { return }
        let deadline =
            SystemClock.monotonicNanoseconds() + min(lastFsyncNanoseconds, Self.longestGatherNanoseconds)
        gatherTarget = expected
        defer { gatherTarget = 0 }
        while callbacks.count < expected && !syncerStopped && !closed && failure == nil
            && SystemClock.monotonicNanoseconds() < deadline
        {
            monitor.wait(untilMonotonicNanoseconds: deadline)
        }
    }

    /// The once-a-second tick: under `everysec`, fsyncs what has been written.
    func secondElapsed() throws(StorageError) {
        if policy == .everysec { try sync() }
    }

    /// Fsyncs what has been written, if anything is not durable yet (the `everysec` tick, and
    /// shutdown).
    func sync() throws(StorageError) {
        monitor.lock()
        defer { monitor.unlock() }
        while syncing { monitor.wait() }
        if let failure { throw failure }
        if durableSequence < lastSequence { syncLocked() }
        if let failure { throw failure }
    }

    /// Refuses every later append, fsyncs what was appended before, cuts the reserved zeros off
    /// the segment, and lets the syncer thread end (also when that fsync fails, which it then
    /// throws).
    func close() throws(StorageError) {
        monitor.withLock { closed = true }
        defer {
            monitor.withLock {
                failure = failure ?? Self.closedFailure
                syncerStopped = true
                monitor.broadcast()
            }
        }
        try sync()
        try monitor.withLock { () throws(StorageError) in try trimLocked() }
    }

    /// One fsync as leader: drops the lock while the disk works, so appends and new waiters go on.
    private func syncLocked() {
        syncing = true
        let target = lastSequence
        let file = segment
        monitor.unlock()
        var result: StorageError?
        let started = SystemClock.monotonicNanoseconds()
        do { try file.sync() } catch { result = error }
        let duration = SystemClock.monotonicNanoseconds() - started
        fsyncDurations.recordNanoseconds(duration)
        monitor.lock()
        lastFsyncNanoseconds = duration
        syncing = false
        if let result {
            failure = failure ?? result
        } else if durableSequence < target {
            durableSequence = target
        }
        monitor.broadcast()
    }
}

/// How far a long piece of work on a data directory (loading it, writing a snapshot) has come,
/// for a progress display.
public struct ProgressReport: Hashable, Sendable {
    /// What is being done: ``loadingSnapshot``, ``replayingJournal`` or ``writingSnapshot``.
    public var phase: String
    /// Records done so far in this phase.
    public var done: UInt64
    /// Records this phase has in all; nil when not known ahead (journal replay).
    public var total: UInt64?

    /// The ``phase`` of loading the records of a snapshot.
    public static let loadingSnapshot = "loading snapshot"
    /// The ``phase`` of replaying the journal records that follow the snapshot.
    public static let replayingJournal = "replaying journal"
    /// The ``phase`` of writing a snapshot.
    public static let writingSnapshot = "writing snapshot"

    /// A report that `done` records of `phase` are finished, out of `total` (nil when not known).
    public init(phase: String, done: UInt64, total: UInt64?) {
        self.phase = phase
        self.done = done
        self.total = total
    }
}

/// Receives ``ProgressReport``s: every few thousand records and once at the end of each phase.
public typealias ProgressHandler = @Sendable (ProgressReport) -> Void

/// Counts records as they pass and reports every `interval` of them.
struct ProgressCounter {
    static let interval: UInt64 = 1 << 14

    let handler: ProgressHandler?
    var phase: String
    var total: UInt64?
    private(set) var done: UInt64 = 0

    init(_ handler: ProgressHandler?, phase: String, total: UInt64?) {
        self.handler = handler
        self.phase = phase
        self.total = total
    }

    mutating func advance() {
        done += 1
        if done % Self.interval == 0 { handler?(ProgressReport(phase: phase, done: done, total: total)) }
    }

    /// Reports the phase as finished.
    func finish() {
        handler?(ProgressReport(phase: phase, done: done, total: total ?? done))
    }
}

/// A recovery target that reports its progress to a handler, then hands everything on.
final class ProgressRecoveryTarget<Target: RecoveryTarget>: RecoveryTarget {
    let target: Target
    private var counter: ProgressCounter

    init(_ target: Target, handler: ProgressHandler?) {
        self.target = target
        counter = ProgressCounter(handler, phase: ProgressReport.replayingJournal, total: nil)
    }

    func reset() { target.reset() }

    func beginSnapshot(entryCount: Int) {
        counter = ProgressCounter(counter.handler, phase: ProgressReport.loadingSnapshot, total: UInt64(entryCount))
        target.beginSnapshot(entryCount: entryCount)
    }

    func endSnapshot() {
        if counter.phase == ProgressReport.loadingSnapshot { counter.finish() }
        counter = ProgressCounter(counter.handler, phase: ProgressReport.replayingJournal, total: nil)
        target.endSnapshot()
    }

    func apply(_ mutation: KeyMutation) {
        counter.advance()
        target.apply(mutation)
    }

    func raiseNextOrderID(to orderID: Int64) { target.raiseNextOrderID(to: orderID) }

    /// Reports the journal's replay as finished.
    func finish() {
        if counter.phase == ProgressReport.replayingJournal { counter.finish() }
    }
}

/// What start-up recovery found and did: which snapshot it loaded, how much journal it replayed,
/// and any damage.
public struct RecoveryReport: Hashable, Sendable, CustomStringConvertible {
    /// The snapshot loaded (file name), nil when none was.
    public var snapshot: String?
    /// Snapshots that failed verification, newest first, with the reason.
    public var rejectedSnapshots: [String] = []
    /// Records read from the snapshot.
    public var snapshotEntries: UInt64 = 0
    /// Journal records replayed after the snapshot.
    public var replayedRecords = 0
    /// The sequence number of the last record recovered.
    public var lastSequence: UInt64 = 0
    /// A write cut short by a crash at the end of the journal, dropped: where and why.
    public var tornTail: String?
    /// Damage before the end of the journal, where replay stopped: where and why.
    public var corruption: String?
    /// What a check of every loaded record found wrong (``Engine/integrityProblems(limit:)``);
    /// filled by ``Engine/verifyData(directory:files:progress:)`` only.
    public var integrityProblems: [String] = []

    /// The file names of the rejected snapshots.
    var rejectedSnapshotNames: [String] = []
    /// The last segment's name and the length of its intact part, when its tail is torn.
    var tornSegment: TornSegment?
    /// The last segment's name and the length of its records, when reserved zeros follow them
    /// (the process that wrote it did not close the journal).
    var reservedTail: TornSegment?
    /// The damaged segment and every later one, when replay stopped at corruption.
    var unreplayedSegments: [String] = []
    /// The segment where replay stopped at corruption, and the length of its intact start.
    var corruptSegment: TornSegment?

    /// The report on several lines: the snapshot loaded and the journal replayed, then each
    /// rejected snapshot, torn tail, corruption and bad record found.
    public var description: String {
        var lines = [
            "snapshot: \(snapshot ?? "none") (\(snapshotEntries) entries)",
            "journal: \(replayedRecords) records replayed, last sequence \(lastSequence)",
        ]
        for rejected in rejectedSnapshots { lines.append("rejected snapshot: \(rejected)") }
        if let tornTail { lines.append("torn tail dropped: \(tornTail)") }
        if let corruption { lines.append("CORRUPTION, replay stopped: \(corruption)") }
        for problem in integrityProblems { lines.append("BAD RECORD: \(problem)") }
        return lines.joined(separator: "\n")
    }
}

/// A journal segment whose tail a crash cut short (or that is damaged further in), and how much
/// of it is intact.
struct TornSegment: Hashable, Sendable {
    var name: String
    var validLength: Int
}

/// Where recovery puts what it reads.
protocol RecoveryTarget {
    /// Forgets everything loaded so far (before trying another snapshot).
    func reset()
    /// A snapshot's `entryCount` entries follow (puts of distinct orders, in no particular
    /// order, then client tokens).
    func beginSnapshot(entryCount: Int)
    /// The snapshot's entries are done (or it failed); journal records follow.
    func endSnapshot()
    /// Applies one recovered mutation.
    func apply(_ mutation: KeyMutation)
    /// Raises the next order ID to at least `orderID` (a snapshot remembers it across deletes).
    func raiseNextOrderID(to orderID: Int64)
}

/// Start-up recovery: the newest snapshot that verifies, then the journal after it. Reads only;
/// repairs (truncating a torn tail, setting damaged segments aside) are the caller's.
enum Recovery {
    static func recover(
        directory: String, files: any FileLayer, into target: some RecoveryTarget
    )
        throws(StorageError) -> RecoveryReport
    {
        var report = RecoveryReport()
        let names = try files.list(directory)
        let snapshots = Array(SnapshotFile.names.files(in: names).reversed())
        let segments = JournalFormat.segmentNames.files(in: names)

        var baseSequence: UInt64 = 0
        for (name, _) in snapshots {
            target.reset()
            var entries: UInt64 = 0
            defer { target.endSnapshot() }
            do {
                let header = try SnapshotFile.read(
                    directory + "/" + name, files: files,
                    verified: { target.beginSnapshot(entryCount: Int($0.entryCount)) }
                ) { mutation in
                    entries += 1
                    target.apply(mutation)
                }
                target.raiseNextOrderID(to: header.nextOrderID)
                baseSequence = header.lastSequence
                report.snapshot = name
                report.snapshotEntries = entries
                break
            } catch {
                report.rejectedSnapshots.append("\(name): \(error.message)")
                report.rejectedSnapshotNames.append(name)
            }
        }
        if report.snapshot == nil { target.reset() }

        var expected = baseSequence + 1
        let startIndex = segments.lastIndex(where: { $0.sequence <= expected })
        if startIndex == nil, let first = segments.first {
            throw StorageError(
                "cannot recover \(directory): the journal starts at sequence \(first.sequence) but sequence \(expected) is needed"
                    + (snapshots.isEmpty
                        ? "" : " (no snapshot verified: \(report.rejectedSnapshots.joined(separator: "; ")))"))
        }
        if let startIndex {
            for index in startIndex..<segments.count {
                let name = segments[index].name
                let isLast = index == segments.count - 1
                let bytes = try files.read(directory + "/" + name)
                let scan = JournalFormat.scan(
                    bytes, expectedSequence: index == startIndex ? nil : expected, endsInReservedSpace: isLast)
                for (sequence, mutation) in scan.records where sequence >= expected {
                    guard sequence == expected else { break }
                    target.apply(mutation)
                    report.replayedRecords += 1
                    expected += 1
                }
                if isLast, scan.damage == nil, scan.validLength < bytes.count {
                    report.reservedTail = TornSegment(name: name, validLength: scan.validLength)
                }
                if let damage = scan.damage {
                    let place = "\(name) at byte \(damage.offset): \(damage.reason)"
                    if damage.isTornTail && isLast {
                        report.tornTail = place
                        report.tornSegment = TornSegment(
                            name: name,
                            validLength: damage.offset < JournalFormat.segmentHeaderSize ? 0 : scan.validLength)
                    } else {
                        report.corruption = place
                        report.corruptSegment = TornSegment(name: name, validLength: scan.validLength)
                    }
                }
                if report.corruption != nil {
                    report.unreplayedSegments = segments[index...].map(\.name)
                    break
                }
            }
        }
        report.lastSequence = expected - 1
        return report
    }
}

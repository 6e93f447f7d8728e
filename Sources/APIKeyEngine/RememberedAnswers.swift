/// The answers of verifies that named a request ID, kept for ``lifetimeNanoseconds`` so that a
/// repeat gets the first answer again and consumes nothing. At most `capacity` are kept; the
/// oldest goes first (a queue beside the dictionary, in the order they were remembered).
struct RememberedAnswers: Sendable {
    /// How long an answer is kept: 24 hours.
    static let lifetimeNanoseconds: Int64 = 24 * 3600 * 1_000_000_000

    let capacity: Int
    /// Each answer, with what its first answering waited for (in this process; nil after a
    /// restart, when everything replayed is durable).
    private var byDigest: [RequestDigest: (answer: RememberedVerification, pending: PendingDurability?)] = [:]
    /// Oldest first once `outgoing` is reversed: a queue as two stacks.
    private var incoming: [(digest: RequestDigest, at: Int64)] = []
    private var outgoing: [(digest: RequestDigest, at: Int64)] = []

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// How many answers are kept.
    var count: Int { byDigest.count }

    /// The answer remembered for `digest`, when it is younger than the lifetime at `now`, and
    /// what must be durable before it is given again.
    func answer(
        for digest: RequestDigest, nowNanoseconds now: Int64
    ) -> (RememberedVerification, PendingDurability?)? {
        guard let entry = byDigest[digest], Self.isFresh(entry.answer.atNanoseconds, now: now) else { return nil }
        return (entry.answer, entry.pending)
    }

    /// Keeps `remembered`, dropping answers past their lifetime at `now` and, when full, the oldest.
    mutating func remember(
        _ remembered: RememberedVerification, pending: PendingDurability?, nowNanoseconds now: Int64
    ) {
        guard capacity > 0 else { return }
        while let oldest = peekOldest(), !Self.isFresh(oldest.at, now: now) || byDigest.count >= capacity {
            dropOldest()
        }
        byDigest[remembered.digest] = (remembered, pending)
        incoming.append((remembered.digest, remembered.atNanoseconds))
    }

    /// Every kept answer, oldest first, without the uses they counted: what a snapshot writes
    /// (its counts hold the uses).
    var all: [RememberedVerification] {
        (outgoing.reversed() + incoming).compactMap { entry in
            byDigest[entry.digest].flatMap { kept in
                guard kept.answer.atNanoseconds == entry.at else { return nil }
                var answer = kept.answer
                answer.consumed = nil
                return answer
            }
        }
    }

    private static func isFresh(_ at: Int64, now: Int64) -> Bool {
        let (age, overflow) = now.subtractingReportingOverflow(at)
        return !overflow && age < lifetimeNanoseconds
    }

    private mutating func peekOldest() -> (digest: RequestDigest, at: Int64)? {
        if outgoing.isEmpty {
            outgoing = incoming.reversed()
            incoming.removeAll(keepingCapacity: true)
        }
        return outgoing.last
    }

    private mutating func dropOldest() {
        guard let oldest = outgoing.popLast() else { return }
        // A digest remembered again later has a newer entry of its own in the queue.
        if byDigest[oldest.digest]?.answer.atNanoseconds == oldest.at { byDigest[oldest.digest] = nil }
    }
}

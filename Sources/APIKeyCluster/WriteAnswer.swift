import Synchronization

/// Where one write through a cluster node stands, so that it is answered exactly once and never
/// answered "changed nothing" when it may have committed: the timeout answers only a write that
/// has not yet sent its `COMMIT`, and a write that the timeout answered rolls back instead of
/// committing.
struct WriteAnswerState: Equatable, Sendable {
    enum Phase: Equatable, Sendable {
        /// Working: waiting for a connection, the log's lock, or its statements.
        case working
        /// `COMMIT` was sent: only its outcome answers now.
        case committing
        /// Answered (by the outcome, or by the timeout while working).
        case answered
    }

    private(set) var phase = Phase.working

    /// The timeout fired: answer it (true) only while the write has not begun committing.
    mutating func timeOut() -> Bool {
        guard phase == .working else { return false }
        phase = .answered
        return true
    }

    /// The write is about to send `COMMIT`: false when the timeout already answered it, and it
    /// must roll back instead.
    mutating func beginCommit() -> Bool {
        guard phase == .working else { return false }
        phase = .committing
        return true
    }

    /// The write's own outcome is known: answer it (true) unless the timeout already did.
    mutating func finish() -> Bool {
        guard phase != .answered else { return false }
        phase = .answered
        return true
    }

    /// Whether an answer was given (the write need not go on).
    var isAnswered: Bool { phase == .answered }

    /// Whether `COMMIT` was sent and its outcome not answered yet.
    var isCommitting: Bool { phase == .committing }
}

/// A write's completion with its ``WriteAnswerState``, shared by the write's task and its timeout.
final class WriteAnswer<Value: Sendable>: Sendable {
    private let state = Mutex(WriteAnswerState())
    private let completion: @Sendable (Value) -> Void

    init(_ completion: @escaping @Sendable (Value) -> Void) {
        self.completion = completion
    }

    /// Answers `value` for the timeout unless the write has begun committing; whether it did.
    @discardableResult
    func timeOut(_ value: Value) -> Bool {
        guard state.withLock({ $0.timeOut() }) else { return false }
        completion(value)
        return true
    }

    /// Whether the write may send `COMMIT` (the timeout has not answered it).
    func beginCommit() -> Bool { state.withLock { $0.beginCommit() } }

    /// Answers the write's own outcome unless the timeout already answered; whether it did.
    @discardableResult
    func finish(_ value: Value) -> Bool {
        guard state.withLock({ $0.finish() }) else { return false }
        completion(value)
        return true
    }

    /// Whether the write was answered already (by its timeout).
    var isAnswered: Bool { state.withLock { $0.isAnswered } }

    /// Whether `COMMIT` was sent and its outcome is still to come.
    var isCommitting: Bool { state.withLock { $0.isCommitting } }
}

import Synchronization

/// Runs work against PostgreSQL with an upper bound on how long the caller waits for it: past
/// `limit` the work is cancelled and the caller goes on with ``DeadlinePassed``, even when the
/// work does not stop at once (a query on a connection that died without saying so). Whatever
/// the abandoned work still does must be harmless on its own: a write answered by its timeout
/// rolls back rather than commit (``WriteAnswer``).
enum Deadline {
    /// The work did not finish within its limit.
    struct DeadlinePassed: Error, CustomStringConvertible {
        var limit: Duration
        var description: String { "no answer from PostgreSQL within \(limit)" }
    }

    /// The one resumption of the caller, by the work or by the timer, whichever comes first.
    private final class Outcome<Value: Sendable>: Sendable {
        private let continuation = Mutex<CheckedContinuation<Value, any Error>?>(nil)

        func set(_ continuation: CheckedContinuation<Value, any Error>) {
            self.continuation.withLock { $0 = continuation }
        }

        func resume(with result: Result<Value, any Error>) {
            let continuation = self.continuation.withLock { continuation in
                defer { continuation = nil }
                return continuation
            }
            continuation?.resume(with: result)
        }
    }

    /// The timer's task, cancelled once the caller goes on, so that no call leaves a task
    /// sleeping out the whole limit.
    private final class TimerHandle: Sendable {
        let task = Mutex<Task<Void, Never>?>(nil)
    }

    static func run<Value: Sendable>(
        within limit: Duration, _ work: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let outcome = Outcome<Value>()
        let timer = TimerHandle()
        // The body runs to its end before the caller goes on, so the timer is stored by then.
        defer { timer.task.withLock { $0 }?.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            outcome.set(continuation)
            let task = Task {
                do {
                    outcome.resume(with: .success(try await work()))
                } catch {
                    outcome.resume(with: .failure(error))
                }
            }
            let sleeper = Task {
                do { try await Task.sleep(for: limit) } catch { return }
                task.cancel()
                outcome.resume(with: .failure(DeadlinePassed(limit: limit)))
            }
            timer.task.withLock { $0 = sleeper }
        }
    }
}

import Dispatch

/// Runs heavy synchronous test work (seconds of computing, blocking sockets, waiting for
/// processes) on threads of its own instead of Swift concurrency's cooperative pool.
///
/// The pool has one thread a core: a test that computes there for seconds starves every other
/// test's tasks, and tests that bound a time then measure the starvation. The work stays in the
/// test's task (a task executor preference), so expectations are attributed to the test as usual.
public enum HeavyWork {
    /// Runs `body` on a dedicated executor and returns its result.
    public static func run<T: Sendable, Failure: Error>(
        _ body: () async throws(Failure) -> T
    ) async throws(Failure) -> T {
        try await withTaskExecutorPreference(executor, operation: body)
    }

    private static let executor = QueueExecutor()

    /// A task executor over a concurrent Dispatch queue: Dispatch gives each blocked or busy job a
    /// thread of its own, outside the cooperative pool.
    private final class QueueExecutor: TaskExecutor, @unchecked Sendable {
        private let queue = DispatchQueue(label: "apikeyd.tests.heavy-work", attributes: .concurrent)

        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
        }
    }
}

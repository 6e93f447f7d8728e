import Synchronization

/// Says whether a repeated log line may be written now: at most once per interval.
final class LogThrottle: Sendable {
    private let last = Mutex<Int64?>(nil)
    private let intervalNanoseconds: Int64

    init(seconds: Int64) {
        intervalNanoseconds = seconds * 1_000_000_000
    }

    /// True at the first call and then once the interval has passed since the last true.
    func shouldLog() -> Bool {
        let now = ClusterClock.nanoseconds()
        return last.withLock { last in
            if let previous = last, now - previous < intervalNanoseconds { return false }
            last = now
            return true
        }
    }
}

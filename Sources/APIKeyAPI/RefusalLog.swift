import APIKeyLimiter
import Logging
import Synchronization

/// Logs rate-limit refusals at most once per address per minute, however many requests are
/// refused: a client hammering the API gets one line a minute, not one per request.
final class RefusalLog: Sendable {
    private let logger: Logger
    /// When each address was last logged (monotonic nanoseconds).
    private let lastLogged = Mutex<[IPAddress: Int64]>([:])

    /// Addresses remembered at most; beyond it, those logged over a minute ago are forgotten.
    static let capacity = 10_000
    static let intervalNanoseconds: Int64 = 60_000_000_000

    init(logger: Logger) {
        self.logger = logger
    }

    /// Notes that a request from `address` was refused by the `bucket` bucket at `nowNanoseconds`.
    func refused(_ address: IPAddress, bucket: String, nowNanoseconds: Int64) {
        let due = lastLogged.withLock { logged in
            if let last = logged[address], nowNanoseconds - last < Self.intervalNanoseconds { return false }
            if logged.count >= Self.capacity {
                logged = logged.filter { nowNanoseconds - $0.value < Self.intervalNanoseconds }
                if logged.count >= Self.capacity { logged.removeAll(keepingCapacity: true) }
            }
            logged[address] = nowNanoseconds
            return true
        }
        guard due else { return }
        logger.warning(
            "rate limit refused requests (logged at most once a minute per address)",
            metadata: ["client": "\(address)", "bucket": "\(bucket)"])
    }
}

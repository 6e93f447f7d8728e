/// One shard's mutex and what only writers touch.
final class ShardLock: @unchecked Sendable {
    private let mutex = Monitor()
    private var writer = ShardArena()

    /// Runs `body` with the mutex held.
    func withWriter<R>(_ body: (inout ShardArena) -> R) -> R {
        mutex.withLock { body(&writer) }
    }
}

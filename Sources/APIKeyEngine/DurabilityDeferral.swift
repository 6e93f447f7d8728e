#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The thread's current ``Engine/deferringDurability(_:)`` call: while one is active,
/// writes on this thread record their journal sequence number here instead of waiting for fsync.
final class DurabilityDeferral {
    /// The highest sequence number written under this deferral; nil when nothing was written.
    var sequence: UInt64?

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The deferral active on this thread.
    static var current: DurabilityDeferral? {
        guard let pointer = pthread_getspecific(key) else { return nil }
        return Unmanaged<DurabilityDeferral>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Runs `body` with `deferral` active on this thread.
    static func with<R>(_ deferral: DurabilityDeferral, _ body: () -> R) -> R {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(deferral).toOpaque())
        defer { pthread_setspecific(key, previous) }
        return withExtendedLifetime(deferral) { body() }
    }
}

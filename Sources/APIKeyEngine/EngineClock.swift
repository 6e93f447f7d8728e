import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the engine reads the current time: expiry, timestamps and (later) refills all ask it.
///
/// Injecting the clock lets tests move time forward without sleeping.
public protocol EngineClock: Sendable {
    /// Nanoseconds since the Unix epoch (UTC).
    func nowNanoseconds() -> Int64
}

extension EngineClock {
    /// Whole seconds since the Unix epoch (UTC), rounded down.
    public func nowSeconds() -> Int64 {
        let nanoseconds = nowNanoseconds()
        return nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds + 1) / 1_000_000_000 - 1
    }
}

/// The operating system's wall clock (`CLOCK_REALTIME`).
public struct SystemClock: EngineClock {
    /// A clock that reads the operating system's wall clock.
    public init() {}

    public func nowNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Nanoseconds on `CLOCK_MONOTONIC`, for measuring durations.
    static func monotonicNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// A clock that only moves when told to; for tests and simulations.
public final class ManualClock: EngineClock {
    private let nanoseconds: Atomic<Int64>

    /// Creates a clock showing `seconds` since the Unix epoch.
    public init(seconds: Int64) {
        nanoseconds = Atomic(seconds * 1_000_000_000)
    }

    public func nowNanoseconds() -> Int64 { nanoseconds.load(ordering: .relaxed) }

    /// Moves the clock forward (or back, with a negative value) by `seconds`.
    public func advance(seconds: Int64) {
        nanoseconds.add(seconds * 1_000_000_000, ordering: .relaxed)
    }

    /// Moves the clock forward (or back) by `nanoseconds`.
    public func advance(nanoseconds delta: Int64) {
        nanoseconds.add(delta, ordering: .relaxed)
    }

    /// Sets the clock to `seconds` since the Unix epoch.
    public func set(seconds: Int64) {
        nanoseconds.store(seconds * 1_000_000_000, ordering: .relaxed)
    }
}

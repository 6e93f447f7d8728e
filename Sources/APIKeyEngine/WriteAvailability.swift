/// Whether an engine takes writes (``Engine/writeAvailability``).
public enum WriteAvailability: Hashable, Sendable {
    /// Writes are taken.
    case accepting
    /// A journal write or fsync failed: every write is refused with ``EngineError/Code/writesStopped``
    /// until the engine is opened again once the cause (a full disk, a failed device) is fixed.
    case stopped(StorageError)
    /// `Engine.close()` was called: every write is refused with ``EngineError/Code/closed``.
    case closed

    /// Whether writes are taken.
    public var isAccepting: Bool { self == .accepting }
}

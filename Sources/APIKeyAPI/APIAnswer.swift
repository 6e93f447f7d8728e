import APIKeyEngine

/// What the router decided for a request; the transport only carries it out.
public enum APIAnswer: Sendable {
    /// Send this now.
    case now(APIResponse)
    /// A write was applied: send this once ``APIRouter/whenDurable(_:answering:_:)`` says the
    /// write is durable (it hands over an error answer instead if the journal failed).
    case afterDurable(APIResponse, PendingDurability)
    /// The endpoint may block for long (a snapshot writes the whole state): run this on a thread
    /// that may block, then send what it returns.
    case offLoop(@Sendable () -> APIResponse)
    /// The answer comes later (a write through the cluster): call this once with a function that
    /// takes the answer; it may be called on any thread.
    case later(@Sendable (@escaping @Sendable (APIResponse) -> Void) -> Void)
}

/// One change to the engine's state, as the write path commits it.
///
/// Every write operation validates its input, works out the complete result (timestamps and
/// generated keys included) and expresses it as one mutation. Applying a mutation is
/// deterministic and needs nothing but the mutation itself, so the same value can be written to a
/// journal before it is applied and replayed from it after a restart.
public enum KeyMutation: Hashable, Sendable {
    /// Stores `record` under its order ID, replacing any record of that order (and its old key).
    case put(KeyRecord)
    /// Removes the record of this order ID and its key.
    case delete(orderID: Int64)
    /// Gives `clientID` this API token, replacing any previous one.
    case setClientToken(clientID: Int64, token: String)
    /// Adds `count` uses to the order's count of `month` (a verify that passed). Ignored when the
    /// order no longer exists.
    case use(orderID: Int64, month: UsageMonth, count: Int64)
    /// Sets the order's count of `month` back to 0 (`usage_reset`).
    case resetUsage(orderID: Int64, month: UsageMonth)
    /// Replaces every count of the order with `counts` (a snapshot's form of a usage meter).
    case setUsage(orderID: Int64, counts: [UsageCount])
    /// Remembers the answer to a verify that named a request ID, so a repeat gets it again.
    case remember(RememberedVerification)
    /// Keeps a key that a reset replaces answering for its order until a deadline. Journaled just
    /// before the put of the new key, so the old key never misses in between.
    case retire(RetiredKey)
    /// Records that the state holds every change of a cluster's change log up to this position
    /// (multi-node mode; journaled after the mutations of each change applied).
    case changePosition(ChangePosition)
}

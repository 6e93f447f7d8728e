// The values the engine's operations take and give back.

/// Who is asking: an administrator sees every key, a client only its own.
public enum Requester: Hashable, Sendable {
    /// An administrator, who sees every key.
    case admin
    /// The client with this ID, who sees only the keys it owns (another's key reads as not found).
    case client(Int64)
}

/// How a caller names one key: by its order or by the key itself.
public enum KeyReference: Hashable, Sendable {
    /// The key of the order with this ID.
    case orderID(Int64)
    /// The key with this text, matched byte for byte.
    case key(String)
}

/// What `create` needs.
public struct NewKey: Hashable, Sendable {
    /// The order the key is sold with; nil lets the engine assign the next free one.
    public var orderID: Int64?
    /// The owning client.
    public var clientID: Int64
    /// Generation options and custom parameters; must be a JSON object.
    public var config: JSONValue
    /// The initial status.
    public var status: KeyStatus
    /// When the key expires, in seconds since the Unix epoch; nil for never.
    public var expiresAt: Int64?

    /// A new key for `clientID`; by default active, never expiring, with an empty config object and
    /// an order ID the engine assigns.
    public init(
        orderID: Int64? = nil, clientID: Int64, config: JSONValue = .object([]), status: KeyStatus = .active,
        expiresAt: Int64? = nil
    ) {
        self.orderID = orderID
        self.clientID = clientID
        self.config = config
        self.status = status
        self.expiresAt = expiresAt
    }
}

/// What `update` changes; every nil field is left as it is.
public struct KeyChanges: Hashable, Sendable {
    /// The order whose key changes.
    public var orderID: Int64
    /// A config replacing the whole config.
    public var config: JSONValue?
    /// true makes the key active, false suspends it.
    public var valid: Bool?
    /// A new status; when `valid` is given too, both must agree.
    public var status: KeyStatus?
    /// `.some(nil)` removes the expiry, `.some(t)` sets it, nil leaves it.
    public var expiresAt: Int64??
    /// Only compared with the stored key: a different key is refused (use reset).
    public var apiKey: String?

    /// Changes to the key of `orderID`; every field left nil stays as it is.
    public init(
        orderID: Int64, config: JSONValue? = nil, valid: Bool? = nil, status: KeyStatus? = nil,
        expiresAt: Int64?? = nil, apiKey: String? = nil
    ) {
        self.orderID = orderID
        self.config = config
        self.valid = valid
        self.status = status
        self.expiresAt = expiresAt
        self.apiKey = apiKey
    }
}

/// What `get_info` answers for a key.
public struct KeyInfo: Hashable, Sendable {
    /// Whether the key is valid now.
    public var valid: Bool
    /// The custom parameters as a JSON object text (prefix removed, numbers normalised).
    public var customParametersJSON: ArraySlice<UInt8>

    /// An answer holding a copy of `customParameters`.
    init(valid: Bool, copying customParameters: UnsafeRawBufferPointer) {
        self.valid = valid
        self.customParametersJSON = Array(customParameters)[...]
    }
}

/// One page of a key listing.
public struct KeyPage: Hashable, Sendable {
    /// The records on this page, by ascending order ID.
    public var list: [KeyRecord]
    /// How many records match in all.
    public var total: Int
    /// The page number, from 1.
    public var page: Int
    /// The page size.
    public var perPage: Int
}

/// Writes that are applied but not yet acknowledged: pass to ``Engine/waitUntilDurable(_:)`` or
/// ``Engine/whenDurable(_:_:)``. Waiting for a later one covers every earlier one.
public struct PendingDurability: Hashable, Comparable, Sendable {
    /// The journal sequence number that must be durable.
    public var sequence: UInt64

    /// Whether `left` comes before `right` in the journal, by sequence number.
    public static func < (left: PendingDurability, right: PendingDurability) -> Bool {
        left.sequence < right.sequence
    }
}

/// What a write through ``Engine/deferred`` gives back: its result, already applied and visible
/// to reads, and what must become durable before it may be acknowledged.
public struct Written<Value: Sendable>: Sendable {
    /// The write's result.
    public var value: Value
    /// What to wait for before acknowledging; nil when nothing needs waiting for (fsync policy
    /// `everysec` or `no`, or an engine without a data directory).
    public var pending: PendingDurability?

    /// A write's result `value` and what must become durable before it is acknowledged (nil for
    /// nothing).
    public init(_ value: Value, pending: PendingDurability? = nil) {
        self.value = value
        self.pending = pending
    }

    /// The same wait around `transform(value)`.
    public func map<T: Sendable, E: Error>(_ transform: (Value) throws(E) -> T) throws(E) -> Written<T> {
        Written<T>(try transform(value), pending: pending)
    }
}

/// Where the key table keeps a key: the seeded hash of its bytes, as ``Engine/prefetch(keyBytes:)``
/// returns it for the lookup that follows. Valid only with the bytes it was computed from, in
/// the engine that computed it.
public struct KeyHash: Hashable, Sendable {
    let value: UInt64
}

/// A moment's view of an engine for monitoring (``Engine/statistics``).
public struct EngineStatistics: Sendable {
    /// Keys by status.
    public var keysByStatus: KeyCounts
    /// Journal bytes written since the newest snapshot began (0 without a data directory).
    public var journalBytes: Int
    /// When this process last wrote a snapshot (seconds since 1970); nil before its first.
    public var lastSnapshotSeconds: Int64?
    /// Whether the journal failed and writes are refused.
    public var writesStopped: Bool
}

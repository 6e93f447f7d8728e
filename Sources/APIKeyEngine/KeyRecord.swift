/// The lifecycle state of a key's order.
public enum KeyStatus: String, Hashable, Sendable, CaseIterable {
    case active, suspended, canceled
}

/// One sold key: the record of SPEC section 2.
///
/// The config is kept as its JSON text, and the `get_info` object of its custom
/// parameters is encoded once, when the config is written, so reads never re-encode it.
public struct KeyRecord: Hashable, Sendable {
    /// The order the key was sold with; unique and positive.
    public var orderID: Int64
    /// The client that owns the key; positive.
    public var clientID: Int64
    /// The key itself; unique, matched byte for byte.
    public var apiKey: String
    /// The config object as JSON text, members in the order given.
    public private(set) var configJSON: [UInt8]
    /// The `get_info` object of the custom parameters, as JSON text.
    public private(set) var customParametersJSON: [UInt8]
    /// Whether the order is active, suspended or canceled.
    public var status: KeyStatus
    /// When the key stops being valid, in seconds since the Unix epoch; nil for never.
    public var expiresAt: Int64?
    /// When the record was created, in seconds since the Unix epoch.
    public var createdAt: Int64
    /// When the record was last changed, in seconds since the Unix epoch.
    public var updatedAt: Int64

    /// A record with the given fields; `config` must be a JSON object.
    public init(
        orderID: Int64, clientID: Int64, apiKey: String, config: JSONValue, status: KeyStatus,
        expiresAt: Int64?, createdAt: Int64, updatedAt: Int64
    ) {
        self.orderID = orderID
        self.clientID = clientID
        self.apiKey = apiKey
        self.status = status
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.configJSON = config.encoded
        self.customParametersJSON = CustomParameters.encodedObject(of: config)
    }

    /// A record whose config text and custom-parameter object are already encoded (as a snapshot
    /// or journal stores them).
    init(
        orderID: Int64, clientID: Int64, apiKey: String, configJSON: [UInt8], customParametersJSON: [UInt8],
        status: KeyStatus, expiresAt: Int64?, createdAt: Int64, updatedAt: Int64
    ) {
        self.orderID = orderID
        self.clientID = clientID
        self.apiKey = apiKey
        self.configJSON = configJSON
        self.customParametersJSON = customParametersJSON
        self.status = status
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The config as a JSON value.
    public var config: JSONValue {
        get {
            // The text was produced by the encoder from a valid object, so it always parses.
            (try? JSONValue.parse(configJSON)) ?? .object([])
        }
        set {
            configJSON = newValue.encoded
            customParametersJSON = CustomParameters.encodedObject(of: newValue)
        }
    }

    /// The validity rule: active, and either no expiry or an expiry later than `nowNanoseconds`.
    @inline(__always)
    public func isValid(atNanoseconds nowNanoseconds: Int64) -> Bool {
        guard status == .active else { return false }
        guard let expiresAt else { return true }
        let (expiryNanoseconds, overflow) = expiresAt.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? expiresAt > 0 : expiryNanoseconds > nowNanoseconds
    }
}

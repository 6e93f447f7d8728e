/// The lifecycle state of a key's order.
public enum KeyStatus: String, Hashable, Sendable, CaseIterable {
    /// The order is in force: its key is valid while it has not expired.
    case active
    /// The order is suspended: its key is refused until the order is unsuspended.
    case suspended
    /// The order is canceled: its key is refused until the order is uncanceled.
    case canceled

    /// The status as one byte, in journal records, snapshots and the key table.
    var code: UInt8 {
        switch self {
        case .active: 0
        case .suspended: 1
        case .canceled: 2
        }
    }

    /// The status a ``code`` stands for; nil for a byte that is none.
    init?(code: UInt8) {
        switch code {
        case 0: self = .active
        case 1: self = .suspended
        case 2: self = .canceled
        default: return nil
        }
    }
}

/// One sold key: the record of SPEC section 2.
///
/// The config is kept as its JSON text, and the `get_info` object of its custom
/// parameters is encoded once, when the config is written, so reads never re-encode it. Both
/// texts share one buffer: one allocation per key instead of two.
public struct KeyRecord: Hashable, Sendable {
    /// The order the key was sold with; unique and positive.
    public var orderID: Int64
    /// The client that owns the key; positive.
    public var clientID: Int64
    /// The key itself; unique, matched byte for byte.
    public var apiKey: String
    /// The custom-parameter object text followed by the config text: the one `get_info` reads
    /// comes first, on the buffer's first cache line.
    private var texts: [UInt8]
    /// Where the config text starts in `texts`.
    private var configStart: Int32

    /// The config object as JSON text, members in the order given.
    public var configJSON: ArraySlice<UInt8> { texts[Int(configStart)...] }
    /// The `get_info` object of the custom parameters, as JSON text.
    public var customParametersJSON: ArraySlice<UInt8> { texts[..<Int(configStart)] }
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
        (texts, configStart) = Self.texts(config: config.encoded, custom: CustomParameters.encodedObject(of: config))
    }

    /// A record whose config text and custom-parameter object are already encoded (as a snapshot
    /// or journal stores them).
    init(
        orderID: Int64, clientID: Int64, apiKey: String, configJSON: ArraySlice<UInt8>,
        customParametersJSON: ArraySlice<UInt8>, status: KeyStatus, expiresAt: Int64?, createdAt: Int64,
        updatedAt: Int64
    ) {
        self.orderID = orderID
        self.clientID = clientID
        self.apiKey = apiKey
        (texts, configStart) = Self.texts(config: configJSON, custom: customParametersJSON)
        self.status = status
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Its status and expiry: what decides whether it is valid.
    var validity: KeyValidity { KeyValidity(status: status, expiresAt: expiresAt) }

    /// The config as a JSON value.
    public var config: JSONValue {
        get {
            // The text was produced by the encoder from a valid object, so it always parses.
            (try? JSONValue.parse(configJSON)) ?? .object([])
        }
        set {
            (texts, configStart) = Self.texts(
                config: newValue.encoded, custom: CustomParameters.encodedObject(of: newValue))
        }
    }

    /// One buffer holding both texts, custom parameters first, and where the config starts.
    private static func texts(config: some Collection<UInt8>, custom: some Collection<UInt8>) -> ([UInt8], Int32) {
        var texts: [UInt8] = []
        texts.reserveCapacity(config.count + custom.count)
        texts.append(contentsOf: custom)
        texts.append(contentsOf: config)
        return (texts, Int32(custom.count))
    }
}

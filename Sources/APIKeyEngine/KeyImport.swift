/// Records to add to an engine as they are, keys and dates chosen by the caller: a migration
/// from another system or a restore of an export.
///
/// Each ``add(_:)`` checks one record as `create` would check its parameters (config, limits,
/// expiry), and that neither its order nor its key is taken, in the engine or earlier in this
/// import; nothing reaches the engine until `Engine.commit(_:)` adds everything at once.
///
/// With hashed key storage, a key or token is taken as a stored hash when it has that form
/// (`hmac-sha256:` and 43 base64url characters: an export of an engine with the same secret) and
/// hashed on the way in otherwise; plain storage refuses a stored hash, which no key could match.
public struct KeyImport: Sendable {
    /// The longest key an import accepts, in bytes.
    public static let maximumKeyBytes = 1024
    /// The longest client token an import accepts, in bytes.
    public static let maximumTokenBytes = 1024

    let engine: Engine
    private(set) var records: [KeyRecord] = []
    private(set) var tokens: [(clientID: Int64, token: String)] = []
    /// The order of each key added, to name it when a later record repeats the key.
    private var orderByKey: [String: Int64] = [:]
    private var orderIDs: Set<Int64> = []
    private var clientByToken: [String: Int64] = [:]
    private var clientsWithTokens: Set<Int64> = []

    init(engine: Engine) {
        self.engine = engine
    }

    /// How many records have been added.
    public var recordCount: Int { records.count }
    /// How many client tokens have been added.
    public var tokenCount: Int { tokens.count }

    /// Adds `record`; throws, adding nothing, when it is not one `create` would accept or its
    /// order or key is taken.
    public mutating func add(_ record: KeyRecord) throws(EngineError) {
        var record = record
        let orderID = record.orderID
        guard orderID > 0 else { throw EngineError.invalid("order_id must be a positive integer") }
        guard record.clientID > 0 else { throw EngineError.invalid("client_id must be a positive integer") }
        try Self.validateText(record.apiKey, "api_key", maximumBytes: Self.maximumKeyBytes)
        record.apiKey = try engine.configuration.keyStorage.imported(record.apiKey, "the api_key of order \(orderID)")
        try engine.deferred.validate(config: record.config, encodedBytes: record.configJSON.count)
        for (name, seconds) in [
            ("expires_at", record.expiresAt), ("created_at", record.createdAt), ("updated_at", record.updatedAt),
        ] {
            if let seconds, !(Timestamp.minimumSeconds...Timestamp.maximumSeconds).contains(seconds) {
                throw EngineError.invalid("\(name) must lie between the years 1 and 9999")
            }
        }
        guard !orderIDs.contains(orderID) else {
            throw EngineError(.orderExists, "Order \(orderID) appears twice in the import")
        }
        if let other = orderByKey[record.apiKey] {
            throw EngineError(
                .keyExists, "The key of order \(orderID) is already the key of order \(other) in the import")
        }
        try engine.state.withLock { (state) throws(EngineError) in
            guard state.orders[orderID] == nil else {
                throw EngineError(.orderExists, "Order \(orderID) already has an API key")
            }
            guard records.count + state.orders.count < engine.configuration.maximumKeys else {
                throw EngineError(
                    .capacityReached, "The engine holds its maximum of \(engine.configuration.maximumKeys) keys")
            }
        }
        if let other = engine.state.table.record(record.apiKey)?.orderID {
            throw EngineError(.keyExists, "The key of order \(orderID) is already the key of order \(other)")
        }
        guard !engine.state.retired.contains(record.apiKey) else {
            throw EngineError(.keyExists, "The key of order \(orderID) is a key in its grace period after a reset")
        }
        orderIDs.insert(orderID)
        orderByKey[record.apiKey] = orderID
        // Its texts are the ones `create` stores: a record made outside the engine has its config
        // encoded and its custom parameters derived by the public initialiser.
        records.append(record)
    }

    /// Adds `token` as the API token of `clientID`, replacing the one it has; throws when the
    /// client already has one in this import, or another client has this token.
    public mutating func addClientToken(clientID: Int64, token: String) throws(EngineError) {
        guard clientID > 0 else { throw EngineError.invalid("client_id must be a positive integer") }
        try Self.validateText(token, "api_token", maximumBytes: Self.maximumTokenBytes)
        let token = try engine.configuration.keyStorage.imported(token, "the api_token of client \(clientID)")
        guard !clientsWithTokens.contains(clientID) else {
            throw EngineError(.keyExists, "Client \(clientID) has two API tokens in the import")
        }
        if let other = clientByToken[token] ?? engine.clientHolding(storedToken: token), other != clientID {
            throw EngineError(.keyExists, "The API token of client \(clientID) is already client \(other)'s")
        }
        clientsWithTokens.insert(clientID)
        clientByToken[token] = clientID
        tokens.append((clientID, token))
    }

    /// Refuses an empty text, one longer than `maximumBytes`, and one holding control characters
    /// (a key or token travels in URLs, headers, CSV and terminals).
    private static func validateText(_ text: String, _ name: String, maximumBytes: Int) throws(EngineError) {
        let count = text.utf8.count
        guard count > 0 else { throw EngineError.invalid("\(name) must not be empty") }
        guard count <= maximumBytes else {
            throw EngineError.invalid("\(name) is \(count) bytes; the limit is \(maximumBytes)")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw EngineError.invalid("\(name) must not contain control characters")
        }
    }
}

extension Engine {
    /// An empty import into this engine.
    public func makeImport() -> KeyImport { KeyImport(engine: self) }

    /// Whether a process (a server) holds the data directory `directory`; changes nothing.
    public static func isInUse(directory: String) -> Bool { DirectoryLock.isHeld(directory: directory) }

    /// Adds every record and client token of `batch` at once, then, with a data directory, writes
    /// a snapshot holding them: the import is durable, and all or nothing across a crash, when
    /// that snapshot is in place (the records are not journaled one by one). The batch may have
    /// been checked against another engine holding the same data (a
    /// ``load(directory:configuration:clock:files:progress:)`` of this one's directory): orders,
    /// keys and tokens are checked again here. Throws, adding nothing, when one is taken. When the
    /// snapshot fails (a full disk), the records stay in memory only and the error says so:
    /// close the engine without a snapshot to leave the directory as it was.
    @discardableResult
    public func commit(_ batch: KeyImport, progress: ProgressHandler? = nil) throws(EngineError) -> SnapshotSummary? {
        try state.withLock { (writeState) throws(EngineError) in
            guard writeState.orders.count + batch.records.count <= configuration.maximumKeys else {
                throw EngineError(.capacityReached, "The engine holds its maximum of \(configuration.maximumKeys) keys")
            }
            for record in batch.records {
                guard writeState.orders[record.orderID] == nil, !state.table.contains(record.apiKey),
                    !state.retired.contains(record.apiKey)
                else {
                    throw EngineError(.orderExists, "Order \(record.orderID) or its key was taken during the import")
                }
            }
            for (clientID, token) in batch.tokens {
                if let owner = writeState.clientByTokenDigest[state.tokenDigest(token)], owner != clientID,
                    writeState.tokenByClient[owner] == token
                {
                    throw EngineError(.keyExists, "The API token of client \(clientID) is already client \(owner)'s")
                }
            }
            // Orders are new and distinct: loaded as a snapshot is, indexes sorted once at the end.
            writeState.isBulkLoading = true
            state.table.reserveCapacity(state.table.count + batch.records.count)
            for record in batch.records { state.apply(.put(record), to: &writeState) }
            writeState.endBulkLoad()
            for (clientID, token) in batch.tokens {
                state.apply(.setClientToken(clientID: clientID, token: token), to: &writeState)
            }
        }
        guard storage != nil else { return nil }
        return try snapshot(progress: progress)
    }
}

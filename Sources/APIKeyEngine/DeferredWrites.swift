import CXXHash

/// The engine's writes, each returning as soon as it is applied, with what must become durable
/// before it may be acknowledged (``Written``). For servers on event loops: apply at once, then
/// answer from ``Engine/whenDurable(_:_:)``, so concurrent writers share fsyncs without a thread
/// each. ``Engine``'s own write methods are these followed by ``Engine/waitUntilDurable(_:)``.
///
/// Every write validates against the current state and turns into one ``KeyMutation``, which is
/// committed in one place, `commit(_:to:)`: journal, then apply.
public struct DeferredWrites: Sendable {
    let engine: Engine
    /// When set, writes are planned, not committed: each mutation is handed here instead of
    /// being journaled and applied (``Engine/plan(_:)``, multi-node mode).
    let planned: PlannedMutations?

    init(engine: Engine, planned: PlannedMutations? = nil) {
        self.engine = engine
        self.planned = planned
    }

    private var state: EngineState { engine.state }

    /// Creates a key for an order and returns its record, with the generated `api_key` (with
    /// hashed key storage, the only time it is shown: the engine holds its hash).
    public func create(_ request: NewKey) throws(EngineError) -> Written<KeyRecord> {
        try write { writeState throws(EngineError) in
            guard request.clientID > 0 else { throw EngineError.invalid("client_id must be a positive integer") }
            if let orderID = request.orderID {
                guard orderID > 0 else { throw EngineError.invalid("order_id must be a positive integer") }
                guard writeState.orders[orderID] == nil else {
                    throw EngineError(.orderExists, "Order \(orderID) already has an API key")
                }
            }
            let maximumKeys = engine.configuration.maximumKeys
            guard writeState.orders.count < maximumKeys else {
                throw EngineError(.capacityReached, "The engine holds its maximum of \(maximumKeys) keys")
            }
            if request.orderID == nil, writeState.orders[writeState.nextOrderID] != nil {
                throw EngineError(.capacityReached, "No order ID is left to assign after \(Int64.max); give order_id")
            }
            let options = try validatedOptions(request.config)
            _ = try UsageLimits(config: request.config)
            try validateExpiry(request.expiresAt)
            let apiKey = try engine.generator.generateUnique(options, isTaken: isTaken)
            let now = engine.clock.nowSeconds()
            var record = KeyRecord(
                orderID: request.orderID ?? writeState.nextOrderID, clientID: request.clientID, apiKey: apiKey,
                config: request.config, status: request.status, expiresAt: request.expiresAt, createdAt: now,
                updatedAt: now)
            let shown = record
            record.apiKey = keyStorage.stored(apiKey)
            return (shown, .put(record))
        }
    }

    /// Changes a key's config, status or expiry (SPEC `admin/serviceapikey/update`).
    public func update(_ changes: KeyChanges) throws(EngineError) -> Written<Void> {
        try write { writeState throws(EngineError) in
            var record = try engine.resolve(.orderID(changes.orderID), .admin, writeState)
            if let apiKey = changes.apiKey, keyStorage.stored(apiKey) != record.apiKey {
                throw EngineError.keyChangeRefused
            }
            if let config = changes.config {
                _ = try validatedOptions(config)
                _ = try UsageLimits(config: config)
                record.config = config
            }
            let statusFromValid = changes.valid.map { $0 ? KeyStatus.active : KeyStatus.suspended }
            if let statusFromValid, let status = changes.status, status != statusFromValid {
                throw EngineError.invalid("valid and status disagree; give one of them")
            }
            if let status = changes.status ?? statusFromValid { record.status = status }
            if let expiresAt = changes.expiresAt {
                try validateExpiry(expiresAt)
                record.expiresAt = expiresAt
            }
            record.updatedAt = engine.clock.nowSeconds()
            return ((), .put(record))
        }
    }

    /// The longest grace period of a reset: 30 days.
    public static let maximumGraceSeconds: Int64 = 2_592_000

    /// Replaces a key with a newly generated one. The old key stops existing at once, or with
    /// `graceSeconds` (0 ... ``maximumGraceSeconds``) keeps answering as the order's key until
    /// that time has passed; a later reset of the order ends that grace at once.
    /// `orderID` wins when a reference names both. Returns the record with the new key (with
    /// hashed key storage, the only time it is shown).
    public func reset(
        _ reference: KeyReference, as requester: Requester = .admin, graceSeconds: Int64 = 0
    ) throws(EngineError) -> Written<KeyRecord> {
        guard (0...Self.maximumGraceSeconds).contains(graceSeconds) else { throw EngineError.invalidGrace }
        return try state.withLock { (writeState) throws(EngineError) -> Written<KeyRecord> in
            var record = try engine.resolve(reference, requester, writeState)
            let oldKey = record.apiKey
            let options = try validatedOptions(record.config)
            let newKey = try engine.generator.generateUnique(options, isTaken: isTaken)
            record.apiKey = keyStorage.stored(newKey)
            record.updatedAt = engine.clock.nowSeconds()
            if graceSeconds > 0 {
                let until = engine.clock.nowNanoseconds().addingReportingOverflow(graceSeconds * 1_000_000_000)
                let retired = RetiredKey(
                    key: oldKey, orderID: record.orderID, currentKey: record.apiKey,
                    untilNanoseconds: until.overflow ? .max : until.partialValue)
                // First, so that the old key answers through the new one as soon as it leaves
                // the table.
                _ = try commit(.retire(retired), to: &writeState)
            }
            let pending = try commit(.put(record), to: &writeState)
            record.apiKey = newKey
            return Written(record, pending: pending)
        }
    }

    /// Whether the generated key `key` is in use: some order's key, or a key in its grace period.
    private func isTaken(_ key: String) -> Bool {
        let stored = keyStorage.stored(key)
        return state.table.contains(stored) || state.retired.contains(stored)
    }

    private var keyStorage: KeyStorage { engine.configuration.keyStorage }

    /// Suspends an active key.
    public func suspend(orderID: Int64) throws(EngineError) -> Written<Void> {
        try transition(orderID, from: [.active], to: .suspended, "Only active orders can be suspended")
    }

    /// Makes a suspended key active again.
    public func unsuspend(orderID: Int64) throws(EngineError) -> Written<Void> {
        try transition(orderID, from: [.suspended], to: .active, "Only suspended orders can be unsuspended")
    }

    /// Cancels a key that is active or suspended.
    public func cancel(orderID: Int64) throws(EngineError) -> Written<Void> {
        try transition(orderID, from: [.active, .suspended], to: .canceled, "The order is already canceled")
    }

    /// Makes a canceled key active again.
    public func uncancel(orderID: Int64) throws(EngineError) -> Written<Void> {
        try transition(orderID, from: [.canceled], to: .active, "Only canceled orders can be uncanceled")
    }

    /// Deletes a key; it stops existing at once.
    public func delete(orderID: Int64) throws(EngineError) -> Written<Void> {
        try write { writeState throws(EngineError) in
            _ = try engine.resolve(.orderID(orderID), .admin, writeState)
            return ((), .delete(orderID: orderID))
        }
    }

    /// Creates or rotates the API token of `clientID` and returns it (with hashed key storage,
    /// the only time it is shown).
    public func resetClientToken(clientID: Int64) throws(EngineError) -> Written<String> {
        guard clientID > 0 else { throw EngineError.invalid("client_id must be a positive integer") }
        let token = engine.random.hexToken(byteCount: 32)
        let stored = keyStorage.stored(token)
        return try write { _ throws(EngineError) in (token, .setClientToken(clientID: clientID, token: stored)) }
    }

    // MARK: - Usage

    /// The largest `cost` of one verify.
    public static let maximumCost: Int64 = 1_000_000_000
    /// The longest request ID, in bytes.
    public static let maximumRequestIDBytes = 128

    /// Verifies the key with these UTF-8 bytes and consumes `cost` (0 ... ``maximumCost``) when
    /// it passes, in one atomic step (``Verification`` lists the rules); calls `body` once with
    /// the answer and the key's custom-parameter text (`{}` for an unknown key, valid only during
    /// the call), and returns what must be durable before the answer is sent. With `requestID`
    /// (1 to ``maximumRequestIDBytes`` bytes), a repeat within 24 hours gets the first answer and
    /// consumes nothing. `hash` is what ``Engine/prefetch(keyBytes:)`` returned for these bytes.
    /// Allocates nothing without a request ID (a key's first verify may, making its usage slot).
    public func verify(
        keyBytes: UnsafeRawBufferPointer, hash: KeyHash? = nil, cost: Int64 = 1,
        requestID: UnsafeRawBufferPointer? = nil, _ body: (Verification, UnsafeRawBufferPointer) -> Void
    ) throws(EngineError) -> PendingDurability? {
        guard keyBytes.count > 0 else { throw EngineError.missingKey }
        guard (0...Self.maximumCost).contains(cost) else { throw EngineError.invalidCost }
        if let requestID, !(1...Self.maximumRequestIDBytes).contains(requestID.count) {
            throw EngineError.invalid("request_id must be 1 to \(Self.maximumRequestIDBytes) bytes")
        }
        return try engine.withStoredKey(keyBytes, hash: hash) {
            (keyBytes, keyHash) throws(EngineError) -> PendingDurability? in
            // A hash from prefetch(keyBytes:) means the slot is on its way (plain storage only).
            if hash == nil || engine.keyHasher != nil { state.table.prefetch(hash: keyHash) }
            // The usage slot's load overlaps the key table's.
            state.usage.prefetch(keyHash: keyHash)
            // With no answers to remember (`idempotencyEntries` 0), a request ID changes nothing.
            let remembers = engine.configuration.idempotencyEntries > 0
            let digest = remembers ? requestID.map { Self.digest(key: keyBytes, requestID: $0) } : nil
            return try state.verify(
                keyBytes: keyBytes, hash: keyHash, cost: cost, requestDigest: digest,
                nowNanoseconds: engine.clock.nowNanoseconds(), ledger: engine.quotaLedger, journal: append
            ) { verification, custom in
                engine.countVerification(verification.code)
                body(verification, custom)
            }
        }
    }

    /// ``verify(keyBytes:hash:cost:requestID:_:)`` of `key`, answering the ``Verification``.
    public func verify(
        key: String, cost: Int64 = 1, requestID: String? = nil
    ) throws(EngineError) -> Written<
        Verification
    > {
        var key = key
        var requestID = requestID
        var answer = Verification.notFound
        let pending = try key.withUTF8 { keyBytes in
            Result { () throws(EngineError) -> PendingDurability? in
                func run(_ requestBytes: UnsafeRawBufferPointer?) throws(EngineError) -> PendingDurability? {
                    try verify(keyBytes: UnsafeRawBufferPointer(keyBytes), cost: cost, requestID: requestBytes) {
                        verification, _ in answer = verification
                    }
                }
                guard requestID != nil else { return try run(nil) }
                return try requestID!.withUTF8 { requestBytes in
                    Result { () throws(EngineError) in try run(UnsafeRawBufferPointer(requestBytes)) }
                }.get()
            }
        }.get()
        return Written(answer, pending: pending)
    }

    /// Sets the count of the current month of order `orderID` back to 0 (`usage_reset`).
    public func resetUsage(orderID: Int64) throws(EngineError) -> Written<Void> {
        try state.withLock { (writeState) throws(EngineError) -> Written<Void> in
            _ = try engine.resolve(.orderID(orderID), .admin, writeState)
            let hash = writeState.orders[orderID]!
            let mutation = KeyMutation.resetUsage(
                orderID: orderID, month: UsageMonth(containingNanoseconds: engine.clock.nowNanoseconds()))
            if let planned {
                planned.add(mutation)
                return Written(())
            }
            // Journaled with the shard held, as uses are, so the journal keeps their order.
            return try state.usage.withShard(keyHash: hash) { (slots) throws(EngineError) -> Written<Void> in
                let pending = try append(mutation)
                EngineState.applyUsage(
                    mutation, keyHash: hash, limits: { state.limits(orderID: orderID, keyHash: hash) }, to: &slots)
                return Written((), pending: pending)
            }
        }
    }

    /// The key of remembered answers: XXH3-128 of the request ID, seeded with XXH3-64 of the key
    /// (both unseeded by the process, so the same after a restart).
    private static func digest(key: UnsafeRawBufferPointer, requestID: UnsafeRawBufferPointer) -> RequestDigest {
        let keySeed = XXH3_64bits(key.baseAddress, key.count)
        let hash = XXH3_128bits_withSeed(requestID.baseAddress, requestID.count, keySeed)
        return RequestDigest(low: hash.low64, high: hash.high64)
    }

    // MARK: - Commit

    /// The write path: `body` validates against the current state and returns the result and the
    /// one mutation that achieves it; the mutation is committed under the same lock.
    private func write<R: Sendable>(
        _ body: (inout WriteState) throws(EngineError) -> (R, KeyMutation)
    )
        throws(EngineError) -> Written<R>
    {
        try state.withLock { (writeState) throws(EngineError) -> Written<R> in
            let (result, mutation) = try body(&writeState)
            return Written(result, pending: try commit(mutation, to: &writeState))
        }
    }

    /// The one place where a mutation takes effect: journal, then apply. Returns what the
    /// journal says must become durable before the write is acknowledged.
    private func commit(
        _ mutation: KeyMutation, to writeState: inout WriteState
    ) throws(EngineError)
        -> PendingDurability?
    {
        if let planned {
            planned.add(mutation)
            return nil
        }
        let pending = try append(mutation)
        state.apply(mutation, to: &writeState)
        assert(state.appliedProblems(mutation, writeState) == nil, state.appliedProblems(mutation, writeState) ?? "")
        return pending
    }

    /// Journals and applies the mutations of changes committed elsewhere (a cluster's change
    /// log), in order, and then `position` when given, under one hold of the write lock. Usage
    /// mutations are journaled with their shard held, as uses are.
    func commitReplicated(
        _ mutations: [KeyMutation], position: ChangePosition?
    ) throws(EngineError) -> PendingDurability? {
        try state.withLock { (writeState) throws(EngineError) -> PendingDurability? in
            var pending: PendingDurability?
            for mutation in mutations + (position.map { [KeyMutation.changePosition($0)] } ?? []) {
                switch mutation {
                case .use(let orderID, _, _), .resetUsage(let orderID, _), .setUsage(let orderID, _):
                    guard let hash = writeState.orders[orderID] else { continue }
                    pending = try state.usage.withShard(keyHash: hash) {
                        (slots) throws(EngineError) -> PendingDurability? in
                        let pending = try append(mutation)
                        EngineState.applyUsage(
                            mutation, keyHash: hash, limits: { state.limits(orderID: orderID, keyHash: hash) },
                            to: &slots)
                        return pending
                    }
                case .remember:
                    // Remembered answers are a node's own; they never travel.
                    continue
                default:
                    pending = try append(mutation)
                    state.apply(mutation, to: &writeState)
                }
            }
            return pending
        }
    }

    /// Appends `mutation` to the journal (when there is one) and returns what must become
    /// durable before the write is acknowledged.
    private func append(_ mutation: KeyMutation) throws(EngineError) -> PendingDurability? {
        guard let storage = engine.storage else { return nil }
        // Refused as soon as close() begins, before the journal itself refuses appends.
        if storage.isClosed { throw EngineError.closed }
        do {
            return try storage.journal.append(mutation)
        } catch {
            if storage.isClosed { throw EngineError.closed }
            storage.writesStopped(by: error)
            throw EngineError.writesStopped(error)
        }
    }

    // MARK: - Validation

    private func transition(
        _ orderID: Int64, from allowed: Set<KeyStatus>, to status: KeyStatus, _ refusal: String
    )
        throws(EngineError) -> Written<Void>
    {
        try write { writeState throws(EngineError) in
            var record = try engine.resolve(.orderID(orderID), .admin, writeState)
            guard allowed.contains(record.status) else { throw EngineError(.invalidTransition, refusal) }
            record.status = status
            record.updatedAt = engine.clock.nowSeconds()
            return ((), .put(record))
        }
    }

    /// Refuses a config that `create` would refuse: not one that encodes as the JSON it stands for,
    /// not an object, too large, bad generation options or usage limits.
    /// `encodedBytes` is the size of its JSON text, when known.
    func validate(config: JSONValue, encodedBytes: Int? = nil) throws(EngineError) {
        _ = try validatedOptions(config, encodedBytes: encodedBytes)
        _ = try UsageLimits(config: config)
    }

    private func validatedOptions(
        _ config: JSONValue, encodedBytes: Int? = nil
    ) throws(EngineError) -> KeyGenerationOptions {
        // A config built by hand (not parsed) could hold text that is no JSON, or inject members.
        if let problem = config.encodingProblem { throw EngineError.invalid("config: \(problem)") }
        guard case .object = config else { throw EngineError.invalid("config must be a JSON object") }
        let size = encodedBytes ?? config.encoded.count
        let limit = engine.configuration.maximumConfigBytes
        guard size <= limit else {
            throw EngineError.invalid("config is \(size) bytes as JSON; the limit is \(limit) bytes")
        }
        return try KeyGenerationOptions(config: config)
    }

    private func validateExpiry(_ expiresAt: Int64?) throws(EngineError) {
        guard let expiresAt else { return }
        guard (Timestamp.minimumSeconds...Timestamp.maximumSeconds).contains(expiresAt) else {
            throw EngineError.invalid("expires_at must lie between the years 1 and 9999")
        }
    }
}

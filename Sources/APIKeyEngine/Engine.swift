import Atomics
import Logging

/// The engine: every operation of the API, usable in-process with no server.
///
/// Reads (`check`, `getInfo`, `withKey`) take no lock and allocate nothing. Writes are serialised
/// by one write lock and committed through ``DeferredWrites``: each blocking write method here is
/// its deferred twin followed by ``waitUntilDurable(_:)``, and each `async` one its deferred twin
/// followed by ``durable(_:)``. Open a durable engine with
/// ``open(directory:options:configuration:clock:random:files:logger:progress:)``; see
/// <doc:DurabilityForEmbedders>.
public final class Engine: Sendable {
    /// The limits this engine enforces.
    public let configuration: EngineConfiguration
    /// Where the engine reads the time: expiry, usage months, rate limits.
    public let clock: any EngineClock
    let generator: KeyGenerator
    let random: any RandomSource
    let state: EngineState
    /// The data directory's journal and background work; nil for an in-memory engine.
    let storage: Storage?
    /// What recovery found when the engine was opened; nil for an in-memory engine.
    public let recoveryReport: RecoveryReport?
    /// Where the engine logs (recovery, snapshots, a failed journal); label `APIKeyEngine` unless
    /// the caller gave its own.
    public let logger: Logger
    /// Multi-node mode's quota shares; nil for a single node.
    let quotaLedger: (any QuotaLedger)?
    /// The hash of hashed key storage, nil for plain storage: kept apart from ``configuration``
    /// so that a check reads one reference.
    let keyHasher: (any KeyHasher)?
    /// Verifies answered so far, by ``Verification/Code`` (its raw value indexes).
    private let verifications: [ManagedAtomic<Int>] = Verification.Code.allCases.map { _ in ManagedAtomic(0) }

    /// An empty engine that keeps its state in memory only: nothing survives the process. For a
    /// durable one, see ``open(directory:options:configuration:clock:random:files:logger:progress:)``.
    public convenience init(
        configuration: EngineConfiguration = EngineConfiguration(), clock: any EngineClock = SystemClock(),
        random: any RandomSource = SystemRandomSource(), logger: Logger = Logger(label: "APIKeyEngine")
    ) {
        self.init(
            configuration: configuration, clock: clock, random: random,
            state: EngineState(
                shardCountLog2: configuration.shardCountLog2, random: random,
                idempotencyEntries: configuration.idempotencyEntries), storage: nil,
            recoveryReport: nil, logger: logger)
    }

    private init(
        configuration: EngineConfiguration, clock: any EngineClock, random: any RandomSource, state: EngineState,
        storage: Storage?, recoveryReport: RecoveryReport?, logger: Logger, quotaLedger: (any QuotaLedger)? = nil
    ) {
        self.quotaLedger = quotaLedger
        self.logger = logger
        self.configuration = configuration
        keyHasher = configuration.keyStorage.hasher
        self.clock = clock
        self.random = random
        self.generator = KeyGenerator(random: random)
        self.state = state
        self.storage = storage
        self.recoveryReport = recoveryReport
    }

    // MARK: - Durability

    /// Opens (creating when missing) the data directory `directory`, recovers the newest snapshot
    /// and the journal after it, and returns an engine that journals every write.
    ///
    /// A torn last journal record is dropped (and cut off the file). Damage before the end stops
    /// replay there; with ``StorageOptions/strictRecovery`` that refuses to start, otherwise the
    /// unreadable segments are renamed `*.corrupt-<seconds>` and the engine starts with what was
    /// read. Every finding is logged and kept in ``recoveryReport``.
    public static func open(
        directory: String, options: StorageOptions = StorageOptions(),
        configuration: EngineConfiguration = EngineConfiguration(), clock: any EngineClock = SystemClock(),
        random: any RandomSource = SystemRandomSource(), files: any FileLayer = PosixFileLayer(),
        logger: Logger = Logger(label: "APIKeyEngine"), progress: ProgressHandler? = nil
    ) throws(StorageError) -> Engine {
        try open(
            directory: directory, options: options, configuration: configuration, clock: clock, random: random,
            files: files, logger: logger, progress: progress, quotaLedger: nil)
    }

    /// ``open(directory:options:configuration:clock:random:files:logger:progress:)`` for a node of
    /// a cluster, whose verifies take limited uses from `quotaLedger`'s leases.
    package static func open(
        directory: String, options: StorageOptions = StorageOptions(),
        configuration: EngineConfiguration = EngineConfiguration(), clock: any EngineClock = SystemClock(),
        random: any RandomSource = SystemRandomSource(), files: any FileLayer = PosixFileLayer(),
        logger: Logger = Logger(label: "APIKeyEngine"), progress: ProgressHandler? = nil,
        quotaLedger: (any QuotaLedger)?
    ) throws(StorageError) -> Engine {
        let state = EngineState(
            shardCountLog2: configuration.shardCountLog2, random: random,
            idempotencyEntries: configuration.idempotencyEntries)
        let (storage, report) = try Storage.open(
            directory: directory, options: options, keyStorage: configuration.keyStorage, into: state, clock: clock,
            files: files, logger: logger, progress: progress)
        return Engine(
            configuration: configuration, clock: clock, random: random, state: state, storage: storage,
            recoveryReport: report, logger: logger, quotaLedger: quotaLedger)
    }

    /// Releasing the last reference without ``close()`` fsyncs and closes the journal and releases
    /// the data directory (no final snapshot: the next start replays the journal), so the
    /// directory can be opened again in the same process.
    deinit { storage?.release() }

    /// What recovery would find in `directory`, without changing anything there: the state is
    /// loaded as a server would load it, then every record is checked
    /// (``RecoveryReport/integrityProblems``).
    public static func verifyData(
        directory: String, files: any FileLayer = PosixFileLayer(), progress: ProgressHandler? = nil
    )
        throws(StorageError) -> RecoveryReport
    {
        let engine = try load(directory: directory, files: files, progress: progress)
        var report = engine.recoveryReport!
        report.integrityProblems = engine.integrityProblems()
        return report
    }

    /// How often ``load(directory:configuration:clock:files:progress:)`` starts again when a
    /// file it was reading went away.
    static let loadAttempts = 5

    /// The state of the data directory `directory`, as of its newest snapshot that verifies and
    /// every complete journal record after it, in an engine of its own that keeps it in memory
    /// only (its ``recoveryReport`` says what was read). Takes no lock and changes no file, so it
    /// reads a directory that a running server is using: a record that server is writing at that
    /// moment is left out, as a torn tail is, and when a snapshot of that server removes a file
    /// being read, the load starts again (up to five times).
    public static func load(
        directory: String, configuration: EngineConfiguration = EngineConfiguration(),
        clock: any EngineClock = SystemClock(), files: any FileLayer = PosixFileLayer(),
        progress: ProgressHandler? = nil
    ) throws(StorageError) -> Engine {
        var attempt = 1
        while true {
            let engine = Engine(configuration: configuration, clock: clock)
            let before = try files.list(directory)
            do throws(StorageError) {
                let report = try engine.state.recover(
                    directory: directory, files: files, clock: clock, progress: progress)
                return Engine(
                    configuration: configuration, clock: clock, random: engine.random, state: engine.state,
                    storage: nil, recoveryReport: report, logger: engine.logger)
            } catch {
                let after = try files.list(directory)
                guard attempt < loadAttempts, Set(after) != Set(before) else { throw error }
                attempt += 1
            }
        }
    }

    /// What is wrong with the loaded state; empty when all is well. Checks the key table's
    /// structure, and that the order index, the key index, the index by client and every
    /// record's bytes agree. Takes the write lock; reads every record.
    public func integrityProblems(limit: Int = 100) -> [String] {
        state.integrityProblems(limit: limit)
    }

    /// Writes a snapshot of the whole state now, then removes what it makes redundant. Checks go
    /// on meanwhile; writes pause only while the shards are copied.
    @discardableResult
    public func snapshot(progress: ProgressHandler? = nil) throws(EngineError) -> SnapshotSummary {
        guard let storage else { throw EngineError(.noDataDirectory, "This engine has no data directory") }
        do throws(Storage.SnapshotFailure) {
            return try storage.snapshot(progress: progress)
        } catch {
            throw Self.engineError(error)
        }
    }

    private static func engineError(_ failure: Storage.SnapshotFailure) -> EngineError {
        switch failure {
        case .running: EngineError(.snapshotRunning, "A snapshot is already running")
        case .closed: EngineError.closed
        case .journal(let cause): EngineError.writesStopped(cause)
        case .write(let cause): EngineError(.snapshotFailed, "Snapshot failed: \(cause.message)", cause: cause)
        }
    }

    /// Stops background work, writes a final snapshot (when configured and anything was written
    /// since the newest one), fsyncs the journal, releases the data directory and refuses writes
    /// from then on (``EngineError/Code/closed``). Reads keep working. A final snapshot that fails
    /// (a full disk) still leaves the journal fsynced and closed, then throws: nothing is lost, the
    /// next start replays the journal. Only the first call does anything: closing again returns at
    /// once. Blocks while the snapshot is written; from Swift concurrency call the `async` form,
    /// which writes it off the cooperative pool. An in-memory engine has nothing to close.
    public func close() throws(EngineError) {
        guard let storage else { return }
        let snapshotFailure: Storage.SnapshotFailure?
        do throws(StorageError) {
            snapshotFailure = try storage.close()
        } catch {
            throw EngineError.writesStopped(error)
        }
        if let snapshotFailure { throw Self.engineError(snapshotFailure) }
    }

    /// Returns once `pending` is durable, fsyncing (for every writer waiting at the time) if no
    /// fsync under way covers it; throws ``EngineError/writesStopped(_:)`` when the journal failed.
    public func waitUntilDurable(_ pending: PendingDurability?) throws(EngineError) {
        guard let pending, let storage else { return }
        do {
            try storage.journal.waitUntilDurable(pending.sequence)
        } catch {
            storage.writesStopped(by: error)
            throw EngineError.writesStopped(error)
        }
    }

    /// Calls `callback` (nil for success) once `pending` is durable, without blocking: the
    /// journal's syncer thread fsyncs for every waiting callback at once and runs the callbacks
    /// it covered. Keep callbacks short (hand the answer to the connection's thread).
    public func whenDurable(_ pending: PendingDurability, _ callback: @escaping @Sendable (EngineError?) -> Void) {
        guard let storage else {
            callback(nil)
            return
        }
        storage.journal.whenDurable(pending.sequence) { failure in
            if let failure { storage.writesStopped(by: failure) }
            callback(failure.map(EngineError.writesStopped))
        }
    }

    /// Whether writes (verifies' uses among them) are acknowledged only once fsynced: the
    /// `always` policy.
    public var acknowledgesAfterFsync: Bool { storage?.options.fsync == .always }

    /// Whether the engine takes writes now, for an embedder's health check: writes stop for good
    /// when a journal write or fsync fails, and when the engine is closed. Reads go on in both cases.
    public var writeAvailability: WriteAvailability {
        guard let storage else { return .accepting }
        if storage.isClosed { return .closed }
        if let failure = storage.journal.latchedFailure { return .stopped(failure) }
        return .accepting
    }

    /// The key table, for tests of its memory.
    var tableForTesting: KeyTable<SeededKeyHash> { state.table }

    /// The storage half, for tests that simulate crashes inside it.
    var storageForTesting: Storage? { storage }

    // MARK: - Read path

    /// Whether `key` is valid now; throws ``EngineError/missingKey`` for an empty key and
    /// ``EngineError/keyNotFound`` for an unknown one.
    @inlinable
    public func check(key: String) throws(EngineError) -> Bool {
        var key = key
        return try key.withUTF8 { utf8 in
            Result { () throws(EngineError) in try check(keyBytes: UnsafeRawBufferPointer(utf8)) }
        }.get()
    }

    /// Starts loading the memory a lookup of the key with these UTF-8 bytes reads first, without
    /// waiting for it: a server that knows the key before it has finished reading the request
    /// calls this first, and the lookup that follows finds that memory in cache. Returns the
    /// key's hash, to hand to that lookup so it is not computed twice. Changes nothing; any bytes
    /// are fine. With hashed key storage it does nothing: the lookup begins with the key's hash,
    /// and computing it twice would cost more than the wait it saves.
    @discardableResult
    public func prefetch(keyBytes: UnsafeRawBufferPointer) -> KeyHash {
        guard keyHasher == nil else { return KeyHash(value: 0) }
        let hash = KeyHash(value: state.table.hash(keyBytes))
        state.table.prefetch(hash: hash.value)
        return hash
    }

    /// Calls `body` with what the table holds for the key with these bytes (the bytes
    /// themselves, or their stored hash) and its table hash: `hash` when ``prefetch(keyBytes:)``
    /// gave one for plain storage, else computed.
    @inline(__always)
    func withStoredKey<R, E: Error>(
        _ keyBytes: UnsafeRawBufferPointer, hash: KeyHash?, _ body: (UnsafeRawBufferPointer, UInt64) throws(E) -> R
    ) throws(E) -> R {
        guard let keyHasher else { return try body(keyBytes, hash?.value ?? state.table.hash(keyBytes)) }
        return try KeyStorage.withStoredHash(of: keyBytes, keyHasher) { (stored) throws(E) -> R in
            try body(stored, state.table.hash(stored))
        }
    }

    /// Whether the key with these UTF-8 bytes is valid now. `hash` is what
    /// ``prefetch(keyBytes:)`` returned for these same bytes, if it was called.
    public func check(keyBytes: UnsafeRawBufferPointer, hash: KeyHash? = nil) throws(EngineError) -> Bool {
        guard keyBytes.count > 0 else { throw EngineError.missingKey }
        return try withStoredKey(keyBytes, hash: hash) { (stored, hash) throws(EngineError) -> Bool in
            try check(stored: stored, hash: hash)
        }
    }

    /// ``check(keyBytes:hash:)`` of what the table holds for a key (the key, or its stored hash),
    /// whose table hash is `hash`.
    @inline(__always)
    func check(stored: UnsafeRawBufferPointer, hash: UInt64) throws(EngineError) -> Bool {
        guard let validity = state.table.validity(stored, hash: hash) else { return try checkRetired(stored) }
        return validity.isValid { clock.nowNanoseconds() }
    }

    /// ``check(keyBytes:hash:)`` of a key the table does not hold (`stored`: what the table
    /// would hold for it): a key in its grace period answers as its order's current key.
    @inline(never)
    private func checkRetired(_ stored: UnsafeRawBufferPointer) throws(EngineError) -> Bool {
        guard let record = retiredRecord(stored) else { throw EngineError.keyNotFound }
        return record.validity.isValid { clock.nowNanoseconds() }
    }

    /// The record of the order whose key in its grace period is held as these bytes (the key,
    /// or its stored hash); nil when none is.
    func retiredRecord(_ keyBytes: UnsafeRawBufferPointer) -> KeyRecord? {
        guard let (orderID, current) = state.retired.currentKey(of: keyBytes, nowNanoseconds: clock.nowNanoseconds())
        else { return nil }
        return state.table.record(orderID: orderID, hash: state.table.hash(current))
    }

    /// Validity and custom parameters of `key`, copied into a ``KeyInfo``.
    public func getInfo(key: String) throws(EngineError) -> KeyInfo {
        try withInfo(key: key, KeyInfo.init(valid:copying:))
    }

    /// Runs `body` on the validity of `key` and its custom parameters as JSON object text (valid
    /// only during the call); allocates nothing when the text is small.
    @inlinable
    public func withInfo<R>(key: String, _ body: (Bool, UnsafeRawBufferPointer) -> R) throws(EngineError) -> R {
        var key = key
        return try key.withUTF8 { utf8 in
            Result { () throws(EngineError) in try withInfo(keyBytes: UnsafeRawBufferPointer(utf8), body) }
        }.get()
    }

    /// Runs `body` on the validity of the key with these UTF-8 bytes and its custom parameters.
    /// `hash` is what ``prefetch(keyBytes:)`` returned for these same bytes, if it was called.
    @inlinable
    public func withInfo<R>(
        keyBytes: UnsafeRawBufferPointer, hash: KeyHash? = nil, _ body: (Bool, UnsafeRawBufferPointer) -> R
    )
        throws(EngineError) -> R
    {
        var answer: R?
        try visitInfo(keyBytes: keyBytes, hash: hash) { valid, custom in answer = body(valid, custom) }
        return answer!
    }

    /// The non-generic body of ``withInfo(keyBytes:_:)``: calls `body` exactly once or throws.
    @usableFromInline
    func visitInfo(
        keyBytes: UnsafeRawBufferPointer, hash: KeyHash?, _ body: (Bool, UnsafeRawBufferPointer) -> Void
    )
        throws(EngineError)
    {
        guard keyBytes.count > 0 else { throw EngineError.missingKey }
        try withStoredKey(keyBytes, hash: hash) { (stored, hash) throws(EngineError) in
            let found = state.table.withInfo(stored, hash: hash) { validity, _, custom in
                body(validity.isValid { clock.nowNanoseconds() }, custom)
            }
            guard !found else { return }
            guard let record = retiredRecord(stored) else { throw EngineError.keyNotFound }
            let valid = record.validity.isValid { clock.nowNanoseconds() }
            Array(record.customParametersJSON).withUnsafeBytes { body(valid, $0) }
        }
    }

    /// Verifies `key` and consumes `cost` when it passes (see ``DeferredWrites/verify(keyBytes:hash:cost:requestID:_:)``),
    /// returning once the use is durable as the fsync policy asks.
    public func verify(key: String, cost: Int64 = 1, requestID: String? = nil) throws(EngineError) -> Verification {
        try acknowledged(deferred.verify(key: key, cost: cost, requestID: requestID))
    }

    /// How many verifies have answered each code since the engine was made.
    public var verificationCounts: [Verification.Code: Int] {
        Dictionary(
            uniqueKeysWithValues: Verification.Code.allCases.map {
                ($0, verifications[Int($0.rawValue)].load(ordering: .relaxed))
            })
    }

    func countVerification(_ code: Verification.Code) {
        verifications[Int(code.rawValue)].wrappingIncrement(ordering: .relaxed)
    }

    /// The usage of one order in `month` (default: the current month, UTC), named by order ID or
    /// key; a client sees only their own (another's answers ``EngineError/keyNotFound``).
    public func usage(
        _ reference: KeyReference, month: UsageMonth? = nil, as requester: Requester = .admin
    ) throws(EngineError) -> OrderUsage {
        let month = month ?? currentMonth
        return try state.withLock { (writeState) throws(EngineError) -> OrderUsage in
            let record = try resolve(reference, requester, writeState)
            return orderUsage(record.orderID, month, writeState)
        }
    }

    /// The usage of every key of `clientID` in `month` (default: the current month, UTC). A
    /// client may ask only for themselves (another client answers ``EngineError/keyNotFound``).
    public func usage(
        clientID: Int64, month: UsageMonth? = nil, as requester: Requester = .admin
    ) throws(EngineError) -> ClientUsage {
        guard clientID > 0 else { throw EngineError.invalid("client_id must be a positive integer") }
        if case .client(let own) = requester, own != clientID { throw EngineError.keyNotFound }
        let month = month ?? currentMonth
        return state.withLock { writeState in
            let keys = (writeState.ordersByClient[clientID] ?? []).map { orderUsage($0, month, writeState) }
            let total = keys.reduce(Int64(0)) { sum, key in
                let (next, overflow) = sum.addingReportingOverflow(key.used)
                return overflow ? .max : next
            }
            return ClientUsage(clientID: clientID, month: month, used: total, keys: keys)
        }
    }

    /// Sets the count of the current month of order `orderID` back to 0.
    public func resetUsage(orderID: Int64) throws(EngineError) {
        try acknowledged(deferred.resetUsage(orderID: orderID))
    }

    private var currentMonth: UsageMonth { UsageMonth(containingNanoseconds: clock.nowNanoseconds()) }

    /// The usage of an indexed order; call with the write lock held.
    private func orderUsage(_ orderID: Int64, _ month: UsageMonth, _ writeState: borrowing WriteState) -> OrderUsage {
        let (counted, limit) = state.usage(orderID: orderID, keyHash: writeState.orders[orderID]!, month: month)
        // A cluster node's own uses since its last flush are not in the counts yet.
        let (used, overflow) = counted.addingReportingOverflow(
            quotaLedger?.unflushed(orderID: orderID, month: month) ?? 0)
        return OrderUsage(orderID: orderID, month: month, used: overflow ? .max : used, limit: limit)
    }

    /// The record named by `reference`, if `requester` may see it.
    ///
    /// Admins get ``EngineError/orderNotFound`` or ``EngineError/keyNotFound``; a client asking for
    /// a key that is not theirs gets ``EngineError/keyNotFound``, exactly as for an unknown key.
    public func get(_ reference: KeyReference, as requester: Requester = .admin) throws(EngineError) -> KeyRecord {
        try state.withLock { (writeState) throws(EngineError) -> KeyRecord in
            try resolve(reference, requester, writeState)
        }
    }

    /// One page of records by ascending order ID, filtered by owner, status and, with
    /// `afterOrderID`, to orders above that one (a cursor: paging by the last order ID seen
    /// skips nothing when earlier records are deleted meanwhile).
    ///
    /// `page` counts from 1; `perPage` defaults to ``EngineConfiguration/defaultPageSize`` and
    /// may not exceed ``EngineConfiguration/maximumPageSize``.
    public func list(
        clientID: Int64? = nil, status: KeyStatus? = nil, afterOrderID: Int64? = nil, page: Int = 1,
        perPage: Int? = nil, as requester: Requester = .admin
    ) throws(EngineError) -> KeyPage {
        let perPage = perPage ?? configuration.defaultPageSize
        guard page >= 1 else { throw EngineError.invalid("page must be an integer of at least 1") }
        guard (1...configuration.maximumPageSize).contains(perPage) else {
            throw EngineError.invalid("per_page must be an integer from 1 to \(configuration.maximumPageSize)")
        }
        var owner = clientID
        if case .client(let id) = requester { owner = id }
        return state.withLock { state in
            let table = self.state.table
            let offset = (page - 1).multipliedReportingOverflow(by: perPage)
            let start = offset.overflow ? Int.max : offset.partialValue
            // The candidates, ascending: the client's orders or all of them, past the cursor.
            let clientOrders = owner.map { state.ordersByClient[$0] ?? [] }
            let count = clientOrders?.count ?? state.orders.count
            func orderID(at index: Int) -> Int64 { clientOrders?[index] ?? state.orders.entries[index].orderID }
            func keyHash(at index: Int) -> UInt64? {
                clientOrders == nil ? state.orders.entries[index].keyHash : state.orders[clientOrders![index]]
            }
            var first = 0
            if let afterOrderID {
                var high = count
                while first < high {
                    let middle = (first + high) / 2
                    if orderID(at: middle) <= afterOrderID { first = middle + 1 } else { high = middle }
                }
            }
            var records: [KeyRecord] = []
            guard let status else {
                // Without a status, only the page's records are read: listing every page stays linear.
                let total = count - first
                if start < total {
                    for index in (first + start)..<min(count, first + start + perPage) {
                        if let hash = keyHash(at: index),
                            let record = table.record(orderID: orderID(at: index), hash: hash)
                        {
                            records.append(record)
                        }
                    }
                }
                return KeyPage(list: records, total: total, page: page, perPage: perPage)
            }
            // The status is in the record: every candidate is read.
            var total = 0
            for index in first..<count {
                guard let hash = keyHash(at: index), let record = table.record(orderID: orderID(at: index), hash: hash),
                    record.status == status
                else { continue }
                if total >= start, records.count < perPage { records.append(record) }
                total += 1
            }
            return KeyPage(list: records, total: total, page: page, perPage: perPage)
        }
    }

    /// Calls `body` with every record, by ascending order ID: each record as it is when reached
    /// (take ``load(directory:configuration:clock:files:progress:)``'s engine for one moment's).
    public func forEachRecord<E: Error>(_ body: (KeyRecord) throws(E) -> Void) throws(E) {
        let entries = state.withLock { $0.orders.entries }
        for entry in entries {
            if let record = state.table.record(orderID: entry.orderID, hash: entry.keyHash) { try body(record) }
        }
    }

    /// Every client's API token, by ascending client ID: with hashed key storage, its stored
    /// hash.
    public var clientTokens: [(clientID: Int64, token: String)] {
        state.withLock { $0.tokensByClientID }
    }

    /// How many keys the engine holds.
    public var keyCount: Int { state.withLock { $0.orders.count } }

    /// What the engine holds and how its storage fares, for monitoring; takes the write lock
    /// for a moment.
    public var statistics: EngineStatistics {
        let keys = state.withLock { $0.keysByStatus }
        let health = storage?.health
        return EngineStatistics(
            keysByStatus: keys, journalBytes: health?.journalBytes ?? 0,
            lastSnapshotSeconds: health?.lastSnapshotSeconds, writesStopped: health?.writesStopped ?? false)
    }

    /// The client whose API token is exactly `token`, compared in constant time; nil for none.
    public func authenticateClient(token: String) -> Int64? {
        guard !token.isEmpty else { return nil }
        return clientHolding(storedToken: configuration.keyStorage.stored(token))
    }

    /// The client whose token is held as `token` (the token, or its stored hash), compared in
    /// constant time; nil for none.
    func clientHolding(storedToken token: String) -> Int64? {
        let digest = state.tokenDigest(token)
        return state.withLock { state in
            guard let clientID = state.clientByTokenDigest[digest], let stored = state.tokenByClient[clientID],
                constantTimeEqual(stored, token)
            else { return nil }
            return clientID
        }
    }

    // MARK: - Write path

    /// The writes without the wait for durability: each returns once applied, with what must
    /// become durable before it may be acknowledged.
    public var deferred: DeferredWrites { DeferredWrites(engine: self) }

    /// Creates a key for an order and returns its record, with the generated `api_key`.
    @discardableResult
    public func create(_ request: NewKey) throws(EngineError) -> KeyRecord {
        try acknowledged(deferred.create(request))
    }

    /// Changes a key's config, status or expiry (SPEC `admin/serviceapikey/update`).
    public func update(_ changes: KeyChanges) throws(EngineError) {
        try acknowledged(deferred.update(changes))
    }

    /// Replaces a key with a newly generated one. The old key stops existing at once, or with
    /// `graceSeconds` (up to ``DeferredWrites/maximumGraceSeconds``) keeps answering for the
    /// order until that time has passed; a later reset ends the grace at once.
    /// `orderID` wins when a reference names both.
    @discardableResult
    public func reset(
        _ reference: KeyReference, as requester: Requester = .admin, graceSeconds: Int64 = 0
    ) throws(EngineError) -> KeyRecord {
        try acknowledged(deferred.reset(reference, as: requester, graceSeconds: graceSeconds))
    }

    /// Suspends an active key.
    public func suspend(orderID: Int64) throws(EngineError) {
        try acknowledged(deferred.suspend(orderID: orderID))
    }

    /// Makes a suspended key active again.
    public func unsuspend(orderID: Int64) throws(EngineError) {
        try acknowledged(deferred.unsuspend(orderID: orderID))
    }

    /// Cancels a key that is active or suspended.
    public func cancel(orderID: Int64) throws(EngineError) {
        try acknowledged(deferred.cancel(orderID: orderID))
    }

    /// Makes a canceled key active again.
    public func uncancel(orderID: Int64) throws(EngineError) {
        try acknowledged(deferred.uncancel(orderID: orderID))
    }

    /// Deletes a key; it stops existing at once.
    public func delete(orderID: Int64) throws(EngineError) {
        try acknowledged(deferred.delete(orderID: orderID))
    }

    /// Creates or rotates the API token of `clientID` and returns it.
    public func resetClientToken(clientID: Int64) throws(EngineError) -> String {
        try acknowledged(deferred.resetClientToken(clientID: clientID))
    }

    /// The value of `written` once it is durable as the fsync policy asks.
    private func acknowledged<R>(_ written: Written<R>) throws(EngineError) -> R {
        try waitUntilDurable(written.pending)
        return written.value
    }

    // MARK: - Helpers

    /// The record named by `reference`, if `requester` may see it; call with the write lock held.
    func resolve(
        _ reference: KeyReference, _ requester: Requester, _ state: borrowing WriteState
    )
        throws(EngineError) -> KeyRecord
    {
        let record: KeyRecord?
        switch reference {
        case .orderID(let orderID):
            guard orderID > 0 else { throw EngineError.invalid("order_id must be a positive integer") }
            record = self.state.record(orderID: orderID, state)
            if record == nil, requester == .admin { throw EngineError.orderNotFound }
        case .key(let key):
            guard !key.isEmpty else { throw EngineError.missingKey }
            var key = configuration.keyStorage.stored(key)
            record = self.state.table.record(key) ?? key.withUTF8 { retiredRecord(UnsafeRawBufferPointer($0)) }
        }
        guard let record else { throw EngineError.keyNotFound }
        if case .client(let clientID) = requester, record.clientID != clientID { throw EngineError.keyNotFound }
        return record
    }
}

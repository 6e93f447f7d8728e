import CXXHash
import Logging
import Synchronization

/// The engine: every operation of the API, usable in-process with no server.
///
/// Reads (`check`, `getInfo`) take no lock (see ``KeyTable``). Writes are serialised by
/// one write lock, validate, turn into a ``KeyMutation``, and are committed in one place,
/// ``commit(_:to:)``, which decides the order "journal, then apply, then acknowledge".
public final class Engine: Sendable {
    /// The limits this engine enforces.
    public let configuration: EngineConfiguration
    private let clock: any EngineClock
    private let generator: KeyGenerator
    private let random: any RandomSource
    private let table: KeyTable<SeededXXH3>
    private let state: Mutex<WriteState>
    /// Seed of the keyed hash that indexes client tokens.
    private let tokenSeed: UInt64
    /// The data directory's journal and background work; nil for an in-memory engine. Set once,
    /// by ``open(directory:options:configuration:clock:random:files:logger:)``, before the engine is
    /// handed out.
    private nonisolated(unsafe) var storage: Storage?
    /// What recovery found when the engine was opened; nil for an in-memory engine.
    public private(set) nonisolated(unsafe) var recoveryReport: RecoveryReport?

    /// An empty engine that keeps its state in memory only.
    public init(
        configuration: EngineConfiguration = EngineConfiguration(), clock: any EngineClock = SystemClock(),
        random: any RandomSource = SystemRandomSource()
    ) {
        self.configuration = configuration
        self.clock = clock
        self.random = random
        self.generator = KeyGenerator(random: random)
        self.table = KeyTable(
            shardCountLog2: configuration.shardCountLog2, hashFunction: SeededXXH3(seed: random.uint64()))
        self.tokenSeed = random.uint64()
        self.state = Mutex(WriteState())
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
        logger: Logger = Logger(label: "APIKeyEngine")
    ) throws(StorageError) -> Engine {
        try createDirectory(directory)
        let lock = try DirectoryLock(directory: directory)
        for name in try files.list(directory) where name.hasSuffix(".snap.tmp") {
            try files.remove(directory + "/" + name)
        }
        let engine = Engine(configuration: configuration, clock: clock, random: random)
        let report = try Recovery.recover(directory: directory, files: files, into: engine)
        var verifiedSnapshots = Set<UInt64>()
        if let loaded = report.snapshot.flatMap(SnapshotFile.names.sequence(of:)) { verifiedSnapshots.insert(loaded) }
        for rejected in report.rejectedSnapshots { logger.critical("snapshot rejected: \(rejected)") }
        // A snapshot that fails verification is set aside, so it is never again taken for one
        // that a fallback could use, and kept for inspection.
        for name in report.rejectedSnapshotNames {
            let path = directory + "/" + name
            try files.rename(path, to: path + ".corrupt-\(clock.nowSeconds())")
            logger.critical("set aside rejected snapshot \(name)")
        }
        if let corruption = report.corruption {
            logger.critical("journal corruption, replay stopped: \(corruption)")
            if options.strictRecovery {
                throw StorageError("refusing to start (strict recovery): journal corruption at \(corruption)")
            }
            // What was read becomes a snapshot before the damaged segments are set aside, so a
            // crash in between never leaves a journal that starts after a gap.
            let contents = engine.state.withLock { engine.snapshotContents(lastSequence: report.lastSequence, $0) }
            _ = try SnapshotFile.write(contents, directory: directory, files: files)
            verifiedSnapshots.insert(report.lastSequence)
            for name in report.unreplayedSegments {
                let path = directory + "/" + name
                let setAside = path + ".corrupt-\(clock.nowSeconds())"
                try files.rename(path, to: setAside)
                logger.critical("set aside unreadable journal segment \(name)")
                // The intact start of the damaged segment goes back in its place, so the journal
                // still reaches from older snapshots to the one just written: if that one is ever
                // corrupt too, a fallback replays through here instead of stopping at a gap.
                if let intact = report.corruptSegment, intact.name == name,
                    intact.validLength > JournalFormat.segmentHeaderSize
                {
                    let bytes = try files.read(setAside)
                    let file = try files.openForAppend(path)
                    try file.write(Array(bytes[0..<intact.validLength]))
                    try file.sync()
                    logger.critical("kept the intact start of \(name) (\(intact.validLength) bytes) in the journal")
                }
            }
        }
        if let torn = report.tornSegment {
            logger.warning("dropped a torn journal record (a write cut short by a crash): \(report.tornTail ?? "")")
            let path = directory + "/" + torn.name
            if torn.validLength == 0 { try files.remove(path) } else { try files.truncate(path, to: torn.validLength) }
        }
        try files.syncDirectory(directory)
        logger.info(
            "recovered \(engine.keyCount) keys: \(report.snapshot ?? "no snapshot") (\(report.snapshotEntries) entries), \(report.replayedRecords) journal records, last sequence \(report.lastSequence)"
        )
        let storage = try Storage(
            directory: directory, files: files, options: options, lock: lock, lastSequence: report.lastSequence,
            verifiedSnapshots: verifiedSnapshots, nowSeconds: clock.nowSeconds(), logger: logger)
        engine.storage = storage
        engine.recoveryReport = report
        storage.startBackgroundWork(clock: clock) { [weak engine] in
            guard let engine else { return }
            do throws(EngineError) {
                let summary = try engine.snapshot()
                logger.info("snapshot \(summary.path): \(summary.entries) entries, \(summary.bytes) bytes")
            } catch {
                logger.error("background snapshot failed: \(error.message)")
            }
        }
        return engine
    }

    /// What recovery would find in `directory`, without changing anything there: the state is
    /// loaded as a server would load it, then every record is checked
    /// (``RecoveryReport/integrityProblems``).
    public static func verifyData(
        directory: String, files: any FileLayer = PosixFileLayer()
    )
        throws(StorageError) -> RecoveryReport
    {
        let engine = Engine()
        var report = try Recovery.recover(directory: directory, files: files, into: engine)
        report.integrityProblems = engine.integrityProblems()
        return report
    }

    /// What is wrong with the loaded state; empty when all is well. Checks the key table's
    /// structure, and that the order index, the key index, the index by client and every
    /// record's bytes agree: each indexed order's record is found by its key, its config text is
    /// a JSON object as the encoder writes it, and its custom-parameter text is the one that
    /// config gives. Takes the write lock; reads every record.
    public func integrityProblems(limit: Int = 100) -> [String] {
        var problems = table.structuralProblems()
        state.withLock { state in
            if state.orders.count != table.count {
                problems.append("the order index holds \(state.orders.count) orders, the key table \(table.count) keys")
            }
            for entry in state.orders.entries where problems.count < limit {
                let orderID = entry.orderID
                guard let record = table.record(orderID: orderID, hash: entry.keyHash) else {
                    problems.append("order \(orderID) is indexed but its record is not in the key table")
                    continue
                }
                if table.record(record.apiKey) != record {
                    problems.append("order \(orderID): a lookup by its key finds another record")
                }
                if state.ordersByClient[record.clientID]?.contains(orderID) != true {
                    problems.append("order \(orderID) is missing from client \(record.clientID)'s index")
                }
                guard orderID > 0, record.clientID > 0, !record.apiKey.isEmpty else {
                    problems.append("order \(orderID): order, client or key out of range")
                    continue
                }
                guard let config = try? JSONValue.parse(record.configJSON), case .object = config,
                    config.encoded[...] == record.configJSON
                else {
                    problems.append("order \(orderID): the config text is not a JSON object as written")
                    continue
                }
                if CustomParameters.encodedObject(of: config)[...] != record.customParametersJSON {
                    problems.append("order \(orderID): the custom parameters do not match the config")
                }
                if let expiresAt = record.expiresAt,
                    !(Timestamp.minimumSeconds...Timestamp.maximumSeconds).contains(expiresAt)
                {
                    problems.append("order \(orderID): expires_at \(expiresAt) is out of range")
                }
            }
            let clientIndexed = state.ordersByClient.values.reduce(0) { $0 + $1.count }
            if clientIndexed != state.orders.count {
                problems.append(
                    "the index by client holds \(clientIndexed) orders, the order index \(state.orders.count)")
            }
            let highestOrder = state.orders.entries.last?.orderID ?? 0
            if highestOrder != .max, state.nextOrderID <= highestOrder {
                problems.append("the next order ID \(state.nextOrderID) is not above the highest, \(highestOrder)")
            }
            for (clientID, token) in state.tokenByClient where state.clientByTokenDigest[tokenDigest(token)] != clientID
            {
                problems.append("client \(clientID)'s token is not indexed")
            }
        }
        return Array(problems.prefix(limit))
    }

    /// Writes a snapshot of the whole state now, then removes what it makes redundant. Checks go
    /// on meanwhile; writes pause only while the shards are copied.
    @discardableResult
    public func snapshot() throws(EngineError) -> SnapshotSummary {
        guard let storage else { throw EngineError("This engine has no data directory") }
        let started = storage.snapshotGate.withLock { running in
            defer { running = true }
            return !running
        }
        guard started else { throw EngineError("A snapshot is already running") }
        defer { storage.snapshotGate.withLock { $0 = false } }
        let startNanoseconds = SystemClock.monotonicNanoseconds()
        let contents = try state.withLock { (state) throws(EngineError) -> SnapshotFile.Contents in
            let lastSequence: UInt64
            do throws(StorageError) {
                lastSequence = try storage.journal.rotate()
            } catch {
                throw EngineError.writesStopped(error)
            }
            return snapshotContents(lastSequence: lastSequence, state)
        }
        storage.lastSnapshot.withLock { $0 = (storage.journal.appendedBytes, clock.nowSeconds()) }
        do throws(StorageError) {
            let (path, header) = try SnapshotFile.write(
                contents, directory: storage.directory, files: storage.files,
                compressionLevel: storage.options.compressionLevel, afterStep: storage.snapshotStepHook)
            storage.snapshotWritten(header.lastSequence)
            try storage.pruneAfterSnapshot()
            return SnapshotSummary(
                path: path, lastSequence: header.lastSequence, entries: header.entryCount,
                bytes: header.compressedBytes + UInt64(SnapshotFile.magic.count + SnapshotFile.trailerSize),
                nanoseconds: SystemClock.monotonicNanoseconds() - startNanoseconds)
        } catch {
            throw EngineError("Snapshot failed: \(error.message)", code: EngineError.unavailableCode)
        }
    }

    /// The whole state for a snapshot; call with the write lock held.
    private func snapshotContents(lastSequence: UInt64, _ state: borrowing WriteState) -> SnapshotFile.Contents {
        SnapshotFile.Contents(
            lastSequence: lastSequence, nextOrderID: state.nextOrderID, records: table.copyRecords(),
            clientTokens: state.tokenByClient.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// Stops background work, writes a final snapshot (when configured and anything was written
    /// since the newest one), fsyncs the journal, releases the data directory and refuses writes
    /// from then on. Reads keep working. A final snapshot that fails (a full disk) still leaves the
    /// journal fsynced and closed, then throws: nothing is lost, the next start replays the journal.
    public func close() throws(EngineError) {
        guard let storage else { return }
        storage.stopBackgroundWork()
        defer { storage.abandon() }
        var snapshotFailure: EngineError?
        if storage.options.snapshotOnClose, storage.journal.latchedFailure == nil, !storage.isCoveredBySnapshot {
            do {
                try snapshot()
            } catch {
                storage.logger.error("final snapshot failed, the journal keeps everything: \(error.message)")
                snapshotFailure = error
            }
        }
        do {
            try storage.journal.close()
        } catch {
            throw EngineError.writesStopped(error)
        }
        if let snapshotFailure { throw snapshotFailure }
    }

    /// The key table, for tests of its memory.
    var tableForTesting: KeyTable<SeededXXH3> { table }

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
    /// calls this first, and the lookup that follows finds that memory in cache. Changes
    /// nothing; any bytes are fine.
    public func prefetch(keyBytes: UnsafeRawBufferPointer) {
        table.prefetch(keyBytes)
    }

    /// Whether the key with these UTF-8 bytes is valid now.
    public func check(keyBytes: UnsafeRawBufferPointer) throws(EngineError) -> Bool {
        guard keyBytes.count > 0 else { throw EngineError.missingKey }
        guard let validity = table.validity(keyBytes) else { throw EngineError.keyNotFound }
        return validity.isValid { clock.nowNanoseconds() }
    }

    /// Validity and custom parameters of `key`, copied into a ``KeyInfo``.
    public func getInfo(key: String) throws(EngineError) -> KeyInfo {
        try withInfo(key: key, KeyInfo.init(valid:copying:))
    }

    /// Validity and custom parameters of the key with these UTF-8 bytes, copied into a ``KeyInfo``.
    public func getInfo(keyBytes: UnsafeRawBufferPointer) throws(EngineError) -> KeyInfo {
        try withInfo(keyBytes: keyBytes, KeyInfo.init(valid:copying:))
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
    @inlinable
    public func withInfo<R>(
        keyBytes: UnsafeRawBufferPointer, _ body: (Bool, UnsafeRawBufferPointer) -> R
    )
        throws(EngineError) -> R
    {
        var answer: R?
        try visitInfo(keyBytes: keyBytes) { valid, custom in answer = body(valid, custom) }
        return answer!
    }

    /// The non-generic body of ``withInfo(keyBytes:_:)``: calls `body` exactly once or throws.
    @usableFromInline
    func visitInfo(
        keyBytes: UnsafeRawBufferPointer, _ body: (Bool, UnsafeRawBufferPointer) -> Void
    )
        throws(EngineError)
    {
        guard keyBytes.count > 0 else { throw EngineError.missingKey }
        let found = table.withInfo(keyBytes) { validity, custom in
            body(validity.isValid { clock.nowNanoseconds() }, custom)
        }
        guard found else { throw EngineError.keyNotFound }
    }

    /// The record named by `reference`, if `requester` may see it.
    ///
    /// Admins get ``EngineError/orderNotFound`` or ``EngineError/keyNotFound``; a client asking for
    /// a key that is not theirs gets ``EngineError/keyNotFound``, exactly as for an unknown key.
    public func get(_ reference: KeyReference, as requester: Requester = .admin) throws(EngineError) -> KeyRecord {
        try state.withLock { state throws(EngineError) in try resolve(reference, requester, state) }
    }

    /// One page of records by ascending order ID, filtered by owner and status.
    ///
    /// `page` counts from 1; `perPage` defaults to ``EngineConfiguration/defaultPageSize`` and
    /// may not exceed ``EngineConfiguration/maximumPageSize``.
    public func list(
        clientID: Int64? = nil, status: KeyStatus? = nil, page: Int = 1, perPage: Int? = nil,
        as requester: Requester = .admin
    ) throws(EngineError) -> KeyPage {
        let perPage = perPage ?? configuration.defaultPageSize
        guard page >= 1 else { throw EngineError("page must be an integer of at least 1") }
        guard (1...configuration.maximumPageSize).contains(perPage) else {
            throw EngineError("per_page must be an integer from 1 to \(configuration.maximumPageSize)")
        }
        var owner = clientID
        if case .client(let id) = requester { owner = id }
        return state.withLock { state in
            let offset = (page - 1).multipliedReportingOverflow(by: perPage)
            let start = offset.overflow ? Int.max : offset.partialValue
            var records: [KeyRecord] = []
            var total = 0
            func visit(_ orderID: Int64, _ keyHash: UInt64?) {
                guard let keyHash, let record = table.record(orderID: orderID, hash: keyHash) else { return }
                if let status, record.status != status { return }
                if total >= start, records.count < perPage { records.append(record) }
                total += 1
            }
            if let owner {
                for orderID in state.ordersByClient[owner] ?? [] { visit(orderID, state.orders[orderID]) }
            } else {
                for entry in state.orders.entries { visit(entry.orderID, entry.keyHash) }
            }
            return KeyPage(list: records, total: total, page: page, perPage: perPage)
        }
    }

    /// How many keys the engine holds.
    public var keyCount: Int { state.withLock { $0.orders.count } }

    /// The client whose API token is exactly `token`, compared in constant time; nil for none.
    public func authenticateClient(token: String) -> Int64? {
        guard !token.isEmpty else { return nil }
        let digest = tokenDigest(token)
        return state.withLock { state in
            guard let clientID = state.clientByTokenDigest[digest], let stored = state.tokenByClient[clientID],
                constantTimeEqual(stored, token)
            else { return nil }
            return clientID
        }
    }

    // MARK: - Write path

    /// Creates a key for an order and returns its record, with the generated `api_key`.
    @discardableResult
    public func create(_ request: NewKey) throws(EngineError) -> KeyRecord {
        try write { state throws(EngineError) in
            guard request.clientID > 0 else { throw EngineError("client_id must be a positive integer") }
            if let orderID = request.orderID {
                guard orderID > 0 else { throw EngineError("order_id must be a positive integer") }
                guard state.orders[orderID] == nil else {
                    throw EngineError("Order \(orderID) already has an API key")
                }
            }
            guard state.orders.count < configuration.maximumKeys else {
                throw EngineError("The engine holds its maximum of \(configuration.maximumKeys) keys")
            }
            if request.orderID == nil, state.orders[state.nextOrderID] != nil {
                throw EngineError("No order ID is left to assign after \(Int64.max); give order_id")
            }
            let options = try validatedOptions(request.config)
            try validateExpiry(request.expiresAt)
            let apiKey = try generator.generateUnique(options) { table.contains($0) }
            let now = clock.nowSeconds()
            let record = KeyRecord(
                orderID: request.orderID ?? state.nextOrderID, clientID: request.clientID, apiKey: apiKey,
                config: request.config, status: request.status, expiresAt: request.expiresAt, createdAt: now,
                updatedAt: now)
            return (record, .put(record))
        }
    }

    /// Changes a key's config, status or expiry (SPEC `admin/serviceapikey/update`).
    public func update(_ changes: KeyChanges) throws(EngineError) {
        try write { state throws(EngineError) in
            var record = try resolve(.orderID(changes.orderID), .admin, state)
            if let apiKey = changes.apiKey, apiKey != record.apiKey { throw EngineError.keyChangeRefused }
            if let config = changes.config {
                _ = try validatedOptions(config)
                record.config = config
            }
            let statusFromValid = changes.valid.map { $0 ? KeyStatus.active : KeyStatus.suspended }
            if let statusFromValid, let status = changes.status, status != statusFromValid {
                throw EngineError("valid and status disagree; give one of them")
            }
            if let status = changes.status ?? statusFromValid { record.status = status }
            if let expiresAt = changes.expiresAt {
                try validateExpiry(expiresAt)
                record.expiresAt = expiresAt
            }
            record.updatedAt = clock.nowSeconds()
            return ((), .put(record))
        }
    }

    /// Replaces a key with a newly generated one; the old key stops existing at once.
    /// `orderID` wins when a reference names both.
    @discardableResult
    public func reset(_ reference: KeyReference, as requester: Requester = .admin) throws(EngineError) -> KeyRecord {
        try write { state throws(EngineError) in
            var record = try resolve(reference, requester, state)
            let options = try validatedOptions(record.config)
            record.apiKey = try generator.generateUnique(options) { table.contains($0) }
            record.updatedAt = clock.nowSeconds()
            return (record, .put(record))
        }
    }

    /// Suspends an active key.
    public func suspend(orderID: Int64) throws(EngineError) {
        try transition(orderID, from: [.active], to: .suspended, "Only active orders can be suspended")
    }

    /// Makes a suspended key active again.
    public func unsuspend(orderID: Int64) throws(EngineError) {
        try transition(orderID, from: [.suspended], to: .active, "Only suspended orders can be unsuspended")
    }

    /// Cancels a key that is active or suspended.
    public func cancel(orderID: Int64) throws(EngineError) {
        try transition(orderID, from: [.active, .suspended], to: .canceled, "The order is already canceled")
    }

    /// Makes a canceled key active again.
    public func uncancel(orderID: Int64) throws(EngineError) {
        try transition(orderID, from: [.canceled], to: .active, "Only canceled orders can be uncanceled")
    }

    /// Deletes a key; it stops existing at once.
    public func delete(orderID: Int64) throws(EngineError) {
        try write { state throws(EngineError) in
            _ = try resolve(.orderID(orderID), .admin, state)
            return ((), .delete(orderID: orderID))
        }
    }

    /// Creates or rotates the API token of `clientID` and returns it.
    public func resetClientToken(clientID: Int64) throws(EngineError) -> String {
        guard clientID > 0 else { throw EngineError("client_id must be a positive integer") }
        let token = random.hexToken(byteCount: 32)
        try write { _ throws(EngineError) in ((), .setClientToken(clientID: clientID, token: token)) }
        return token
    }

    /// Runs `body`, whose write calls return as soon as they are applied instead of waiting for
    /// fsync, and returns its result with what must become durable before the result may be
    /// acknowledged: nil when nothing must (nothing was written, or the fsync policy is
    /// `everysec` or `no`).
    ///
    /// For servers on event loops: apply the write at once, then acknowledge it from
    /// ``whenDurable(_:_:)`` (or block in ``waitUntilDurable(_:)``); concurrent writers share
    /// fsyncs without a thread per writer.
    public func deferringDurability<R: Sendable>(
        _ body: () throws(EngineError) -> R
    )
        -> (result: Result<R, EngineError>, pending: PendingDurability?)
    {
        let deferral = DurabilityDeferral()
        let result = DurabilityDeferral.with(deferral) { Result { () throws(EngineError) in try body() } }
        return (result, deferral.sequence.map(PendingDurability.init))
    }

    /// Returns once `pending` is durable, fsyncing (for every writer waiting at the time) if no
    /// fsync under way covers it; throws ``EngineError/writesStopped(_:)`` when the journal failed.
    public func waitUntilDurable(_ pending: PendingDurability) throws(EngineError) {
        guard let storage else { return }
        do {
            try storage.journal.waitUntilDurable(pending.sequence)
        } catch {
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
        storage.journal.whenDurable(pending.sequence) { failure in callback(failure.map(EngineError.writesStopped)) }
    }

    // MARK: - Commit

    /// The write path: `body` validates against the current state and returns the result and the
    /// one mutation that achieves it; the mutation is committed under the same lock, and the
    /// call returns (acknowledges) only once the fsync policy says the record is safe.
    private func write<R: Sendable>(
        _ body: (inout WriteState) throws(EngineError) -> (R, KeyMutation)
    )
        throws(EngineError) -> R
    {
        let (result, sequence) = try state.withLock { (state) throws(EngineError) -> (R, UInt64?) in
            let (result, mutation) = try body(&state)
            return (result, try commit(mutation, to: &state))
        }
        if let sequence, let storage, storage.options.fsync == .always {
            if let deferral = DurabilityDeferral.current {
                deferral.sequence = max(deferral.sequence ?? 0, sequence)
            } else {
                do {
                    try storage.journal.waitUntilDurable(sequence)
                } catch {
                    throw EngineError.writesStopped(error)
                }
            }
        }
        return result
    }

    /// The one place where a mutation takes effect: journal, then apply. Returns the journal
    /// sequence number, nil for an engine without a data directory.
    private func commit(_ mutation: KeyMutation, to state: inout WriteState) throws(EngineError) -> UInt64? {
        var sequence: UInt64?
        if let storage {
            do {
                sequence = try storage.journal.append(mutation)
            } catch {
                storage.logger.critical("journal write failed, writes are stopped: \(error)")
                throw EngineError.writesStopped(error)
            }
        }
        apply(mutation, to: &state)
        assert(appliedProblems(mutation, state) == nil, appliedProblems(mutation, state) ?? "")
        return sequence
    }

    /// Why the state does not hold exactly what `mutation` stores, as the journal stores it (its
    /// encoded form decoded again); nil when it does. Checked after every commit in debug builds.
    private func appliedProblems(_ mutation: KeyMutation, _ state: borrowing WriteState) -> String? {
        var payload: [UInt8] = []
        MutationCodec.encodePayload(mutation, into: &payload)
        guard let journaled = MutationCodec.decode(type: MutationCodec.type(of: mutation), payload: payload[...]),
            journaled == mutation
        else { return "the journal's form of \(mutation) decodes to something else" }
        switch journaled {
        case .put(let record):
            let stored = state.orders[record.orderID].flatMap { table.record(orderID: record.orderID, hash: $0) }
            guard stored == record, table.record(record.apiKey) == record else {
                return
                    "order \(record.orderID) was journaled as \(record) but the table holds \(String(describing: stored))"
            }
        case .delete(let orderID):
            guard state.orders[orderID] == nil else { return "order \(orderID) was deleted but is still indexed" }
        case .setClientToken(let clientID, let token):
            guard state.tokenByClient[clientID] == token else { return "client \(clientID) token not applied" }
        }
        return nil
    }

    /// Applies a mutation to the table and the indexes; deterministic.
    private func apply(_ mutation: KeyMutation, to state: inout WriteState) {
        switch mutation {
        case .put(let record):
            if state.isBulkLoading {
                // A snapshot holds each order once: nothing to replace, indexes sorted at the end.
                _ = table.insert(record)
                state.orders.appendUnsorted(record.orderID, keyHash: table.hash(record.apiKey))
                state.ordersByClient[record.clientID, default: []].append(record.orderID)
            } else if let oldHash = state.orders[record.orderID] {
                // Keys are unique, so a record with this key is this order's: swapped in one step,
                // checks of the key never miss it.
                if let oldClient = table.replace(record) {
                    if oldClient != record.clientID {
                        state.removeFromClient(oldClient, record.orderID)
                        state.addToClient(record.clientID, record.orderID)
                    }
                } else {
                    let old = table.remove(orderID: record.orderID, hash: oldHash)
                    _ = table.insert(record)
                    if let old, old.clientID != record.clientID {
                        state.removeFromClient(old.clientID, record.orderID)
                        state.addToClient(record.clientID, record.orderID)
                    }
                    state.orders.set(record.orderID, keyHash: table.hash(record.apiKey))
                }
            } else {
                _ = table.insert(record)
                state.orders.set(record.orderID, keyHash: table.hash(record.apiKey))
                state.addToClient(record.clientID, record.orderID)
            }
            state.raiseNextOrderID(past: record.orderID)
        case .delete(let orderID):
            guard let hash = state.orders.remove(orderID) else { return }
            if let old = table.remove(orderID: orderID, hash: hash) { state.removeFromClient(old.clientID, orderID) }
        case .setClientToken(let clientID, let token):
            if let old = state.tokenByClient[clientID] {
                state.clientByTokenDigest.removeValue(forKey: tokenDigest(old))
            }
            state.tokenByClient[clientID] = token
            state.clientByTokenDigest[tokenDigest(token)] = clientID
        }
    }

    // MARK: - Helpers

    private func transition(
        _ orderID: Int64, from allowed: Set<KeyStatus>, to status: KeyStatus, _ refusal: String
    )
        throws(EngineError)
    {
        try write { state throws(EngineError) in
            var record = try resolve(.orderID(orderID), .admin, state)
            guard allowed.contains(record.status) else { throw EngineError(refusal) }
            record.status = status
            record.updatedAt = clock.nowSeconds()
            return ((), .put(record))
        }
    }

    private func resolve(
        _ reference: KeyReference, _ requester: Requester, _ state: borrowing WriteState
    )
        throws(EngineError) -> KeyRecord
    {
        let record: KeyRecord?
        switch reference {
        case .orderID(let orderID):
            guard orderID > 0 else { throw EngineError("order_id must be a positive integer") }
            record = state.orders[orderID].flatMap { hash in table.record(orderID: orderID, hash: hash) }
            if record == nil, requester == .admin { throw EngineError.orderNotFound }
        case .key(let key):
            guard !key.isEmpty else { throw EngineError.missingKey }
            record = table.record(key)
        }
        guard let record else { throw EngineError.keyNotFound }
        if case .client(let clientID) = requester, record.clientID != clientID { throw EngineError.keyNotFound }
        return record
    }

    private func validatedOptions(_ config: JSONValue) throws(EngineError) -> KeyGenerationOptions {
        guard case .object = config else { throw EngineError("config must be a JSON object") }
        let size = config.encoded.count
        guard size <= configuration.maximumConfigBytes else {
            throw EngineError(
                "config is \(size) bytes as JSON; the limit is \(configuration.maximumConfigBytes) bytes")
        }
        return try KeyGenerationOptions(config: config)
    }

    private func validateExpiry(_ expiresAt: Int64?) throws(EngineError) {
        guard let expiresAt else { return }
        guard (Timestamp.minimumSeconds...Timestamp.maximumSeconds).contains(expiresAt) else {
            throw EngineError("expires_at must lie between the years 1 and 9999")
        }
    }

    private func tokenDigest(_ token: String) -> TokenDigest {
        var token = token
        let hash = token.withUTF8 { XXH3_128bits_withSeed($0.baseAddress, $0.count, tokenSeed) }
        return TokenDigest(low: hash.low64, high: hash.high64)
    }
}

extension Engine: RecoveryTarget {
    func reset() {
        table.removeAll()
        state.withLock { $0 = WriteState() }
    }

    func beginSnapshot(entryCount: Int) {
        table.reserveCapacity(entryCount)
        state.withLock { state in
            state.isBulkLoading = true
            state.orders.reserveCapacity(entryCount)
        }
    }

    func endSnapshot() {
        state.withLock { $0.endBulkLoad() }
    }

    func apply(_ mutation: KeyMutation) {
        state.withLock { apply(mutation, to: &$0) }
    }

    func raiseNextOrderID(to orderID: Int64) {
        state.withLock { state in state.nextOrderID = max(state.nextOrderID, orderID) }
    }
}

import APIKeyAPI
import APIKeyEngine
import Dispatch
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// One node of a cluster on PostgreSQL: the whole key table in memory (the engine, whose data
/// directory is a cache of the cluster's state with the change log's position it holds), every
/// write committed to PostgreSQL first, every other node's change applied from the ordered
/// change log.
///
/// - **Writes** (``write(_:completion:)``): one transaction that locks the change log's row (so
///   commits are serialised and positions are drawn in commit order), reads and applies the
///   changes this node has not applied yet, plans the write against that current state, writes
///   the rows and appends the change, and commits; the node applies its own change and answers.
///   A write PostgreSQL cannot take answers 503 and changes nothing here.
/// - **Following**: a connection of its own LISTENs for the log's notifications and reads the
///   changes after the last applied position, woken by a notification or by the poll interval.
///   Applying requires each position to follow the last; a gap (changes pruned while this node was
///   away) makes the node load the whole table again.
/// - **Quotas**: ``QuotaLeases`` passes limited uses only from blocks leased by a conditional
///   `UPDATE`; the counts are flushed every interval as a change of their own.
public final class ClusterNode: WriteCoordinator, Service, Sendable {
    /// The node's engine; writes go through the node, reads go to it directly.
    public let engine: Engine
    let configuration: ClusterConfiguration
    let logger: Logger
    let client: PostgresClient
    let schema: ClusterSchema
    let rows: SystemOfRecord
    let leases: QuotaLeases
    let metrics = ClusterMetrics()
    private let progress = Mutex(Progress())
    private let wake = WakeSignal()
    /// Serialises applying changes to the engine, so positions are applied once and in order.
    private let applying = Mutex(())
    /// This node's writes (and flushes), one at a time.
    private let turn = WriteTurn()
    /// The longest one write or flush holds the turn.
    private var turnLimit: Duration { configuration.writeTimeout + .seconds(1) }
    /// The longest one round of following waits for PostgreSQL before it gives the connection up.
    private var catchUpLimit: Duration { configuration.writeTimeout * 2 }
    /// Failed leases are logged at most every ten seconds (an outage fails every one).
    private let leaseWarnings = LogThrottle(seconds: 10)

    struct Progress {
        var logID: UInt64?
        var position: Int64 = 0
        var ready = false
        var postgresUp = false
        var problem = "not connected to PostgreSQL yet"
        var reconnecting = false
    }

    /// Opens the data directory as this node's cache (creating it when missing) and makes the
    /// node; ``run()`` connects it. Refuses a directory that holds keys of a single-node engine
    /// (it has no change position): the cluster's table would replace them.
    public static func open(
        directory: String, options: StorageOptions = StorageOptions(),
        engineConfiguration: EngineConfiguration = EngineConfiguration(), cluster: ClusterConfiguration,
        logger: Logger
    ) throws -> ClusterNode {
        let leases = QuotaLeases(exhaustedForNanoseconds: cluster.flushInterval.nanoseconds)
        let engine = try Engine.open(
            directory: directory, options: options, configuration: engineConfiguration, logger: logger,
            quotaLedger: leases)
        if engine.changePosition == nil, engine.keyCount > 0 {
            try? engine.close()
            throw ClusterConfigurationError(
                "\(directory) holds \(engine.keyCount) keys of a single-node engine; a cluster node needs a new data directory (export the keys and create them through the cluster's API)"
            )
        }
        return ClusterNode(engine: engine, leases: leases, configuration: cluster, logger: logger)
    }

    init(engine: Engine, leases: QuotaLeases, configuration: ClusterConfiguration, logger: Logger) {
        self.engine = engine
        self.leases = leases
        self.configuration = configuration
        self.logger = logger
        self.schema = ClusterSchema(name: configuration.schema)
        self.rows = SystemOfRecord(schema: schema)
        var postgresLogger = logger
        postgresLogger.logLevel = max(logger.logLevel, .warning)
        self.client = PostgresClient(configuration: configuration.postgres, backgroundLogger: postgresLogger)
    }

    /// The change log's channel for notifications.
    private var channel: String { "\(configuration.schema)_changes" }

    // MARK: - Running

    /// Connects, migrates the schema, catches up and follows the change log until graceful
    /// shutdown (or cancellation); then flushes the counted uses and hands unused leases back.
    public func run() async throws {
        // Detached: the pool would shut down at the graceful shutdown it inherits, before the
        // last flush has used it. It ends when cancelled, after that flush.
        let pool = Task.detached { await self.client.run() }
        let following = Task {
            await withDiscardingTaskGroup { following in
                following.addTask { await self.follow() }
                following.addTask { await self.flushEveryInterval() }
            }
        }
        try? await gracefulShutdown()
        following.cancel()
        await following.value
        await finish()
        pool.cancel()
        await pool.value
    }

    /// Why the node may not serve yet; nil once it has caught up with the cluster.
    public var notReadyReason: String? {
        progress.withLock { $0.ready ? nil : "not caught up with the cluster: \($0.problem)" }
    }

    /// Whether the last exchange with PostgreSQL succeeded.
    public var isPostgresUp: Bool { progress.withLock { $0.postgresUp } }

    /// The change log's position this node has applied.
    public var appliedPosition: Int64 { progress.withLock { $0.position } }

    private func follow() async {
        var backoff = Duration.milliseconds(100)
        var connectionID = 0
        while !Task.isCancelled {
            do {
                connectionID += 1
                let connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration.followerConnection,
                    id: connectionID, logger: logger
                ).get()
                defer { Task { try? await connection.close() } }
                if progress.withLock({ $0.logID == nil }) { try await start(on: connection) }
                backoff = .milliseconds(100)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await connection.listen(on: self.channel) { notifications in
                            for try await _ in notifications { self.wake.signal() }
                        }
                        throw ClusterFailure("the notification stream ended")
                    }
                    group.addTask {
                        var sincePrune = ContinuousClock.now
                        while !Task.isCancelled {
                            // Bounded, like writes: a read on a connection that died without
                            // saying so must not leave this node behind for long. A catch-up cut
                            // short keeps what it applied; the next connection reads on.
                            try await Deadline.run(within: self.catchUpLimit) { try await self.catchUp(on: connection) }
                            self.markUp()
                            if ContinuousClock.now - sincePrune > .seconds(60) {
                                try await self.prune(on: connection)
                                sincePrune = ContinuousClock.now
                            }
                            await self.wake.wait(timeout: self.configuration.pollInterval)
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            } catch let gap as LogGap {
                if gap.pruned {
                    logger.notice(
                        "change \(gap.missing) is no longer in the log (this node is further behind than the log keeps); loading the whole table"
                    )
                }
            } catch is EngineClosed {
                return
            } catch let failure as ApplyFailure {
                if Task.isCancelled { return }
                markUnable(failure)
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maximumBackoff)
            } catch {
                if Task.isCancelled { return }
                markDown(error)
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maximumBackoff)
            }
        }
    }

    /// Migrates the schema, then decides where this node reads on from: its cache's position
    /// when that is of this log and still retained, else the whole table.
    private func start(on connection: PostgresConnection) async throws {
        let logID = try await schema.migrate(
            connection, keyStorage: engine.configuration.keyStorage, logger: logger)
        let local = engine.changePosition
        var usable = local?.logID == logID
        var ahead = false
        if let local, usable {
            var oldest: Int64?
            for try await found in try await connection.query(
                "SELECT min(position) FROM \(unescaped: schema.table("changes"))", logger: logger
            ).decode(Int64?.self) {
                oldest = found
            }
            let last = try await lastPosition(on: connection)
            if local.position > last {
                // The database went back in time (restored from a backup): what this cache
                // holds past `last` may differ from what the log will hold there.
                logger.warning(
                    "cluster node's cache is at change \(local.position) but the log ends at \(last) (was the database restored?); loading the whole table"
                )
                usable = false
                ahead = true
            } else {
                // Usable when the next change it needs is still in the log (or none is needed).
                usable = local.position == last || (oldest.map { local.position + 1 >= $0 } ?? false)
            }
        }
        if let local, usable {
            progress.withLock {
                $0.logID = logID
                $0.position = local.position
            }
            logger.info("cluster node reads on from its cache at change \(local.position)")
            return
        }
        if let local, !ahead {
            logger.notice(
                "cluster node's cache (change \(local.position)) is of another log or older than the log keeps; loading the whole table"
            )
        }
        try await loadAll(on: connection, logID: logID)
    }

    private func loadAll(on connection: PostgresConnection, logID: UInt64) async throws {
        let started = ContinuousClock.now
        var loaded = 0
        let localOrders = engine.orderIDs
        let position = try await rows.loadAll(connection, logger: logger, localOrderIDs: localOrders) { batch in
            try applying.withLock { _ in
                do throws(EngineError) {
                    _ = try engine.applyReplicated(batch, position: nil)
                } catch {
                    throw Self.applyFailure(error, "the cluster's table")
                }
            }
            loaded += batch.count
        }
        guard position.logID == logID else { throw ClusterFailure("the change log was recreated during the load") }
        try applying.withLock { _ in
            do throws(EngineError) {
                _ = try engine.applyReplicated([], position: position)
            } catch {
                throw Self.applyFailure(error, "the cluster's table")
            }
        }
        // Leases asked for under the records as they were are not used under the loaded ones.
        leases.revokeAll()
        progress.withLock {
            $0.logID = logID
            $0.position = position.position
        }
        logger.info(
            "cluster node loaded the whole table: \(loaded) entries at change \(position.position) in \(ContinuousClock.now - started)"
        )
    }

    private func lastPosition(on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Int64 {
        var last: Int64 = 0
        for try await found in try await connection.query(
            "SELECT last_position FROM \(unescaped: schema.table("change_log")) WHERE id = 1\(unescaped: forUpdate ? " FOR UPDATE" : "")",
            logger: logger
        ).decode(Int64.self) {
            last = found
        }
        return last
    }

    /// Reads and applies every change after the last applied one, up to the log's last position.
    private func catchUp(on connection: PostgresConnection, upTo known: Int64? = nil) async throws {
        let last: Int64
        if let known {
            last = known
        } else {
            last = try await lastPosition(on: connection)
        }
        metrics.latestPosition(last)
        // Ahead of `last` by a change of this node's committed since `last` was read, or the log
        // went back: read it again to tell (a change applied here is committed, so the log's
        // position read now includes it).
        if appliedPosition > last, appliedPosition > (try await lastPosition(on: connection)) {
            // The log ends before what this node applied: the database went back in time.
            logger.warning(
                "the change log ends at \(last), before change \(appliedPosition) this node applied (was the database restored?); loading the whole table"
            )
            reloadWholeTable("the change log went back to \(last)")
            throw LogGap(missing: last + 1, pruned: false)
        }
        while true {
            let from = progress.withLock { $0.position }
            guard from < last else { break }
            var changes: [(Int64, ByteBuffer, Double)] = []
            for try await row in try await connection.query(
                """
                SELECT position, payload, extract(epoch FROM committed_at)::float8
                FROM \(unescaped: schema.table("changes"))
                WHERE position > \(from) AND position <= \(last) ORDER BY position LIMIT 1000
                """, logger: logger
            ).decode((Int64, ByteBuffer, Double).self) {
                changes.append(row)
            }
            guard let first = changes.first, first.0 == from + 1 else {
                // Pruned while this node was away: the next connection loads the whole table.
                reloadWholeTable("change \(from + 1) was pruned before this node read it")
                throw LogGap(missing: from + 1)
            }
            try apply(changes)
        }
        metrics.lag(changes: max(0, last - progress.withLock { $0.position }))
    }

    /// Applies changes read from the log, in order, skipping those already applied.
    private func apply(_ changes: [(position: Int64, payload: ByteBuffer, committedAt: Double)]) throws {
        try applying.withLock { _ in
            for change in changes {
                let (from, logID) = progress.withLock { ($0.position, $0.logID) }
                guard let logID else { throw ClusterFailure("no change log yet") }
                if change.position <= from { continue }
                guard change.position == from + 1 else {
                    throw ClusterFailure("change \(change.position) arrived after \(from): a gap in the log")
                }
                guard let mutations = MutationBatch.decode(Array(buffer: change.payload)) else {
                    throw ApplyFailure(description: "change \(change.position) does not decode")
                }
                do throws(EngineError) {
                    _ = try engine.applyReplicated(
                        mutations, position: ChangePosition(logID: logID, position: change.position))
                } catch {
                    throw Self.applyFailure(error, "change \(change.position)")
                }
                for case .resetUsage(let orderID, _) in mutations { leases.forgetExhaustion(orderID: orderID) }
                for case .put(let record) in mutations { leases.revoke(orderID: record.orderID) }
                progress.withLock { $0.position = change.position }
                metrics.applied(committedAt: change.committedAt)
            }
        }
    }

    private func prune(on connection: PostgresConnection) async throws {
        let keep = configuration.retainedChanges
        try await connection.query(
            """
            DELETE FROM \(unescaped: schema.table("changes"))
            WHERE position <= (SELECT last_position FROM \(unescaped: schema.table("change_log"))) - \(keep)
            """, logger: logger)
    }

    /// Makes the next connection load the whole table; not ready until it has.
    private func reloadWholeTable(_ why: String) {
        progress.withLock { progress in
            progress.logID = nil
            progress.ready = false
            progress.problem = "loading the whole table again (\(why))"
        }
    }

    /// This node cannot apply what the log holds (its journal stopped, a change it cannot read):
    /// it is not ready until it can, and says so once per failure.
    private func markUnable(_ failure: ApplyFailure) {
        let first = progress.withLock { progress in
            defer {
                progress.ready = false
                progress.problem = failure.description
            }
            return progress.ready || progress.problem != failure.description
        }
        if first {
            logger.error("cluster node cannot apply the log: \(failure.description); /health answers 503 until it can")
        }
    }

    /// The engine refused a change from the log; closed (the server is stopping) is told apart.
    static func applyFailure(_ error: EngineError, _ what: String) -> any Error {
        if error.code == .closed { return EngineClosed() }
        return ApplyFailure(description: "applying \(what) failed: \(error.message)")
    }

    /// The engine closed under the follower: the server is stopping.
    struct EngineClosed: Error {}

    /// A change the engine cannot apply (not a connection failure).
    struct ApplyFailure: Error, CustomStringConvertible {
        var description: String
    }

    private func markUp() {
        let wasDown = progress.withLock { progress in
            defer {
                progress.postgresUp = true
                progress.ready = true
                progress.reconnecting = false
            }
            return !progress.postgresUp
        }
        metrics.postgresUp(true)
        if wasDown { logger.info("PostgreSQL reachable; caught up to change \(appliedPosition)") }
    }

    private func markDown(_ error: any Error) {
        let (wasUp, first) = progress.withLock { progress in
            defer {
                progress.postgresUp = false
                progress.problem = Self.describe(error)
                progress.reconnecting = true
            }
            return (progress.postgresUp, !progress.reconnecting)
        }
        metrics.postgresUp(false)
        metrics.reconnect()
        if wasUp || first {
            logger.error(
                "PostgreSQL unavailable (\(Self.describe(error))): checks, get_info and verify go on from memory, possibly stale; writes answer 503; reconnecting"
            )
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        if let error = error as? PostgresTransactionError {
            return describe(error.closureError ?? error.commitError ?? error.beginError ?? error.rollbackError ?? error)
        }
        return "\(error)"
    }

    // MARK: - Writes

    public func write(
        _ write: @escaping @Sendable (DeferredWrites) throws(EngineError) -> Written<[UInt8]>,
        completion: @escaping @Sendable (Result<[UInt8], EngineError>) -> Void
    ) {
        let answer = WriteAnswer(completion)
        let timeout = configuration.writeTimeout
        let timer = Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            answer.timeOut(.failure(Self.unavailable("PostgreSQL did not answer within \(timeout)")))
        }
        Task {
            await self.commit(answer: answer) { writes throws(EngineError) in try write(writes).value }
            timer.cancel()
        }
    }

    /// Why a write stops early: its timeout has answered it ("changed nothing").
    static let answeredByTimeout = ClusterFailure("the write was answered by its timeout")

    /// The 503 of a write whose `COMMIT` may or may not have taken effect.
    static func outcomeUnknown(_ why: String) -> EngineError {
        EngineError(.writesStopped, "\(why): it may have taken effect; read before repeating it")
    }

    /// The 503 of a write PostgreSQL cannot take.
    static func unavailable(_ why: String) -> EngineError {
        EngineError(
            .writesStopped, "PostgreSQL cannot take writes now (\(why)); this write changed nothing. Reads go on.")
    }

    /// Plans `write` against the cluster's current state, commits it and answers `answer`;
    /// retries a serialization failure or deadlock a few times. Holds this node's turn at most
    /// a little longer than a write may take: a transaction stuck on a connection that died must
    /// not hold up every later write and flush. A write abandoned that way after it sent
    /// `COMMIT` is answered by its own work once the outcome is known; before, it rolls back.
    func commit<Value: Sendable>(
        answer: WriteAnswer<Result<Value, EngineError>>,
        _ write: @escaping @Sendable (DeferredWrites) throws(EngineError) -> Value
    ) async {
        guard progress.withLock({ $0.logID != nil }) else {
            answer.finish(.failure(Self.unavailable("this node has not reached the cluster yet")))
            return
        }
        do {
            try await turn.run {
                try await Deadline.run(within: self.turnLimit) {
                    _ = answer.finish(await self.attempts(answer: answer, write))
                }
            }
        } catch {
            if !answer.isCommitting {
                metrics.write(succeeded: false)
                answer.finish(.failure(Self.unavailable(Self.describe(error))))
            } else {
                // COMMIT sent and no outcome: the work answers when it learns it, or this does.
                Task {
                    try? await Task.sleep(for: .seconds(10))
                    answer.finish(.failure(Self.outcomeUnknown("PostgreSQL has not answered this write's COMMIT")))
                }
            }
        }
    }

    private func attempts<Value: Sendable>(
        answer: WriteAnswer<Result<Value, EngineError>>,
        _ write: @escaping @Sendable (DeferredWrites) throws(EngineError) -> Value
    ) async -> Result<Value, EngineError> {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let result = try await client.withConnection { connection in
                    try await self.transaction(on: connection, answer: answer, write)
                }
                metrics.write(succeeded: true)
                return .success(result)
            } catch let error as EngineError {
                return .failure(error)
            } catch let failure as ApplyFailure {
                // This node's own trouble (its journal, say), not PostgreSQL's.
                metrics.write(succeeded: false)
                return .failure(
                    EngineError(
                        .writesStopped,
                        "This node cannot apply the cluster's changes (\(failure.description)); this write changed nothing"
                    ))
            } catch let error as CommitOutcomeUnknown {
                switch await committed(at: error.position, payload: error.payload) {
                case true?:
                    metrics.write(succeeded: true)
                    if let mutations = MutationBatch.decode(Array(buffer: error.payload)) {
                        applyOwn(mutations, at: error.position)
                    }
                    guard let value = error.value as? Value else { return .failure(Self.unavailable("lost")) }
                    return .success(value)
                case false?:
                    metrics.write(succeeded: false)
                    return .failure(Self.unavailable(Self.describe(error.cause)))
                case nil:
                    metrics.write(succeeded: false)
                    logger.error("the outcome of a write's COMMIT is unknown: \(Self.describe(error.cause))")
                    return .failure(
                        Self.outcomeUnknown(
                            "PostgreSQL's answer to this write's COMMIT was lost (\(Self.describe(error.cause)))"))
                }
            } catch {
                let state = (error as? PSQLError)?.serverInfo?[.sqlState]
                if attempt < 4, state == "40001" || state == "40P01", !answer.isAnswered { continue }
                metrics.write(succeeded: false)
                if !answer.isAnswered { logger.warning("write refused by PostgreSQL: \(Self.describe(error))") }
                return .failure(Self.unavailable(Self.describe(error)))
            }
        }
    }

    /// The change after this node's position was pruned from the log: the node must load the
    /// whole table.
    struct LogGap: Error, CustomStringConvertible {
        var missing: Int64
        /// Pruned (rather than the log having gone back, which is logged where it is found).
        var pruned = true
        var description: String { "this node is loading the cluster's whole table again" }
    }

    /// A `COMMIT` whose answer never came: the write may or may not have taken effect.
    struct CommitOutcomeUnknown: Error {
        var cause: any Error
        var position: Int64
        var payload: ByteBuffer
        /// What the write answers if it did commit.
        var value: any Sendable
    }

    /// Sends `COMMIT` for the change at `position`: an error PostgreSQL answers (it rolled back)
    /// is thrown as it is; no answer at all is ``CommitOutcomeUnknown``.
    private func sendCommit(
        on connection: PostgresConnection, position: Int64, payload: ByteBuffer, value: any Sendable
    ) async throws {
        do {
            try await connection.query("COMMIT", logger: logger)
        } catch let error as PSQLError where error.serverInfo != nil {
            throw error
        } catch {
            throw CommitOutcomeUnknown(cause: error, position: position, payload: payload, value: value)
        }
    }

    /// Whether the change at `position` is the one with `payload` that this node sent, once the
    /// transaction that sent it has ended (the check waits for the log's lock); nil when
    /// PostgreSQL cannot say now.
    func committed(at position: Int64, payload: ByteBuffer) async -> Bool? {
        do {
            return try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: self.logger)
                do {
                    _ = try await self.lastPosition(on: connection, forUpdate: true)
                    var same = false
                    for try await found in try await connection.query(
                        """
                        SELECT payload = \(payload) AND origin = \(self.configuration.nodeName)
                        FROM \(unescaped: self.schema.table("changes")) WHERE position = \(position)
                        """, logger: self.logger
                    ).decode(Bool.self) {
                        same = found
                    }
                    try await connection.query("ROLLBACK", logger: self.logger)
                    return same
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: self.logger)
                    throw error
                }
            }
        } catch {
            return nil
        }
    }

    /// One write's transaction. Throws an `EngineError` for a write the engine refuses (nothing
    /// is written), ``CommitOutcomeUnknown`` when `COMMIT` was sent but not answered, any other
    /// error for PostgreSQL's failures (nothing is written).
    private func transaction<Value: Sendable>(
        on connection: PostgresConnection, answer: WriteAnswer<Result<Value, EngineError>>,
        _ write: (DeferredWrites) throws(EngineError) -> Value
    ) async throws -> Value {
        guard !answer.isAnswered else { throw Self.answeredByTimeout }
        try await connection.query("BEGIN", logger: logger)
        do {
            let last = try await lastPosition(on: connection, forUpdate: true)
            // Answered by its timeout while it waited for the lock: let the others have it.
            guard !answer.isAnswered else { throw Self.answeredByTimeout }
            try await catchUp(on: connection, upTo: last)
            let planned: PlannedWrite<Value>
            do throws(EngineError) {
                planned = try engine.plan { writes throws(EngineError) in Written(try write(writes)) }
            } catch {
                try await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            guard !planned.mutations.isEmpty else {
                try await connection.query("ROLLBACK", logger: logger)
                return planned.value
            }
            let position = last + 1
            let payload = try await append(planned.mutations, at: position, on: connection)
            for mutation in planned.mutations { try await rows.write(mutation, on: connection, logger: logger) }
            // The timeout answered "changed nothing": keep it true.
            guard answer.beginCommit() else { throw Self.answeredByTimeout }
            try await sendCommit(on: connection, position: position, payload: payload, value: planned.value)
            applyOwn(planned.mutations, at: position)
            return planned.value
        } catch let error as EngineError {
            throw error
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Applies a change this node committed (read-your-writes). Committed is committed: a failure
    /// here is logged, not answered; the follower reads the change again from the log.
    private func applyOwn(_ mutations: [KeyMutation], at position: Int64) {
        do {
            try apply([(position, ByteBuffer(bytes: MutationBatch.encode(mutations)), Self.nowSeconds())])
        } catch {
            logger.warning("change \(position) is committed but not applied here yet: \(Self.describe(error))")
        }
    }

    /// Appends a change at `position` (the log's row is locked by the caller), moves the log's
    /// last position to it and notifies the followers (delivered at commit).
    @discardableResult
    private func append(
        _ mutations: [KeyMutation], at position: Int64, on connection: PostgresConnection
    ) async throws -> ByteBuffer {
        let payload = ByteBuffer(bytes: MutationBatch.encode(mutations))
        // One round trip while the log's row is locked: the change, the log's position, the wake-up.
        try await connection.query(
            """
            WITH change AS (
                INSERT INTO \(unescaped: schema.table("changes")) (position, origin, payload)
                VALUES (\(position), \(configuration.nodeName), \(payload))),
            log AS (UPDATE \(unescaped: schema.table("change_log")) SET last_position = \(position) WHERE id = 1)
            SELECT pg_notify(\(channel), \(String(position)))
            """, logger: logger)
        return payload
    }

    static func nowSeconds() -> Double {
        Double(SystemClock().nowNanoseconds()) / 1e9
    }

    // MARK: - Quotas

    /// Leases a block of `request`'s quota from PostgreSQL (a conditional `UPDATE` that never
    /// grants more than the limit minus what was granted), then calls `then`; on failure the
    /// verify answers what it can without it (nothing more passes).
    public func lease(_ request: LeaseRequest, then: @escaping @Sendable (EngineError?) -> Void) {
        let answer = WriteAnswer<EngineError?>(then)
        let timeout = configuration.writeTimeout
        let timer = Task {
            do { try await Task.sleep(for: timeout) } catch { return }
            answer.timeOut(Self.leaseUnavailable("PostgreSQL did not answer within \(timeout)"))
        }
        Task {
            let (block, generation) = leases.blockToAsk(for: request)
            do {
                let units = try await client.withConnection { connection in
                    try await self.leaseBlock(request, block: block, on: connection)
                }
                // Granted even when the verify was answered by the timeout: later verifies use it.
                leases.granted(units, for: request, generation: generation)
                metrics.leased(units)
                answer.finish(nil)
            } catch {
                if leaseWarnings.shouldLog() {
                    logger.warning(
                        "quota lease for order \(request.orderID) failed: \(Self.describe(error)) (logged at most every 10 s)"
                    )
                }
                answer.finish(Self.leaseUnavailable(Self.describe(error)))
            }
            timer.cancel()
        }
    }

    /// The 503 of a verify that needs quota PostgreSQL cannot lease now.
    static func leaseUnavailable(_ why: String) -> EngineError {
        EngineError(
            .writesStopped,
            "PostgreSQL cannot lease more of this key's monthly quota now (\(why)); the verify consumed nothing")
    }

    private func leaseBlock(
        _ request: LeaseRequest, block: Int64, on connection: PostgresConnection
    ) async throws
        -> Int64
    {
        let usage = schema.table("usage")
        let month = request.month.ordinal
        try await connection.query(
            """
            INSERT INTO \(unescaped: usage) (order_id, month) VALUES (\(request.orderID), \(month))
            ON CONFLICT (order_id, month) DO NOTHING
            """, logger: logger)
        var units: Int64 = 0
        // Bounded by the limit PostgreSQL holds for the key (a lower one committed elsewhere
        // holds before this node has applied it) and by this node's (a higher one not yet
        // applied here waits until it is). A deleted key leases nothing.
        for try await granted in try await connection.query(
            """
            UPDATE \(unescaped: usage) AS u SET granted = u.granted + d.units
            FROM (SELECT least(\(block), coalesce(k.monthly_limit, \(request.limit)) - v.granted,
                    \(request.limit) - v.granted) AS units
                  FROM \(unescaped: usage) AS v JOIN \(unescaped: schema.table("keys")) AS k ON k.order_id = v.order_id
                  WHERE v.order_id = \(request.orderID) AND v.month = \(month) FOR UPDATE OF v) AS d
            WHERE u.order_id = \(request.orderID) AND u.month = \(month) AND d.units >= \(request.cost)
            RETURNING d.units
            """, logger: logger
        ).decode(Int64.self) {
            units = granted
        }
        return units
    }

    private func flushEveryInterval() async {
        while true {
            do { try await Task.sleep(for: configuration.flushInterval) } catch { return }
            await flush(returningIdleAfter: 2 * configuration.flushInterval.nanoseconds)
        }
    }

    /// Sends the counted uses to PostgreSQL as one change (the rows' `used`, and `granted` for
    /// uses no lease covered) and hands back leases idle for `idle` nanoseconds. The `final`
    /// flush, at shutdown, neither catches up nor applies its change here (the engine is closed;
    /// the next start reads it from the log).
    func flush(returningIdleAfter idle: Int64, final: Bool = false) async {
        let counts = leases.takeCounts()
        let month = UsageMonth(containingNanoseconds: SystemClock().nowNanoseconds())
        let returned = leases.takeIdle(idleNanoseconds: idle, currentMonth: month)
        if !counts.isEmpty {
            let sorted = counts.sorted { ($0.key.orderID, $0.key.month) < ($1.key.orderID, $1.key.month) }
            let mutations = sorted.map {
                KeyMutation.use(orderID: $0.key.orderID, month: $0.key.month, count: $0.value.used)
            }
            // Abandoned by the deadline before its COMMIT, the flush rolls back and its counts
            // are kept here; after, its own work settles them once the outcome is known.
            let gate = WriteAnswer<Void> {}
            do {
                try await turn.run {
                    try await Deadline.run(within: self.turnLimit) {
                        await self.send(counts, sorted: sorted, mutations: mutations, final: final, gate: gate)
                    }
                }
            } catch {
                if gate.timeOut(()) { keep(counts, final: final, error) }
            }
        }
        if !returned.isEmpty {
            do {
                try await client.withConnection { connection in
                    for (key, units) in returned {
                        try await connection.query(
                            """
                            UPDATE \(unescaped: self.schema.table("usage")) SET granted = greatest(used, granted - \(units))
                            WHERE order_id = \(key.orderID) AND month = \(key.month.ordinal)
                            """, logger: self.logger)
                    }
                }
                metrics.returned(returned.values.reduce(0, +))
            } catch {
                // Units not handed back stay granted: the cluster under-grants, never over.
                logger.debug("handing back leases failed: \(Self.describe(error))")
            }
        }
    }

    /// One flush's transaction, and what its outcome does to the counts.
    private func send(
        _ counts: [QuotaLeases.Key: QuotaLeases.Counted], sorted: [(key: QuotaLeases.Key, value: QuotaLeases.Counted)],
        mutations: [KeyMutation], final: Bool, gate: WriteAnswer<Void>
    ) async {
        do {
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: self.logger)
                do {
                    let last = try await self.lastPosition(on: connection, forUpdate: true)
                    if !final { try await self.catchUp(on: connection, upTo: last) }
                    let payload = try await self.append(mutations, at: last + 1, on: connection)
                    for (key, count) in sorted {
                        try await connection.query(
                            """
                            INSERT INTO \(unescaped: self.schema.table("usage")) AS u (order_id, month, used, granted)
                            VALUES (\(key.orderID), \(key.month.ordinal), \(count.used), \(count.unleased))
                            ON CONFLICT (order_id, month) DO UPDATE
                            SET used = u.used + excluded.used, granted = u.granted + excluded.granted
                            """, logger: self.logger)
                    }
                    guard gate.beginCommit() else { throw ClusterFailure("the flush was abandoned by its deadline") }
                    try await self.sendCommit(on: connection, position: last + 1, payload: payload, value: 0)
                    if !final { self.applyOwn(mutations, at: last + 1) }
                } catch let error as CommitOutcomeUnknown {
                    throw error
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: self.logger)
                    throw error
                }
            }
            metrics.flushed()
        } catch let error as CommitOutcomeUnknown {
            // Sent again only when surely not counted: counted twice would over-count.
            switch await committed(at: error.position, payload: error.payload) {
            case true?: metrics.flushed()
            case false?: keep(counts, final: final, error.cause)
            case nil:
                logger.error(
                    "the outcome of a usage flush is unknown (\(Self.describe(error.cause))); its counts are not sent again"
                )
            }
        } catch {
            // Not committed: the counts go back for the next flush (unless the deadline did that).
            if gate.finish(()) { keep(counts, final: final, error) }
            return
        }
        gate.finish(())
    }

    /// Puts counts that did not reach PostgreSQL back for the next flush; at the last flush, says
    /// what is lost.
    private func keep(_ counts: [QuotaLeases.Key: QuotaLeases.Counted], final: Bool, _ error: any Error) {
        leases.restore(counts)
        if final {
            let uses = counts.values.reduce(Int64(0)) { $0 + $1.used }
            logger.error(
                "the last flush failed (\(Self.describe(error))): \(uses) uses of \(counts.count) keys are not counted in PostgreSQL"
            )
        } else {
            logger.debug("flushing uses failed, kept for the next flush: \(Self.describe(error))")
        }
    }

    /// The last flush and the hand-back of every lease, at graceful shutdown.
    func finish() async {
        await flush(returningIdleAfter: 0, final: true)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

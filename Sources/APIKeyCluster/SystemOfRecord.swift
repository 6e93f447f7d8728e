import APIKeyEngine
import Logging
import NIOCore
import PostgresNIO

/// The cluster's tables as the system of record: what each mutation does to them inside a
/// write's transaction, and the whole table read back for a node that has no usable cache.
struct SystemOfRecord: Sendable {
    let schema: ClusterSchema

    /// Makes the rows agree with `mutation`, inside the caller's transaction.
    func write(_ mutation: KeyMutation, on connection: PostgresConnection, logger: Logger) async throws {
        let keys = schema.table("keys")
        let retired = schema.table("retired_keys")
        let usage = schema.table("usage")
        switch mutation {
        case .put(let record):
            let config = String(decoding: record.configJSON, as: UTF8.self)
            let monthlyLimit = (try? UsageLimits(config: record.config))?.monthlyLimit
            // As the engine does, a put with another key than the retired entry's new one ends
            // that entry; one statement for both tables.
            try await connection.query(
                """
                WITH ended AS (
                    DELETE FROM \(unescaped: retired) WHERE order_id = \(record.orderID) AND current_key <> \(record.apiKey))
                INSERT INTO \(unescaped: keys)
                    (order_id, client_id, api_key, config, monthly_limit, status, expires_at, created_at, updated_at)
                VALUES (\(record.orderID), \(record.clientID), \(record.apiKey), \(config), \(monthlyLimit),
                    \(record.status.rawValue), \(record.expiresAt), \(record.createdAt), \(record.updatedAt))
                ON CONFLICT (order_id) DO UPDATE SET client_id = excluded.client_id, api_key = excluded.api_key,
                    config = excluded.config, monthly_limit = excluded.monthly_limit, status = excluded.status,
                    expires_at = excluded.expires_at,
                    created_at = excluded.created_at, updated_at = excluded.updated_at
                """, logger: logger)
        case .delete(let orderID):
            try await connection.query("DELETE FROM \(unescaped: keys) WHERE order_id = \(orderID)", logger: logger)
            try await connection.query("DELETE FROM \(unescaped: retired) WHERE order_id = \(orderID)", logger: logger)
            try await connection.query("DELETE FROM \(unescaped: usage) WHERE order_id = \(orderID)", logger: logger)
        case .setClientToken(let clientID, let token):
            try await connection.query(
                """
                INSERT INTO \(unescaped: schema.table("client_tokens")) (client_id, token) VALUES (\(clientID), \(token))
                ON CONFLICT (client_id) DO UPDATE SET token = excluded.token
                """, logger: logger)
        case .retire(let key):
            try await connection.query(
                """
                INSERT INTO \(unescaped: retired) (order_id, api_key, current_key, until_ns)
                VALUES (\(key.orderID), \(key.key), \(key.currentKey), \(key.untilNanoseconds))
                ON CONFLICT (order_id) DO UPDATE SET api_key = excluded.api_key,
                    current_key = excluded.current_key, until_ns = excluded.until_ns
                """, logger: logger)
        case .resetUsage(let orderID, let month):
            // Blocks still leased to nodes stay counted as granted, so the reset never lets the
            // cluster grant more than the limit at once.
            try await connection.query(
                """
                UPDATE \(unescaped: usage) SET granted = granted - least(used, granted), used = 0
                WHERE order_id = \(orderID) AND month = \(month.ordinal)
                """, logger: logger)
        case .use(let orderID, let month, let count):
            try await connection.query(
                """
                INSERT INTO \(unescaped: usage) (order_id, month, used, granted) VALUES (\(orderID), \(month.ordinal), \(count), 0)
                ON CONFLICT (order_id, month) DO UPDATE SET used = \(unescaped: usage).used + excluded.used
                """, logger: logger)
        case .setUsage, .remember, .changePosition:
            // Never part of a cluster write: snapshots, a node's own answers, positions.
            break
        }
    }

    /// The whole system of record as mutations, with the change log's position it stands at, read
    /// in one repeatable-read transaction so that the rows and the position agree. `orderIDs`
    /// are the orders the node holds now: those the cluster lacks come back as deletes.
    func loadAll(
        _ connection: PostgresConnection, logger: Logger, localOrderIDs: [Int64],
        deliver: ([KeyMutation]) throws -> Void
    ) async throws -> ChangePosition {
        try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
        do {
            var logID: Int64 = 0
            var last: Int64 = 0
            for try await (id, position) in try await connection.query(
                "SELECT log_id, last_position FROM \(unescaped: schema.table("change_log"))", logger: logger
            ).decode((Int64, Int64).self) {
                (logID, last) = (id, position)
            }
            var batch: [KeyMutation] = []
            batch.reserveCapacity(Self.batchSize)
            func add(_ mutation: KeyMutation) throws {
                batch.append(mutation)
                if batch.count == Self.batchSize {
                    try deliver(batch)
                    batch.removeAll(keepingCapacity: true)
                }
            }
            var present = Set<Int64>()
            present.reserveCapacity(localOrderIDs.count)
            let rows = try await connection.query(
                """
                SELECT order_id, client_id, api_key, config, status, expires_at, created_at, updated_at
                FROM \(unescaped: schema.table("keys"))
                """, logger: logger)
            for try await (orderID, clientID, apiKey, config, status, expiresAt, createdAt, updatedAt) in rows.decode(
                (Int64, Int64, String, String, String, Int64?, Int64, Int64).self)
            {
                guard let status = KeyStatus(rawValue: status), let config = try? JSONValue.parse(config) else {
                    throw ClusterFailure("the row of order \(orderID) in \(schema.table("keys")) does not read")
                }
                if !localOrderIDs.isEmpty { present.insert(orderID) }
                try add(
                    .put(
                        KeyRecord(
                            orderID: orderID, clientID: clientID, apiKey: apiKey, config: config, status: status,
                            expiresAt: expiresAt, createdAt: createdAt, updatedAt: updatedAt)))
            }
            for orderID in localOrderIDs where !present.contains(orderID) { try add(.delete(orderID: orderID)) }
            for try await (clientID, token) in try await connection.query(
                "SELECT client_id, token FROM \(unescaped: schema.table("client_tokens"))", logger: logger
            ).decode((Int64, String).self) {
                try add(.setClientToken(clientID: clientID, token: token))
            }
            for try await (orderID, key, currentKey, until) in try await connection.query(
                "SELECT order_id, api_key, current_key, until_ns FROM \(unescaped: schema.table("retired_keys"))",
                logger: logger
            ).decode((Int64, String, String, Int64).self) {
                try add(
                    .retire(RetiredKey(key: key, orderID: orderID, currentKey: currentKey, untilNanoseconds: until)))
            }
            var counts: [Int64: [UsageCount]] = [:]
            for try await (orderID, month, used) in try await connection.query(
                "SELECT order_id, month, used FROM \(unescaped: schema.table("usage")) WHERE used > 0", logger: logger
            ).decode((Int64, Int, Int64).self) {
                guard let month = UsageMonth(ordinal: month) else { continue }
                counts[orderID, default: []].append(UsageCount(month: month, used: used))
            }
            for (orderID, counts) in counts { try add(.setUsage(orderID: orderID, counts: counts)) }
            // A count the node holds that the cluster no longer has (reset meanwhile) goes too.
            for orderID in present where counts[orderID] == nil { try add(.setUsage(orderID: orderID, counts: [])) }
            if !batch.isEmpty { try deliver(batch) }
            try await connection.query("COMMIT", logger: logger)
            return ChangePosition(logID: UInt64(bitPattern: logID), position: last)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Mutations applied to the engine at a time during a whole-table load.
    static let batchSize = 10_000
}

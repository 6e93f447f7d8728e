import APIKeyEngine
import Foundation
import Logging
import PostgresNIO

/// The cluster's tables in PostgreSQL and their versioned migrations. The server creates and
/// migrates them itself, in one transaction under an advisory lock, so nodes starting together
/// migrate once; `schema_version` holds the version reached.
///
/// - `change_log`: one row, the log's identity (`log_id`, drawn at creation) and the position of
///   the last change; every write locks this row, which serialises commits.
/// - `changes`: the ordered change log, each change the journal encoding of its mutations.
/// - `keys`, `client_tokens`, `retired_keys`, `usage`: the system of record, readable by
///   operators; a node with no usable cache loads them whole. `keys.monthly_limit` is the limit
///   the record's config sets (null: none), which bounds every lease.
struct ClusterSchema: Sendable {
    /// The schema's name, checked to be a plain identifier (it is written into SQL).
    let name: String

    /// The statements of each version, in order; `{s}` stands for the schema's name.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE {s}.change_log (
                id integer PRIMARY KEY CHECK (id = 1),
                log_id bigint NOT NULL,
                last_position bigint NOT NULL CHECK (last_position >= 0))
            """,
            "INSERT INTO {s}.change_log VALUES (1, (random() * 9.2e18)::bigint, 0)",
            """
            CREATE TABLE {s}.changes (
                position bigint PRIMARY KEY,
                origin text NOT NULL,
                committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                payload bytea NOT NULL)
            """,
            """
            CREATE TABLE {s}.keys (
                order_id bigint PRIMARY KEY,
                client_id bigint NOT NULL,
                api_key text NOT NULL UNIQUE,
                config text NOT NULL,
                monthly_limit bigint,
                status text NOT NULL,
                expires_at bigint,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL)
            """,
            "CREATE INDEX keys_client ON {s}.keys (client_id)",
            """
            CREATE TABLE {s}.client_tokens (
                client_id bigint PRIMARY KEY,
                token text NOT NULL UNIQUE)
            """,
            """
            CREATE TABLE {s}.retired_keys (
                order_id bigint PRIMARY KEY,
                api_key text NOT NULL,
                current_key text NOT NULL,
                until_ns bigint NOT NULL)
            """,
            """
            CREATE TABLE {s}.usage (
                order_id bigint NOT NULL,
                month integer NOT NULL,
                used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
                granted bigint NOT NULL DEFAULT 0 CHECK (granted >= 0),
                PRIMARY KEY (order_id, month))
            """,
        ],
        [
            // How the nodes hold keys (`plain`, or `hashed` and the secret's fingerprint): set by
            // the first node, refused to any other. Keys written before it were plain.
            "ALTER TABLE {s}.change_log ADD COLUMN key_storage text",
            "UPDATE {s}.change_log SET key_storage = 'plain' WHERE EXISTS (SELECT 1 FROM {s}.keys)",
        ],
    ]

    /// The version the last migration reaches.
    static var currentVersion: Int { migrations.count }

    /// The schema's name quoted, so that a reserved word is a name too.
    var quoted: String { "\"\(name)\"" }

    /// `table` qualified by the schema.
    func table(_ table: String) -> String { "\(quoted).\(table)" }

    /// Creates the schema or migrates it to ``currentVersion``; returns the change log's identity.
    /// Refuses a schema whose version is newer than this build knows, and one whose keys are
    /// held another way than `keyStorage` says (another mode, or another secret).
    func migrate(_ connection: PostgresConnection, keyStorage: KeyStorage, logger: Logger) async throws -> UInt64 {
        try await connection.withTransaction(logger: logger) { connection in
            // One migrator at a time across nodes: a transaction-level lock keyed by the schema.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(name)))", logger: logger)
            try await connection.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: quoted)", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS \(unescaped: table("schema_version")) (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL)",
                logger: logger)
            var version = 0
            for try await found in try await connection.query(
                "SELECT version FROM \(unescaped: table("schema_version"))", logger: logger
            ).decode(Int.self) {
                version = found
            }
            guard version <= Self.currentVersion else {
                throw ClusterFailure(
                    "schema \(name) is at version \(version); this build knows versions up to \(Self.currentVersion)")
            }
            for (index, statements) in Self.migrations.enumerated() where index + 1 > version {
                for statement in statements {
                    let sql = statement.replacingOccurrences(of: "{s}", with: quoted)
                    try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                }
                logger.info("PostgreSQL schema \(name) migrated to version \(index + 1)")
            }
            try await connection.query(
                """
                INSERT INTO \(unescaped: table("schema_version")) VALUES (1, \(Self.currentVersion))
                ON CONFLICT (id) DO UPDATE SET version = excluded.version
                """, logger: logger)
            let mine = keyStorage.fingerprint.map { "hashed \($0)" } ?? "plain"
            try await connection.query(
                "UPDATE \(unescaped: table("change_log")) SET key_storage = \(mine) WHERE key_storage IS NULL",
                logger: logger)
            var logID: Int64 = 0
            var stored = mine
            for try await (found, storage) in try await connection.query(
                "SELECT log_id, key_storage FROM \(unescaped: table("change_log"))", logger: logger
            ).decode((Int64, String).self) {
                logID = found
                stored = storage
            }
            guard stored == mine else {
                throw ClusterFailure(
                    "schema \(name) holds keys with key storage '\(stored)' and this node has '\(mine)': give every node the same key storage and key secret"
                )
            }
            return UInt64(bitPattern: logID)
        }
    }
}

/// A failure of the cluster's protocol (not of the connection), with what happened.
struct ClusterFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

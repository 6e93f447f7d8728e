import Foundation
import NIOSSL
import PostgresNIO

/// How a node reaches the cluster's PostgreSQL and follows its change log.
public struct ClusterConfiguration: Sendable {
    /// Where PostgreSQL is: host, port, user, password, database, TLS (the pool writes use).
    public var postgres: PostgresClient.Configuration
    /// The same for the connection that follows the change log.
    var followerConnection: PostgresConnection.Configuration
    /// The schema that holds the cluster's tables; created when missing. Checked by the
    /// initialiser: 1 to 55 lowercase letters, digits and underscores.
    public let schema: String
    /// This node's name, recorded with each change it commits (the host name by default).
    public var nodeName: String
    /// How many changes the log keeps; a node further behind loads the whole table instead.
    public var retainedChanges: Int64
    /// The longest a write waits for PostgreSQL before it answers 503.
    public var writeTimeout: Duration
    /// How often a node reads the log without being woken by a notification (the safety net).
    public var pollInterval: Duration
    /// The longest wait between attempts to reach PostgreSQL again (the back-off doubles up to it).
    public var maximumBackoff: Duration
    /// How often a node sends its counted uses to PostgreSQL.
    public var flushInterval: Duration

    /// A node of the cluster in `schema` of the PostgreSQL that `url` names
    /// (`postgres://user:password@host:port/database?sslmode=disable|prefer|require`).
    public init(url: String, schema: String = "apikeyd", nodeName: String? = nil) throws(ClusterConfigurationError) {
        (postgres, followerConnection) = try Self.parse(url)
        guard Self.isIdentifier(schema) else {
            throw ClusterConfigurationError(
                "schema '\(schema)' must be 1 to 55 lowercase letters, digits and underscores, not starting with a digit or pg_ (its notification channel, the name and _changes, must fit PostgreSQL's 63 bytes)"
            )
        }
        self.schema = schema
        self.nodeName = nodeName ?? ProcessInfo.processInfo.hostName
        retainedChanges = 100_000
        writeTimeout = .seconds(5)
        pollInterval = .seconds(1)
        maximumBackoff = .seconds(5)
        flushInterval = .seconds(1)
    }

    static func isIdentifier(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...55).contains(bytes.count), !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[0]),
            !name.hasPrefix("pg_")
        else {
            return false
        }
        return bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
    }

    private static func parse(
        _ url: String
    ) throws(ClusterConfigurationError) -> (PostgresClient.Configuration, PostgresConnection.Configuration) {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw ClusterConfigurationError(
                "'\(url)' is no postgres:// URL (postgres://user:password@host:port/database)")
        }
        guard let user = components.user, !user.isEmpty else {
            throw ClusterConfigurationError("the PostgreSQL URL names no user (postgres://user@host/database)")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        var tls = PostgresClient.Configuration.TLS.disable
        var followerTLS = PostgresConnection.Configuration.TLS.disable
        func context() throws(ClusterConfigurationError) -> NIOSSLContext {
            do {
                return try NIOSSLContext(configuration: .makeClientConfiguration())
            } catch {
                throw ClusterConfigurationError("TLS for PostgreSQL cannot be set up: \(error)")
            }
        }
        for item in components.queryItems ?? [] {
            switch (item.name, item.value ?? "") {
            case ("sslmode", "disable"): tls = .disable
            case ("sslmode", "prefer"):
                tls = .prefer(.makeClientConfiguration())
                followerTLS = .prefer(try context())
            case ("sslmode", "require"):
                tls = .require(.makeClientConfiguration())
                followerTLS = .require(try context())
            case ("sslmode", let mode):
                throw ClusterConfigurationError("sslmode '\(mode)' is not one of disable, prefer, require")
            default:
                throw ClusterConfigurationError(
                    "the PostgreSQL URL's parameter '\(item.name)' is not known; use sslmode")
            }
        }
        let host = components.host ?? "127.0.0.1"
        let port = components.port ?? 5432
        let databaseName = database.isEmpty ? user : database
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: components.password, database: databaseName, tls: tls)
        configuration.options.maximumConnections = 8
        configuration.options.connectTimeout = .seconds(3)
        // Bounds inside PostgreSQL too: a write waits for the log's lock, and a statement runs,
        // no longer than a write may take; a transaction left idle by a stalled node is ended
        // rather than holding the log's lock for every other node.
        configuration.options.additionalStartupParameters = [
            ("lock_timeout", "5s"), ("statement_timeout", "10s"), ("idle_in_transaction_session_timeout", "3s"),
        ]
        var follower = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: components.password, database: databaseName,
            tls: followerTLS)
        follower.options.connectTimeout = .seconds(3)
        return (configuration, follower)
    }
}

/// A cluster setting that cannot be used, with what is wrong.
public struct ClusterConfigurationError: Error, CustomStringConvertible {
    /// What is wrong.
    public var description: String

    init(_ description: String) { self.description = description }
}

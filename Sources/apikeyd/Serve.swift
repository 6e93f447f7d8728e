import APIKeyEngine
import ArgumentParser
import Foundation

/// `apikeyd serve`: the settings from flags, the environment and `--config`, then the server.
/// Every option is optional here so that a flag left out lets the environment or the file speak;
/// the defaults live in ``ServeSettings`` and the checks in ``Setting``.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API.",
        discussion: """
            Every option can also be set in the --config file (its name without the dashes as the key) \
            or in the environment (APIKEYD_ and the name in upper snake case, lists comma-separated). \
            Flags win over the environment, the environment over the file, the file over the defaults.
            """)

    @Option(help: "A YAML file of settings (JSON when the name ends in .json); see data/apikeyd.yaml.")
    var config: String?

    @Flag(help: "Print the effective settings, one 'key = value (source)' line each, and exit.")
    var printConfig = false

    @Option(help: help("The address to listen on.", "host")) var host: String?
    @Option(help: help("The TCP port to listen on (0 picks a free one).", "port")) var port: Int?
    @Option(help: help("The data directory (kept readable by its owner only).", "data-dir")) var dataDir: String?
    @Option(
        help: help(
            "The admin token for HTTP Basic user 'admin'; visible to every user in ps, prefer --admin-token-file. With neither, one is generated into <data-dir>/admin-token.",
            "admin-token"))
    var adminToken: String?
    @Option(help: help("A file whose first non-empty line is the admin token.", "admin-token-file")) var adminTokenFile:
        String?
    @Option(help: help("Event loops (threads) serving connections.", "event-loops")) var eventLoops: Int?
    @Option(help: help("The largest request body in bytes; larger ones get HTTP 413.", "max-body-bytes"))
    var maxBodyBytes: Int?
    @Option(help: help("The most keys the engine holds.", "max-keys")) var maxKeys: Int?
    @Option(
        help: help(
            "Verify answers remembered for their request_id (24 hours; oldest dropped first; 0: none).",
            "idempotency-entries"))
    var idempotencyEntries: Int?
    @Option(help: help("When the journal fsyncs: always (acknowledge after fsync), everysec, or no.", "fsync"))
    var fsync: String?
    @Flag(
        inversion: .prefixedNo,
        help: help("Refuse to start when journal replay stops at corruption.", "strict-recovery"))
    var strictRecovery: Bool?
    @Option(help: help("Snapshot after the journal grows by this many bytes.", "snapshot-journal-bytes"))
    var snapshotJournalBytes: Int?
    @Option(
        help: help(
            "Snapshot after this many seconds if anything was written (0: never by time).", "snapshot-interval-seconds")
    )
    var snapshotIntervalSeconds: Int?
    @Option(help: help("Start a new journal segment past this many bytes.", "segment-bytes")) var segmentBytes: Int?
    @Flag(inversion: .prefixedNo, help: help("Rate limit requests per client address.", "rate-limit"))
    var rateLimit: Bool?
    @Option(help: help("Per-address burst: requests an address may make at once.", "rate-burst")) var rateBurst: Int?
    @Option(help: help("Per-address sustained requests per second.", "rate-per-second")) var ratePerSecond: Double?
    @Option(help: help("Per-address burst of failed key lookups and failed authentications.", "failed-burst"))
    var failedBurst: Int?
    @Option(help: help("Failed lookups an address regains per minute.", "failed-per-minute"))
    var failedPerMinute: Double?
    @Option(help: help("An address or CIDR range never rate limited (repeatable).", "allow")) var allow: [String] = []
    @Option(
        help: help("A proxy address or CIDR range whose X-Forwarded-For is believed (repeatable).", "trusted-proxy"))
    var trustedProxy: [String] = []
    @Option(
        help: help("Entries in each per-address limiter table (idle ones are evicted beyond it).", "limiter-entries"))
    var limiterEntries: Int?
    @Option(help: help("The most connections open at once.", "max-connections")) var maxConnections: Int?
    @Option(help: help("Seconds a connection may stay silent between requests.", "idle-timeout-seconds"))
    var idleTimeoutSeconds: Int?
    @Option(help: help("Seconds a request has to arrive in full after its first byte.", "request-timeout-seconds"))
    var requestTimeoutSeconds: Int?
    @Option(
        help: help(
            "On SIGTERM or SIGINT, seconds the requests under way have to finish before connections are cut.",
            "shutdown-timeout-seconds"))
    var shutdownTimeoutSeconds: Double?
    @Option(help: help("trace, debug, info, notice, warning, error or critical.", "log-level")) var logLevel: String?
    @Option(help: help("text, or json (one object per line).", "log-format")) var logFormat: String?
    @Flag(
        inversion: .prefixedNo,
        help: help("Log one line per request (method, path, status, microseconds, client; never a key).", "access-log"))
    var accessLog: Bool?
    @Flag(inversion: .prefixedNo, help: help("Serve GET /metrics (Prometheus text format).", "metrics"))
    var metrics: Bool?
    @Option(help: help("An address or CIDR range allowed to read /metrics (repeatable).", "metrics-allow"))
    var metricsAllow: [String] = []
    @Option(help: help("The PEM certificate chain to serve HTTPS with (with --tls-private-key).", "tls-certificate"))
    var tlsCertificate: String?
    @Option(help: help("The PEM private key of --tls-certificate.", "tls-private-key")) var tlsPrivateKey: String?
    @Option(
        help: help(
            "Multi-node mode: the PostgreSQL that holds every key (postgres://user:password@host:port/database?sslmode=disable|prefer|require); the data directory becomes this node's cache.",
            "postgres"))
    var postgres: String?
    @Option(help: help("The PostgreSQL schema of the cluster's tables (created when missing).", "postgres-schema"))
    var postgresSchema: String?
    @Option(help: help("This node's name in the change log.", "node-name")) var nodeName: String?
    @Option(
        help: help(
            "Changes the log keeps; a node further behind loads the whole table.", "postgres-retained-changes"))
    var postgresRetainedChanges: Int?
    @Option(
        help: help(
            "How keys and client tokens are held: plain (get shows them, as FOSSBilling does) or hashed (HMAC-SHA-256 under a secret; a key is shown only by create and reset, a token by token_reset). A data directory keeps the storage it was made with.",
            "key-storage"))
    var keyStorage: String?
    @Option(
        help: help(
            "A file whose first word (32 bytes or more) is the secret of hashed key storage. With none, one is generated into <data-dir>/key-secret; with --postgres every node needs the same one, so give this.",
            "key-secret-file"))
    var keySecretFile: String?

    /// `text` followed by the setting's default.
    private static func help(_ text: String, _ name: String) -> ArgumentHelp {
        ArgumentHelp("\(text) Default: \(Setting.byName[name]!.render(ServeSettings())).")
    }

    /// The options given on the command line, by setting name.
    var flags: [String: Setting.Value] {
        var flags: [String: Setting.Value] = [:]
        func put(_ name: String, _ value: Setting.Value?) { if let value { flags[name] = value } }
        put("host", host.map { .text($0) })
        put("port", port.map { .integer($0) })
        put("data-dir", dataDir.map { .text($0) })
        put("admin-token", adminToken.map { .text($0) })
        put("admin-token-file", adminTokenFile.map { .text($0) })
        put("event-loops", eventLoops.map { .integer($0) })
        put("max-body-bytes", maxBodyBytes.map { .integer($0) })
        put("max-keys", maxKeys.map { .integer($0) })
        put("idempotency-entries", idempotencyEntries.map { .integer($0) })
        put("fsync", fsync.map { .text($0) })
        put("key-storage", keyStorage.map { .text($0) })
        put("key-secret-file", keySecretFile.map { .text($0) })
        put("strict-recovery", strictRecovery.map { .boolean($0) })
        put("snapshot-journal-bytes", snapshotJournalBytes.map { .integer($0) })
        put("snapshot-interval-seconds", snapshotIntervalSeconds.map { .integer($0) })
        put("segment-bytes", segmentBytes.map { .integer($0) })
        put("rate-limit", rateLimit.map { .boolean($0) })
        put("rate-burst", rateBurst.map { .integer($0) })
        put("rate-per-second", ratePerSecond.map { .number($0) })
        put("failed-burst", failedBurst.map { .integer($0) })
        put("failed-per-minute", failedPerMinute.map { .number($0) })
        put("allow", allow.isEmpty ? nil : .list(allow))
        put("trusted-proxy", trustedProxy.isEmpty ? nil : .list(trustedProxy))
        put("limiter-entries", limiterEntries.map { .integer($0) })
        put("max-connections", maxConnections.map { .integer($0) })
        put("idle-timeout-seconds", idleTimeoutSeconds.map { .integer($0) })
        put("request-timeout-seconds", requestTimeoutSeconds.map { .integer($0) })
        put("shutdown-timeout-seconds", shutdownTimeoutSeconds.map { .number($0) })
        put("log-level", logLevel.map { .text($0) })
        put("log-format", logFormat.map { .text($0) })
        put("access-log", accessLog.map { .boolean($0) })
        put("metrics", metrics.map { .boolean($0) })
        put("metrics-allow", metricsAllow.isEmpty ? nil : .list(metricsAllow))
        put("tls-certificate", tlsCertificate.map { .text($0) })
        put("tls-private-key", tlsPrivateKey.map { .text($0) })
        put("postgres", postgres.map { .text($0) })
        put("postgres-schema", postgresSchema.map { .text($0) })
        put("node-name", nodeName.map { .text($0) })
        put("postgres-retained-changes", postgresRetainedChanges.map { .integer($0) })
        return flags
    }

    func run() async throws {
        let resolved: ResolvedSettings
        do {
            resolved = try await SettingSources.resolve(
                flags: flags, environment: ProcessInfo.processInfo.environment, configPath: config)
        } catch let error as SettingError {
            printOnStandardError(error.description)
            throw ExitCode(2)
        }
        if printConfig {
            print(resolved.printed)
            return
        }
        do {
            try await Daemon(resolved).run()
        } catch let error as StartFailure {
            printOnStandardError(error.description)
            throw ExitCode(1)
        }
    }
}

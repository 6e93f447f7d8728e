import APIKeyEngine
import Logging

/// Everything `apikeyd serve` can be told, with its default: what flags, `APIKEYD_*`
/// environment variables and the `--config` file set (``SettingSources``). Each field is one
/// ``Setting`` of ``Setting/all``.
struct ServeSettings: Sendable {
    var host = "127.0.0.1"
    var port = 8080
    var dataDir = "data/store"
    var adminToken: String?
    var adminTokenFile: String?
    var eventLoops: Int?
    var maxBodyBytes = 1 << 20
    var maxKeys = 10_000_000
    var idempotencyEntries = 1_000_000
    var fsync = FsyncPolicy.everysec
    var strictRecovery = false
    var snapshotJournalBytes = 64 << 20
    var snapshotIntervalSeconds = 3600
    var segmentBytes = 64 << 20
    var rateLimit = true
    var rateBurst = 20_000
    var ratePerSecond: Double = 10_000
    var failedBurst = 30
    var failedPerMinute: Double = 30
    var allow: [String] = []
    var trustedProxy: [String] = []
    var limiterEntries = 100_000
    var maxConnections = 10_000
    var idleTimeoutSeconds = 60
    var requestTimeoutSeconds = 10
    var shutdownTimeoutSeconds: Double = 10
    var logLevel = Logger.Level.info
    var logFormat = LogFormat.text
    var accessLog = false
    var metrics = true
    var metricsAllow = ["127.0.0.0/8", "::1"]
    var tlsCertificate: String?
    var tlsPrivateKey: String?
    var postgres: String?
    var postgresSchema = "apikeyd"
    var nodeName: String?
    var postgresRetainedChanges = 100_000
    var keyStorage = KeyStorageMode.plain
    var keySecretFile: String?

    /// What no single setting can check alone.
    func problems() -> [String] {
        var problems: [String] = []
        if (tlsCertificate == nil) != (tlsPrivateKey == nil) {
            problems.append("tls-certificate and tls-private-key must be given together")
        }
        if adminToken != nil, adminTokenFile != nil {
            problems.append("admin-token and admin-token-file are alternatives: give one")
        }
        return problems
    }
}

/// How log lines are written.
enum LogFormat: String, CaseIterable, Sendable {
    /// `2026-12-01T20:00:00.123Z info message key=value`
    case text
    /// One JSON object per line: `timestamp`, `level`, `message` and the metadata.
    case json
}

import APIKeyAPI
import APIKeyEngine
import APIKeyLimiter
import APIKeyServer
import ArgumentParser
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@main
struct APIKeyDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikeyd",
        abstract: "An API-key validation engine with a FOSSBilling-compatible HTTP API.",
        subcommands: [Serve.self, Snapshot.self, VerifyData.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the HTTP API.")

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "The data directory (created readable by its owner only).")
    var dataDir = "data/store"

    @Option(
        help: ArgumentHelp(
            "The admin token for HTTP Basic user 'admin'.",
            discussion:
                "Defaults to $APIKEYD_ADMIN_TOKEN; with neither, a token is generated on first start and kept in <data-dir>/admin-token."
        ))
    var adminToken: String?

    @Option(help: "Event loops (threads) serving connections; default: one per core.")
    var eventLoops: Int?

    @Option(help: "The largest request body in bytes; larger ones get HTTP 413.")
    var maxBodyBytes = 1 << 20

    @Option(help: "The most keys the engine holds.")
    var maxKeys = 10_000_000

    @Option(help: "Verify answers remembered for their request_id (24 hours; oldest dropped first; 0: none).")
    var idempotencyEntries = 1_000_000

    @Option(help: "When the journal fsyncs: always (acknowledge after fsync), everysec, or no.")
    var fsync: FsyncPolicy = .everysec

    @Flag(help: "Refuse to start when journal replay stops at corruption.")
    var strictRecovery = false

    @Option(help: "Snapshot after the journal grows by this many bytes.")
    var snapshotJournalBytes = 64 << 20

    @Option(help: "Snapshot after this many seconds if anything was written (0: never by time).")
    var snapshotIntervalSeconds = 3600

    @Option(help: "Start a new journal segment past this many bytes.")
    var segmentBytes = 64 << 20

    @Option(help: "Per-address burst: requests an address may make at once.")
    var rateBurst = 20_000

    @Option(help: "Per-address sustained requests per second.")
    var ratePerSecond: Double = 10_000

    @Option(help: "Per-address burst of failed key lookups and failed authentications.")
    var failedBurst = 30

    @Option(help: "Failed lookups an address regains per minute.")
    var failedPerMinute: Double = 30

    @Option(help: "An address or CIDR range never rate limited (repeatable).")
    var allow: [String] = []

    @Option(help: "A proxy address or CIDR range whose X-Forwarded-For is believed (repeatable).")
    var trustedProxy: [String] = []

    @Option(help: "Entries in each per-address limiter table (idle ones are evicted beyond it).")
    var limiterEntries = 100_000

    @Flag(help: "Turn rate limiting off.")
    var noRateLimit = false

    @Option(help: "The most connections open at once.")
    var maxConnections = 10_000

    @Option(help: "Seconds a connection may stay silent between requests.")
    var idleTimeoutSeconds: Int64 = 60

    @Option(help: "Seconds a request has to arrive in full after its first byte.")
    var requestTimeoutSeconds: Int64 = 10

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes must be positive") }
        guard maxKeys > 0 else { throw ValidationError("--max-keys must be positive") }
        guard idempotencyEntries >= 0 else { throw ValidationError("--idempotency-entries must be at least 0") }
        if let eventLoops, eventLoops < 1 { throw ValidationError("--event-loops must be at least 1") }
        guard snapshotJournalBytes > 0, segmentBytes >= 4096, snapshotIntervalSeconds >= 0 else {
            throw ValidationError("--snapshot-journal-bytes must be positive, --segment-bytes at least 4096")
        }
        guard rateBurst >= 1, ratePerSecond >= 0, failedBurst >= 1, failedPerMinute >= 0, limiterEntries >= 16 else {
            throw ValidationError("rate limits need bursts of at least 1, rates of at least 0, 16+ limiter entries")
        }
        guard maxConnections >= 1, idleTimeoutSeconds >= 1, requestTimeoutSeconds >= 1 else {
            throw ValidationError("--max-connections and the timeouts must be at least 1")
        }
        for range in allow + trustedProxy where CIDRRange(range) == nil {
            throw ValidationError("'\(range)' is not an IP address or CIDR range")
        }
    }

    func run() async throws {
        var logger = Logger(label: "apikeyd")
        logger.logLevel = .info

        var storageOptions = StorageOptions()
        storageOptions.fsync = fsync
        storageOptions.strictRecovery = strictRecovery
        storageOptions.snapshotAfterJournalBytes = snapshotJournalBytes
        storageOptions.snapshotIntervalSeconds = snapshotIntervalSeconds
        storageOptions.segmentBytes = segmentBytes
        var engineConfiguration = EngineConfiguration()
        engineConfiguration.maximumKeys = maxKeys
        engineConfiguration.idempotencyEntries = idempotencyEntries
        let engine = try Engine.open(
            directory: dataDir, options: storageOptions, configuration: engineConfiguration, logger: logger)

        let token: String
        if let adminToken, !adminToken.isEmpty {
            token = adminToken
        } else if let environment = getenv("APIKEYD_ADMIN_TOKEN"), !String(cString: environment).isEmpty {
            token = String(cString: environment)
        } else {
            let stored = try AdminTokenFile.loadOrCreate(in: dataDir)
            token = stored.token
            logger.notice(
                "\(stored.created ? "generated a new admin token in" : "admin token read from") \(stored.path)")
        }

        var serverConfiguration = ServerConfiguration()
        serverConfiguration.host = host
        serverConfiguration.port = port
        serverConfiguration.maximumBodyBytes = maxBodyBytes
        if let eventLoops { serverConfiguration.eventLoopCount = eventLoops }

        serverConfiguration.maximumConnections = maxConnections
        serverConfiguration.idleTimeoutSeconds = idleTimeoutSeconds
        serverConfiguration.requestTimeoutSeconds = requestTimeoutSeconds
        var rateLimits = RateLimitConfiguration()
        rateLimits.isEnabled = !noRateLimit
        rateLimits.general = TokenBucket.Rate(capacity: rateBurst, refillPerSecond: ratePerSecond)
        rateLimits.failures = TokenBucket.Rate(capacity: failedBurst, refillPerSecond: failedPerMinute / 60)
        rateLimits.allowList = allow.compactMap { CIDRRange($0) }
        rateLimits.trustedProxies = trustedProxy.compactMap { CIDRRange($0) }
        rateLimits.tableCapacity = limiterEntries
        let server = try await APIServer.start(
            router: APIRouter(engine: engine, adminToken: token, rateLimits: rateLimits),
            configuration: serverConfiguration)
        logger.notice(
            "apikeyd listening on http://\(host):\(server.port) (data directory \(dataDir), fsync \(fsync.rawValue))")

        await waitForTerminationSignal()
        logger.notice("shutting down: closing connections, then a final snapshot")
        try await server.shutdown()
        try engine.close()
        logger.notice("stopped cleanly")
    }

    /// Returns when SIGINT or SIGTERM arrives.
    private func waitForTerminationSignal() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            TerminationSignals(continuation).install()
        }
    }
}

extension FsyncPolicy: ExpressibleByArgument {}

struct Snapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a snapshot of a data directory that no server is using, and prune the journal.")

    @Option(help: "The data directory.")
    var dataDir = "data/store"

    func run() throws {
        var options = StorageOptions()
        options.snapshotOnClose = false
        let engine = try Engine.open(directory: dataDir, options: options)
        let summary = try engine.snapshot()
        try engine.close()
        print(
            "wrote \(summary.path): \(summary.entries) entries, \(summary.bytes) bytes, last sequence \(summary.lastSequence), \(summary.nanoseconds / 1_000_000) ms"
        )
    }
}

struct VerifyData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-data",
        abstract: "Report what recovery would do with a data directory, changing nothing.",
        discussion:
            "Loads the state as the server would and checks every record. Exits with status 1 when a snapshot is rejected, replay would stop at corruption, or a record is damaged."
    )

    @Option(help: "The data directory.")
    var dataDir = "data/store"

    func run() throws {
        let report = try Engine.verifyData(directory: dataDir)
        print(report.description)
        if report.corruption != nil || !report.rejectedSnapshots.isEmpty || !report.integrityProblems.isEmpty {
            throw ExitCode(1)
        }
    }
}

/// Resumes a continuation once, on the first SIGINT or SIGTERM; lives as long as the process.
private final class TerminationSignals: @unchecked Sendable {
    private let continuation: Mutex<CheckedContinuation<Void, Never>?>
    /// Written once by `install` before any handler can run; keeps the sources alive.
    private var sources: [any DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<Void, Never>) {
        self.continuation = Mutex(continuation)
    }

    func install() {
        let queue = DispatchQueue(label: "apikeyd.signals")
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { [self] in
                continuation.withLock { pending in
                    pending?.resume()
                    pending = nil
                }
            }
            sources.append(source)
            source.resume()
        }
    }
}

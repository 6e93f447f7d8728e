import APIKeyAPI
import APIKeyCluster
import APIKeyEngine
import APIKeyLimiter
import APIKeyServer
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// A start-up step that failed: logged, then the process exits 1 before it listens.
struct StartFailure: Error, CustomStringConvertible {
    var description: String
}

/// The server as a process: logging and metrics bootstrapped, the data directory checked and
/// opened, the listener started, then swift-service-lifecycle's group until SIGTERM or SIGINT.
struct Daemon {
    let resolved: ResolvedSettings
    var settings: ServeSettings { resolved.settings }

    init(_ resolved: ResolvedSettings) {
        self.resolved = resolved
    }

    func run() async throws {
        let started = ContinuousClock.now
        let format = settings.logFormat
        let level = settings.logLevel
        LoggingSystem.bootstrap { _ in LogLineHandler(format: format, level: level) }
        let logger = Logger(label: "apikeyd")
        do {
            try await serve(logger: logger, started: started)
        } catch let failure as StartFailure {
            logger.critical("apikeyd did not start: \(failure.description)")
            throw ExitCode(1)
        }
    }

    private func serve(logger: Logger, started: ContinuousClock.Instant) async throws {
        for name in resolved.unknownEnvironment where name != "APIKEYD_BINARY" {
            logger.warning("the environment variable \(name) names no setting and is ignored")
        }
        let exporter = settings.metrics ? MetricsExporter() : nil
        try DataDirectoryPermissions.secure(settings.dataDir, logger: logger)
        let tls: TLSCertificates?
        if let certificate = settings.tlsCertificate, let key = settings.tlsPrivateKey {
            do {
                tls = try TLSCertificates(certificatePath: certificate, privateKeyPath: key)
            } catch {
                throw StartFailure(description: error.description)
            }
        } else {
            tls = nil
        }

        let (engineConfiguration, createdSecret) = try engineConfiguration(logger: logger)
        let engine: Engine
        let node: ClusterNode?
        do {
            if let url = settings.postgres {
                var cluster = try ClusterConfiguration(
                    url: url, schema: settings.postgresSchema, nodeName: settings.nodeName)
                cluster.retainedChanges = Int64(settings.postgresRetainedChanges)
                node = try ClusterNode.open(
                    directory: settings.dataDir, options: storageOptions, engineConfiguration: engineConfiguration,
                    cluster: cluster, logger: logger)
                engine = node!.engine
            } else {
                node = nil
                engine = try Engine.open(
                    directory: settings.dataDir, options: storageOptions, configuration: engineConfiguration,
                    logger: logger)
            }
        } catch {
            // A secret made for a directory that then refuses to open would only mislead later.
            if let createdSecret { unlink(createdSecret) }
            if let error = error as? ClusterConfigurationError { throw StartFailure(description: error.description) }
            throw StartFailure(description: "cannot open the data directory \(settings.dataDir): \(error)")
        }
        if let createdSecret {
            logger.notice("generated a new key secret in \(createdSecret); keep it with the admin token")
        }
        let token = try adminToken(logger: logger)
        let metrics = exporter.map { exporter in
            MetricsEndpoint(allowed: settings.metricsAllow.compactMap { CIDRRange($0) }) { exporter.render() }
        }
        let router = APIRouter(
            engine: engine, adminToken: token, rateLimits: rateLimits, metrics: metrics, logger: logger,
            coordinator: node)
        var serverConfiguration = self.serverConfiguration
        serverConfiguration.tls = tls
        serverConfiguration.collectsStatistics = exporter != nil
        if settings.accessLog { serverConfiguration.accessLog = Logger(label: "apikeyd.access") }
        let running = RunningServer(
            router: router, configuration: serverConfiguration, engine: engine, exporter: exporter, tls: tls,
            drainSeconds: settings.shutdownTimeoutSeconds, logger: logger,
            listening: { server in
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                return [
                    "data_dir": "\(settings.dataDir)", "fsync": "\(settings.fsync.rawValue)",
                    "keys": "\(engine.keyCount)", "recovery": "\(Self.recoverySummary(engine.recoveryReport))",
                    "seconds": "\((seconds * 1000).rounded() / 1000)", "version": "\(apikeydVersion)",
                    "postgres": "\(node == nil ? "no" : "schema \(settings.postgresSchema)")",
                ]
            })
        // The group traps SIGTERM and SIGINT before it runs the service, which only then listens:
        // a signal that arrives once the address is known is always a graceful shutdown.
        // Shut down in reverse order: the server drains and closes the engine first, then the
        // cluster node flushes the last counted uses and hands its leases back.
        let services: [any Service] = (node.map { [$0] } ?? []) + [running]
        let group = ServiceGroup(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: Self.quiet(logger))
        try await group.run()
    }

    /// The lifecycle library's own lines are about its internals: only its warnings are kept.
    private static func quiet(_ logger: Logger) -> Logger {
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        return quiet
    }

    /// `http://host:port`, an IPv6 address in brackets.
    static func url(host: String, port: Int, tls: Bool) -> String {
        let shown = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "\(tls ? "https" : "http")://\(shown):\(port)"
    }

    /// What recovery did, in one phrase.
    static func recoverySummary(_ report: RecoveryReport?) -> String {
        guard let report else { return "none" }
        var parts = [
            report.snapshot.map { "loaded \($0) (\(report.snapshotEntries) entries)" } ?? "no snapshot",
            "replayed \(report.replayedRecords) journal records",
        ]
        if report.tornTail != nil { parts.append("dropped a torn last record") }
        if let corruption = report.corruption { parts.append("replay stopped at corruption: \(corruption)") }
        if !report.rejectedSnapshots.isEmpty {
            parts.append("rejected snapshots \(report.rejectedSnapshots.joined(separator: ", "))")
        }
        return parts.joined(separator: "; ")
    }

    /// The admin token: `admin-token`, else the first line of `admin-token-file`, else the one
    /// kept in the data directory (generated on first start).
    private func adminToken(logger: Logger) throws -> String {
        if let token = settings.adminToken {
            if resolved.sources["admin-token"] == .flag {
                logger.warning(
                    "--admin-token is visible to every user of this machine in ps; use --admin-token-file or APIKEYD_ADMIN_TOKEN"
                )
            }
            return token
        }
        if let path = settings.adminTokenFile {
            do throws(CommandFailure) {
                return try TokenFile.read(path)
            } catch {
                throw StartFailure(description: error.description)
            }
        }
        do {
            let stored = try AdminTokenFile.loadOrCreate(in: settings.dataDir)
            logger.notice(
                "\(stored.created ? "generated a new admin token in" : "admin token read from") \(stored.path)")
            return stored.token
        } catch {
            throw StartFailure(description: "\(error)")
        }
    }

    private var storageOptions: StorageOptions {
        var options = StorageOptions()
        options.fsync = settings.fsync
        options.strictRecovery = settings.strictRecovery
        options.snapshotAfterJournalBytes = settings.snapshotJournalBytes
        options.snapshotIntervalSeconds = settings.snapshotIntervalSeconds
        options.segmentBytes = settings.segmentBytes
        return options
    }

    /// The engine's limits and key storage, and the path of a key secret made now (nil: none).
    private func engineConfiguration(logger: Logger) throws -> (EngineConfiguration, String?) {
        var configuration = EngineConfiguration()
        configuration.maximumKeys = settings.maxKeys
        configuration.idempotencyEntries = settings.idempotencyEntries
        if settings.keyStorage == .hashed, settings.postgres != nil, settings.keySecretFile == nil {
            throw StartFailure(
                description:
                    "with --postgres, hashed key storage needs --key-secret-file: every node must hash with the same secret"
            )
        }
        do throws(CommandFailure) {
            let (storage, created) = try KeySecret.storage(
                settings.keyStorage, secretFile: settings.keySecretFile, dataDir: settings.dataDir, mayCreate: true)
            if settings.keyStorage == .plain, settings.keySecretFile != nil {
                logger.warning("key-secret-file is ignored: key storage is plain")
            }
            if let path = settings.keySecretFile ?? created, KeySecret.isOpenToOthers(path) {
                logger.warning("the key secret file \(path) is readable by other users; chmod 600 it")
            }
            configuration.keyStorage = storage
            return (configuration, created)
        } catch {
            throw StartFailure(description: error.description)
        }
    }

    private var serverConfiguration: ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = settings.host
        configuration.port = settings.port
        configuration.maximumBodyBytes = settings.maxBodyBytes
        if let eventLoops = settings.eventLoops { configuration.eventLoopCount = eventLoops }
        configuration.maximumConnections = settings.maxConnections
        configuration.idleTimeoutSeconds = Int64(settings.idleTimeoutSeconds)
        configuration.requestTimeoutSeconds = Int64(settings.requestTimeoutSeconds)
        return configuration
    }

    private var rateLimits: RateLimitConfiguration {
        var limits = RateLimitConfiguration()
        limits.isEnabled = settings.rateLimit
        limits.general = TokenBucket.Rate(capacity: settings.rateBurst, refillPerSecond: settings.ratePerSecond)
        limits.failures = TokenBucket.Rate(
            capacity: settings.failedBurst, refillPerSecond: settings.failedPerMinute / 60)
        limits.allowList = settings.allow.compactMap { CIDRRange($0) }
        limits.trustedProxies = settings.trustedProxy.compactMap { CIDRRange($0) }
        limits.tableCapacity = settings.limiterEntries
        return limits
    }
}

/// The listening server under swift-service-lifecycle: starts listening (SIGHUP already trapped),
/// reloads the TLS files on SIGHUP; on graceful shutdown (SIGTERM, SIGINT) stops accepting, lets
/// requests under way finish, then closes the engine (every acknowledged write fsynced, a final
/// snapshot).
struct RunningServer: Service {
    let router: APIRouter
    let configuration: ServerConfiguration
    let engine: Engine
    let exporter: MetricsExporter?
    let tls: TLSCertificates?
    let drainSeconds: Double
    let logger: Logger
    /// The start line's metadata, once listening.
    let listening: @Sendable (APIServer) -> Logger.Metadata

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let server: APIServer
        do {
            server = try await APIServer.start(router: router, configuration: configuration)
        } catch {
            try? await engine.close()
            throw StartFailure(description: "cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        exporter?.attach(engine: engine, server: server)
        logger.notice(
            "apikeyd listening on \(Daemon.url(host: configuration.host, port: server.port, tls: tls != nil))",
            metadata: listening(server))
        for await _ in hangups.cancelOnGracefulShutdown() {
            guard let tls else {
                logger.notice("SIGHUP: no TLS certificate to reload")
                continue
            }
            do {
                try tls.reload()
                logger.notice(
                    "SIGHUP: reloaded the TLS certificate for new connections",
                    metadata: ["certificate": "\(tls.certificatePath)"])
            } catch {
                logger.error("SIGHUP: kept the TLS certificate in use: \(error.description)")
            }
        }
        let stopping = ContinuousClock.now
        logger.notice(
            "stopping: no new connections, requests under way have up to \(drainSeconds.formatted) s, then a final snapshot"
        )
        try await server.shutdown(drainSeconds: drainSeconds)
        do {
            try await engine.close()
        } catch {
            logger.critical("the final snapshot or the journal's last fsync failed: \(error)")
            throw error
        }
        let elapsed = ContinuousClock.now - stopping
        logger.notice(
            "stopped cleanly",
            metadata: [
                "keys": "\(engine.keyCount)",
                "seconds":
                    "\(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds / 1_000_000_000_000_000) / 1000)",
            ])
    }
}

import APIKeyEngine
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
        subcommands: [Serve.self],
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

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes must be positive") }
        guard maxKeys > 0 else { throw ValidationError("--max-keys must be positive") }
        if let eventLoops, eventLoops < 1 { throw ValidationError("--event-loops must be at least 1") }
    }

    func run() async throws {
        var logger = Logger(label: "apikeyd")
        logger.logLevel = .info

        let token: String
        if let adminToken, !adminToken.isEmpty {
            token = adminToken
            try AdminTokenFile.createDirectory(dataDir)
        } else if let environment = getenv("APIKEYD_ADMIN_TOKEN"), !String(cString: environment).isEmpty {
            token = String(cString: environment)
            try AdminTokenFile.createDirectory(dataDir)
        } else {
            let stored = try AdminTokenFile.loadOrCreate(in: dataDir)
            token = stored.token
            logger.notice(
                "\(stored.created ? "generated a new admin token in" : "admin token read from") \(stored.path)")
        }

        var engineConfiguration = EngineConfiguration()
        engineConfiguration.maximumKeys = maxKeys
        let engine = Engine(configuration: engineConfiguration)

        var serverConfiguration = ServerConfiguration()
        serverConfiguration.host = host
        serverConfiguration.port = port
        serverConfiguration.maximumBodyBytes = maxBodyBytes
        if let eventLoops { serverConfiguration.eventLoopCount = eventLoops }

        let server = try await APIServer.start(
            router: APIRouter(engine: engine, adminToken: token), configuration: serverConfiguration)
        logger.notice("apikeyd listening on http://\(host):\(server.port) (data directory \(dataDir))")

        await waitForTerminationSignal()
        logger.notice("shutting down")
        try await server.shutdown()
    }

    /// Returns when SIGINT or SIGTERM arrives.
    private func waitForTerminationSignal() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            TerminationSignals(continuation).install()
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

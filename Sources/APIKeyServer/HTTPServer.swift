import APIKeyAPI
import APIKeyEngine
import NIOCore
import NIOPosix

/// Where and how the HTTP server listens.
public struct ServerConfiguration: Sendable {
    /// The address to bind.
    public var host: String = "127.0.0.1"
    /// The TCP port to bind; 0 picks a free one (see ``APIServer/port``).
    public var port: Int = 8080
    /// How many event loops (threads) serve connections.
    public var eventLoopCount: Int = System.coreCount
    /// The largest request body accepted; larger ones get HTTP 413.
    public var maximumBodyBytes: Int = 1 << 20
    /// The most connections open at once; more are closed as soon as they are accepted.
    public var maximumConnections: Int = 10_000
    /// A request must arrive in full (head and body) within this many seconds of its first byte.
    public var requestTimeoutSeconds: Int64 = 10
    /// A connection with no request under way is closed after this many seconds of silence.
    public var idleTimeoutSeconds: Int64 = 60
    /// The longest request target (path and query) in bytes; longer ones get HTTP 414.
    public var maximumTargetBytes: Int = 8192
    /// Limits on request headers: total bytes of names and values, and their number.
    public var maximumHeaderBytes: Int = 16384
    public var maximumHeaderCount: Int = 100
    /// Threads for calls that block on the disk for long (on-demand snapshots); writes never
    /// block a thread: they answer when the journal's syncer reports them durable.
    public var blockingThreadCount: Int = 1

    /// The defaults: 127.0.0.1:8080, one event loop per core, 1 MiB bodies, 10,000 connections,
    /// 10 s to send a request, 60 s idle, 8 KiB targets, 16 KiB and 100 headers, 1 blocking thread.
    public init() {}
}

/// The HTTP API server: SwiftNIO event loops and sockets, the server's own HTTP/1.1 parser
/// (``HTTPConnectionHandler``), and an ``APIRouter``.
public final class APIServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool
    private let channel: any Channel
    /// The port the server listens on (useful when it was started on port 0).
    public let port: Int

    private init(group: MultiThreadedEventLoopGroup, threadPool: NIOThreadPool, channel: any Channel) {
        self.group = group
        self.threadPool = threadPool
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    /// Binds and starts serving `router` as `configuration` says.
    public static func start(router: APIRouter, configuration: ServerConfiguration) async throws -> APIServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopCount))
        let connections = ConnectionCounter(limit: configuration.maximumConnections)
        let limits = RequestAssembler.Limits(
            maximumBodyBytes: configuration.maximumBodyBytes, maximumTargetBytes: configuration.maximumTargetBytes,
            maximumHeaderBytes: configuration.maximumHeaderBytes, maximumHeaderCount: configuration.maximumHeaderCount)
        let requestTimeout = TimeAmount.seconds(configuration.requestTimeoutSeconds)
        let idleTimeout = TimeAmount.seconds(configuration.idleTimeoutSeconds)
        let threadPool = NIOThreadPool(numberOfThreads: max(1, configuration.blockingThreadCount))
        threadPool.start()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard connections.admit() else {
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in connections.release() }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(ConnectionGuard(requestTimeout: requestTimeout, idleTimeout: idleTimeout))
                    try pipeline.addHandler(
                        HTTPConnectionHandler(router: router, limits: limits, threadPool: threadPool))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
            return APIServer(group: group, threadPool: threadPool, channel: channel)
        } catch {
            try? await threadPool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops accepting connections and shuts the event loops and blocking threads down.
    public func shutdown() async throws {
        try? await channel.close()
        try await threadPool.shutdownGracefully()
        try await group.shutdownGracefully()
    }
}

import APIKeyEngine
import NIOCore
import NIOHTTP1
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

/// The HTTP API server: SwiftNIO's HTTP/1.1 codec in front of an ``APIRouter``.
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
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = configuration.maximumHeaderBytes
        decoderLimits.maxHeaderFieldSize = configuration.maximumHeaderBytes
        decoderLimits.maxHeaderFieldCount = configuration.maximumHeaderCount
        let limits = decoderLimits
        let handlerConfiguration = APIHTTPHandler.Limits(
            maximumBodyBytes: configuration.maximumBodyBytes, maximumTargetBytes: configuration.maximumTargetBytes)
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
                    // Our responses carry only fixed, valid headers: NIO's outbound header validation
                    // cost about 9% of the server's time under load.
                    try pipeline.configureHTTPServerPipeline(
                        withErrorHandling: false, withOutboundHeaderValidation: false,
                        withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                        withDecoderLimitConfiguration: limits)
                    try pipeline.addHandler(
                        APIHTTPHandler(router: router, limits: handlerConfiguration, threadPool: threadPool))
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

/// Collects one request (head, bounded body, end), asks the router, and writes its answer.
final class APIHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Per-request limits the handler enforces.
    struct Limits: Sendable {
        var maximumBodyBytes: Int
        var maximumTargetBytes: Int
    }

    private let router: APIRouter
    private let maximumBodyBytes: Int
    private let maximumTargetBytes: Int
    private let threadPool: NIOThreadPool
    /// The connecting peer's address; nil for a non-IP socket (never limited).
    private var peer: IPAddress?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var rejected = false
    /// Responses waiting for their write to become durable; a parse error while one waits closes
    /// the connection after it instead of answering out of order.
    private var deferredResponses = 0
    private var closeAfterDeferred = false

    init(router: APIRouter, limits: Limits, threadPool: NIOThreadPool) {
        self.router = router
        self.maximumBodyBytes = limits.maximumBodyBytes
        self.maximumTargetBytes = limits.maximumTargetBytes
        self.threadPool = threadPool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress?.ipAddress.flatMap { IPAddress($0) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
            rejected = false
            if head.uri.utf8.count > maximumTargetBytes {
                rejected = true
                let response = APIResponse.failure(
                    status: 414, code: 414, "Request target too long: the limit is \(maximumTargetBytes) bytes")
                write(response, context: context, version: head.version, keepAlive: false, omitBody: false)
            } else if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }),
                length > maximumBodyBytes
            {
                rejectTooLarge(context: context, version: head.version)
            }
        case .body(let buffer):
            guard !rejected, let head else { return }
            guard body.count + buffer.readableBytes <= maximumBodyBytes else {
                rejectTooLarge(context: context, version: head.version)
                return
            }
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard !rejected, let head else { return }
            self.head = nil
            let request = APIRequest(
                method: head.method.rawValue, target: head.uri,
                authorization: head.headers.first(name: "authorization"),
                contentType: head.headers.first(name: "content-type"), body: body)
            let keepAlive = head.isKeepAlive
            let omitBody = head.method == .HEAD
            let version = head.version
            let client = peer.map { router.clientAddress(peer: $0, forwardedFor: head.headers["X-Forwarded-For"]) }
            if APIRouter.mayBlock(target: head.uri) {
                let router = self.router
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                threadPool.runIfActive(eventLoop: context.eventLoop) { () throws(EngineError) -> APIResponse in
                    let (response, pending) = router.respond(to: request, client: client)
                    if let pending { try router.engine.waitUntilDurable(pending) }
                    return response
                }.whenComplete { result in
                    let (handler, context) = loopBound.value
                    let response: APIResponse
                    switch result {
                    case .success(let answer): response = answer
                    case .failure(let error as EngineError): response = APIRouter.failure(error)
                    case .failure: response = .failure(status: 503, code: 503, "The server is shutting down")
                    }
                    handler.write(
                        response, context: context, version: version, keepAlive: keepAlive, omitBody: omitBody)
                }
                return
            }
            let (response, pending) = router.respond(to: request, client: client)
            guard let pending else {
                write(response, context: context, version: version, keepAlive: keepAlive, omitBody: omitBody)
                return
            }
            // Answered once the journal's syncer reports it durable (one fsync for every write
            // waiting by then); the pipelining handler holds this connection's next request.
            let eventLoop = context.eventLoop
            let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
            deferredResponses += 1
            router.engine.whenDurable(pending) { failure in
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.deferredResponses -= 1
                    handler.write(
                        failure.map(APIRouter.failure) ?? response, context: context, version: version,
                        keepAlive: keepAlive && !handler.closeAfterDeferred, omitBody: omitBody)
                }
            }
        }
    }

    /// A request NIO's HTTP parser rejects (a bad request line, headers over the limits, bad
    /// chunking) is answered with the envelope and HTTP 400 (431 for oversized headers), and the
    /// connection closes: after a parse error the byte stream cannot be trusted. Other errors
    /// (a reset connection) just close it.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, !rejected else {
            context.close(promise: nil)
            return
        }
        rejected = true
        guard deferredResponses == 0 else {
            closeAfterDeferred = true
            return
        }
        let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        let response = APIResponse.failure(
            status: Int(status.code), code: Int(status.code), "Malformed HTTP request: \(parserError)")
        write(response, context: context, version: .http1_1, keepAlive: false, omitBody: false)
    }

    private func rejectTooLarge(context: ChannelHandlerContext, version: HTTPVersion) {
        rejected = true
        body.removeAll()
        let response = APIResponse.failure(
            status: 413, code: 413, "Request body too large: the limit is \(maximumBodyBytes) bytes")
        write(response, context: context, version: version, keepAlive: false, omitBody: false)
    }

    private func write(
        _ response: APIResponse, context: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool, omitBody: Bool
    ) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(3 + response.headers.count)
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.add(name: "Content-Length", value: String(response.body.count))
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let responseHead = HTTPResponseHead(
            version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if !omitBody {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

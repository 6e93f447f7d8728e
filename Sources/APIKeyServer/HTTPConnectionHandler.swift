import APIKeyAPI
import APIKeyLimiter
import Logging
import NIOCore
import NIOPosix

/// One connection's HTTP/1.1 over NIO: feeds the bytes read to a ``RequestAssembler``, answers
/// key lookups through the ``KeyLookupFastPath`` and everything else through the ``APIRouter``,
/// carries out what the router decided (``APIAnswer``), and writes the answers, batched until
/// the end of each read.
///
/// While an answer waits (a write for its fsync, a snapshot on the blocking pool) the connection
/// reads nothing more, so answers leave in request order. A request the assembler refuses is
/// answered with the envelope and the connection closes: after a parse error the byte stream
/// cannot be trusted.
final class HTTPConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let router: APIRouter
    private let fastPath: KeyLookupFastPath
    private let threadPool: NIOThreadPool
    private let answers = PreEncodedAnswers.shared
    private var assembler: RequestAssembler
    /// The connecting peer's address; nil for a non-IP socket (never limited).
    private var peer: IPAddress?
    private var input: ByteBuffer?
    private var output: ByteBuffer?
    /// The last output buffer handed to the channel, kept to be cleared and reused once the
    /// channel has written it (no allocation per answer); only small ones are kept.
    private var spareOutput: ByteBuffer?
    /// An answer is being waited for: read and parse nothing until it is written.
    private var waiting = false
    private var readHeld = false
    /// The last answer said `Connection: close`: nothing more is read or answered.
    private var closing = false
    /// The server is stopping: answer what is under way, then close.
    private var quiescing = false
    /// This event loop's request counters (nil: metrics off), and the access log (nil: off).
    private let statistics: RequestStatistics?
    private let accessLog: Logger?
    /// The request being answered, for the counters and the access log.
    private var current = CurrentRequest()

    init(
        router: APIRouter, limits: RequestAssembler.Limits, threadPool: NIOThreadPool,
        statistics: RequestStatistics? = nil, accessLog: Logger? = nil
    ) {
        self.router = router
        self.fastPath = KeyLookupFastPath(router: router)
        self.threadPool = threadPool
        self.assembler = RequestAssembler(limits: limits)
        self.statistics = statistics
        self.accessLog = accessLog
    }

    func handlerAdded(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress?.ipAddress.flatMap { IPAddress($0) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if peer == nil { peer = context.channel.remoteAddress?.ipAddress.flatMap { IPAddress($0) } }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !closing else { return }
        if input == nil || input!.readableBytes == 0 {
            input = bytes
        } else {
            input!.writeBuffer(&bytes)
        }
        process(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushOutput(context: context)
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if waiting {
            readHeld = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// On ``ChannelShouldQuiesceEvent`` (the server is stopping): an idle connection closes now,
    /// a busy one once its answer is written.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        quiescing = true
        if !closing, !waiting, output == nil, input == nil, !assembler.isInBody {
            closing = true
            context.close(promise: nil)
        }
    }

    // MARK: - Requests

    /// Answers every complete request in the input, in order, until one must be waited for.
    private func process(context: ChannelHandlerContext) {
        while !waiting, !closing, let buffer = input, buffer.readableBytes > 0 {
            let (consumed, goOn) = buffer.withUnsafeReadableBytes { bytes in
                let prefetched = assembler.isInBody ? nil : fastPath.prefetch(bytes)
                let (step, consumed) = assembler.step(bytes)
                return (consumed, take(step, bytes, prefetched: prefetched, context: context))
            }
            if input != nil { input!.moveReaderIndex(forwardBy: consumed) }
            guard goOn || consumed > 0 else { break }
        }
        if let buffer = input, buffer.readableBytes == 0 { input = nil }
    }

    /// Acts on what the assembler found; false when it needs more input than it has.
    private func take(
        _ step: RequestAssembler.Step, _ bytes: UnsafeRawBufferPointer, prefetched: KeyLookupFastPath.Prefetched?,
        context: ChannelHandlerContext
    ) -> Bool {
        switch step {
        case .needMore:
            return false
        case .inPlace(let head, let body):
            begin()
            let keepAlive = head.keepAlive && !quiescing
            var status = 200
            let outcome = fastPath.answer(head, bytes, body: body, client: peer, prefetched: prefetched) { answer in
                status = write(answer, keepAlive: keepAlive, isHTTP11: head.isHTTP11, context: context)
            }
            switch outcome {
            case .answered(let lookup):
                noteLookup(lookup, isGET: ASCII.equal(bytes, head.method, "GET"))
                finish(status: status)
            case .later(let answer, let lookup):
                noteLookup(lookup, isGET: ASCII.equal(bytes, head.method, "GET"))
                carryOut(answer, keepAlive: keepAlive, isHTTP11: head.isHTTP11, isHead: false, context: context)
            case .notTaken:
                respond(to: RequestAssembler.request(head, bytes, body: Array(bytes[body])), context: context)
            }
        case .assembled(let request):
            begin()
            respond(to: request, context: context)
        case .sendContinue:
            var interim = context.channel.allocator.buffer(capacity: 25)
            interim.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(interim)), promise: nil)
        case .failed(let failure):
            input = nil
            begin()
            answer(
                .failure(status: failure.status, code: failure.status, failure.message), context: context,
                keepAlive: false, isHTTP11: true, isHead: false)
            finish(status: failure.status)
        }
        return true
    }

    /// Carries out what the router decides for `request`: an answer now, one once a write is
    /// durable, or a call run on the blocking pool. The last two hold the connection meanwhile.
    private func respond(to assembled: RequestAssembler.Request, context: ChannelHandlerContext) {
        let client = peer.map { router.clientAddress(peer: $0, forwardedFor: assembled.forwardedFor) }
        if statistics != nil || accessLog != nil {
            current.endpoint = EndpointLabel.number(target: assembled.request.target)
            if accessLog != nil { current.general = (assembled.request.method, assembled.request.target) }
        }
        carryOut(
            router.respond(to: assembled.request, client: client), keepAlive: assembled.keepAlive && !quiescing,
            isHTTP11: assembled.isHTTP11, isHead: assembled.isHead, context: context)
    }

    /// Carries out one ``APIAnswer``.
    private func carryOut(
        _ decided: APIAnswer, keepAlive: Bool, isHTTP11: Bool, isHead: Bool, context: ChannelHandlerContext
    ) {
        switch decided {
        case .now(let response):
            answer(response, context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead)
            finish(status: response.status)
        case .afterDurable(let response, let pending):
            // Answered once the journal's syncer reports it durable (one fsync for every write
            // waiting by then).
            let eventLoop = context.eventLoop
            let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
            waiting = true
            router.whenDurable(pending, answering: response) { response in
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.answerLater(
                        response, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead, context: context)
                }
            }
        case .later(let start):
            // A write through the cluster: answered when its commit is known, on this loop.
            let eventLoop = context.eventLoop
            let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
            waiting = true
            start { response in
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.answerLater(
                        response, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead, context: context)
                }
            }
        case .offLoop(let work):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            waiting = true
            threadPool.runIfActive(eventLoop: context.eventLoop, work).whenComplete { result in
                let (handler, context) = loopBound.value
                let response: APIResponse
                switch result {
                case .success(let answer): response = answer
                case .failure: response = .failure(status: 503, code: 503, "The server is shutting down")
                }
                handler.answerLater(
                    response, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead, context: context)
            }
        }
    }

    /// Writes an answer that was waited for, then goes on with the requests behind it.
    private func answerLater(
        _ response: APIResponse, keepAlive: Bool, isHTTP11: Bool, isHead: Bool, context: ChannelHandlerContext
    ) {
        waiting = false
        answer(
            response, context: context, keepAlive: keepAlive && !quiescing, isHTTP11: isHTTP11, isHead: isHead)
        finish(status: response.status)
        process(context: context)
        flushOutput(context: context)
        if readHeld, !waiting, !closing {
            readHeld = false
            context.read()
        }
    }

    // MARK: - Responses

    private func answer(
        _ response: APIResponse, context: ChannelHandlerContext, keepAlive: Bool, isHTTP11: Bool, isHead: Bool
    ) {
        var buffer = takeOutput(context: context, capacity: 160 + response.body.count)
        ResponseHead.write(
            status: response.status, bodyLength: response.body.count, headers: response.headers,
            connection: ResponseHead.connection(keepAlive: keepAlive, isHTTP11: isHTTP11),
            contentType: response.contentType, into: &buffer)
        if !isHead { buffer.writeBytes(response.body) }
        output = buffer
        if !keepAlive { closeAfterFlush(context: context) }
    }

    /// A key lookup's answer: found ones from the pre-encoded bytes. Returns its status.
    private func write(
        _ answer: KeyLookupAnswer, keepAlive: Bool, isHTTP11: Bool, context: ChannelHandlerContext
    )
        -> Int
    {
        let connection = ResponseHead.connection(keepAlive: keepAlive, isHTTP11: isHTTP11)
        switch answer {
        case .check(let valid):
            var buffer = takeOutput(context: context, capacity: PreEncodedAnswers.checkCapacity)
            answers.writeCheck(valid: valid, connection: connection, into: &buffer)
            output = buffer
        case .info(let valid, let custom):
            var buffer = takeOutput(context: context, capacity: PreEncodedAnswers.checkCapacity + 96 + custom.count)
            answers.writeInfo(valid: valid, custom: custom, connection: connection, into: &buffer)
            output = buffer
        case .verification(let verification, let custom):
            var buffer = takeOutput(context: context, capacity: PreEncodedAnswers.checkCapacity + 360 + custom.count)
            answers.writeVerification(verification, custom: custom, connection: connection, into: &buffer)
            output = buffer
        case .response(let response):
            self.answer(response, context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: false)
            return response.status
        }
        if !keepAlive { closeAfterFlush(context: context) }
        return 200
    }

    // MARK: - Counting and the access log

    /// What is known of the request being answered.
    private struct CurrentRequest {
        var endpoint = EndpointLabel.other
        var started: UInt64 = 0
        /// A request answered on the fast path, which builds no method or target strings.
        var lookup: KeyLookup?
        var isGET = true
        /// The method and target of a request on the general path, kept only for the access log.
        var general: (method: String, target: String)?
    }

    /// The request under way is this key lookup on the fast path.
    private func noteLookup(_ lookup: KeyLookup, isGET: Bool) {
        current.endpoint = EndpointLabel.number(of: lookup)
        current.lookup = lookup
        current.isGET = isGET
    }

    /// A request starts being answered.
    private func begin() {
        guard statistics != nil || accessLog != nil else { return }
        current = CurrentRequest(started: NIODeadline.now().uptimeNanoseconds)
    }

    /// The request under way was answered with `status`: counted, and logged when asked.
    private func finish(status: Int) {
        guard statistics != nil || accessLog != nil else { return }
        let nanoseconds = Int64(NIODeadline.now().uptimeNanoseconds &- current.started)
        statistics?.record(endpoint: current.endpoint, status: status, nanoseconds: nanoseconds)
        if let accessLog { logAccess(accessLog, status: status, nanoseconds: nanoseconds) }
    }

    /// One access-log line. Only what cannot hold a secret is written: the method when it is a
    /// standard one, and the path when it is one the API has (a key or a token can only be in
    /// a query, a body or a header, none of which is logged, or in an unknown path).
    private func logAccess(_ logger: Logger, status: Int, nanoseconds: Int64) {
        var method = "-"
        var path = "-"
        if let lookup = current.lookup {
            method = current.isGET ? "GET" : "POST"
            path = String(describing: lookup.path)
        } else if let (requestMethod, target) = current.general {
            method = Self.standardMethods.contains(requestMethod) ? requestMethod : "(other)"
            let requestPath = target.prefix { $0 != "?" }
            if current.endpoint != EndpointLabel.other || requestPath == "/health" || requestPath == "/metrics" {
                path = String(requestPath)
            } else {
                path = "(unknown path)"
            }
        }
        logger.info(
            "request",
            metadata: [
                "method": "\(method)", "path": "\(path)", "status": "\(status)",
                "microseconds": "\(nanoseconds / 1000)", "client": "\(peer.map { "\($0)" } ?? "-")",
            ])
    }

    private static let standardMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    /// The pending output buffer (or a new one) with room for `capacity` more bytes.
    private func takeOutput(context: ChannelHandlerContext, capacity: Int) -> ByteBuffer {
        if var buffer = output {
            output = nil
            buffer.reserveCapacity(minimumWritableBytes: capacity)
            return buffer
        }
        if var buffer = spareOutput {
            spareOutput = nil
            // Allocates only when the channel still holds the buffer (a write not yet done).
            buffer.clear()
            buffer.reserveCapacity(minimumWritableBytes: capacity)
            return buffer
        }
        return context.channel.allocator.buffer(capacity: max(capacity, Self.keptOutputBytes))
    }

    /// The largest output buffer kept for reuse.
    private static let keptOutputBytes = 1024

    private func flushOutput(context: ChannelHandlerContext) {
        guard let buffer = output else { return }
        output = nil
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        if buffer.capacity <= Self.keptOutputBytes { spareOutput = buffer }
    }

    private func closeAfterFlush(context: ChannelHandlerContext) {
        closing = true
        input = nil
        let buffer = output ?? context.channel.allocator.buffer(capacity: 0)
        output = nil
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer))).whenComplete { _ in channel.close(promise: nil) }
    }
}

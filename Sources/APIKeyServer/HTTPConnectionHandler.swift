import APIKeyAPI
import APIKeyLimiter
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

    init(router: APIRouter, limits: RequestAssembler.Limits, threadPool: NIOThreadPool) {
        self.router = router
        self.fastPath = KeyLookupFastPath(router: router)
        self.threadPool = threadPool
        self.assembler = RequestAssembler(limits: limits)
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
            let outcome = fastPath.answer(head, bytes, body: body, client: peer, prefetched: prefetched) { answer in
                write(answer, keepAlive: head.keepAlive, isHTTP11: head.isHTTP11, context: context)
            }
            switch outcome {
            case .answered: break
            case .later(let answer):
                carryOut(answer, keepAlive: head.keepAlive, isHTTP11: head.isHTTP11, isHead: false, context: context)
            case .notTaken:
                respond(to: RequestAssembler.request(head, bytes, body: Array(bytes[body])), context: context)
            }
        case .assembled(let request):
            respond(to: request, context: context)
        case .sendContinue:
            var interim = context.channel.allocator.buffer(capacity: 25)
            interim.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(interim)), promise: nil)
        case .failed(let failure):
            input = nil
            answer(
                .failure(status: failure.status, code: failure.status, failure.message), context: context,
                keepAlive: false, isHTTP11: true, isHead: false)
        }
        return true
    }

    /// Carries out what the router decides for `request`: an answer now, one once a write is
    /// durable, or a call run on the blocking pool. The last two hold the connection meanwhile.
    private func respond(to assembled: RequestAssembler.Request, context: ChannelHandlerContext) {
        let client = peer.map { router.clientAddress(peer: $0, forwardedFor: assembled.forwardedFor) }
        carryOut(
            router.respond(to: assembled.request, client: client), keepAlive: assembled.keepAlive,
            isHTTP11: assembled.isHTTP11, isHead: assembled.isHead, context: context)
    }

    /// Carries out one ``APIAnswer``.
    private func carryOut(
        _ decided: APIAnswer, keepAlive: Bool, isHTTP11: Bool, isHead: Bool, context: ChannelHandlerContext
    ) {
        switch decided {
        case .now(let response):
            answer(response, context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead)
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
        answer(response, context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead)
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
            connection: ResponseHead.connection(keepAlive: keepAlive, isHTTP11: isHTTP11), into: &buffer)
        if !isHead { buffer.writeBytes(response.body) }
        output = buffer
        if !keepAlive { closeAfterFlush(context: context) }
    }

    /// A key lookup's answer: found ones from the pre-encoded bytes.
    private func write(_ answer: KeyLookupAnswer, keepAlive: Bool, isHTTP11: Bool, context: ChannelHandlerContext) {
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
            return
        }
        if !keepAlive { closeAfterFlush(context: context) }
    }

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

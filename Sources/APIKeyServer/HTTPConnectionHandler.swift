import APIKeyEngine
import NIOCore
import NIOPosix

/// One connection's HTTP/1.1 on raw bytes: parses requests with ``HTTPHeadParser`` (pipelined
/// requests in order), asks the ``APIRouter``, and writes the answers, batched until the end of
/// each read.
///
/// `check` and `get_info` with a plain `?key=` are answered through
/// ``APIRouter/respondToKeyLookup(_:key:client:_:)`` straight from the read buffer into
/// pre-encoded response bytes; everything else becomes an ``APIRequest``. While an answer waits
/// (a write for its fsync, a snapshot on the blocking pool) the connection reads nothing more,
/// so answers leave in request order. A request the parser refuses is answered with the
/// envelope and the connection closes: after a parse error the byte stream cannot be trusted.
final class HTTPConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Per-request limits the handler enforces.
    struct Limits: Sendable {
        var maximumBodyBytes: Int
        var maximumTargetBytes: Int
        var maximumHeaderBytes: Int
        var maximumHeaderCount: Int
    }

    /// A request whose head has been read and whose body is still arriving.
    private struct PartialRequest {
        var request: APIRequest
        var keepAlive: Bool
        var isHTTP11: Bool
        var forwardedFor: [String]
        var remaining: Int
        var chunks: ChunkedBodyDecoder?
    }

    private let router: APIRouter
    private let limits: Limits
    private let threadPool: NIOThreadPool
    private let answers = PreEncodedAnswers.shared
    private var parser: HTTPHeadParser
    /// The connecting peer's address; nil for a non-IP socket (never limited).
    private var peer: IPAddress?
    private var input: ByteBuffer?
    private var output: ByteBuffer?
    /// The last output buffer handed to the channel, kept to be cleared and reused once the
    /// channel has written it (no allocation per answer); only small ones are kept.
    private var spareOutput: ByteBuffer?
    private var partial: PartialRequest?
    /// An answer is being waited for: read and parse nothing until it is written.
    private var waiting = false
    private var readHeld = false
    /// The last answer said `Connection: close`: nothing more is read or answered.
    private var closing = false

    init(router: APIRouter, limits: Limits, threadPool: NIOThreadPool) {
        self.router = router
        self.limits = limits
        self.threadPool = threadPool
        self.parser = HTTPHeadParser(
            maximumTargetBytes: limits.maximumTargetBytes, maximumHeaderBytes: limits.maximumHeaderBytes,
            maximumHeaderCount: limits.maximumHeaderCount)
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
        while !waiting, !closing, var buffer = input, buffer.readableBytes > 0 {
            if partial != nil {
                guard continueBody(context: context, buffer: &buffer) else { break }
                continue
            }
            let outcome = buffer.withUnsafeReadableBytes { bytes in readRequest(bytes, context: context) }
            switch outcome {
            case .incomplete:
                return
            case .consumed(let count):
                if input != nil { input!.moveReaderIndex(forwardBy: count) }
            case .failed(let failure):
                input = nil
                answer(
                    .failure(status: failure.status, code: failure.status, failure.message), context: context,
                    keepAlive: false, isHTTP11: true, isHead: false)
            }
        }
        if let buffer = input, buffer.readableBytes == 0 { input = nil }
    }

    private enum ReadOutcome {
        case incomplete
        case consumed(Int)
        case failed(HTTPParseFailure)
    }

    /// Parses one request head at the start of `bytes` and answers it when its body is there
    /// too; otherwise keeps what the body needs in `partial`.
    private func readRequest(_ bytes: UnsafeRawBufferPointer, context: ChannelHandlerContext) -> ReadOutcome {
        prefetchKey(bytes)
        let head: HTTPRequestHead
        do throws(HTTPParseFailure) {
            guard let parsed = try parser.parse(bytes) else { return .incomplete }
            head = parsed
        } catch {
            return .failed(error)
        }
        let isHead = HTTPHeadParser.equal(bytes, head.method, "HEAD")
        if case .length(let length) = head.framing {
            if length > limits.maximumBodyBytes { return .failed(bodyTooLarge) }
            if bytes.count - head.length >= length {
                let body = UnsafeRawBufferPointer(rebasing: bytes[head.length..<(head.length + length)])
                if length == 0, answerKeyLookup(head, bytes, context: context) { return .consumed(head.length) }
                let forwardedFor = head.forwardedFor.map { string(bytes, $0) }
                respond(
                    to: request(head, bytes, body: Array(body)), forwardedFor: forwardedFor,
                    keepAlive: head.keepAlive, isHTTP11: head.isHTTP11, isHead: isHead, context: context)
                return .consumed(head.length + length)
            }
        }
        var remaining = 0
        var chunks: ChunkedBodyDecoder?
        switch head.framing {
        case .length(let length): remaining = length
        case .chunked:
            chunks = ChunkedBodyDecoder(
                maximumBodyBytes: limits.maximumBodyBytes, maximumLineBytes: limits.maximumHeaderBytes)
        }
        partial = PartialRequest(
            request: request(head, bytes, body: []), keepAlive: head.keepAlive, isHTTP11: head.isHTTP11,
            forwardedFor: head.forwardedFor.map { string(bytes, $0) }, remaining: remaining, chunks: chunks)
        if head.expectsContinue, head.isHTTP11 {
            var interim = context.channel.allocator.buffer(capacity: 25)
            interim.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(interim)), promise: nil)
        }
        return .consumed(head.length)
    }

    /// Adds the input to the body under way; answers when it is complete. False when more input
    /// is needed.
    private func continueBody(context: ChannelHandlerContext, buffer: inout ByteBuffer) -> Bool {
        var request = partial!
        if var chunks = request.chunks {
            let used: Int
            do throws(HTTPParseFailure) {
                used = try buffer.withUnsafeReadableBytes { bytes throws(HTTPParseFailure) in
                    try chunks.decode(bytes, into: &request.request.body)
                }
            } catch {
                partial = nil
                input = nil
                answer(
                    .failure(status: error.status, code: error.status, error.message), context: context,
                    keepAlive: false, isHTTP11: true, isHead: false)
                return true
            }
            if input != nil { input!.moveReaderIndex(forwardBy: used) }
            request.chunks = chunks
            partial = request
            guard chunks.isDone else { return false }
        } else {
            let take = min(request.remaining, buffer.readableBytes)
            buffer.withUnsafeReadableBytes { request.request.body.append(contentsOf: $0.prefix(take)) }
            if input != nil { input!.moveReaderIndex(forwardBy: take) }
            request.remaining -= take
            partial = request
            guard request.remaining == 0 else { return false }
        }
        partial = nil
        respond(
            to: request.request, forwardedFor: request.forwardedFor, keepAlive: request.keepAlive,
            isHTTP11: request.isHTTP11, isHead: request.request.method == "HEAD", context: context)
        return true
    }

    private var bodyTooLarge: HTTPParseFailure {
        HTTPParseFailure(status: 413, message: "Request body too large: the limit is \(limits.maximumBodyBytes) bytes")
    }

    private func request(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, body: [UInt8]) -> APIRequest {
        APIRequest(
            method: string(bytes, head.method), target: string(bytes, head.target),
            authorization: head.authorization.map { string(bytes, $0) },
            contentType: head.contentType.map { string(bytes, $0) }, body: body)
    }

    private func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// Answers `GET /api/guest/serviceapikey/check?key=K` (or `get_info`) where `K` has only
    /// unreserved characters (nothing to decode) and no proxy header names another client;
    /// false for anything else, which takes the general path.
    private func answerKeyLookup(
        _ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, context: ChannelHandlerContext
    ) -> Bool {
        guard head.forwardedFor.isEmpty, HTTPHeadParser.equal(bytes, head.method, "GET") else { return false }
        let target = UnsafeRawBufferPointer(rebasing: bytes[head.target])
        guard let (lookup, keyStart) = Self.keyLookup(target) else { return false }
        let key = UnsafeRawBufferPointer(rebasing: target[keyStart...])
        guard !key.isEmpty, Self.isUnreserved(key) else { return false }
        router.respondToKeyLookup(lookup, key: key, client: peer) { answer in
            write(answer, keepAlive: head.keepAlive, isHTTP11: head.isHTTP11, context: context)
        }
        return true
    }

    /// When `bytes` start a `GET` of `check` or `get_info` with `?key=`, asks the engine to start
    /// loading the key's slot, so that parsing the rest of the head overlaps the wait for memory.
    /// Only a hint: the request is parsed and checked in full afterwards.
    private func prefetchKey(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 4, Self.prefixLength(bytes, "GET ") != nil else { return }
        let target = UnsafeRawBufferPointer(rebasing: bytes[4...])
        guard let (_, start) = Self.keyLookup(target) else { return }
        let rest = UnsafeRawBufferPointer(rebasing: target[start..<min(target.count, start + 256)])
        guard let space = rest.firstIndex(of: UInt8(ascii: " ")), space > 0 else { return }
        router.engine.prefetch(keyBytes: UnsafeRawBufferPointer(rebasing: rest[..<space]))
    }

    /// The lookup a request target starting `/api/guest/serviceapikey/check?key=` or
    /// `.../get_info?key=` asks for, and where its key starts; nil for any other target.
    private static func keyLookup(_ target: UnsafeRawBufferPointer) -> (APIRouter.KeyLookup, keyStart: Int)? {
        if let length = prefixLength(target, "/api/guest/serviceapikey/check?key=") { return (.check, length) }
        if let length = prefixLength(target, "/api/guest/serviceapikey/get_info?key=") { return (.getInfo, length) }
        return nil
    }

    /// The length of `prefix` when `bytes` starts with it, else nil (a literal: no lazy global to
    /// check on every request).
    private static func prefixLength(_ bytes: UnsafeRawBufferPointer, _ prefix: StaticString) -> Int? {
        let length = prefix.utf8CodeUnitCount
        guard bytes.count >= length, HTTPHeadParser.equal(bytes, 0..<length, prefix) else { return nil }
        return length
    }

    /// Whether every byte is RFC 3986 unreserved: letters, digits, `-._~`. One bit per byte
    /// value below 128 in two masks, checked without a branch per byte.
    static func isUnreserved(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var refused: UInt64 = 0
        for byte in bytes {
            let mask = byte < 64 ? unreservedBelow64 : unreservedFrom64
            refused |= ~(mask >> UInt64(byte & 63)) & 1 | UInt64(byte >> 7)
        }
        return refused == 0
    }

    /// Bits 45, 46 and 48-57: `-`, `.`, `0`-`9`.
    private static let unreservedBelow64: UInt64 = 1 << 45 | 1 << 46 | 0x3FF << 48
    /// Bits 1-26, 31, 33-58 and 62 (byte minus 64): `A`-`Z`, `_`, `a`-`z`, `~`.
    private static let unreservedFrom64: UInt64 = 0x3FF_FFFF << 1 | 1 << 31 | 0x3FF_FFFF << 33 | 1 << 62

    /// Routes a request through ``APIRouter/respond(to:client:)``; a write that must become
    /// durable, or a call that may block, is answered later and holds the connection meanwhile.
    private func respond(
        to request: APIRequest, forwardedFor: [String], keepAlive: Bool, isHTTP11: Bool, isHead: Bool,
        context: ChannelHandlerContext
    ) {
        let client = peer.map { router.clientAddress(peer: $0, forwardedFor: forwardedFor) }
        if APIRouter.mayBlock(target: request.target) {
            let router = self.router
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            waiting = true
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
                handler.answerLater(
                    response, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead, context: context)
            }
            return
        }
        let (response, pending) = router.respond(to: request, client: client)
        guard let pending else {
            answer(response, context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: isHead)
            return
        }
        // Answered once the journal's syncer reports it durable (one fsync for every write
        // waiting by then).
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
        waiting = true
        router.engine.whenDurable(pending) { failure in
            eventLoop.execute {
                let (handler, context) = loopBound.value
                handler.answerLater(
                    failure.map(APIRouter.failure) ?? response, keepAlive: keepAlive, isHTTP11: isHTTP11,
                    isHead: isHead, context: context)
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
        Self.writeHead(
            status: response.status, bodyLength: response.body.count, headers: response.headers,
            connection: Self.connectionHeader(keepAlive: keepAlive, isHTTP11: isHTTP11), into: &buffer)
        if !isHead { buffer.writeBytes(response.body) }
        output = buffer
        if !keepAlive { closeAfterFlush(context: context) }
    }

    private func write(
        _ answer: APIRouter.KeyLookupAnswer, keepAlive: Bool, isHTTP11: Bool, context: ChannelHandlerContext
    ) {
        let closes = !keepAlive
        // Pre-encoded answers assume the defaults of HTTP/1.1 keep-alive.
        guard !closes, isHTTP11 else {
            switch answer {
            case .check(let valid):
                self.answer(
                    APIResponse(status: 200, body: ResponseEncoding.success(ResponseEncoding.boolean(valid))),
                    context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: false)
            case .info(let valid, let custom):
                self.answer(
                    APIResponse(
                        status: 200,
                        body: ResponseEncoding.success(ResponseEncoding.info(valid: valid, customParameters: custom))),
                    context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: false)
            case .response(let response):
                self.answer(response, context: context, keepAlive: keepAlive, isHTTP11: isHTTP11, isHead: false)
            }
            return
        }
        switch answer {
        case .check(let valid):
            var buffer = takeOutput(context: context, capacity: answers.checkTrue.count)
            buffer.writeBytes(valid ? answers.checkTrue : answers.checkFalse)
            output = buffer
        case .info(let valid, let custom):
            var buffer = takeOutput(context: context, capacity: 256 + custom.count)
            answers.writeInfo(valid: valid, custom: custom, into: &buffer)
            output = buffer
        case .response(let response):
            self.answer(response, context: context, keepAlive: true, isHTTP11: true, isHead: false)
        }
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
        partial = nil
        let buffer = output ?? context.channel.allocator.buffer(capacity: 0)
        output = nil
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// `Connection: close` when the connection ends after an answer, `Connection: keep-alive`
    /// when an HTTP/1.0 connection stays open, else none.
    private static func connectionHeader(keepAlive: Bool, isHTTP11: Bool) -> StaticString? {
        keepAlive ? (isHTTP11 ? nil : "Connection: keep-alive\r\n") : "Connection: close\r\n"
    }

    /// Status line and headers: JSON content type, the length, `headers` and `connection`.
    static func writeHead(
        status: Int, bodyLength: Int, headers: [(String, String)], connection: StaticString?,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeStaticString(" ")
        buffer.writeString(reasonPhrase(status))
        buffer.writeStaticString("\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ")
        buffer.writeString(String(bodyLength))
        buffer.writeStaticString("\r\n")
        for (name, value) in headers {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        if let connection { buffer.writeStaticString(connection) }
        buffer.writeStaticString("\r\n")
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        default: "Status \(status)"
        }
    }
}

/// Whole answers for `check`, and the fixed parts of `get_info`'s, encoded once from the same
/// functions the router uses. Each handler holds the shared instance, so answering reads them
/// without the lazy-initialisation check a static property costs on every access.
final class PreEncodedAnswers: Sendable {
    static let shared = PreEncodedAnswers()

    let checkTrue: [UInt8]
    let checkFalse: [UInt8]
    /// `get_info`'s head up to the Content-Length value.
    let infoHeadStart: [UInt8]
    let infoValidPrefix: [UInt8]
    let infoInvalidPrefix: [UInt8]
    let infoSuffix: [UInt8]

    private init() {
        checkTrue = Self.encoded(ResponseEncoding.success(ResponseEncoding.boolean(true)))
        checkFalse = Self.encoded(ResponseEncoding.success(ResponseEncoding.boolean(false)))
        let emptyHead = Self.encoded([])
        infoHeadStart = Array(emptyHead.dropLast("0\r\n\r\n".utf8.count))
        (infoValidPrefix, infoSuffix) = Self.infoParts(valid: true)
        infoInvalidPrefix = Self.infoParts(valid: false).prefix
    }

    /// A `get_info` answer: head, then the body around `custom`.
    func writeInfo(valid: Bool, custom: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        let prefix = valid ? infoValidPrefix : infoInvalidPrefix
        buffer.writeBytes(infoHeadStart)
        Self.writeDecimal(prefix.count + custom.count + infoSuffix.count, into: &buffer)
        buffer.writeStaticString("\r\n\r\n")
        buffer.writeBytes(prefix)
        buffer.writeBytes(custom)
        buffer.writeBytes(infoSuffix)
    }

    private static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var rest = value
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: digits[start...])))
        }
    }

    private static func encoded(_ body: [UInt8]) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        HTTPConnectionHandler.writeHead(
            status: 200, bodyLength: body.count, headers: [], connection: nil, into: &buffer)
        buffer.writeBytes(body)
        return Array(buffer.readableBytesView)
    }

    /// The `get_info` body around an empty marker, split at the marker.
    private static func infoParts(valid: Bool) -> (prefix: [UInt8], suffix: [UInt8]) {
        let marker: [UInt8] = Array("\u{1}".utf8)
        let body = ResponseEncoding.success(ResponseEncoding.info(valid: valid, customParameters: marker))
        let split = body.firstIndex(of: 1)!
        return (Array(body[..<split]), Array(body[(split + 1)...]))
    }
}

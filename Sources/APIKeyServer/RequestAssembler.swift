import APIKeyAPI

/// Turns one connection's bytes into requests, independent of NIO: heads through
/// ``HTTPHeadParser``, bodies by `Content-Length` or chunked (``ChunkedBodyDecoder``), one request
/// at a time and in order. A value: fed bytes, it says what they come to and how many it took.
struct RequestAssembler {
    /// Per-request limits.
    struct Limits: Sendable {
        var maximumBodyBytes: Int
        var maximumTargetBytes: Int
        var maximumHeaderBytes: Int
        var maximumHeaderCount: Int
    }

    /// A request whose head and body have both been read.
    struct Request: Equatable {
        var request: APIRequest
        var keepAlive: Bool
        var isHTTP11: Bool
        var forwardedFor: [String]

        var isHead: Bool { request.method == "HEAD" }
    }

    /// What the bytes fed so far come to.
    enum Step: Equatable {
        /// More bytes are needed.
        case needMore
        /// A whole request lies at the start of the bytes: its head and its body's range, both
        /// in the bytes given (valid only during the call, so it can be answered without a copy).
        case inPlace(HTTPRequestHead, body: Range<Int>)
        /// A request whose body arrived over several reads.
        case assembled(Request)
        /// A head that asked for `100 Continue`: send it, the body follows.
        case sendContinue
        /// The byte stream cannot be trusted from here: answer the failure and close.
        case failed(HTTPParseFailure)
    }

    private let limits: Limits
    private var parser: HTTPHeadParser
    /// The request whose body is arriving.
    private var partial: (request: Request, remaining: Int, chunks: ChunkedBodyDecoder?)?

    init(limits: Limits) {
        self.limits = limits
        parser = HTTPHeadParser(
            maximumTargetBytes: limits.maximumTargetBytes, maximumHeaderBytes: limits.maximumHeaderBytes,
            maximumHeaderCount: limits.maximumHeaderCount)
    }

    /// Whether a body is arriving (the next bytes are not the start of a request).
    var isInBody: Bool { partial != nil }

    /// Takes what it can from `bytes`: what that comes to, and how many bytes it consumed.
    mutating func step(_ bytes: UnsafeRawBufferPointer) -> (Step, consumed: Int) {
        if partial != nil { return continueBody(bytes) }
        let head: HTTPRequestHead
        do throws(HTTPParseFailure) {
            guard let parsed = try parser.parse(bytes) else { return (.needMore, 0) }
            head = parsed
        } catch {
            return (.failed(error), 0)
        }
        var remaining = 0
        var chunks: ChunkedBodyDecoder?
        switch head.framing {
        case .length(let length):
            if length > limits.maximumBodyBytes { return (.failed(bodyTooLarge), 0) }
            if bytes.count - head.length >= length {
                return (.inPlace(head, body: head.length..<(head.length + length)), head.length + length)
            }
            remaining = length
        case .chunked:
            chunks = ChunkedBodyDecoder(
                maximumBodyBytes: limits.maximumBodyBytes, maximumLineBytes: limits.maximumHeaderBytes)
        }
        partial = (Self.request(head, bytes, body: []), remaining, chunks)
        return (head.expectsContinue && head.isHTTP11 ? .sendContinue : .needMore, head.length)
    }

    /// Adds `bytes` to the body under way.
    private mutating func continueBody(_ bytes: UnsafeRawBufferPointer) -> (Step, consumed: Int) {
        guard var (request, remaining, chunks) = partial else { return (.needMore, 0) }
        let used: Int
        if var decoder = chunks {
            do throws(HTTPParseFailure) {
                used = try decoder.decode(bytes, into: &request.request.body)
            } catch {
                partial = nil
                return (.failed(error), 0)
            }
            chunks = decoder
            guard decoder.isDone else {
                partial = (request, remaining, chunks)
                return (.needMore, used)
            }
        } else {
            used = min(remaining, bytes.count)
            request.request.body.append(contentsOf: bytes.prefix(used))
            remaining -= used
            guard remaining == 0 else {
                partial = (request, remaining, chunks)
                return (.needMore, used)
            }
        }
        partial = nil
        return (.assembled(request), used)
    }

    private var bodyTooLarge: HTTPParseFailure {
        HTTPParseFailure(status: 413, message: "Request body too large: the limit is \(limits.maximumBodyBytes) bytes")
    }

    /// The request `head` describes, with `body`.
    static func request(_ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, body: [UInt8]) -> Request {
        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        return Request(
            request: APIRequest(
                method: string(head.method), target: string(head.target), authorization: head.authorization.map(string),
                contentType: head.contentType.map(string), body: body),
            keepAlive: head.keepAlive, isHTTP11: head.isHTTP11, forwardedFor: head.forwardedFor.map(string))
    }
}

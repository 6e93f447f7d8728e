import APIKeyAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A request the server refuses to read on: the HTTP status and code of the envelope it answers
/// with before closing the connection.
struct HTTPParseFailure: Error, Equatable {
    var status: Int
    var message: String

    static func malformed(_ detail: String) -> HTTPParseFailure {
        HTTPParseFailure(status: 400, message: "Malformed HTTP request: \(detail)")
    }
}

/// How a request's body is delimited.
enum HTTPBodyFraming: Equatable {
    /// Exactly this many bytes follow the head (0: no body).
    case length(Int)
    /// `Transfer-Encoding: chunked`.
    case chunked
}

/// An HTTP/1.x request head: where its parts lie in the bytes it was parsed from, and what its
/// headers say about the body and the connection.
struct HTTPRequestHead: Equatable {
    /// Bytes of the head, through its blank line.
    var length: Int
    var method: Range<Int>
    var target: Range<Int>
    /// HTTP/1.0 (false) or HTTP/1.1 (true).
    var isHTTP11: Bool
    /// Whether the connection stays open after the answer.
    var keepAlive: Bool
    var framing: HTTPBodyFraming
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending the body.
    var expectsContinue: Bool
    /// The first `Authorization` and `Content-Type` values, every `X-Forwarded-For` value.
    var authorization: Range<Int>?
    var contentType: Range<Int>?
    var forwardedFor: [Range<Int>]
}

/// The server's own HTTP/1.1 request parser: finds the end of a head incrementally (each byte is
/// searched once however the head arrives), then parses the request line and headers in one
/// pass, enforcing the limits of ``ServerConfiguration``. Independent of NIO, so it is fuzzed
/// and tested on plain bytes.
///
/// Strict where leniency lets two parsers disagree about where a request ends (request
/// smuggling): line folding, both `Content-Length` and `Transfer-Encoding`, differing
/// `Content-Length` values, a transfer coding other than `chunked` and control characters are
/// refused. Lines may end in CRLF or a bare LF.
struct HTTPHeadParser {
    let maximumTargetBytes: Int
    let maximumHeaderBytes: Int
    let maximumHeaderCount: Int
    /// How far the search for the blank line has gone in the bytes of the head under way.
    private var searched = 0

    init(maximumTargetBytes: Int, maximumHeaderBytes: Int, maximumHeaderCount: Int) {
        self.maximumTargetBytes = maximumTargetBytes
        self.maximumHeaderBytes = maximumHeaderBytes
        self.maximumHeaderCount = maximumHeaderCount
    }

    /// Parses the head at the start of `bytes`: nil while it is incomplete (call again with the
    /// same bytes and more after them). After a head is returned the next call starts afresh.
    mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseFailure) -> HTTPRequestHead? {
        guard let end = findEnd(bytes) else {
            try checkIncomplete(bytes)
            return nil
        }
        searched = 0
        return try parseHead(bytes, length: end)
    }

    /// The length of the head through its blank line, or nil when the blank line has not come.
    private mutating func findEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var index = max(searched, 0)
        while index < bytes.count {
            guard let found = memchr(bytes.baseAddress! + index, 0x0A, bytes.count - index) else { break }
            let newline = bytes.baseAddress!.distance(to: UnsafeRawPointer(found))
            // A blank line: this LF follows "LF" or "LF CR".
            if newline >= 1, bytes[newline - 1] == 0x0A { return newline + 1 }
            if newline >= 2, bytes[newline - 1] == 0x0D, bytes[newline - 2] == 0x0A { return newline + 1 }
            index = newline + 1
        }
        searched = bytes.count
        return nil
    }

    /// Refuses a head that is already over a limit before its end has arrived.
    private func checkIncomplete(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseFailure) {
        guard let firstLineEnd = bytes.firstIndex(of: 0x0A) else {
            if bytes.count > maximumTargetBytes + 64 { throw targetTooLong }
            return
        }
        if bytes.count - firstLineEnd > maximumHeaderBytes + 2 * maximumHeaderCount + 2 { throw headersTooLarge }
    }

    private var targetTooLong: HTTPParseFailure {
        HTTPParseFailure(status: 414, message: "Request target too long: the limit is \(maximumTargetBytes) bytes")
    }

    private var headersTooLarge: HTTPParseFailure {
        HTTPParseFailure(
            status: 431,
            message:
                "Request header fields too large: the limits are \(maximumHeaderBytes) bytes and \(maximumHeaderCount) fields"
        )
    }

    /// The path and query of a request target. An absolute-form target
    /// (`http://host:port/path?query`, which proxies send and RFC 9112 has servers accept) is cut
    /// to its path; one without a path, and every other form, is kept as it is.
    private static func pathAndQuery(_ bytes: UnsafeRawBufferPointer, _ target: Range<Int>) -> Range<Int> {
        let schemeEnd: Int
        if target.count > 7, ASCII.equalIgnoringCase(bytes, target.lowerBound..<(target.lowerBound + 7), "http://") {
            schemeEnd = target.lowerBound + 7
        } else if target.count > 8,
            ASCII.equalIgnoringCase(bytes, target.lowerBound..<(target.lowerBound + 8), "https://")
        {
            schemeEnd = target.lowerBound + 8
        } else {
            return target
        }
        guard let pathStart = (schemeEnd..<target.upperBound).first(where: { bytes[$0] == UInt8(ascii: "/") }) else {
            return target
        }
        return pathStart..<target.upperBound
    }

    private func parseHead(_ bytes: UnsafeRawBufferPointer, length: Int) throws(HTTPParseFailure) -> HTTPRequestHead {
        var lines = LineReader(bytes: bytes, end: length)
        guard let requestLine = lines.next() else { throw .malformed("no request line") }
        // Request line: method SP target SP version.
        guard let methodEnd = requestLine.firstIndex(where: { bytes[$0] == 0x20 }), methodEnd > requestLine.lowerBound
        else { throw .malformed("bad request line") }
        let method = requestLine.lowerBound..<methodEnd
        guard method.allSatisfy({ Self.isTokenByte(bytes[$0]) }) else { throw .malformed("bad method") }
        // The target ends at the next space; one pass finds it and refuses control characters.
        let targetStart = methodEnd + 1
        var targetEnd = targetStart
        while targetEnd < requestLine.upperBound, bytes[targetEnd] != 0x20 {
            if bytes[targetEnd] < 0x20 || bytes[targetEnd] == 0x7F {
                throw .malformed("control character in the request target")
            }
            targetEnd += 1
        }
        guard targetEnd < requestLine.upperBound, targetEnd > targetStart else {
            throw .malformed("bad request line")
        }
        if targetEnd - targetStart > maximumTargetBytes { throw targetTooLong }
        let target = Self.pathAndQuery(bytes, targetStart..<targetEnd)
        let version = (targetEnd + 1)..<requestLine.upperBound
        guard version.count == 8, ASCII.equal(bytes, version.prefix(7), "HTTP/1.") else {
            throw .malformed("unsupported HTTP version")
        }
        let isHTTP11: Bool
        switch bytes[version.upperBound - 1] {
        case UInt8(ascii: "1"): isHTTP11 = true
        case UInt8(ascii: "0"): isHTTP11 = false
        default: throw .malformed("unsupported HTTP version")
        }

        var head = HTTPRequestHead(
            length: length, method: method, target: target, isHTTP11: isHTTP11, keepAlive: isHTTP11,
            framing: .length(0), expectsContinue: false, authorization: nil, contentType: nil, forwardedFor: [])
        var contentLength: Int?
        var chunked = false
        var closeRequested = false
        var keepAliveRequested = false
        var fieldCount = 0
        var fieldBytes = 0
        while let line = lines.next(), !line.isEmpty {
            fieldCount += 1
            fieldBytes += line.count
            if fieldCount > maximumHeaderCount || fieldBytes > maximumHeaderBytes { throw headersTooLarge }
            let first = bytes[line.lowerBound]
            if first == 0x20 || first == 0x09 { throw .malformed("obsolete line folding") }
            guard let colon = line.firstIndex(where: { bytes[$0] == UInt8(ascii: ":") }), colon > line.lowerBound,
                (line.lowerBound..<colon).allSatisfy({ Self.isTokenByte(bytes[$0]) })
            else { throw .malformed("bad header line") }
            var value = (colon + 1)..<line.upperBound
            while let first = value.first, bytes[first] == 0x20 || bytes[first] == 0x09 { value = value.dropFirst() }
            while let last = value.last, bytes[last] == 0x20 || bytes[last] == 0x09 { value = value.dropLast() }
            guard value.allSatisfy({ bytes[$0] >= 0x20 && bytes[$0] != 0x7F || bytes[$0] == 0x09 }) else {
                throw .malformed("control character in a header value")
            }
            let name = line.lowerBound..<colon
            switch name.count {
            case 6 where ASCII.equalIgnoringCase(bytes, name, "expect"):
                if ASCII.equalIgnoringCase(bytes, value, "100-continue") { head.expectsContinue = true }
            case 10 where ASCII.equalIgnoringCase(bytes, name, "connection"):
                for token in Self.commaSeparated(bytes, value) {
                    if ASCII.equalIgnoringCase(bytes, token, "close") { closeRequested = true }
                    if ASCII.equalIgnoringCase(bytes, token, "keep-alive") { keepAliveRequested = true }
                }
            case 12 where ASCII.equalIgnoringCase(bytes, name, "content-type"):
                if head.contentType == nil { head.contentType = value }
            case 13 where ASCII.equalIgnoringCase(bytes, name, "authorization"):
                if head.authorization == nil { head.authorization = value }
            case 14 where ASCII.equalIgnoringCase(bytes, name, "content-length"):
                guard (1...18).contains(value.count), value.allSatisfy({ (0x30...0x39).contains(bytes[$0]) }) else {
                    throw .malformed("bad Content-Length")
                }
                let parsed = value.reduce(0) { $0 * 10 + Int(bytes[$1] - 0x30) }
                if let contentLength, contentLength != parsed { throw .malformed("conflicting Content-Length values") }
                contentLength = parsed
            case 15 where ASCII.equalIgnoringCase(bytes, name, "x-forwarded-for"):
                head.forwardedFor.append(value)
            case 17 where ASCII.equalIgnoringCase(bytes, name, "transfer-encoding"):
                guard ASCII.equalIgnoringCase(bytes, value, "chunked"), !chunked else {
                    throw HTTPParseFailure(
                        status: 501, message: "Transfer-Encoding is not supported: only a single chunked coding is")
                }
                chunked = true
            default:
                break
            }
        }
        if chunked {
            guard contentLength == nil else { throw .malformed("both Content-Length and Transfer-Encoding") }
            guard isHTTP11 else { throw .malformed("Transfer-Encoding in an HTTP/1.0 request") }
            head.framing = .chunked
        } else {
            head.framing = .length(contentLength ?? 0)
        }
        head.keepAlive = !closeRequested && (isHTTP11 || keepAliveRequested)
        return head
    }

    /// tchar of RFC 9110.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// The trimmed, non-empty items of a comma-separated header value.
    private static func commaSeparated(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> [Range<Int>] {
        var items: [Range<Int>] = []
        var start = value.lowerBound
        for index in value.lowerBound...value.upperBound where index == value.upperBound || bytes[index] == 0x2C {
            var item = start..<index
            while let first = item.first, bytes[first] == 0x20 || bytes[first] == 0x09 { item = item.dropFirst() }
            while let last = item.last, bytes[last] == 0x20 || bytes[last] == 0x09 { item = item.dropLast() }
            if !item.isEmpty { items.append(item) }
            start = index + 1
        }
        return items
    }
}

/// The lines of a head, without their CRLF or LF.
private struct LineReader {
    let bytes: UnsafeRawBufferPointer
    let end: Int
    var position = 0

    init(bytes: UnsafeRawBufferPointer, end: Int) {
        self.bytes = bytes
        self.end = end
    }

    mutating func next() -> Range<Int>? {
        guard position < end, let newline = (position..<end).firstIndex(where: { bytes[$0] == 0x0A }) else {
            return nil
        }
        var lineEnd = newline
        if lineEnd > position, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        defer { position = newline + 1 }
        return position..<lineEnd
    }
}

/// Decodes a chunked body as its bytes arrive: chunk sizes (hex, extensions ignored), data,
/// and trailer fields (read and dropped), within a body limit.
struct ChunkedBodyDecoder {
    private enum State {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailer
        case done
    }

    let maximumBodyBytes: Int
    let maximumLineBytes: Int
    private var state = State.size
    private var trailerBytes = 0

    init(maximumBodyBytes: Int, maximumLineBytes: Int) {
        self.maximumBodyBytes = maximumBodyBytes
        self.maximumLineBytes = maximumLineBytes
    }

    var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// Decodes what it can of `input` into `body`; returns how many bytes of `input` it used.
    /// Throws 413 when the body grows past its limit and 400 for a malformed stream.
    mutating func decode(_ input: UnsafeRawBufferPointer, into body: inout [UInt8]) throws(HTTPParseFailure) -> Int {
        var position = 0
        while position < input.count {
            switch state {
            case .done:
                return position
            case .data(let remaining):
                let take = min(remaining, input.count - position)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[position..<(position + take)]))
                position += take
                state = remaining == take ? .dataEnd : .data(remaining: remaining - take)
            case .size, .dataEnd, .trailer:
                guard let newline = (position..<input.count).firstIndex(where: { input[$0] == 0x0A }) else {
                    if input.count - position > maximumLineBytes { throw .malformed("chunk line too long") }
                    return position
                }
                var lineEnd = newline
                if lineEnd > position, input[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                let line = UnsafeRawBufferPointer(rebasing: input[position..<lineEnd])
                position = newline + 1
                try takeLine(line, body: body)
            }
        }
        return position
    }

    private mutating func takeLine(_ line: UnsafeRawBufferPointer, body: [UInt8]) throws(HTTPParseFailure) {
        switch state {
        case .size:
            var size = 0
            var digits = 0
            for byte in line {
                guard let digit = ASCII.hexDigitValue(byte) else { break }
                size = size * 16 + Int(digit)
                digits += 1
                if digits > 8 { throw .malformed("chunk size too large") }
            }
            guard digits > 0, digits == line.count || line[digits] == UInt8(ascii: ";") || line[digits] == 0x20
            else { throw .malformed("bad chunk size") }
            if body.count + size > maximumBodyBytes {
                throw HTTPParseFailure(
                    status: 413, message: "Request body too large: the limit is \(maximumBodyBytes) bytes")
            }
            state = size == 0 ? .trailer : .data(remaining: size)
        case .dataEnd:
            guard line.isEmpty else { throw .malformed("chunk data longer than its size") }
            state = .size
        case .trailer:
            trailerBytes += line.count
            if trailerBytes > maximumLineBytes { throw .malformed("trailer fields too large") }
            if line.isEmpty { state = .done }
        case .data, .done:
            break
        }
    }
}

import APIKeyAPI
import APIKeyEngine
import NIOCore

/// The status line and headers of every answer the server writes.
enum ResponseHead {
    /// Status line and headers: the content type (JSON unless said), the length, `headers` and
    /// `connection`.
    static func write(
        status: Int, bodyLength: Int, headers: [(String, String)] = [], connection: StaticString?,
        contentType: StaticString = APIResponse.jsonContentType, into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeStaticString(" ")
        buffer.writeString(reasonPhrase(status))
        buffer.writeStaticString("\r\nContent-Type: ")
        buffer.writeStaticString(contentType)
        buffer.writeStaticString("\r\nContent-Length: ")
        writeDecimal(bodyLength, into: &buffer)
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

    /// `Connection: close` when the connection ends after an answer, `Connection: keep-alive`
    /// when an HTTP/1.0 connection stays open, else none.
    static func connection(keepAlive: Bool, isHTTP11: Bool) -> StaticString? {
        keepAlive ? (isHTTP11 ? nil : "Connection: keep-alive\r\n") : "Connection: close\r\n"
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
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

    /// `value` in decimal, without building a string.
    static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
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
}

/// The found answers of ``KeyLookup`` as whole responses: the heads for an HTTP/1.1 keep-alive
/// connection (the common case) encoded once, around the bodies of ``KeyLookupBodies``. Each
/// handler holds the shared instance, so answering reads them without the lazy-initialisation
/// check a static property costs on every access.
final class PreEncodedAnswers: Sendable {
    static let shared = PreEncodedAnswers()

    private let bodies = KeyLookupBodies.shared
    private let checkValid: [UInt8]
    private let checkInvalid: [UInt8]
    /// A 200 answer's head up to the Content-Length value.
    private let infoHeadStart: [UInt8]

    private init() {
        func whole(_ body: [UInt8]) -> [UInt8] {
            var buffer = ByteBufferAllocator().buffer(capacity: 256)
            ResponseHead.write(status: 200, bodyLength: body.count, connection: nil, into: &buffer)
            buffer.writeBytes(body)
            return Array(buffer.readableBytesView)
        }
        checkValid = whole(KeyLookupBodies.shared.checkValid)
        checkInvalid = whole(KeyLookupBodies.shared.checkInvalid)
        infoHeadStart = Array(whole([]).dropLast("0\r\n\r\n".utf8.count))
    }

    /// The bytes most a `check` answer needs.
    static let checkCapacity = 160

    /// A `check` answer with `connection` (nil: HTTP/1.1 keep-alive).
    func writeCheck(valid: Bool, connection: StaticString?, into buffer: inout ByteBuffer) {
        guard let connection else {
            buffer.writeBytes(valid ? checkValid : checkInvalid)
            return
        }
        let body = valid ? bodies.checkValid : bodies.checkInvalid
        ResponseHead.write(status: 200, bodyLength: body.count, connection: connection, into: &buffer)
        buffer.writeBytes(body)
    }

    /// A `get_info` answer with `connection` (nil: HTTP/1.1 keep-alive): head, then the body
    /// around `custom`.
    func writeInfo(
        valid: Bool, custom: UnsafeRawBufferPointer, connection: StaticString?, into buffer: inout ByteBuffer
    ) {
        let prefix = valid ? bodies.infoValidPrefix : bodies.infoInvalidPrefix
        writeHead(
            bodyLength: prefix.count + custom.count + bodies.infoSuffix.count, connection: connection, into: &buffer)
        buffer.writeBytes(prefix)
        buffer.writeBytes(custom)
        buffer.writeBytes(bodies.infoSuffix)
    }

    /// A `verify` answer with `connection` (nil: HTTP/1.1 keep-alive): head, then the envelope
    /// around the result ``VerificationEncoding`` writes (measured first, for the length).
    func writeVerification(
        _ verification: Verification, custom: UnsafeRawBufferPointer, connection: StaticString?,
        into buffer: inout ByteBuffer
    ) {
        let length =
            bodies.resultPrefix.count + VerificationEncoding.resultLength(verification, customParameters: custom)
            + bodies.resultSuffix.count
        writeHead(bodyLength: length, connection: connection, into: &buffer)
        buffer.writeBytes(bodies.resultPrefix)
        VerificationEncoding.writeResult(verification, customParameters: custom) { buffer.writeBytes($0) }
        buffer.writeBytes(bodies.resultSuffix)
    }

    /// The head of a 200 answer of `bodyLength` bytes with `connection` (nil: HTTP/1.1 keep-alive).
    private func writeHead(bodyLength: Int, connection: StaticString?, into buffer: inout ByteBuffer) {
        if let connection {
            ResponseHead.write(status: 200, bodyLength: bodyLength, connection: connection, into: &buffer)
        } else {
            buffer.writeBytes(infoHeadStart)
            ResponseHead.writeDecimal(bodyLength, into: &buffer)
            buffer.writeStaticString("\r\n\r\n")
        }
    }
}

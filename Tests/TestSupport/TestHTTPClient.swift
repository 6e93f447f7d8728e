#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An HTTP response as the test client read it off the socket.
public struct RawResponse {
    public var status: Int
    public var headers: [(String, String)]
    public var body: String

    public func header(_ name: String) -> String? {
        headers.first(where: { $0.0.lowercased() == name.lowercased() })?.1
    }
}

/// A deliberately plain HTTP/1.1 client over a blocking loopback socket, so the tests exercise
/// the server with real bytes on a real connection.
public struct TestHTTPClient {
    public let port: Int
    /// The loopback address the client connects from (any of 127.0.0.0/8 works on Linux).
    public var sourceAddress = "127.0.0.1"

    /// A client of the server on 127.0.0.1:`port`.
    public init(port: Int, sourceAddress: String = "127.0.0.1") {
        self.port = port
        self.sourceAddress = sourceAddress
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) { self.description = description }
    }

    /// A connected socket from `sourceAddress` to the server.
    public func connectSocket(timeoutSeconds: Int = 10) throws -> Int32 {
        guard let socket = LoopbackSocket.connect(port: port, from: sourceAddress, timeoutSeconds: timeoutSeconds)
        else {
            throw Failure(description: "socket, bind or connect failed: errno \(errno)")
        }
        return socket
    }

    /// Reads from `socket` until the server closes it (or the receive timeout passes).
    public static func readToEnd(_ socket: Int32) throws -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received.append(contentsOf: buffer[0..<count])
            } else if count == 0 || errno == ECONNRESET {
                return received
            } else {
                throw Failure(description: "recv failed: errno \(errno)")
            }
        }
    }

    /// Sends `request` bytes as they are and reads until the server closes the connection.
    public func exchange(_ request: [UInt8], timeoutSeconds: Int = 10) throws -> [UInt8] {
        let socket = try connectSocket(timeoutSeconds: timeoutSeconds)
        defer { close(socket) }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }  // the server may close early (413); read what it said
            sent += count
        }
        return try Self.readToEnd(socket)
    }

    /// Sends one request with `Connection: close` and parses the single response.
    public func request(
        _ method: String, _ target: String, body: String? = nil, contentType: String? = nil,
        authorization: String? = nil, extraHeaders: [String] = []
    ) throws -> RawResponse {
        var lines = ["\(method) \(target) HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        if let authorization { lines.append("Authorization: \(authorization)") }
        if let contentType { lines.append("Content-Type: \(contentType)") }
        if let body { lines.append("Content-Length: \(body.utf8.count)") }
        lines.append(contentsOf: extraHeaders)
        let raw = Array((lines.joined(separator: "\r\n") + "\r\n\r\n" + (body ?? "")).utf8)
        let responses = try Self.parseResponses(try exchange(raw))
        guard responses.count == 1 else { throw Failure(description: "expected 1 response, got \(responses.count)") }
        return responses[0]
    }

    /// Splits a byte stream into responses framed by Content-Length.
    public static func parseResponses(_ bytes: [UInt8]) throws -> [RawResponse] {
        var responses: [RawResponse] = []
        var rest = bytes[...]
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while !rest.isEmpty {
            guard let headEnd = rest.firstRange(of: separator) else {
                throw Failure(description: "incomplete head: \(String(decoding: rest, as: UTF8.self))")
            }
            let head = String(decoding: rest[rest.startIndex..<headEnd.lowerBound], as: UTF8.self)
            var lines = head.split(separator: "\r\n").map(String.init)
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
                throw Failure(description: "bad status line in \(head)")
            }
            let headers = lines.compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingPrefix(" ").description)
            }
            let length = Int(headers.first(where: { $0.0.lowercased() == "content-length" })?.1 ?? "0") ?? 0
            let bodyStart = headEnd.upperBound
            guard rest.distance(from: bodyStart, to: rest.endIndex) >= length else {
                throw Failure(description: "truncated body")
            }
            let bodyEnd = rest.index(bodyStart, offsetBy: length)
            responses.append(
                RawResponse(
                    status: status, headers: headers, body: String(decoding: rest[bodyStart..<bodyEnd], as: UTF8.self)))
            rest = rest[bodyEnd...]
        }
        return responses
    }
}

/// `Basic base64(user:password)`.
public func basicAuthorization(_ user: String, _ password: String) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    let bytes = Array("\(user):\(password)".utf8)
    var text = ""
    var index = 0
    while index < bytes.count {
        let chunk = Array(bytes[index..<min(index + 3, bytes.count)]) + [0, 0]
        let value = UInt32(chunk[0]) << 16 | UInt32(chunk[1]) << 8 | UInt32(chunk[2])
        let available = min(3, bytes.count - index)
        for position in 0..<4 {
            text.append(position <= available ? alphabet[Int(value >> UInt32(18 - 6 * position) & 0x3F)] : "=")
        }
        index += 3
    }
    return "Basic " + text
}

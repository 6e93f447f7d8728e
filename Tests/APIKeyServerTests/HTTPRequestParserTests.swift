import APIKeyEngine
import APIKeyLimiter
import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import TestSupport
import Testing

@testable import APIKeyAPI
@testable import APIKeyServer

@Suite struct HTTPRequestParserTests {
    private func parser(targetBytes: Int = 8192, headerBytes: Int = 16384, headerCount: Int = 100) -> HTTPHeadParser {
        HTTPHeadParser(
            maximumTargetBytes: targetBytes, maximumHeaderBytes: headerBytes, maximumHeaderCount: headerCount)
    }

    /// Parses `text` in one piece; the head, or the failure.
    private func parse(_ text: String, _ parser: HTTPHeadParser? = nil) -> Result<HTTPRequestHead?, HTTPParseFailure> {
        var parser = parser ?? self.parser()
        return Array(text.utf8).withUnsafeBytes { bytes in
            Result { () throws(HTTPParseFailure) in try parser.parse(bytes) }
        }
    }

    private func text(_ text: String, _ range: Range<Int>?) -> String? {
        range.map { String(decoding: Array(text.utf8)[$0], as: UTF8.self) }
    }

    @Test func parsesARequestHead() throws {
        let request =
            "POST /api/admin/serviceapikey/create?x=1 HTTP/1.1\r\nHost: a\r\nauthorization:  Basic eA== \r\n"
            + "Content-Type: application/json\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8, 9.9.9.9\r\n"
            + "Content-Length: 12\r\n\r\n{\"a\": 1}"
        let head = try #require(try parse(request).get())
        #expect(text(request, head.method) == "POST")
        #expect(text(request, head.target) == "/api/admin/serviceapikey/create?x=1")
        #expect(text(request, head.authorization) == "Basic eA==")
        #expect(text(request, head.contentType) == "application/json")
        #expect(head.forwardedFor.map { text(request, $0) } == ["1.2.3.4", "5.6.7.8, 9.9.9.9"])
        #expect(head.framing == .length(12))
        #expect(head.keepAlive && head.isHTTP11 && !head.expectsContinue)
        #expect(head.length == request.utf8.count - 8)
    }

    @Test func connectionPersistenceFollowsVersionAndHeader() throws {
        #expect(try parse("GET / HTTP/1.1\r\n\r\n").get()?.keepAlive == true)
        #expect(try parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").get()?.keepAlive == false)
        #expect(try parse("GET / HTTP/1.0\r\n\r\n").get()?.keepAlive == false)
        #expect(try parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").get()?.keepAlive == true)
        #expect(try parse("GET / HTTP/1.1\nExpect: 100-continue\n\n").get()?.expectsContinue == true)
    }

    @Test func findsTheEndOfAHeadArrivingAByteAtATime() throws {
        let request = Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /next".utf8)
        var parser = parser()
        var found: HTTPRequestHead?
        for end in 1...request.count {
            let head = try Array(request[..<end]).withUnsafeBytes { bytes in
                Result { () throws(HTTPParseFailure) in try parser.parse(bytes) }
            }.get()
            if let head {
                found = head
                #expect(end == 33)
                break
            }
        }
        #expect(found?.length == 33)
    }

    @Test(arguments: [
        ("GARBAGE\r\n\r\n", 400), ("GET /x HTTP/9.9\r\n\r\n", 400), ("GET /x HTTP/1.1 \r\n\r\n", 400),
        ("GET  /x HTTP/1.1\r\n\r\n", 400), ("G(T /x HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400), ("GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n", 400), ("GET /a\u{7F}b HTTP/1.1\r\n\r\n", 400),
    ])
    func refusesWhatItCannotTrust(_ request: String, _ status: Int) {
        guard case .failure(let failure) = parse(request) else {
            Issue.record("accepted \(request.debugDescription)")
            return
        }
        #expect(failure.status == status, "\(request.debugDescription): \(failure.message)")
    }

    @Test func sameContentLengthTwiceIsFine() throws {
        #expect(
            try parse("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n").get()?.framing == .length(2))
    }

    @Test func enforcesItsLimits() {
        let longTarget = "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\n\r\n"
        #expect(parse(longTarget, parser(targetBytes: 50)).failure?.status == 414)
        // Before the end of the line has even arrived.
        #expect(parse("GET /" + String(repeating: "a", count: 200), parser(targetBytes: 50)).failure?.status == 414)
        let manyHeaders = "GET / HTTP/1.1\r\n" + (0..<11).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(parse(manyHeaders, parser(headerCount: 10)).failure?.status == 431)
        let bigHeader = "GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 300) + "\r\n\r\n"
        #expect(parse(bigHeader, parser(headerBytes: 200)).failure?.status == 431)
        #expect(
            parse("GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 500), parser(headerBytes: 200)).failure?
                .status == 431)
        #expect(parse(bigHeader, parser(headerBytes: 400)).failure == nil)
    }

    /// Decodes `stream` fed in pieces of `step` bytes; the body, or the failure.
    private func dechunk(_ stream: String, step: Int, limit: Int = 1000) -> Result<[UInt8], HTTPParseFailure> {
        var decoder = ChunkedBodyDecoder(maximumBodyBytes: limit, maximumLineBytes: 100)
        var body: [UInt8] = []
        var pending: [UInt8] = []
        let bytes = Array(stream.utf8)
        var position = 0
        do throws(HTTPParseFailure) {
            while !decoder.isDone, position < bytes.count {
                pending += bytes[position..<min(position + step, bytes.count)]
                position += step
                let used = pending.withUnsafeBytes { input in
                    Result { () throws(HTTPParseFailure) in try decoder.decode(input, into: &body) }
                }
                pending.removeFirst(try used.get())
            }
        } catch {
            return .failure(error)
        }
        return decoder.isDone ? .success(body) : .failure(.malformed("incomplete"))
    }

    @Test func decodesChunkedBodiesHoweverTheyAreSplit() throws {
        let stream = "5;name=value\r\nhello\r\n7\r\n, world\r\nA\n0123456789\n0\r\nTrailer: x\r\n\r\n"
        for step in 1...stream.utf8.count {
            #expect(try dechunk(stream, step: step).get() == Array("hello, world0123456789".utf8), "step \(step)")
        }
    }

    @Test func refusesBadOrOversizedChunks() {
        #expect(dechunk("zz\r\n", step: 100).failure?.status == 400)
        #expect(dechunk("5\r\nhelloX\r\n0\r\n\r\n", step: 100).failure?.status == 400)
        #expect(dechunk("123456789\r\n", step: 100).failure?.status == 400)
        #expect(dechunk("3e8\r\n", step: 100, limit: 999).failure?.status == 413)
        #expect(dechunk(String(repeating: "1", count: 200), step: 7).failure?.status == 400)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}

/// The pre-encoded answers of `check` and `get_info` against the router's general path: the
/// same request, once with a plain `?key=` (pre-encoded) and once with an extra parameter the
/// router ignores (general path), must get byte-identical answers.
@Suite struct KeyLookupFastPathTests {
    /// The handler's blocking pool, shared by the suite's tests (none of them blocks on it).
    private static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    /// A connection from 127.0.0.1 through the server's HTTP handler, in memory.
    private func connection(_ router: APIRouter) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            HTTPConnectionHandler(
                router: router,
                limits: .init(
                    maximumBodyBytes: 4096, maximumTargetBytes: 8192, maximumHeaderBytes: 16384, maximumHeaderCount: 100
                ), threadPool: Self.pool))
        _ = try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private func exchange(_ request: String, router: APIRouter) throws -> [UInt8] {
        let channel = try connection(router)
        var buffer = channel.allocator.buffer(capacity: request.utf8.count)
        buffer.writeString(request)
        try channel.writeInbound(buffer)
        var output: [UInt8] = []
        while let part = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = part { output += bytes.readableBytesView }
        }
        _ = try? channel.finish()
        return output
    }

    @Test func preEncodedAnswersEqualTheRoutersAnswers() throws {
        let engine = Engine()
        var limits = RateLimitConfiguration()
        limits.failures = .init(capacity: 3, refillPerSecond: 0.001)
        // One router per path, so both see the same sequence of rate-limit charges.
        let router = APIRouter(engine: engine, adminToken: "t", rateLimits: limits)
        let generalRouter = APIRouter(engine: engine, adminToken: "t", rateLimits: limits)
        let pro = try engine.create(
            NewKey(
                clientID: 1,
                config: .object([JSONMember("custom_tier", .string("pro")), JSONMember("custom_limit", .integer(5))])))
        let suspended = try engine.create(NewKey(clientID: 2, config: .object([]), status: .suspended))
        // A body over 1,000 bytes: the pre-encoded head writes a four-digit Content-Length.
        let large = try engine.create(
            NewKey(
                clientID: 3, config: .object([JSONMember("custom_note", .string(String(repeating: "x", count: 1200)))]))
        )
        var compared = 0
        for key in [pro.apiKey, suspended.apiKey, large.apiKey, "NOPE-1", "NOPE-2", "NOPE-3", "NOPE-4"] {
            for endpoint in ["check", "get_info"] {
                for (version, connection) in [("1.1", ""), ("1.1", "Connection: close\r\n"), ("1.0", "")] {
                    let fast =
                        "GET /api/guest/serviceapikey/\(endpoint)?key=\(key) HTTP/\(version)\r\n\(connection)\r\n"
                    let general =
                        "GET /api/guest/serviceapikey/\(endpoint)?key=\(key)&ignored=1 HTTP/\(version)\r\n\(connection)\r\n"
                    let fastAnswer = try exchange(fast, router: router)
                    let generalAnswer = try exchange(general, router: generalRouter)
                    #expect(
                        String(decoding: fastAnswer, as: UTF8.self) == String(decoding: generalAnswer, as: UTF8.self))
                    #expect(!fastAnswer.isEmpty)
                    compared += 1
                }
            }
        }
        #expect(compared == 42)
        // The unknown keys used up the failure burst: the last answers were 429s, on both paths.
        let limited = try exchange(
            "GET /api/guest/serviceapikey/check?key=NOPE-9 HTTP/1.1\r\n\r\n", router: router)
        #expect(String(decoding: limited, as: UTF8.self).hasPrefix("HTTP/1.1 429"))
    }

    /// The fast path charges what the general path charges: a lookup refused by the failure
    /// bucket costs no general token, so the same sequence of requests meets the same 429s.
    @Test func theFastPathChargesAsTheRouterCharges() throws {
        let engine = Engine()
        var limits = RateLimitConfiguration()
        limits.general = .init(capacity: 4, refillPerSecond: 0)
        limits.failures = .init(capacity: 1, refillPerSecond: 0)
        let key = try engine.create(NewKey(clientID: 1, config: .object([]))).apiKey
        let keys = ["NOPE-1", "NOPE-2", "NOPE-3", key, key, key, key, key]
        // One unknown key is charged (1 general + 1 failure token); the next two are refused by
        // the failure bucket and cost nothing; then the 3 general tokens left serve the key.
        let expected = [200, 429, 429, 200, 200, 200, 429, 429]
        for header in ["", "X-Forwarded-For: 127.0.0.1\r\n"] {
            let router = APIRouter(engine: engine, adminToken: "t", rateLimits: limits)
            let statuses = try keys.map { key in
                let answer = try exchange(
                    "GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\n\(header)\r\n", router: router)
                return Int(String(decoding: answer.dropFirst(9).prefix(3), as: UTF8.self)) ?? 0
            }
            #expect(statuses == expected, "\(header.isEmpty ? "fast" : "general") path")
        }
    }

    /// Only RFC 3986 unreserved bytes let a key take the fast path: every byte value, alone and
    /// after a run of good ones.
    @Test func onlyUnreservedBytesTakeTheFastPath() {
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
        for value in 0...255 {
            let byte = UInt8(value)
            for bytes in [[byte], Array("Ab9-._~".utf8) + [byte], [byte] + Array("xyz".utf8)] {
                let accepted = bytes.withUnsafeBytes { KeyLookup.isPlainKey($0) }
                #expect(accepted == unreserved.contains(byte), "byte \(value)")
            }
        }
    }

    /// Keys written with escapes or reserved characters take the general path, which decodes
    /// them: the answer is the same as for the request the fast path never sees.
    @Test func encodedKeysAreDecodedAsTheRouterDecodesThem() throws {
        let engine = Engine()
        let router = APIRouter(engine: engine, adminToken: "t")
        let key = try engine.create(NewKey(clientID: 1, config: .object([]))).apiKey
        let first = key.unicodeScalars.first!
        let escapedFirst = "%" + String(first.value, radix: 16, uppercase: true) + key.dropFirst()
        for spelling in [escapedFirst, key + "%20", key + "+", "*" + key, key + "%C3%A9"] {
            for endpoint in ["check", "get_info"] {
                let plain = try exchange(
                    "GET /api/guest/serviceapikey/\(endpoint)?key=\(spelling) HTTP/1.1\r\n\r\n", router: router)
                // A proxy header always takes the general path (the peer is no trusted proxy).
                let general = try exchange(
                    "GET /api/guest/serviceapikey/\(endpoint)?key=\(spelling) HTTP/1.1\r\n"
                        + "X-Forwarded-For: 127.0.0.1\r\n\r\n", router: router)
                #expect(String(decoding: plain, as: UTF8.self) == String(decoding: general, as: UTF8.self))
            }
        }
        // The escaped spelling names the key itself.
        let answer = try exchange(
            "GET /api/guest/serviceapikey/check?key=\(escapedFirst) HTTP/1.1\r\n\r\n", router: router)
        #expect(String(decoding: answer, as: UTF8.self).hasSuffix(#"{"result": true, "error": null}"#))
    }

    /// `Expect: 100-continue`: the go-ahead as soon as the head is read, the answer once the body
    /// has come.
    @Test func expectContinueGetsTheGoAheadBeforeTheBody() throws {
        let engine = Engine()
        let router = APIRouter(engine: engine, adminToken: "t")
        let channel = try connection(router)
        func send(_ text: String) throws -> String {
            var buffer = channel.allocator.buffer(capacity: text.utf8.count)
            buffer.writeString(text)
            try channel.writeInbound(buffer)
            var output = ""
            while let part = try channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let bytes) = part { output += String(buffer: bytes) }
            }
            return output
        }
        let head =
            "POST /api/guest/serviceapikey/check HTTP/1.1\r\nExpect: 100-continue\r\n"
            + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\n\r\n"
        #expect(try send(head) == "HTTP/1.1 100 Continue\r\n\r\n")
        let answer = try send("key=NOPE")
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.contains("API key does not exist"))
        _ = try? channel.finish()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let engine = Engine()
        let router = APIRouter(engine: engine, adminToken: "t")
        let key = try engine.create(NewKey(clientID: 1, config: .object([]))).apiKey
        let requests =
            "GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\n\r\n"
            + "POST /api/guest/serviceapikey/check HTTP/1.1\r\nContent-Length: 8\r\n\r\nkey=NOPE"
            + "POST /api/guest/serviceapikey/check HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nkey=\r\n0\r\n\r\n"
            + "GET /health HTTP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n"
        let responses = try TestHTTPClient.parseResponses(try exchange(requests, router: router))
        #expect(responses.map(\.status) == [200, 200, 200, 200])
        #expect(responses[0].body == #"{"result": true, "error": null}"#)
        #expect(responses[1].body.contains("API key does not exist"))
        #expect(responses[2].body.contains("You must provide an API key"))
        #expect(responses[3].body.contains(#""ok""#))
        #expect(responses[3].headers.contains { $0 == ("Connection", "close") })
        // HEAD: the GET answer's head, no body.
        let head = String(
            decoding: try exchange("HEAD /health HTTP/1.1\r\n\r\n", router: router), as: UTF8.self)
        #expect(
            head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.hasSuffix("\r\n\r\n") && head.contains("Content-Length: 31"))
    }
}

/// Pipelined writes on a server whose writes wait for fsync (`always`): each answer waits for its
/// write to be durable while the connection reads nothing more, and the answers still leave in
/// request order, the read after them included.
@Suite struct DurablePipeliningTests {
    @Test func pipelinedDurableWritesAreAnsweredInOrder() async throws {
        let directory = "/tmp/apikeyd-pipelining-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions()
        options.fsync = .always
        options.snapshotOnClose = false
        let engine = try Engine.open(directory: directory, options: options)
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.eventLoopCount = 1
        let server = try await APIServer.start(
            router: APIRouter(engine: engine, adminToken: "t"), configuration: configuration)
        let authorization = "Basic " + Data("admin:t".utf8).base64EncodedString()
        func create(_ orderID: Int) -> String {
            let body = "client_id=3&order_id=\(orderID)"
            return "POST /api/admin/serviceapikey/create HTTP/1.1\r\nAuthorization: \(authorization)\r\n"
                + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        let requests =
            create(11) + create(12) + create(11) + create(13)
            + "GET /api/admin/serviceapikey/get_list HTTP/1.1\r\nAuthorization: \(authorization)\r\n"
            + "Connection: close\r\n\r\n"
        let responses = try TestHTTPClient.parseResponses(
            try TestHTTPClient(port: server.port).exchange(Array(requests.utf8)))
        try await server.shutdown()
        try engine.close()
        #expect(responses.map(\.status) == [200, 200, 200, 200, 200])
        let orders = try responses.prefix(4).map { try JSONValue.parse($0.body)["result"]?["order_id"] }
        #expect(orders == [.integer(11), .integer(12), nil, .integer(13)])
        #expect(responses[2].body.contains("Order 11 already has an API key"))
        #expect(try JSONValue.parse(responses[4].body)["result"]?["total"] == .integer(3))
        // Every acknowledged key is in the journal.
        let reopened = try Engine.open(directory: directory, options: options)
        #expect(reopened.keyCount == 3)
        try reopened.close()
    }
}

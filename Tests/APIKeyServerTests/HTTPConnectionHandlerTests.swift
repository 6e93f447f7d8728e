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

/// The pre-encoded answers of `check` and `get_info` against the router's general path: the
/// same request, once with a plain `?key=` (pre-encoded) and once with an extra parameter the
/// router ignores (general path), must get byte-identical answers.
@Suite struct HTTPConnectionHandlerTests {
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

    /// A `POST` of `body` as `contentType` to `path`; `line` ends the request line and holds any
    /// `Connection` header.
    private func post(_ path: String, _ line: String, _ contentType: String?, _ body: String) -> String {
        "POST \(path)\(line)" + (contentType.map { "Content-Type: \($0)\r\n" } ?? "")
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
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
                    let path = "/api/guest/serviceapikey/\(endpoint)"
                    let line = " HTTP/\(version)\r\n\(connection)"
                    // The fast spelling of each kind of request beside one with an extra
                    // parameter the router ignores (the general path).
                    let pairs = [
                        ("GET \(path)?key=\(key)\(line)\r\n", "GET \(path)?key=\(key)&ignored=1\(line)\r\n"),
                        (
                            post(path, line, "application/json", #"{"key": "\#(key)"}"#),
                            post(path, line, "application/json", #"{"key": "\#(key)", "ignored": 1}"#)
                        ),
                        (
                            post(path, line, "application/x-www-form-urlencoded", "key=\(key)"),
                            post(path, line, "application/x-www-form-urlencoded", "key=\(key)&ignored=1")
                        ),
                    ]
                    for (fast, general) in pairs {
                        let fastAnswer = try exchange(fast, router: router)
                        let generalAnswer = try exchange(general, router: generalRouter)
                        #expect(
                            String(decoding: fastAnswer, as: UTF8.self)
                                == String(decoding: generalAnswer, as: UTF8.self), "\(fast)")
                        #expect(!fastAnswer.isEmpty)
                        compared += 1
                    }
                }
            }
        }
        #expect(compared == 126)
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

    /// Bodies near the fast path's shapes (white space, parameters on the media type, upper
    /// case, escapes, no type, other types, the key twice) get the answer of the general path:
    /// the same request with a proxy header (which the fast path never takes).
    @Test func keyBodiesAreReadAsTheRouterReadsThem() throws {
        let engine = Engine()
        let router = APIRouter(engine: engine, adminToken: "t")
        let key = try engine.create(NewKey(clientID: 1, config: .object([JSONMember("custom_a", .integer(1))]))).apiKey
        let first = key.unicodeScalars.first!
        let escaped = "\\u00" + String(first.value, radix: 16) + key.dropFirst()
        let bodies: [(String?, String)] = [
            ("application/json", #"{"key":"\#(key)"}"#),
            ("application/json", " \t\r\n{ \"key\" :\n\"\(key)\" }\n"),
            ("application/json; charset=utf-8", #"{"key": "\#(key)"}"#),
            ("Application/JSON", #"{"key": "\#(key)"}"#),
            ("application/json", #"{"key": "\#(escaped)"}"#),
            ("application/json", #"{"key": "\#(key)", "key": "NOPE"}"#),
            ("application/json", #"{"key": "NOPE", "key": "\#(key)"}"#),
            ("application/json", #"{"key": "\#(key)"} x"#),
            ("application/json", #"["\#(key)"]"#),
            ("application/json", #"{"key": 12}"#),
            ("application/json", #"{"key": ""}"#),
            ("application/vnd.api+json", #"{"key": "\#(key)"}"#),
            ("text/plain", "key=\(key)"),
            ("application/x-www-form-urlencoded", "key=\(key)&key=NOPE"),
            ("application/x-www-form-urlencoded", "key=%\(String(first.value, radix: 16))\(key.dropFirst())"),
            ("application/x-www-form-urlencoded", "key="),
            ("APPLICATION/X-WWW-FORM-URLENCODED", "key=\(key)"),
            (nil, "key=\(key)"),
            (nil, #"{"key": "\#(key)"}"#),
        ]
        for (contentType, body) in bodies {
            for endpoint in ["check", "get_info"] {
                let path = "/api/guest/serviceapikey/\(endpoint)"
                let plain = try exchange(post(path, " HTTP/1.1\r\n", contentType, body), router: router)
                let general = try exchange(
                    post(path, " HTTP/1.1\r\nX-Forwarded-For: 127.0.0.1\r\n", contentType, body), router: router)
                #expect(
                    String(decoding: plain, as: UTF8.self) == String(decoding: general, as: UTF8.self),
                    "\(contentType ?? "no type"): \(body)")
                #expect(String(decoding: plain, as: UTF8.self).hasPrefix("HTTP/1.1 "))
            }
        }
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

    /// `verify` on the fast path (its three spellings, with cost and request ID) against the
    /// general path (the same request with a proxy header): two keys with the same config and the
    /// same history, one asked each way, must get byte-identical answers at every step, refusals
    /// and unknown keys included.
    @Test func verifyAnswersEqualTheRoutersAnswers() throws {
        let clock = ManualClock(seconds: 1_775_001_000)
        let engine = Engine(clock: clock)
        var limits = RateLimitConfiguration()
        limits.failures = .init(capacity: 1000, refillPerSecond: 0.001)
        let router = APIRouter(engine: engine, adminToken: "t", rateLimits: limits, clock: clock)
        let configs: [(JSONValue, KeyStatus)] = [
            (
                .object([JSONMember("custom_monthlyLimit", .integer(4)), JSONMember("custom_tier", .string("free"))]),
                .active
            ),
            (
                .object([JSONMember("custom_rateLimit", .string("0.5")), JSONMember("custom_rateBurst", .integer(2))]),
                .active
            ),
            (.object([JSONMember("custom_note", .string(String(repeating: "x", count: 1200)))]), .active),
            (.object([JSONMember("custom_monthlyLimit", .integer(9))]), .suspended),
        ]
        let pairs =
            try configs.map { config, status in
                try (0..<2).map { _ in try engine.create(NewKey(clientID: 1, config: config, status: status)).apiKey }
            } + [["NOPE-1", "NOPE-2"]]
        let path = "/api/guest/serviceapikey/verify"
        func requests(_ key: String, _ step: Int, proxied: Bool) -> [String] {
            let line = " HTTP/1.1\r\n" + (proxied ? "X-Forwarded-For: 127.0.0.1\r\n" : "")
            let cost = step % 3
            return [
                "GET \(path)?key=\(key)&cost=\(cost)\(line)\r\n",
                "GET \(path)?request_id=r\(step)&key=\(key)\(line)\r\n",
                post(
                    path, line, "application/json",
                    #"{"key": "\#(key)", "cost": "\#(cost)", "request_id": "j\#(step % 2)"}"#),
                post(path, line, "application/x-www-form-urlencoded", "cost=\(cost)&key=\(key)"),
                post(path, line, nil, "key=\(key)&cost=1000000001"),
            ]
        }
        var compared = 0
        for step in 0..<6 {
            for pair in pairs {
                for (fast, general) in zip(
                    requests(pair[0], step, proxied: false), requests(pair[1], step, proxied: true))
                {
                    let fastAnswer = String(decoding: try exchange(fast, router: router), as: UTF8.self)
                    let generalAnswer = String(decoding: try exchange(general, router: router), as: UTF8.self)
                    #expect(fastAnswer == generalAnswer, "\(fast)")
                    #expect(fastAnswer.hasPrefix("HTTP/1.1 200 OK"))
                    compared += 1
                }
            }
            clock.advance(nanoseconds: 700_000_000)
        }
        #expect(compared == 6 * 5 * 5)
        // Both keys of each pair came to the same count; the limited one stopped at its limit.
        for pair in pairs.dropLast() {
            #expect(try engine.usage(.key(pair[0])).used == engine.usage(.key(pair[1])).used)
        }
        #expect(try engine.usage(.key(pairs[0][0])).used == 4)
        #expect(engine.verificationCounts[.usageExceeded, default: 0] > 0)
        #expect(engine.verificationCounts[.rateLimited, default: 0] > 0)
        #expect(engine.verificationCounts[.suspended, default: 0] > 0)
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
    private static var options: StorageOptions {
        var options = StorageOptions()
        options.fsync = .always
        options.snapshotOnClose = false
        return options
    }

    /// Opens an `always` engine on a fresh directory, has `prepare` fill it and give the pipelined
    /// requests, sends them on one connection to a server over it, shuts both down, and hands the
    /// answers and the engine reopened from the directory to `check`.
    private func pipeline(
        _ prepare: (Engine) throws -> String, check: ([RawResponse], Engine) throws -> Void
    ) async throws {
        let directory = "/tmp/apikeyd-pipelining-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let engine = try Engine.open(directory: directory, options: Self.options)
        let requests = try prepare(engine)
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.eventLoopCount = 1
        let server = try await APIServer.start(
            router: APIRouter(engine: engine, adminToken: "t"), configuration: configuration)
        let responses = try TestHTTPClient.parseResponses(
            try TestHTTPClient(port: server.port).exchange(Array(requests.utf8)))
        try await server.shutdown()
        try await engine.close()
        let reopened = try Engine.open(directory: directory, options: Self.options)
        defer { try? reopened.close() }
        try check(responses, reopened)
    }

    @Test func pipelinedDurableWritesAreAnsweredInOrder() async throws {
        let authorization = "Basic " + Data("admin:t".utf8).base64EncodedString()
        func create(_ orderID: Int) -> String {
            let body = "client_id=3&order_id=\(orderID)"
            return "POST /api/admin/serviceapikey/create HTTP/1.1\r\nAuthorization: \(authorization)\r\n"
                + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        try await pipeline { _ in
            create(11) + create(12) + create(11) + create(13)
                + "GET /api/admin/serviceapikey/get_list HTTP/1.1\r\nAuthorization: \(authorization)\r\n"
                + "Connection: close\r\n\r\n"
        } check: { responses, reopened in
            #expect(responses.map(\.status) == [200, 200, 200, 200, 200])
            let orders = try responses.prefix(4).map { try JSONValue.parse($0.body)["result"]?["order_id"] }
            #expect(orders == [.integer(11), .integer(12), nil, .integer(13)])
            #expect(responses[2].body.contains("Order 11 already has an API key"))
            #expect(try JSONValue.parse(responses[4].body)["result"]?["total"] == .integer(3))
            // Every acknowledged key is in the journal.
            #expect(reopened.keyCount == 3)
        }
    }

    /// Pipelined verifies under `always`, on the fast path and the general one: each VALID answer
    /// waits for its use to be durable, refusals need no wait, and the answers leave in order.
    @Test func pipelinedDurableVerifiesAreAnsweredInOrder() async throws {
        var key = ""
        try await pipeline { engine in
            key = try engine.create(
                NewKey(clientID: 1, config: .object([JSONMember("custom_monthlyLimit", .integer(3))]))
            ).apiKey
            let path = "/api/guest/serviceapikey/verify"
            let json = #"{"key": "\#(key)", "cost": 1}"#
            return "GET \(path)?key=\(key) HTTP/1.1\r\n\r\n"
                + "POST \(path) HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
                + "GET \(path)?key=\(key)&ignored=1 HTTP/1.1\r\n\r\n"
                + "GET \(path)?key=\(key) HTTP/1.1\r\n\r\n"
                + "GET \(path)?key=NOPE HTTP/1.1\r\n\r\n"
                + "GET \(path)?key=\(key)&cost=0 HTTP/1.1\r\nConnection: close\r\n\r\n"
        } check: { responses, reopened in
            let codes = try responses.map { try JSONValue.parse($0.body)["result"]?["code"] }
            #expect(
                codes
                    == ["VALID", "VALID", "VALID", "USAGE_EXCEEDED", "NOT_FOUND", "USAGE_EXCEEDED"].map { .string($0) })
            let used = try responses.prefix(3).map { try JSONValue.parse($0.body)["result"]?["usage"]?["used"] }
            #expect(used == [.integer(1), .integer(2), .integer(3)])
            #expect(try reopened.usage(.key(key)).used == 3)
        }
    }
}

import APIKeyAPI
import APIKeyEngine
import APIKeyLimiter
import TestSupport
import Testing

@testable import APIKeyServer

/// End-to-end tests: a real server on a loopback port, real requests over real sockets.
@Suite struct HTTPServerTests {
    static let adminToken = "test-admin-token-0123456789"
    static let admin = basicAuthorization("admin", adminToken)
    static let proConfigJSON = #"{"custom_monthlyLimit": 250, "custom_tier": "pro"}"#

    /// Runs `body` against a fresh engine served on a free port, then shuts the server down.
    func withServer(
        maximumBodyBytes: Int = 1 << 20, rateLimits: RateLimitConfiguration = RateLimitConfiguration(),
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: (TestHTTPClient, Engine) async throws -> Void
    ) async throws {
        let engine = Engine()
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.eventLoopCount = 2
        configuration.maximumBodyBytes = maximumBodyBytes
        configure(&configuration)
        let server = try await APIServer.start(
            router: APIRouter(engine: engine, adminToken: Self.adminToken, rateLimits: rateLimits),
            configuration: configuration)
        do {
            try await body(TestHTTPClient(port: server.port), engine)
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    /// The `result` of a success envelope; records an issue for anything else.
    func result(_ response: RawResponse, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        #expect(response.status == 200, sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/json; charset=utf-8", sourceLocation: sourceLocation)
        let envelope = try JSONValue.parse(response.body)
        #expect(envelope["error"] == .null, "body: \(response.body)", sourceLocation: sourceLocation)
        return envelope["result"] ?? .null
    }

    /// Expects an error envelope with this HTTP status, code and message.
    func expectError(
        _ response: RawResponse, status: Int, code: Int, message: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(response.status == status, "body: \(response.body)", sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/json; charset=utf-8", sourceLocation: sourceLocation)
        let envelope = try JSONValue.parse(response.body)
        #expect(envelope["result"] == .null, sourceLocation: sourceLocation)
        #expect(envelope["error"]?["message"] == .string(message), sourceLocation: sourceLocation)
        #expect(envelope["error"]?["code"] == .integer(code), sourceLocation: sourceLocation)
    }

    func createProKey(_ client: TestHTTPClient, clientID: Int = 7) throws -> (orderID: Int64, key: String) {
        let created = try result(
            client.request(
                "POST", "/api/admin/serviceapikey/create",
                body: #"{"client_id": \#(clientID), "config": \#(Self.proConfigJSON)}"#,
                contentType: "application/json",
                authorization: Self.admin))
        guard case .string(let key) = created["api_key"], case .number(let order) = created["order_id"] else {
            throw TestHTTPClient.Failure(description: "create answered \(created)")
        }
        return (Int64(order)!, key)
    }

    @Test func checkAndGetInfoAnswerTheSameForJSONFormAndQuery() async throws {
        try await withServer { client, _ in
            let (_, key) = try createProKey(client)
            let checks = [
                try client.request(
                    "POST", "/api/guest/serviceapikey/check", body: #"{"key": "\#(key)"}"#,
                    contentType: "application/json"),
                try client.request(
                    "POST", "/api/guest/serviceapikey/check", body: "key=\(key)",
                    contentType: "application/x-www-form-urlencoded"),
                try client.request("GET", "/api/guest/serviceapikey/check?key=\(key)"),
            ]
            for response in checks {
                #expect(response.status == 200)
                #expect(response.body == #"{"result": true, "error": null}"#)
            }
            let infos = [
                try client.request(
                    "POST", "/api/guest/serviceapikey/get_info", body: #"{"key": "\#(key)"}"#,
                    contentType: "application/json; charset=utf-8"),
                try client.request(
                    "POST", "/api/guest/serviceapikey/get_info", body: "key=\(key)",
                    contentType: "application/x-www-form-urlencoded"),
                try client.request("GET", "/api/guest/serviceapikey/get_info?key=\(key)"),
            ]
            for response in infos {
                #expect(response.status == 200)
                #expect(
                    response.body
                        == #"{"result": {"valid": 1, "config": {"monthlyLimit": 250, "tier": "pro"}}, "error": null}"#)
            }
        }
    }

    @Test func theReadmeWalkThrough() async throws {
        try await withServer { client, _ in
            let (orderID, key) = try createProKey(client)
            #expect(try result(client.request("GET", "/api/guest/serviceapikey/check?key=\(key)")) == .bool(true))
            #expect(
                try result(
                    client.request(
                        "POST", "/api/admin/serviceapikey/reset", body: "order_id=\(orderID)",
                        contentType: "application/x-www-form-urlencoded", authorization: Self.admin)) == .bool(true))
            try expectError(
                client.request("GET", "/api/guest/serviceapikey/check?key=\(key)"), status: 200, code: 9999,
                message: "API key does not exist")
            let record = try result(
                client.request("GET", "/api/admin/serviceapikey/get?order_id=\(orderID)", authorization: Self.admin))
            guard case .string(let newKey) = record["api_key"] else {
                throw TestHTTPClient.Failure(description: "no key")
            }
            #expect(newKey != key)
            #expect(try result(client.request("GET", "/api/guest/serviceapikey/check?key=\(newKey)")) == .bool(true))
        }
    }

    @Test func everyErrorOfTheProductEndpoints() async throws {
        try await withServer { client, _ in
            let (orderID, key) = try createProKey(client)
            let noKey = "You must provide an API key to check it's validity."
            for target in ["/api/guest/serviceapikey/check", "/api/guest/serviceapikey/get_info"] {
                try expectError(client.request("GET", target), status: 200, code: 9999, message: noKey)
                try expectError(client.request("GET", target + "?key="), status: 200, code: 9999, message: noKey)
                try expectError(
                    client.request("POST", target, body: "{}", contentType: "application/json"), status: 200,
                    code: 9999, message: noKey)
                try expectError(
                    client.request("GET", target + "?key=\(key.lowercased())"), status: 200, code: 9999,
                    message: "API key does not exist")
            }
            try expectError(
                client.request("POST", "/api/admin/serviceapikey/update", body: "valid=0", authorization: Self.admin),
                status: 200, code: 9999, message: "You must provide the API key order ID in order to update it.")
            try expectError(
                client.request(
                    "POST", "/api/admin/serviceapikey/update", body: "order_id=9999", authorization: Self.admin),
                status: 200, code: 9999, message: "Order not found")
            try expectError(
                client.request(
                    "POST", "/api/admin/serviceapikey/update", body: "order_id=\(orderID)&api_key=OTHER",
                    authorization: Self.admin),
                status: 200, code: 9999,
                message: "To change the API key, please use the reset function rather than updating it.")
            try expectError(
                client.request("POST", "/api/admin/serviceapikey/reset", body: "", authorization: Self.admin),
                status: 200, code: 9999,
                message: "You must provide either the API key or API key order ID in order to reset it.")
            try expectError(
                client.request("POST", "/api/admin/serviceapikey/reset", body: "key=NOPE", authorization: Self.admin),
                status: 200, code: 9999, message: "API key does not exist")
            try expectError(
                client.request(
                    "POST", "/api/admin/serviceapikey/update", body: "order_id=abc", authorization: Self.admin),
                status: 200, code: 9999, message: "order_id must be an integer")
            // The failed calls changed nothing.
            #expect(try result(client.request("GET", "/api/guest/serviceapikey/check?key=\(key)")) == .bool(true))
        }
    }

    @Test func updateChangesValidityConfigAndExpiry() async throws {
        try await withServer { client, _ in
            let (orderID, key) = try createProKey(client)
            let update = { (body: String) in
                try self.result(
                    client.request(
                        "POST", "/api/admin/serviceapikey/update", body: body, contentType: "application/json",
                        authorization: Self.admin))
            }
            #expect(try update(#"{"order_id": \#(orderID), "valid": false, "api_key": "\#(key)"}"#) == .bool(true))
            #expect(try result(client.request("GET", "/api/guest/serviceapikey/check?key=\(key)")) == .bool(false))
            #expect(
                try result(client.request("GET", "/api/guest/serviceapikey/get_info?key=\(key)"))
                    == .object([
                        JSONMember("valid", .integer(0)),
                        JSONMember(
                            "config",
                            .object([JSONMember("monthlyLimit", .integer(250)), JSONMember("tier", .string("pro"))])),
                    ]))
            #expect(
                try update(#"{"order_id": "\#(orderID)", "valid": "1", "config": {"custom_tier": "free"}}"#)
                    == .bool(true))
            #expect(
                try result(client.request("GET", "/api/guest/serviceapikey/get_info?key=\(key)"))
                    == .object([
                        JSONMember("valid", .integer(1)),
                        JSONMember("config", .object([JSONMember("tier", .string("free"))])),
                    ]))
            #expect(try update(#"{"order_id": \#(orderID), "expires_at": "2001-01-01 00:00:00"}"#) == .bool(true))
            #expect(try result(client.request("GET", "/api/guest/serviceapikey/check?key=\(key)")) == .bool(false))
            #expect(try update(#"{"order_id": \#(orderID), "expires_at": null}"#) == .bool(true))
            #expect(try result(client.request("GET", "/api/guest/serviceapikey/check?key=\(key)")) == .bool(true))
        }
    }

    @Test func authenticationFailures() async throws {
        try await withServer { client, engine in
            let token = try engine.resetClientToken(clientID: 3)
            let target = "/api/admin/serviceapikey/get_list"
            let cases: [(String?, String, Int)] = [
                (nil, target, 201),
                ("Bearer \(Self.adminToken)", target, 202),
                ("Basic !!!not-base64!!!", target, 202),
                ("Basic YWRtaW4=", target, 202),  // "admin" with no colon
                (basicAuthorization("root", Self.adminToken), target, 203),
                (basicAuthorization("admin", "wrong"), target, 204),
                (basicAuthorization("admin", ""), target, 204),
                (basicAuthorization("client", "wrong"), "/api/client/serviceapikey/get_list", 205),
                (basicAuthorization("client", token), target, 206),
                (Self.admin, "/api/client/serviceapikey/get_list", 206),
            ]
            for (authorization, path, code) in cases {
                let response = try client.request("GET", path, authorization: authorization)
                try expectError(response, status: 401, code: code, message: "Authentication Failed")
                #expect(response.header("WWW-Authenticate") == #"Basic realm="apikeyd""#)
            }
            #expect(try result(client.request("GET", target, authorization: Self.admin))["total"] == .integer(0))
            #expect(
                try result(
                    client.request(
                        "GET", "/api/client/serviceapikey/get_list", authorization: basicAuthorization("client", token))
                )[
                    "total"] == .integer(0))
        }
    }

    @Test func clientsOnlyReachTheirOwnKeys() async throws {
        try await withServer { client, engine in
            let (myOrder, myKey) = try createProKey(client, clientID: 1)
            let (theirOrder, theirKey) = try createProKey(client, clientID: 2)
            let tokenResult = try result(
                client.request(
                    "POST", "/api/admin/client/token_reset", body: "client_id=1", authorization: Self.admin))
            guard case .string(let token) = tokenResult["api_token"] else {
                throw TestHTTPClient.Failure(description: "no token")
            }
            #expect(tokenResult["client_id"] == .integer(1))
            let me = basicAuthorization("client", token)

            for body in ["key=\(theirKey)", "order_id=\(theirOrder)", "order_id=424242", "key=UNKNOWN"] {
                try expectError(
                    client.request("POST", "/api/client/serviceapikey/reset", body: body, authorization: me),
                    status: 200,
                    code: 9999, message: "API key does not exist")
                try expectError(
                    client.request("POST", "/api/client/serviceapikey/get", body: body, authorization: me), status: 200,
                    code: 9999, message: "API key does not exist")
            }
            #expect(try engine.check(key: theirKey))

            let list = try result(
                client.request("GET", "/api/client/serviceapikey/get_list?client_id=2", authorization: me))
            #expect(list["total"] == .integer(1))
            #expect(
                list["list"]
                    == .array([
                        try result(
                            client.request("GET", "/api/client/serviceapikey/get?key=\(myKey)", authorization: me))
                    ]))

            #expect(
                try result(
                    client.request(
                        "POST", "/api/client/serviceapikey/reset", body: "order_id=\(myOrder)", authorization: me))
                    == .bool(true))
            #expect(throws: EngineError.keyNotFound) { try engine.check(key: myKey) }
        }
    }

    @Test func managementEndpoints() async throws {
        try await withServer { client, _ in
            let created = try result(
                client.request(
                    "POST", "/api/admin/serviceapikey/create",
                    body:
                        "order_id=100&client_id=5&config[length]=10&config[split_interval]=4&config[custom_tier]=pro&expires_at=2099-01-02",
                    contentType: "application/x-www-form-urlencoded", authorization: Self.admin))
            #expect(created["order_id"] == .integer(100))
            #expect(created["client_id"] == .integer(5))
            #expect(created["status"] == .string("active"))
            #expect(created["expires_at"] == .string("2099-01-02 00:00:00"))
            #expect(
                created["config"]
                    == .object([
                        JSONMember("length", .string("10")), JSONMember("split_interval", .string("4")),
                        JSONMember("custom_tier", .string("pro")),
                    ]))
            guard case .string(let key) = created["api_key"] else {
                throw TestHTTPClient.Failure(description: "no key")
            }
            #expect(key.count == 12 && key.split(separator: "-").map(\.count) == [4, 4, 2])
            guard case .string(let createdAt) = created["created_at"] else {
                throw TestHTTPClient.Failure(description: "no time")
            }
            #expect(Timestamp.parse(createdAt) != nil && createdAt.count == 19)

            #expect(
                try result(client.request("GET", "/api/admin/serviceapikey/get?key=\(key)", authorization: Self.admin))
                    == created)

            for (method, valid) in [("suspend", false), ("unsuspend", true), ("cancel", false), ("uncancel", true)] {
                #expect(
                    try result(
                        client.request(
                            "POST", "/api/admin/serviceapikey/\(method)", body: "order_id=100",
                            authorization: Self.admin))
                        == .bool(true))
                #expect(try result(client.request("GET", "/api/guest/serviceapikey/check?key=\(key)")) == .bool(valid))
            }
            try expectError(
                client.request(
                    "POST", "/api/admin/serviceapikey/unsuspend", body: "order_id=100", authorization: Self.admin),
                status: 200, code: 9999, message: "Only suspended orders can be unsuspended")

            _ = try createProKey(client, clientID: 5)
            let page = try result(
                client.request(
                    "GET", "/api/admin/serviceapikey/get_list?client_id=5&per_page=1&page=2", authorization: Self.admin)
            )
            #expect(page["total"] == .integer(2))
            #expect(page["page"] == .integer(2))
            #expect(page["per_page"] == .integer(1))
            #expect(page["list"]?.arrayCount == 1)

            #expect(
                try result(
                    client.request(
                        "POST", "/api/admin/serviceapikey/delete", body: "order_id=100", authorization: Self.admin))
                    == .bool(true))
            try expectError(
                client.request("GET", "/api/guest/serviceapikey/check?key=\(key)"), status: 200, code: 9999,
                message: "API key does not exist")
            try expectError(
                client.request("GET", "/api/admin/serviceapikey/get?order_id=100", authorization: Self.admin),
                status: 200,
                code: 9999, message: "Order not found")
        }
    }

    @Test func unknownCallsAndPaths() async throws {
        try await withServer { client, _ in
            try expectError(
                client.request("GET", "/api/guest/serviceapikey/nope"), status: 404, code: 740,
                message: "Guest API call nope does not exist in module serviceapikey")
            try expectError(
                client.request("GET", "/api/admin/serviceapikey/drop_all", authorization: Self.admin), status: 404,
                code: 740, message: "Admin API call drop_all does not exist in module serviceapikey")
            try expectError(
                client.request("GET", "/api/admin/serviceapikey/drop_all"), status: 401, code: 201,
                message: "Authentication Failed")
            try expectError(
                client.request("GET", "/api/guest/serviceapikey/update"), status: 404, code: 740,
                message: "Guest API call update does not exist in module serviceapikey")
            try expectError(
                client.request("GET", "/index.html"), status: 404, code: 404,
                message: "Not found: /index.html is not an API path")
            let put = try client.request("PUT", "/api/guest/serviceapikey/check", body: "key=x")
            try expectError(put, status: 405, code: 405, message: "Method PUT is not allowed; use GET or POST")
            #expect(put.header("Allow") == "GET, POST")
            #expect(try result(client.request("GET", "/health")) == .string("ok"))
        }
    }

    @Test func malformedBodiesAreAnsweredAndChangeNothing() async throws {
        try await withServer { client, engine in
            let cases: [(String, String, String)] = [
                (#"{"client_id": 1,"#, "application/json", "Malformed JSON body"),
                (#"[1, 2]"#, "application/json", "Malformed JSON body: expected an object"),
                ("client_id=%zz", "application/x-www-form-urlencoded", "Malformed form encoding"),
                ("client_id=%C3%28", "application/x-www-form-urlencoded", "Malformed form encoding: invalid UTF-8"),
                ("<xml/>", "text/xml", "Malformed request: unsupported Content-Type"),
            ]
            for (body, contentType, prefix) in cases {
                let response = try client.request(
                    "POST", "/api/admin/serviceapikey/create", body: body, contentType: contentType,
                    authorization: Self.admin)
                #expect(response.status == 400)
                let envelope = try JSONValue.parse(response.body)
                #expect(envelope["error"]?["code"] == .integer(400))
                guard case .string(let message) = envelope["error"]?["message"] else {
                    Issue.record("no message in \(response.body)")
                    continue
                }
                #expect(message.hasPrefix(prefix), "\(message)")
            }
            var invalidUTF8 = Array(
                "POST /api/guest/serviceapikey/check HTTP/1.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 11\r\n\r\n"
                    .utf8)
            invalidUTF8 += Array(#"{"key": ""#.utf8) + [0xFF] + Array(#""}"#.utf8)
            let responses = try TestHTTPClient.parseResponses(try client.exchange(invalidUTF8))
            #expect(responses.map(\.status) == [400])
            #expect(engine.keyCount == 0)
        }
    }

    @Test func oversizedBodiesGet413() async throws {
        try await withServer(maximumBodyBytes: 1024) { client, _ in
            let big = "key=" + String(repeating: "A", count: 5000)
            try expectError(
                client.request("POST", "/api/guest/serviceapikey/check", body: big), status: 413, code: 413,
                message: "Request body too large: the limit is 1024 bytes")
            // Chunked, so the size is only known while reading.
            let chunk = String(repeating: "B", count: 800)
            let chunked =
                "POST /api/guest/serviceapikey/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "320\r\n\(chunk)\r\n320\r\n\(chunk)\r\n0\r\n\r\n"
            let responses = try TestHTTPClient.parseResponses(try client.exchange(Array(chunked.utf8)))
            #expect(responses.map(\.status) == [413])
            // The server still serves.
            #expect(try result(client.request("GET", "/health")) == .string("ok"))
        }
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        try await withServer { client, _ in
            let (_, key) = try createProKey(client)
            let one = "GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\nHost: x\r\n\r\n"
            let bad =
                "POST /api/guest/serviceapikey/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{"
            let last =
                "GET /api/guest/serviceapikey/get_info?key=\(key) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let responses = try TestHTTPClient.parseResponses(try client.exchange(Array((one + bad + one + last).utf8)))
            #expect(responses.map(\.status) == [200, 400, 200, 200])
            #expect(responses[0].body == #"{"result": true, "error": null}"#)
            #expect(responses[2].body == #"{"result": true, "error": null}"#)
            #expect(responses[3].body.contains(#""valid": 1"#))
        }
    }
}

extension JSONValue {
    /// The number of elements when this is an array.
    fileprivate var arrayCount: Int? {
        if case .array(let elements) = self { return elements.count }
        return nil
    }
}

import APIKeyEngine
import APIKeyGuard
import APIKeyVapor
import Testing
import Vapor
import VaporTesting

/// The middleware in a real Vapor application, driven by VaporTesting: through the responder
/// chain in memory and over a real socket.
@Suite struct APIKeyMiddlewareTests {
    private struct Fixture {
        let engine = Engine()
        let pro: KeyRecord
        let limited: KeyRecord
        let canceled: KeyRecord

        init() throws {
            pro = try engine.create(NewKey(clientID: 7, config: .object([JSONMember("custom_tier", .string("pro"))])))
            limited = try engine.create(
                NewKey(clientID: 8, config: .object([JSONMember("custom_monthlyLimit", .number("2"))])))
            canceled = try engine.create(NewKey(clientID: 9, status: .canceled))
        }

        /// `/open` for anyone, `/v1/forecast` behind the key at cost 1, `/v1/bulk` at cost 2.
        func configure(_ app: Application) {
            app.get("open") { _ in "open" }
            let keyGuard = APIKeyGuard(engine: engine)
            app.grouped("v1").grouped(APIKeyMiddleware(keyGuard)).get("forecast") { request -> String in
                let key = request.apiKey!
                return
                    "order \(key.orderID) client \(key.clientID) tier \(key.customParameters.string("tier") ?? "none")"
            }
            app.grouped("v1").grouped(APIKeyMiddleware(keyGuard.with(mode: .verify(cost: 2)))).get("bulk") { _ in
                "bulk"
            }
        }
    }

    @Test(arguments: [Application.Method.inMemory, .running(hostname: "127.0.0.1", port: 0)])
    func aValidKeyReachesTheRouteWithItsDetails(_ method: Application.Method) async throws {
        let fixture = try Fixture()
        try await withApp(configure: { fixture.configure($0) }) { app in
            let tester = try app.testing(method: method)
            try await tester.test(.GET, "v1/forecast", headers: ["X-API-Key": fixture.pro.apiKey]) { response in
                #expect(response.status == .ok)
                #expect(response.body.string == "order \(fixture.pro.orderID) client 7 tier pro")
            }
            try await tester.test(.GET, "v1/forecast", headers: ["Authorization": "Bearer \(fixture.pro.apiKey)"]) {
                #expect($0.status == .ok)
            }
            try await tester.test(.GET, "open") { #expect($0.body.string == "open") }
        }
    }

    @Test func invalidKeysAre401WithAJSONBody() async throws {
        let fixture = try Fixture()
        try await withApp(configure: { fixture.configure($0) }) { app in
            try await app.testing().test(.GET, "v1/forecast") { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers.first(name: "WWW-Authenticate") == "Bearer")
                #expect(response.headers.first(name: "Content-Type") == "application/json; charset=utf-8")
                #expect(response.body.string.contains("MISSING_KEY"))
            }
            for (key, code) in [("nope", "NOT_FOUND"), (fixture.canceled.apiKey, "CANCELED")] {
                try await app.testing().test(.GET, "v1/forecast", headers: ["x-api-key": key]) {
                    #expect($0.status == .unauthorized)
                    #expect($0.body.string.contains("\"code\": \"\(code)\""))
                }
            }
        }
    }

    @Test func aSpentQuotaIs429WithRetryAfterAndEachRouteMetersItsCost() async throws {
        let fixture = try Fixture()
        let key = fixture.limited.apiKey
        try await withApp(configure: { fixture.configure($0) }) { app in
            try await app.testing().test(.GET, "v1/forecast", headers: ["X-API-Key": key]) {
                #expect($0.status == .ok)
                #expect($0.headers.first(name: "RateLimit-Limit") == "2")
                #expect($0.headers.first(name: "RateLimit-Remaining") == "1")
                #expect($0.headers.first(name: "RateLimit-Reset") != nil)
            }
            try await app.testing().test(.GET, "v1/bulk", headers: ["X-API-Key": key]) {
                #expect($0.status == .tooManyRequests, "the bulk route costs 2 and only 1 is left")
                #expect(Int($0.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
                #expect($0.body.string.contains("USAGE_EXCEEDED"))
            }
            try await app.testing().test(.GET, "v1/forecast", headers: ["X-API-Key": key]) {
                #expect($0.status == .ok)
                #expect($0.headers.first(name: "RateLimit-Remaining") == "0")
            }
        }
        #expect(try fixture.engine.usage(.key(key)).used == 2)
    }
}

import APIKeyEngine
import APIKeyGuard
import APIKeyHummingbird
import Hummingbird
import HummingbirdTesting
import Testing

/// The middleware in a real Hummingbird application, driven by Hummingbird's test client: over a
/// real socket (`.live`) and through the router alone (`.router`).
@Suite struct APIKeyMiddlewareTests {
    private struct Fixture {
        let engine = Engine()
        let pro: KeyRecord
        let limited: KeyRecord
        let suspended: KeyRecord

        init() throws {
            pro = try engine.create(
                NewKey(clientID: 7, config: .object([JSONMember("custom_tier", .string("pro"))])))
            limited = try engine.create(
                NewKey(clientID: 8, config: .object([JSONMember("custom_monthlyLimit", .number("2"))])))
            suspended = try engine.create(NewKey(clientID: 9, status: .suspended))
        }

        /// `/open` for anyone, `/v1/forecast` behind the key at cost 1, `/v1/bulk` at cost 2.
        func application() -> some ApplicationProtocol {
            let router = Router(context: APIKeyRequestContextType.self)
            router.get("open") { _, _ in "open" }
            let keyGuard = APIKeyGuard(engine: engine)
            let v1 = router.group("v1")
            v1.group().add(middleware: APIKeyMiddleware(keyGuard))
                .get("forecast") { _, context -> String in
                    let key = context.apiKey!
                    return
                        "order \(key.orderID) client \(key.clientID) tier \(key.customParameters.string("tier") ?? "none")"
                }
            v1.group().add(middleware: APIKeyMiddleware(keyGuard.with(mode: .verify(cost: 2))))
                .get("bulk") { _, _ in "bulk" }
            return Application(router: router)
        }
    }

    @Test(arguments: [TestingSetup.router, .live])
    func aValidKeyReachesTheRouteWithItsDetails(_ setup: TestingSetup) async throws {
        let fixture = try Fixture()
        try await fixture.application().test(setup) { client in
            try await client.execute(
                uri: "/v1/forecast", method: .get, headers: [.init("X-API-Key")!: fixture.pro.apiKey]
            ) {
                #expect($0.status == .ok)
                #expect(String(buffer: $0.body) == "order \(fixture.pro.orderID) client 7 tier pro")
            }
            try await client.execute(
                uri: "/v1/forecast", method: .get, headers: [.authorization: "Bearer \(fixture.pro.apiKey)"]
            ) { #expect($0.status == .ok) }
            try await client.execute(uri: "/open", method: .get) { #expect(String(buffer: $0.body) == "open") }
        }
    }

    @Test func invalidKeysAre401WithAJSONBody() async throws {
        let fixture = try Fixture()
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/v1/forecast", method: .get) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
                #expect(String(buffer: response.body).contains("MISSING_KEY"))
            }
            for (key, code) in [("nope", "NOT_FOUND"), (fixture.suspended.apiKey, "SUSPENDED")] {
                try await client.execute(uri: "/v1/forecast", method: .get, headers: [.init("x-api-key")!: key]) {
                    #expect($0.status == .unauthorized)
                    #expect(String(buffer: $0.body).contains("\"code\": \"\(code)\""))
                }
            }
        }
    }

    @Test func aSpentQuotaIs429WithRetryAfterAndEachRouteMetersItsCost() async throws {
        let fixture = try Fixture()
        let key = fixture.limited.apiKey
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/v1/forecast", method: .get, headers: [.init("X-API-Key")!: key]) {
                #expect($0.status == .ok)
                #expect($0.headers[.init("RateLimit-Limit")!] == "2")
                #expect($0.headers[.init("RateLimit-Remaining")!] == "1")
                #expect($0.headers[.init("RateLimit-Reset")!] != nil)
            }
            try await client.execute(uri: "/v1/bulk", method: .get, headers: [.init("X-API-Key")!: key]) {
                #expect($0.status == .tooManyRequests, "the bulk route costs 2 and only 1 is left")
                #expect(Int($0.headers[.retryAfter] ?? "") ?? 0 >= 1)
                #expect(String(buffer: $0.body).contains("USAGE_EXCEEDED"))
            }
            try await client.execute(uri: "/v1/forecast", method: .get, headers: [.init("X-API-Key")!: key]) {
                #expect($0.status == .ok)
                #expect($0.headers[.init("RateLimit-Remaining")!] == "0")
            }
        }
        #expect(try fixture.engine.usage(.key(key)).used == 2)
    }
}

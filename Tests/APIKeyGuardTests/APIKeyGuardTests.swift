import APIKeyEngine
import APIKeyGuard
import TestSupport
import Testing

/// The middleware's decisions, without a framework: where the key is read from, which status and
/// headers each verify code gives, what check mode leaves alone.
@Suite struct APIKeyGuardTests {
    /// 2027-01-31 23:59:00 UTC: the quota resets in 60 seconds.
    private static let now: Int64 = 1_801_439_940
    private let clock = ManualClock(seconds: APIKeyGuardTests.now)

    private func headers(_ fields: [String: String]) -> (String) -> String? {
        { name in fields.first { $0.key.lowercased() == name.lowercased() }?.value }
    }

    @Test func theKeyComesFromTheNamedHeaderElseABearerToken() {
        let keyGuard = APIKeyGuard(engine: Engine())
        #expect(keyGuard.key(header: headers(["X-API-Key": " abc "])) == "abc")
        #expect(keyGuard.key(header: headers(["Authorization": "Bearer  xyz"])) == "xyz")
        #expect(keyGuard.key(header: headers(["Authorization": "bearer xyz"])) == "xyz")
        #expect(keyGuard.key(header: headers(["X-API-Key": "abc", "Authorization": "Bearer xyz"])) == "abc")
        #expect(keyGuard.key(header: headers(["Authorization": "Basic dXNlcjpwYXNz"])) == nil)
        #expect(keyGuard.key(header: headers(["Authorization": "Bearer "])) == nil)
        #expect(keyGuard.key(header: headers(["X-API-Key": "  "])) == nil)
        let custom = APIKeyGuard(engine: Engine(), headerName: "X-Token", acceptsBearer: false)
        #expect(custom.key(header: headers(["X-Token": "t"])) == "t")
        #expect(custom.key(header: headers(["X-API-Key": "abc", "Authorization": "Bearer xyz"])) == nil)
    }

    @Test func invalidKeysAre401WithAChallenge() async throws {
        let engine = Engine(clock: clock)
        let keyGuard = APIKeyGuard(engine: engine)
        let suspended = try await engine.create(NewKey(clientID: 1, status: .suspended)).apiKey
        let canceled = try await engine.create(NewKey(clientID: 1, status: .canceled)).apiKey
        let expired = try await engine.create(NewKey(clientID: 1, expiresAt: Self.now - 1)).apiKey
        for (key, code) in [
            (nil, "MISSING_KEY"), ("", "MISSING_KEY"), ("unknown", "NOT_FOUND"), (suspended, "SUSPENDED"),
            (canceled, "CANCELED"), (expired, "EXPIRED"),
        ] {
            for mode in [APIKeyGuard.Mode.verify(cost: 1), .check] {
                guard case .refused(let refusal) = await keyGuard.with(mode: mode).decide(key: key) else {
                    Issue.record("\(String(describing: key)) was let through in \(mode)")
                    continue
                }
                #expect(refusal.status == 401 && refusal.code == code, "\(mode)")
                #expect(refusal.headers == [HeaderField("WWW-Authenticate", "Bearer")])
                #expect(refusal.body == "{\"error\": {\"code\": \"\(code)\", \"message\": \"\(refusal.message)\"}}")
            }
        }
    }

    @Test func aValidKeyComesWithItsDetailsAndTheClosestLimitsHeaders() async throws {
        let engine = Engine(clock: clock)
        let record = try await engine.create(
            NewKey(
                clientID: 42,
                config: .object([
                    JSONMember("custom_tier", .string("pro")), JSONMember("custom_monthlyLimit", .number("100")),
                    JSONMember("custom_rateLimit", .number("1")), JSONMember("custom_rateBurst", .number("500")),
                ])))
        guard case .allowed(let key) = await APIKeyGuard(engine: engine).decide(key: record.apiKey) else {
            Issue.record("a valid key was refused")
            return
        }
        #expect(key.orderID == record.orderID && key.clientID == 42)
        #expect(key.customParameters.string("tier") == "pro")
        #expect(key.usage?.used == 1 && key.usage?.remaining == 99)
        // The quota (99 left) is closer to running out than the bucket (499 left).
        #expect(
            key.headers == [
                HeaderField("RateLimit-Limit", "100"), HeaderField("RateLimit-Remaining", "99"),
                HeaderField("RateLimit-Reset", "60"),
            ])
        let plain = try await engine.create(NewKey(clientID: 43)).apiKey
        guard case .allowed(let unlimited) = await APIKeyGuard(engine: engine).decide(key: plain) else {
            Issue.record("a valid key was refused")
            return
        }
        #expect(unlimited.headers.isEmpty && unlimited.usage == nil)
    }

    @Test func aSpentQuotaIs429UntilTheMonthEnds() async throws {
        let engine = Engine(clock: clock)
        let key = try await engine.create(
            NewKey(clientID: 1, config: .object([JSONMember("custom_monthlyLimit", .number("2"))]))
        ).apiKey
        let keyGuard = APIKeyGuard(engine: engine)
        guard case .allowed = await keyGuard.with(mode: .verify(cost: 2)).decide(key: key) else {
            Issue.record("the first verify was refused")
            return
        }
        guard case .refused(let refusal) = await keyGuard.decide(key: key) else {
            Issue.record("a spent quota was let through")
            return
        }
        #expect(refusal.status == 429 && refusal.code == "USAGE_EXCEEDED")
        #expect(
            refusal.headers == [
                HeaderField("Retry-After", "60"), HeaderField("RateLimit-Limit", "2"),
                HeaderField("RateLimit-Remaining", "0"), HeaderField("RateLimit-Reset", "60"),
            ])
        // Check mode neither meters nor refuses for the quota.
        guard case .allowed = await keyGuard.with(mode: .check).decide(key: key) else {
            Issue.record("check mode refused a valid key")
            return
        }
        #expect(try engine.usage(.key(key)).used == 2)
    }

    @Test func anEmptyBucketIs429WithTheSecondsUntilATokenIsBack() async throws {
        let engine = Engine(clock: clock)
        let key = try await engine.create(
            NewKey(
                clientID: 1,
                config: .object([
                    JSONMember("custom_rateLimit", .number("0.5")), JSONMember("custom_rateBurst", .number("1")),
                ]))
        ).apiKey
        let keyGuard = APIKeyGuard(engine: engine)
        _ = await keyGuard.decide(key: key)
        guard case .refused(let refusal) = await keyGuard.decide(key: key) else {
            Issue.record("an empty bucket let a request through")
            return
        }
        #expect(refusal.status == 429 && refusal.code == "RATE_LIMITED")
        #expect(
            refusal.headers == [
                HeaderField("Retry-After", "2"), HeaderField("RateLimit-Limit", "1"),
                HeaderField("RateLimit-Remaining", "0"), HeaderField("RateLimit-Reset", "2"),
            ])
    }

    @Test func aClosedEngineIs503ForVerifyAndStillAnswersChecks() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path)
        let key = try await engine.create(NewKey(clientID: 1)).apiKey
        try await engine.close()
        let keyGuard = APIKeyGuard(engine: engine)
        guard case .refused(let refusal) = await keyGuard.decide(key: key) else {
            Issue.record("a verify on a closed engine was let through")
            return
        }
        #expect(refusal.status == 503 && refusal.code == "UNAVAILABLE")
        #expect(refusal.headers.contains(HeaderField("Retry-After", "1")))
        guard case .allowed = await keyGuard.with(mode: .check).decide(key: key) else {
            Issue.record("a check on a closed engine was refused")
            return
        }
    }
}

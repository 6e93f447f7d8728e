import APIKeyEngine
import APIKeyLimiter
import Foundation
import TestSupport
import Testing

@testable import APIKeyAPI

/// What the router adds for operators: `/metrics` for allowed addresses only, the endpoint
/// labels of request metrics, rate-limit refusals logged at most once a minute per address, and
/// one warning for `X-Forwarded-For` from a peer that is not a trusted proxy.
@Suite struct OperationsRouterTests {
    static func router(
        rateLimits: RateLimitConfiguration = RateLimitConfiguration(), log: CapturedLog = CapturedLog()
    ) -> APIRouter {
        let metrics = MetricsEndpoint(allowed: [CIDRRange("127.0.0.0/8")!, CIDRRange("::1")!]) {
            Array("apikeyd_up 1\n".utf8)
        }
        return APIRouter(
            engine: Engine(), adminToken: "token", rateLimits: rateLimits, metrics: metrics, logger: log.logger)
    }

    @Test func metricsAnswerAllowedAddressesOnly() throws {
        let router = Self.router()
        func answer(_ method: String, _ target: String, from client: String?) -> APIResponse {
            guard
                case .now(let response) = router.respond(
                    to: APIRequest(method: method, target: target), client: client.flatMap { IPAddress($0) })
            else { preconditionFailure("metrics answer at once") }
            return response
        }
        for client in ["127.0.0.1", "127.9.9.9", "::1"] {
            let allowed = answer("GET", "/metrics", from: client)
            #expect(allowed.status == 200 && allowed.body == Array("apikeyd_up 1\n".utf8), "\(client)")
            #expect("\(allowed.contentType)" == "text/plain; version=0.0.4; charset=utf-8")
        }
        #expect(answer("GET", "/metrics?x=1", from: "127.0.0.1").status == 200)
        for client in ["10.0.0.1", "::2", nil] {
            let refused = answer("GET", "/metrics", from: client)
            #expect(refused.status == 403, "\(String(describing: client))")
            let envelope = try JSONValue.parse(refused.body)
            #expect(envelope["error"]?["code"] == .number("403"))
            #expect(envelope["result"] == .null)
        }
        let post = answer("POST", "/metrics", from: "127.0.0.1")
        #expect(post.status == 405)
        #expect(post.headers.contains { $0 == ("Allow", "GET, HEAD") })
        // Without a metrics endpoint, /metrics is an unknown path.
        let plain = APIRouter(engine: Engine(), adminToken: "token")
        #expect(plain.answer(APIRequest(method: "GET", target: "/metrics")).status == 404)
    }

    @Test func endpointLabelsAreTheKnownPathsOrOther() {
        let names = EndpointLabel.names
        #expect(names.last == "other")
        #expect(names.contains("guest/serviceapikey/check") && names.contains("admin/serviceapikey/create"))
        #expect(names.contains("guest/serviceapikey/verify") && names.contains("admin/storage/snapshot"))
        #expect(Set(names).count == names.count)
        func label(_ target: String) -> String { names[EndpointLabel.number(target: target)] }
        #expect(label("/api/guest/serviceapikey/check?key=K") == "guest/serviceapikey/check")
        #expect(label("/api/admin/serviceapikey/get_list") == "admin/serviceapikey/get_list")
        for unknown in ["/api/guest/serviceapikey/nope", "/health", "/metrics", "/", "/api/", "/x?/api/guest"] {
            #expect(label(unknown) == "other", "\(unknown)")
        }
        for lookup in KeyLookup.allCases {
            #expect(names[EndpointLabel.number(of: lookup)] == String("\(lookup.path)".dropFirst(5)))
        }
    }

    @Test func refusalsAreLoggedOncePerAddressPerMinute() {
        let log = CapturedLog()
        let refusals = RefusalLog(logger: log.logger)
        let first = IPAddress("192.0.2.1")!
        let second = IPAddress("192.0.2.2")!
        let minute = RefusalLog.intervalNanoseconds
        for step in 0..<100 { refusals.refused(first, bucket: "failed", nowNanoseconds: Int64(step) * minute / 100) }
        #expect(log.lines.count == 1)
        refusals.refused(second, bucket: "general", nowNanoseconds: 5)
        #expect(log.lines.count == 2)
        refusals.refused(first, bucket: "failed", nowNanoseconds: minute)
        #expect(log.lines.count == 3)
        #expect(log.lines.map { $0.metadata["client"] } == ["192.0.2.1", "192.0.2.2", "192.0.2.1"])
        #expect(log.lines[1].metadata["bucket"] == "general")
        // Past capacity, old entries are forgotten and memory stays bounded.
        for index in 0..<(RefusalLog.capacity * 2) {
            let address = IPAddress("10.\(index >> 16 & 255).\(index >> 8 & 255).\(index & 255)")!
            refusals.refused(address, bucket: "general", nowNanoseconds: 10 * minute + Int64(index))
        }
        #expect(log.lines.count == 3 + RefusalLog.capacity * 2)
    }

    @Test func rateLimitRefusalsAreCountedAndLogged() {
        let log = CapturedLog()
        var limits = RateLimitConfiguration()
        limits.failures = TokenBucket.Rate(capacity: 2, refillPerSecond: 0)
        let router = Self.router(rateLimits: limits, log: log)
        let client = IPAddress("198.51.100.7")!
        var statuses: [Int] = []
        for _ in 0..<6 {
            guard
                case .now(let response) = router.respond(
                    to: APIRequest(method: "GET", target: "/api/guest/serviceapikey/check?key=NOPE"), client: client)
            else { continue }
            statuses.append(response.status)
        }
        #expect(statuses == [200, 200, 429, 429, 429, 429])
        #expect(log.lines(containing: "rate limit refused").count == 1)
    }

    @Test func forwardingFromAnUntrustedPeerIsWarnedOfOnce() {
        let log = CapturedLog()
        var limits = RateLimitConfiguration()
        limits.trustedProxies = [CIDRRange("10.0.0.1")!]
        let router = Self.router(rateLimits: limits, log: log)
        let proxy = IPAddress("10.0.0.1")!
        let stranger = IPAddress("10.0.0.2")!
        #expect(router.clientAddress(peer: proxy, forwardedFor: ["203.0.113.5"]) == IPAddress("203.0.113.5"))
        #expect(router.clientAddress(peer: stranger, forwardedFor: []) == stranger)
        #expect(log.lines.isEmpty)
        for _ in 0..<5 { #expect(router.clientAddress(peer: stranger, forwardedFor: ["203.0.113.5"]) == stranger) }
        let warnings = log.lines(containing: "X-Forwarded-For")
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata["peer"] == "10.0.0.2")
        #expect(warnings.first?.message.contains("--trusted-proxy") == true)
    }
}

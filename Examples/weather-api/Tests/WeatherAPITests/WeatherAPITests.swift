import APIKeyEngine
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import WeatherAPI

/// The example's routes end to end through Hummingbird's test client, on a durable engine in a
/// temporary directory: issue a key as admin, call the forecast by tier, run out of quota, change
/// tier, and find everything again after a restart.
@Suite struct WeatherAPITests {
    private let admin = "test-admin-token"

    private func withDirectory(_ body: (String) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("weather-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await body(path)
    }

    private struct Issued: Decodable {
        var key: String
        var order: Int64
    }

    private func issue(_ client: some TestClientProtocol, tier: String, admin: String) async throws -> Issued {
        try await client.execute(
            uri: "/admin/keys", method: .post, headers: [.authorization: "Bearer \(admin)"],
            body: ByteBuffer(string: "{\"customer\": 42, \"tier\": \"\(tier)\"}")
        ) { response in
            #expect(response.status == .created)
            return try JSONDecoder().decode(Issued.self, from: response.body)
        }
    }

    @Test func aCustomerGetsAKeyAndForecastsByTier() async throws {
        try await withDirectory { directory in
            let engine = try Engine.open(directory: directory)
            let app = Application(router: WeatherRoutes.router(engine: engine, adminToken: admin))
            try await app.test(.router) { client in
                let free = try await issue(client, tier: "free", admin: admin)
                let pro = try await issue(client, tier: "pro", admin: admin)
                try await client.execute(
                    uri: "/v1/forecast?city=Oslo", method: .get, headers: [.init("X-API-Key")!: free.key]
                ) { response in
                    #expect(response.status == .ok)
                    let forecast = try JSONDecoder().decode(Forecast.self, from: response.body)
                    #expect(forecast.tier == "free" && forecast.days.count == 1)
                    #expect(forecast.remainingThisMonth == Tier.free.monthlyLimit - 1)
                    #expect(response.headers[.init("RateLimit-Limit")!] != nil)
                }
                try await client.execute(
                    uri: "/v1/forecast?city=Oslo", method: .get, headers: [.authorization: "Bearer \(pro.key)"]
                ) { response in
                    let forecast = try JSONDecoder().decode(Forecast.self, from: response.body)
                    #expect(forecast.tier == "pro" && forecast.days.count == 7)
                }
                try await client.execute(uri: "/v1/forecast?city=Oslo", method: .get) {
                    #expect($0.status == .unauthorized)
                }
                try await client.execute(
                    uri: "/admin/keys", method: .post, headers: [.authorization: "Bearer wrong"],
                    body: ByteBuffer(string: "{\"customer\": 1, \"tier\": \"pro\"}")
                ) { #expect($0.status == .unauthorized) }
                try await client.execute(uri: "/v1/usage", method: .get, headers: [.init("X-API-Key")!: free.key]) {
                    #expect($0.status == .ok)
                    #expect(String(buffer: $0.body).contains("\"used\":1"))
                }
            }
            try await engine.close()
        }
    }

    @Test func aFreeKeyRunsIntoItsRateThenAnUpgradeLiftsIt() async throws {
        try await withDirectory { directory in
            let engine = try Engine.open(directory: directory)
            let app = Application(router: WeatherRoutes.router(engine: engine, adminToken: admin))
            let key = try await app.test(.router) { client in
                let free = try await issue(client, tier: "free", admin: admin)
                var statuses: [HTTPResponse.Status] = []
                for _ in 0..<(Tier.free.rate.burst + 1) {
                    try await client.execute(
                        uri: "/v1/forecast?city=Lima", method: .get, headers: [.init("X-API-Key")!: free.key]
                    ) { response in
                        statuses.append(response.status)
                        if response.status == .tooManyRequests { #expect(response.headers[.retryAfter] != nil) }
                    }
                }
                #expect(statuses.filter { $0 == .ok }.count == Tier.free.rate.burst)
                #expect(statuses.last == .tooManyRequests)
                try await client.execute(
                    uri: "/admin/keys/\(free.order)/tier", method: .post, headers: [.authorization: "Bearer \(admin)"],
                    body: ByteBuffer(string: "{\"tier\": \"pro\"}")
                ) { #expect($0.status == .noContent) }
                try await client.execute(
                    uri: "/v1/forecast?city=Lima", method: .get, headers: [.init("X-API-Key")!: free.key]
                ) { response in
                    #expect(response.status == .ok)
                    let forecast = try JSONDecoder().decode(Forecast.self, from: response.body)
                    #expect(forecast.days.count == 7)
                }
                return free.key
            }
            try await engine.close()
            let reopened = try Engine.open(directory: directory)
            #expect(try reopened.withKey(key: key) { $0.customParameters.string("tier") } == "pro")
            try await reopened.close()
        }
    }
}

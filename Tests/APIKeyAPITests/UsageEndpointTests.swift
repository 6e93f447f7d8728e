import APIKeyEngine
import Foundation
import TestSupport
import Testing

@testable import APIKeyAPI

/// `verify`, `usage` and `usage_reset` through the router's general path: answers in the exact
/// shape of the contract, every bad parameter a clear error that consumes nothing, and the
/// client role limited to its own keys.
@Suite struct UsageEndpointTests {
    /// 2026-03-31 23:00:00 UTC.
    static let now: Int64 = 1_774_998_000

    private final class Fixture {
        let clock = ManualClock(seconds: UsageEndpointTests.now)
        let engine: Engine
        let router: APIRouter
        let limited: KeyRecord
        let plain: KeyRecord
        let clientToken: String

        init() throws {
            engine = Engine(clock: clock)
            router = APIRouter(engine: engine, adminToken: "admin-token", clock: clock)
            limited = try engine.create(
                NewKey(
                    orderID: 10, clientID: 5,
                    config: .object([
                        JSONMember("custom_monthlyLimit", .string("250")),
                        JSONMember("custom_rateLimit", .integer(100)),
                        JSONMember("custom_tier", .string("pro")),
                    ])))
            plain = try engine.create(NewKey(orderID: 11, clientID: 5, config: .object([])))
            _ = try engine.create(NewKey(orderID: 12, clientID: 6, config: .object([])))
            clientToken = try engine.resetClientToken(clientID: 5)
        }

        /// The envelope `role/serviceapikey/method` answers to a POST of `json`.
        func call(_ role: String, _ method: String, json: String) throws -> JSONValue {
            let user = role == "admin" ? "admin:admin-token" : "client:\(clientToken)"
            let response = router.answer(
                APIRequest(
                    method: "POST", target: "/api/\(role)/serviceapikey/\(method)",
                    authorization: role == "guest" ? nil : "Basic " + Data(user.utf8).base64EncodedString(),
                    contentType: "application/json", body: Array(json.utf8)))
            #expect(response.status == 200)
            return try JSONValue.parse(response.body)
        }

        func verify(_ json: String) throws -> JSONValue { try call("guest", "verify", json: json) }

        func used(_ orderID: Int64) throws -> Int64 { try engine.usage(.orderID(orderID)).used }
    }

    @Test func verifyAnswersInTheContractsShape() throws {
        let fixture = try Fixture()
        let key = fixture.limited.apiKey
        let answer = try fixture.verify(#"{"key": "\#(key)", "cost": "5"}"#)
        let expected = try JSONValue.parse(
            #"""
            {"result": {"valid": 1, "code": "VALID", "config": {"monthlyLimit": 250, "rateLimit": 100, "tier": "pro"},
            "usage": {"limit": 250, "used": 5, "remaining": 245, "reset_at": "2026-04-01 00:00:00"},
            "rate_limit": {"limit": 100, "remaining": 99, "reset_in_ms": 10}}, "error": null}
            """#)
        #expect(answer == expected)
        let plain = try fixture.verify(#"{"key": "\#(fixture.plain.apiKey)"}"#)
        #expect(
            plain == (try JSONValue.parse(#"{"result": {"valid": 1, "code": "VALID", "config": {}}, "error": null}"#)))
        let unknown = try fixture.verify(#"{"key": "NOPE"}"#)
        #expect(
            unknown
                == (try JSONValue.parse(#"{"result": {"valid": 0, "code": "NOT_FOUND", "config": {}}, "error": null}"#))
        )
        // GET and form spellings reach the same code.
        let get = fixture.router.answer(
            APIRequest(method: "GET", target: "/api/guest/serviceapikey/verify?key=\(key)&cost=0", body: []))
        #expect(String(decoding: get.body, as: UTF8.self).contains(#""used": 5"#))
        #expect(try fixture.used(10) == 5)
    }

    @Test(
        arguments: [
            (#""cost": "abc""#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": -1"#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": 1.5"#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": 1000000001"#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": 1e10"#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": true"#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": [1]"#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": {"a": 1}"#, "cost must be a whole number from 0 to 1000000000"),
            (#""cost": "0x10""#, "cost must be a whole number from 0 to 1000000000"),
            (#""request_id": """#, "request_id must be 1 to 128 bytes"),
            (#""request_id": "\#(String(repeating: "é", count: 65))""#, "request_id must be 1 to 128 bytes"),
            (#""request_id": ["a"]"#, "request_id must be a string"),
            (#""request_id": {"a": 1}"#, "request_id must be a string"),
        ] as [(String, String)])
    func badVerifyParametersAreClearErrorsThatConsumeNothing(_ member: String, _ message: String) throws {
        let fixture = try Fixture()
        let answer = try fixture.verify(#"{"key": "\#(fixture.limited.apiKey)", \#(member)}"#)
        #expect(answer["error"]?["message"] == .string(message))
        #expect(answer["error"]?["code"] == .integer(9999))
        #expect(try fixture.used(10) == 0)
    }

    @Test func aMissingKeyIsTheSameErrorAsOnCheck() throws {
        let fixture = try Fixture()
        for method in ["verify", "check"] {
            let answer = try fixture.call("guest", method, json: #"{"cost": 1}"#)
            #expect(answer["error"]?["message"] == .string(EngineError.missingKey.message))
        }
    }

    @Test func usageAnswersPerOrderAndPerClient() throws {
        let fixture = try Fixture()
        _ = try fixture.verify(#"{"key": "\#(fixture.limited.apiKey)", "cost": 7}"#)
        _ = try fixture.verify(#"{"key": "\#(fixture.plain.apiKey)", "cost": 3}"#)
        let order = try fixture.call("admin", "usage", json: #"{"order_id": 10}"#)
        #expect(
            order["result"]
                == (try JSONValue.parse(
                    #"{"order_id": 10, "month": "2026-03", "used": 7, "limit": 250, "remaining": 243, "reset_at": "2026-04-01 00:00:00"}"#
                )))
        let byKey = try fixture.call("admin", "usage", json: #"{"key": "\#(fixture.plain.apiKey)"}"#)
        #expect(byKey["result"]?["limit"] == .null && byKey["result"]?["remaining"] == .null)
        #expect(byKey["result"]?["used"] == .integer(3))
        let client = try fixture.call("admin", "usage", json: #"{"client_id": 5}"#)
        #expect(
            client["result"]
                == (try JSONValue.parse(
                    #"{"client_id": 5, "month": "2026-03", "used": 10, "keys": [{"order_id": 10, "used": 7, "limit": 250}, {"order_id": 11, "used": 3, "limit": null}]}"#
                )))
        let earlier = try fixture.call("admin", "usage", json: #"{"order_id": 10, "month": "2026-02"}"#)
        #expect(
            earlier["result"]?["used"] == .integer(0)
                && earlier["result"]?["reset_at"] == .string("2026-03-01 00:00:00"))
        // The client's own keys, and nobody else's.
        #expect(try fixture.call("client", "usage", json: #"{"order_id": 10}"#)["result"]?["used"] == .integer(7))
        #expect(try fixture.call("client", "usage", json: #"{"client_id": 5}"#)["result"]?["used"] == .integer(10))
        for json in [#"{"order_id": 12}"#, #"{"client_id": 6}"#] {
            let refused = try fixture.call("client", "usage", json: json)
            #expect(refused["error"]?["message"] == .string("API key does not exist"))
        }
        // usage_reset is the admin's, and sets the month back to 0.
        #expect(try fixture.call("admin", "usage_reset", json: #"{"order_id": 10}"#)["result"] == .bool(true))
        #expect(try fixture.used(10) == 0)
        let notClients = fixture.router.answer(
            APIRequest(
                method: "POST", target: "/api/client/serviceapikey/usage_reset",
                authorization: "Basic " + Data("client:\(fixture.clientToken)".utf8).base64EncodedString(),
                contentType: "application/json", body: Array(#"{"order_id": 10}"#.utf8)))
        #expect(notClients.status == 404)
    }

    @Test(
        arguments: [
            (#"{"order_id": 10, "month": "2026-13"}"#, EngineError.invalidMonth.message),
            (#"{"order_id": 10, "month": "2026-3"}"#, EngineError.invalidMonth.message),
            (#"{"order_id": 10, "month": "0000-05"}"#, EngineError.invalidMonth.message),
            (#"{"order_id": 10, "month": 202603}"#, EngineError.invalidMonth.message),
            (#"{"order_id": 10, "month": [1]}"#, "month must be a string"),
            (#"{}"#, EngineError.missingUsageTarget.message),
            (#"{"order_id": 99}"#, "Order not found"),
            (#"{"order_id": -1}"#, "order_id must be a positive integer"),
            (#"{"client_id": "x"}"#, "client_id must be an integer"),
            (#"{"key": "NOPE"}"#, "API key does not exist"),
        ] as [(String, String)])
    func badUsageParametersAreClearErrors(_ json: String, _ message: String) throws {
        let fixture = try Fixture()
        #expect(try fixture.call("admin", "usage", json: json)["error"]?["message"] == .string(message))
    }

    @Test func usageResetNeedsAnOrderThatExists() throws {
        let fixture = try Fixture()
        #expect(
            try fixture.call("admin", "usage_reset", json: "{}")["error"]?["message"]
                == .string(EngineError.missingOrderID.message))
        #expect(
            try fixture.call("admin", "usage_reset", json: #"{"order_id": 99}"#)["error"]?["message"]
                == .string("Order not found"))
    }

    @Test func invalidLimitsAreRefusedOnCreateAndUpdate() throws {
        let fixture = try Fixture()
        for (config, message) in [
            (#"{"custom_monthlyLimit": -1}"#, "custom_monthlyLimit must be a whole number of at least 0"),
            (#"{"custom_monthlyLimit": "lots"}"#, "custom_monthlyLimit must be a whole number of at least 0"),
            (#"{"custom_rateLimit": 0}"#, "custom_rateLimit must be a number above 0 and at most 1000000000"),
            (
                #"{"custom_rateLimit": 1, "custom_rateBurst": 0}"#,
                "custom_rateBurst must be a whole number from 1 to 1000000000"
            ),
        ] {
            let created = try fixture.call("admin", "create", json: #"{"client_id": 9, "config": \#(config)}"#)
            #expect(created["error"]?["message"] == .string(message))
            let updated = try fixture.call("admin", "update", json: #"{"order_id": 10, "config": \#(config)}"#)
            #expect(updated["error"]?["message"] == .string(message))
        }
        #expect(fixture.engine.keyCount == 3)
        #expect(
            try fixture.verify(#"{"key": "\#(fixture.limited.apiKey)"}"#)["result"]?["usage"]?["limit"] == .integer(250)
        )
    }
}

import APIKeyLimiter
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import APIKeyAPI
@testable import APIKeyEngine

/// The write API with every integer parameter at the values that break arithmetic, in every
/// spelling a client can send, on a real data directory: an accepted write must survive a
/// restart exactly, a refused one must leave the journal as it was, and nothing may trap.
@Suite(.serialized) struct RouterTests {
    static let extremes: [String] = {
        let values: [Int64] = [0, 1, -1, .max, .min, 1 << 53]
        var spellings = values.map { String($0) } + ["9223372036854775808", "-9223372036854775809"]
        spellings += values.map { String(Double($0)) } + ["9.223372036854775808e18", "1e300", "-0.0", "0.5"]
        return spellings
    }()

    /// Each write endpoint with the integer parameters it reads, and the parameters it needs besides.
    static let endpoints: [(method: String, fuzzed: [String], base: [String: String])] = [
        (
            "create", ["order_id", "client_id", "expires_at", "config[length]", "config[split_interval]"],
            ["client_id": "1"]
        ),
        ("update", ["order_id", "expires_at", "valid", "config[length]"], ["order_id": "1"]),
        ("reset", ["order_id"], [:]),
        ("suspend", ["order_id"], [:]),
        ("unsuspend", ["order_id"], [:]),
        ("cancel", ["order_id"], [:]),
        ("uncancel", ["order_id"], [:]),
        ("delete", ["order_id"], [:]),
        ("get_list", ["client_id", "page", "per_page"], [:]),
    ]

    private final class Server {
        let directory: String
        var engine: Engine
        var router: APIRouter

        init(directory: String) throws {
            self.directory = directory
            engine = try Self.open(directory)
            router = APIRouter(engine: engine, adminToken: "fuzz")
        }

        static func open(_ directory: String) throws -> Engine {
            var options = StorageOptions()
            options.fsync = .no
            options.snapshotIntervalSeconds = 0
            return try Engine.open(directory: directory, options: options)
        }

        func restart() throws {
            try engine.close()
            engine = try Self.open(directory)
            router = APIRouter(engine: engine, adminToken: "fuzz")
        }

        /// Bytes of records in every journal segment (the live segment's reserved zeros after
        /// them do not count).
        func journalBytes() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("journal-") }.reduce(0)
            {
                total, name in
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
                return total + JournalFormat.scan(bytes, expectedSequence: nil).validLength
            }
        }

        func post(_ method: String, json: String? = nil, form: String? = nil) -> (status: Int, envelope: JSONValue?) {
            let target =
                method == "token_reset" ? "/api/admin/client/token_reset" : "/api/admin/serviceapikey/\(method)"
            let request = APIRequest(
                method: "POST", target: target,
                authorization: "Basic " + Data("admin:fuzz".utf8).base64EncodedString(),
                contentType: json != nil ? "application/json" : "application/x-www-form-urlencoded",
                body: Array((json ?? form ?? "").utf8))
            let response = router.answer(request)
            return (response.status, try? JSONValue.parse(response.body))
        }
    }

    /// Every value in every spelling for every integer parameter of every write endpoint; after
    /// each accepted write the server restarts and must hold exactly what it held before.
    @Test func extremeIntegersAreRefusedOrReplayable() async throws {
        try await HeavyWork.run { try Self.fuzzExtremeIntegers() }
    }

    private static func fuzzExtremeIntegers() throws {
        let directory = NSTemporaryDirectory() + "apikeyd-write-fuzz-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try Server(directory: directory)
        for client in 1...3 { _ = server.post("create", form: "client_id=\(client)") }
        var accepted = 0
        var refused = 0
        for (method, fuzzed, base) in Self.endpoints {
            for name in fuzzed {
                for value in Self.extremes {
                    for spelling in ["form", "json string", "json number"] {
                        if spelling == "json number", Double(value) == nil { continue }
                        var members = base
                        members["order_id"] = members["order_id"] ?? "2"
                        members[name] = value
                        let before = server.engine.allRecords()
                        let journalBefore = try server.journalBytes()
                        let answer: (status: Int, envelope: JSONValue?)
                        switch spelling {
                        case "form":
                            let body = members.map {
                                "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
                            }
                            answer = server.post(method, form: body.joined(separator: "&"))
                        default:
                            answer = server.post(
                                method, json: Self.json(members, quoted: spelling == "json string" ? nil : name))
                        }
                        let context = "\(method) \(name)=\(value) (\(spelling)): \(String(describing: answer.envelope))"
                        #expect(answer.status == 200 || answer.status == 400, "\(context)")
                        let failed = answer.envelope?["error"] != .null
                        if failed || method == "get_list" {
                            refused += failed ? 1 : 0
                            #expect(try server.journalBytes() == journalBefore, "journal changed: \(context)")
                            #expect(server.engine.allRecords() == before, "state changed: \(context)")
                            continue
                        }
                        accepted += 1
                        #expect(try server.journalBytes() > journalBefore, "nothing journaled: \(context)")
                        let after = server.engine.allRecords()
                        try server.restart()
                        #expect(server.engine.allRecords() == after, "replay differs: \(context)")
                        #expect(server.engine.integrityProblems() == [], "\(context)")
                        if server.engine.keyCount < 3 {
                            for client in 1...3 { _ = server.post("create", form: "client_id=\(client)") }
                        }
                    }
                }
            }
        }
        for value in Self.extremes {
            _ = server.post("token_reset", form: "client_id=\(value)")
            try server.restart()
            #expect(server.engine.integrityProblems() == [])
        }
        #expect(accepted > 20 && refused > 100, "accepted \(accepted), refused \(refused)")
        try server.engine.close()
    }

    /// The largest order ID is stored and replayed; the next order ID to assign saturates, and
    /// creating without one answers a clear error instead of trapping.
    @Test func theLargestOrderIDIsStoredAndReplayed() throws {
        let directory = NSTemporaryDirectory() + "apikeyd-max-order-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try Server(directory: directory)
        let created = server.post("create", form: "client_id=1&order_id=9223372036854775807")
        #expect(created.envelope?["result"]?["order_id"] == .number("9223372036854775807"))
        let next = server.post("create", form: "client_id=1")
        #expect(
            next.envelope?["error"]?["message"]
                == .string("No order ID is left to assign after 9223372036854775807; give order_id"))
        #expect(server.post("create", form: "client_id=1&order_id=5").envelope?["error"] == .null)
        try server.restart()
        #expect(server.engine.keyCount == 2)
        #expect(try server.engine.get(.orderID(.max)).clientID == 1)
        #expect(server.engine.integrityProblems() == [])
        try server.engine.close()
    }

    private static func json(_ members: [String: String], quoted name: String?) -> String {
        // Nested form names (config[length]) become nested objects.
        var top: [String: String] = [:]
        var config: [String] = []
        for (key, value) in members {
            let text = key == name ? value : "\"\(value)\""
            if key.hasPrefix("config[") {
                config.append("\"\(key.dropFirst(7).dropLast())\": \(text)")
            } else {
                top[key] = text
            }
        }
        var parts = top.map { "\"\($0.key)\": \($0.value)" }
        if !config.isEmpty { parts.append("\"config\": {\(config.joined(separator: ", "))}") }
        return "{" + parts.joined(separator: ", ") + "}"
    }
}

extension APIRouter {
    /// The answer to `request` as a transport sends it, waiting on this thread.
    func answer(_ request: APIRequest) -> APIResponse {
        switch respond(to: request) {
        case .now(let response):
            return response
        case .afterDurable(let response, let pending):
            do {
                try engine.waitUntilDurable(pending)
                return response
            } catch {
                return APIResponse(error)
            }
        case .offLoop(let work):
            return work()
        case .later(let start):
            let answer = Mutex<APIResponse?>(nil)
            let done = DispatchSemaphore(value: 0)
            start { response in
                answer.withLock { $0 = response }
                done.signal()
            }
            done.wait()
            return answer.withLock { $0! }
        }
    }
}

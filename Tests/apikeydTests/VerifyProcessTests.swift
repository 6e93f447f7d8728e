import APIKeyEngine
import Foundation
import Synchronization
import TestSupport
import Testing

/// `verify` against the real `apikeyd` process: many concurrent connections on one key never
/// pass its monthly limit by even one, and with `--fsync always` a `kill -9` loses no
/// acknowledged use (the count after a restart is at least the acknowledged uses and at most
/// those plus the ones in flight), and a request ID answered before the kill is answered the
/// same after it.
@Suite(.serialized) struct VerifyProcessTests {
    /// One verify over its own connection; the answer's `result`, nil when none came.
    private static func verify(_ server: ServerProcess, key: String, extra: String = "") -> JSONValue? {
        guard
            let answer = server.request(
                "POST", "/api/guest/serviceapikey/verify", form: "key=\(key)\(extra)", admin: false),
            answer.status == 200
        else { return nil }
        return answer.body?["result"]
    }

    private static func create(_ server: ServerProcess, limit: Int) throws -> (orderID: Int64, key: String) {
        guard let record = server.create(form: "client_id=1&config[custom_monthlyLimit]=\(limit)") else {
            throw KillNineTests.Failure("create failed")
        }
        return record
    }

    @Test(.timeLimit(.minutes(3)))
    func concurrentConnectionsNeverPassTheQuota() async throws {
        try await HeavyWork.run {
            let directory = "/tmp/apikeyd-verify-\(UInt64.random(in: 0...UInt64.max))"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let server = try ServerProcess.start(dataDirectory: directory, arguments: ["--no-rate-limit"])
            defer { try? server.stop() }
            let limit = 600
            let (orderID, key) = try Self.create(server, limit: limit)
            let valid = Atomic<Int>(0)
            let exceeded = Atomic<Int>(0)
            let finished = DispatchGroup()
            for _ in 0..<12 {
                finished.enter()
                Thread.detachNewThread {
                    defer { finished.leave() }
                    for _ in 0..<70 {
                        switch Self.verify(server, key: key)?["code"] {
                        case .string("VALID"): valid.add(1, ordering: .relaxed)
                        case .string("USAGE_EXCEEDED"): exceeded.add(1, ordering: .relaxed)
                        default: break
                        }
                    }
                }
            }
            finished.wait()
            #expect(valid.load(ordering: .relaxed) == limit)
            #expect(exceeded.load(ordering: .relaxed) == 12 * 70 - limit)
            let usage = try server.result("POST", "/api/admin/serviceapikey/usage", form: "order_id=\(orderID)")
            #expect(usage["used"] == .integer(limit) && usage["remaining"] == .integer(0))
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func acknowledgedUsesSurviveKillNine() async throws {
        try await HeavyWork.run {
            let directory = "/tmp/apikeyd-verify-kill-\(UInt64.random(in: 0...UInt64.max))"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let arguments = ["--fsync", "always", "--no-rate-limit", "--snapshot-journal-bytes", "20000"]
            var server = try ServerProcess.start(dataDirectory: directory, arguments: arguments)
            let (orderID, key) = try Self.create(server, limit: 1_000_000)
            let remembered = try #require(Self.verify(server, key: key, extra: "&cost=3&request_id=before-the-kills"))
            var acknowledged = 3
            var random = SystemRandomNumberGenerator()
            let clients = 8
            for round in 0..<8 {
                let current = server
                let process = current.process
                let stop = Atomic<Bool>(false)
                let counted = Atomic<Int>(0)
                let finished = DispatchGroup()
                for client in 0..<clients {
                    finished.enter()
                    Thread.detachNewThread {
                        defer { finished.leave() }
                        let cost = client % 3 + 1
                        while !stop.load(ordering: .relaxed) {
                            if Self.verify(current, key: key, extra: "&cost=\(cost)")?["code"] == .string("VALID") {
                                counted.add(cost, ordering: .relaxed)
                            }
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 150...500, using: &random)))
                kill(process.processIdentifier, SIGKILL)
                stop.store(true, ordering: .relaxed)
                finished.wait()
                try #require(KillNineTests.waitForDeath(of: process.processIdentifier, seconds: 30), "round \(round)")
                acknowledged += counted.load(ordering: .relaxed)

                server = try ServerProcess.start(dataDirectory: directory, arguments: arguments)
                let used = try server.result("POST", "/api/admin/serviceapikey/usage", form: "order_id=\(orderID)")
                guard case .number(let text) = used["used"], let count = Int(text) else {
                    Issue.record("round \(round): no count in \(used)")
                    break
                }
                // At most one request per client was in flight at the kill, of cost 3 at most.
                #expect(count >= acknowledged && count <= acknowledged + clients * 3, "round \(round)")
                acknowledged = count
                #expect(Self.verify(server, key: key, extra: "&cost=3&request_id=before-the-kills") == remembered)
            }
            let final = try server.result("POST", "/api/admin/serviceapikey/usage", form: "order_id=\(orderID)")
            #expect(final["used"] == .integer(acknowledged))
            #expect(acknowledged > 100)
            try server.stop()
        }
    }
}

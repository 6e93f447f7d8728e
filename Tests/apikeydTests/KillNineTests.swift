import APIKeyEngine
import Foundation
import Synchronization
import TestSupport
import Testing

/// The real thing: `apikeyd serve --fsync always` as a process, concurrent HTTP clients creating
/// keys, `kill -9` at a random moment, and a check that every acknowledged key survived.
@Suite struct KillNineTests {
    /// The `apikeyd` binary built beside the test bundle, or the one `APIKEYD_BINARY` names (to run
    /// these tests against a release build: `APIKEYD_BINARY=.build/release/apikeyd swift test`).
    static func binary() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["APIKEYD_BINARY"] {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw Failure("APIKEYD_BINARY=\(path) is no executable")
            }
            return URL(fileURLWithPath: path)
        }
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [
            bundleDirectory.appendingPathComponent("apikeyd"), URL(fileURLWithPath: ".build/debug/apikeyd"),
        ]
        where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        throw Failure("apikeyd binary not found next to \(bundleDirectory.path)")
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Whether process `pid` is dead within `seconds`: every one of its threads in state Z or X in
    /// /proc (a killed leader turns Z while its other threads still hold its files), or gone.
    static func waitForDeath(of pid: Int32, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            let alive = threads.contains { thread in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/stat", encoding: .utf8),
                    let nameEnd = stat.lastIndex(of: ")")
                else { return false }
                let state = stat[nameEnd...].dropFirst(2).first
                return state != "Z" && state != "X"
            }
            if !alive { return true }
            usleep(10_000)
        }
        return false
    }

    @Test(.timeLimit(.minutes(5)))
    func everyAcknowledgedWriteSurvivesKillNine() async throws {
        try await HeavyWork.run {
            let directory = "/tmp/apikeyd-kill-\(UInt64.random(in: 0...UInt64.max))"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let acknowledged = Mutex<[(orderID: Int64, key: String)]>([])
            var random = SystemRandomNumberGenerator()
            for round in 0..<20 {
                let server = try ServerProcess.start(
                    dataDirectory: directory, arguments: ["--fsync", "always", "--snapshot-journal-bytes", "30000"])
                let process = server.process
                let stop = Atomic<Bool>(false)
                let clients = 16
                let finished = DispatchGroup()
                for client in 0..<clients {
                    finished.enter()
                    Thread.detachNewThread {
                        defer { finished.leave() }
                        while !stop.load(ordering: .relaxed) {
                            let clientID = round * 100 + client + 1
                            if let record = server.create(form: "client_id=\(clientID)&config[custom_n]=\(clientID)") {
                                acknowledged.withLock { $0.append(record) }
                            }
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 100...600, using: &random)))
                kill(process.processIdentifier, SIGKILL)
                stop.store(true, ordering: .relaxed)
                finished.wait()
                // Dead (a zombie or gone) by the kernel's account, whether or not Foundation has
                // noticed yet: waitUntilExit() was seen to wait forever for a killed server while
                // other tests spawned processes.
                try #require(Self.waitForDeath(of: process.processIdentifier, seconds: 30), "round \(round)")

                var options = StorageOptions()
                options.snapshotOnClose = round % 3 == 0
                let engine = try Engine.open(directory: directory, options: options)
                let expected = acknowledged.withLock { $0 }
                let missing = expected.filter { record in
                    (try? engine.get(.orderID(record.orderID)).apiKey) != record.key
                }
                #expect(missing.isEmpty, "round \(round): \(missing.count) of \(expected.count) acknowledged keys lost")
                #expect(engine.recoveryReport?.corruption == nil, "round \(round): \(engine.recoveryReport!)")
                try await engine.close()
            }
            #expect(acknowledged.withLock { $0.count } > 100)
        }
    }
}

import APIKeyEngine
import Foundation
import Synchronization
import Testing

/// The real thing: `apikeyd serve --fsync always` as a process, concurrent HTTP clients creating
/// keys, `kill -9` at a random moment, and a check that every acknowledged key survived.
@Suite struct KillNineTests {
    /// The `apikeyd` binary built beside the test bundle.
    static func binary() throws -> URL {
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

    /// Starts the server on a free port and returns the process and the port it reported.
    static func startServer(dataDirectory: String) throws -> (Process, Int) {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = [
            "serve", "--port", "0", "--data-dir", dataDirectory, "--admin-token", "kill-test-token", "--fsync",
            "always",
            "--snapshot-journal-bytes", "30000", "--event-loops", "2", "--no-rate-limit",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var log = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            log += String(decoding: chunk, as: UTF8.self)
            if let range = log.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                let port = Int(log[range].split(separator: ":").last!)!
                // Keep draining the server's log so it never blocks on a full pipe.
                Thread.detachNewThread { while !errors.fileHandleForReading.availableData.isEmpty {} }
                return (process, port)
            }
        }
        process.terminate()
        throw Failure("the server did not report its port: \(log)")
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

    /// One `create` over a fresh connection; the record when the server acknowledged it.
    static func create(port: Int, clientID: Int) -> (orderID: Int64, key: String)? {
        let body = "client_id=\(clientID)&config[custom_n]=\(clientID)"
        let request =
            "POST /api/admin/serviceapikey/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + "Authorization: Basic \(Data("admin:kill-test-token".utf8).base64EncodedString())\r\n"
            + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return nil }
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count
        else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let bodyStart = text.range(of: "\r\n\r\n"),
            let result = try? JSONValue.parse(String(text[bodyStart.upperBound...]))["result"],
            case .number(let order) = result["order_id"], case .string(let key) = result["api_key"]
        else { return nil }
        return (Int64(order)!, key)
    }

    @Test(.timeLimit(.minutes(5)))
    func everyAcknowledgedWriteSurvivesKillNine() async throws {
        let directory = "/tmp/apikeyd-kill-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let acknowledged = Mutex<[(orderID: Int64, key: String)]>([])
        var random = SystemRandomNumberGenerator()
        for round in 0..<20 {
            let (process, port) = try Self.startServer(dataDirectory: directory)
            let stop = Atomic<Bool>(false)
            let clients = 16
            let finished = DispatchGroup()
            for client in 0..<clients {
                finished.enter()
                Thread.detachNewThread {
                    defer { finished.leave() }
                    while !stop.load(ordering: .relaxed) {
                        if let record = Self.create(port: port, clientID: round * 100 + client + 1) {
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
            let missing = expected.filter { record in (try? engine.get(.orderID(record.orderID)).apiKey) != record.key }
            #expect(missing.isEmpty, "round \(round): \(missing.count) of \(expected.count) acknowledged keys lost")
            #expect(engine.recoveryReport?.corruption == nil, "round \(round): \(engine.recoveryReport!)")
            try engine.close()
        }
        #expect(acknowledged.withLock { $0.count } > 100)
    }
}

import APIKeyEngine
import Foundation
import Synchronization
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A real `apikeyd serve` process on a free loopback port, and plain HTTP/1.1 requests to it
/// over fresh sockets.
struct ServerProcess {
    static let adminToken = "process-test-token"

    let process: Process
    let port: Int

    /// Everything the server wrote to standard error so far (its log).
    let output: CapturedOutput

    /// What a process wrote, collected by a thread of its own so that the process never blocks
    /// on a full pipe.
    final class CapturedOutput: Sendable {
        private let text = Mutex("")
        var log: String { text.withLock { $0 } }
        fileprivate func append(_ chunk: String) { text.withLock { $0 += chunk } }
    }

    /// Starts the server on `dataDirectory` with `arguments` after the defaults (a free port,
    /// the admin token, two event loops, no rate limit; none with `defaults` false) and the
    /// `environment` (nil: this process's), and waits until it says where it listens.
    static func start(
        dataDirectory: String, arguments: [String] = [], environment: [String: String]? = nil, defaults: Bool = true
    ) throws -> ServerProcess {
        let process = Process()
        process.executableURL = try KillNineTests.binary()
        process.arguments =
            (defaults
                ? [
                    "serve", "--port", "0", "--data-dir", dataDirectory, "--admin-token", adminToken, "--event-loops",
                    "2", "--no-rate-limit",
                ] : ["serve"]) + arguments
        if let environment { process.environment = environment }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let output = CapturedOutput()
        Thread.detachNewThread {
            while true {
                let chunk = errors.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                output.append(String(decoding: chunk, as: UTF8.self))
            }
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let log = output.log
            if let range = log.range(of: #"listening on https?://[^ "]*:(\d+)"#, options: .regularExpression) {
                let port = Int(log[range].split(separator: ":").last!)!
                return ServerProcess(process: process, port: port, output: output)
            }
            if !process.isRunning { break }
            usleep(10_000)
        }
        process.terminate()
        throw KillNineTests.Failure("the server did not report its port: \(output.log)")
    }

    /// The exit status once the process has ended, waiting up to `seconds`; nil if it still runs.
    func exitStatus(within seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Sends SIGTERM (orderly shutdown: final snapshot) or SIGKILL and waits until the process is dead.
    func stop(signal: Int32 = SIGTERM) throws {
        kill(process.processIdentifier, signal)
        guard KillNineTests.waitForDeath(of: process.processIdentifier, seconds: 60) else {
            throw KillNineTests.Failure("apikeyd \(process.processIdentifier) still runs 60 s after signal \(signal)")
        }
    }

    /// Whether the process is still running.
    var isAlive: Bool { !KillNineTests.waitForDeath(of: process.processIdentifier, seconds: 0) }

    /// One request; the status and the parsed JSON body, nil when no answer came.
    func request(
        _ method: String, _ target: String, form: String? = nil, admin: Bool = true
    ) -> (status: Int, body: JSONValue?)? {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        if admin {
            head += "Authorization: Basic \(Data("admin:\(Self.adminToken)".utf8).base64EncodedString())\r\n"
        }
        if let form {
            head += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(form.utf8.count)\r\n"
        }
        guard let response = Self.exchange(port: port, Array((head + "\r\n" + (form ?? "")).utf8)) else { return nil }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 "), let status = Int(text.dropFirst(9).prefix(3)),
            let bodyStart = text.range(of: "\r\n\r\n")
        else { return nil }
        return (status, try? JSONValue.parse(String(text[bodyStart.upperBound...])))
    }

    /// The `result` of an admin call that must succeed; throws with the answer otherwise.
    func result(_ method: String, _ target: String, form: String? = nil) throws -> JSONValue {
        guard let answer = request(method, target, form: form), answer.status == 200,
            let result = answer.body?["result"], result != .null
        else {
            throw KillNineTests.Failure("\(method) \(target) failed: \(String(describing: request(method, target)))")
        }
        return result
    }

    /// One admin `create` with this form body; the new record's order ID and key, nil when the
    /// server did not acknowledge it.
    func create(form: String) -> (orderID: Int64, key: String)? {
        Self.created(by: request("POST", "/api/admin/serviceapikey/create", form: form))
    }

    /// The order ID and key a `create` answer acknowledges; nil for any other answer.
    static func created(by answer: (status: Int, body: JSONValue?)?) -> (orderID: Int64, key: String)? {
        guard let answer, answer.status == 200, let result = answer.body?["result"],
            case .number(let order) = result["order_id"], case .string(let key) = result["api_key"],
            let orderID = Int64(order)
        else { return nil }
        return (orderID, key)
    }

    /// Sends `bytes` on a new connection and reads until the server closes it.
    static func exchange(port: Int, from source: String = "127.0.0.1", _ bytes: [UInt8]) -> [UInt8]? {
        guard let descriptor = LoopbackSocket.connect(port: port, from: source, timeoutSeconds: 30) else { return nil }
        defer { close(descriptor) }
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { return nil }
            sent += count
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        return response
    }
}

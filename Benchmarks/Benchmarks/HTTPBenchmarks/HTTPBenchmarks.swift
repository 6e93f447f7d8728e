import APIKeyAPI
import APIKeyEngine
import APIKeyServer
import Benchmark
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// A server on loopback over 10,000 keys, and one keep-alive connection to it. Each request is
/// written whole and its answer read whole on this thread, so a sample counts every allocation
/// of the server (its event loop runs in this process) for exactly its requests.
final class LoopbackFixture: Sendable {
    let keys: [String]
    let socket: Int32
    private let server: APIServer

    init(keyCount: Int) {
        let engine = Engine()
        keys = (0..<keyCount).map { index in
            let config = JSONValue.object([
                JSONMember("custom_monthlyLimit", .integer(250 * (index % 40 + 1))),
                JSONMember("custom_tier", .string(["free", "pro"][index % 2])),
            ])
            return try! engine.create(NewKey(clientID: Int64(index + 1), config: config)).apiKey
        }
        var limits = RateLimitConfiguration()
        limits.general = .init(capacity: 1_000_000_000, refillPerSecond: 1_000_000_000)
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.eventLoopCount = 1
        let router = APIRouter(engine: engine, adminToken: "bench", rateLimits: limits)
        let started = StartedServer()
        let done = DispatchSemaphore(value: 0)
        Task {
            started.server = try! await APIServer.start(router: router, configuration: configuration)
            done.signal()
        }
        done.wait()
        server = started.server!
        socket = Self.connect(port: server.port)
    }

    private final class StartedServer: @unchecked Sendable {
        var server: APIServer?
    }

    private static func connect(port: Int) -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        precondition(socket >= 0 && result == 0, "cannot connect to the benchmark server")
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return socket
    }

    /// Every key's request, built once by `spell`, and the length of each answer.
    func requests(_ spell: (String) -> String) -> [(request: [UInt8], answerBytes: Int)] {
        var answer = [UInt8](repeating: 0, count: 4096)
        return keys.map { key in
            let request = Array(spell(key).utf8)
            request.withUnsafeBytes { _ = write(socket, $0.baseAddress, $0.count) }
            let count = answer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            precondition(count > 0, "no answer from the benchmark server")
            return (request, count)
        }
    }

    /// Sends each request in turn and reads its whole answer into `buffer`.
    func exchange(_ request: [UInt8], answerBytes: Int, buffer: UnsafeMutableRawBufferPointer) {
        request.withUnsafeBytes { _ = write(socket, $0.baseAddress, $0.count) }
        var received = 0
        while received < answerBytes {
            let count = read(socket, buffer.baseAddress! + received, answerBytes - received)
            precondition(count > 0, "the benchmark server closed the connection")
            received += count
        }
    }
}

let loopback = LoopbackFixture(keyCount: 10_000)

private func post(_ path: String, _ contentType: String, _ body: String) -> String {
    "POST \(path) HTTP/1.1\r\nHost: bench\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

/// Each request spelling, prepared for every key.
let spellings: [(name: String, requests: [(request: [UInt8], answerBytes: Int)])] = [
    ("GET check", loopback.requests { "GET /api/guest/serviceapikey/check?key=\($0) HTTP/1.1\r\nHost: bench\r\n\r\n" }),
    (
        "POST JSON check",
        loopback.requests { post("/api/guest/serviceapikey/check", "application/json", #"{"key": "\#($0)"}"#) }
    ),
    (
        "POST form check",
        loopback.requests { post("/api/guest/serviceapikey/check", "application/x-www-form-urlencoded", "key=\($0)") }
    ),
    (
        "GET get_info",
        loopback.requests { "GET /api/guest/serviceapikey/get_info?key=\($0) HTTP/1.1\r\nHost: bench\r\n\r\n" }
    ),
    (
        "reference: general path, POST JSON check with a second parameter",
        loopback.requests {
            post("/api/guest/serviceapikey/check", "application/json", #"{"key": "\#($0)", "x": 1}"#)
        }
    ),
]

let benchmarks: @Sendable () -> Void = {
    // Allocation counts are the thresholds that fail `make bench` (Benchmarks/Thresholds); times
    // are reported, not checked. Each sample is 1,000 requests on one connection (reported per
    // request), client and server on this machine's cores.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 2_000
    )
    for (name, requests) in spellings {
        Benchmark("HTTP \(name), loopback") { benchmark in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
            defer { buffer.deallocate() }
            var position = Int.random(in: 0..<requests.count)
            for _ in benchmark.scaledIterations {
                let (request, answerBytes) = requests[position]
                loopback.exchange(request, answerBytes: answerBytes, buffer: buffer)
                position = position + 1 == requests.count ? 0 : position + 1
            }
        }
    }
}

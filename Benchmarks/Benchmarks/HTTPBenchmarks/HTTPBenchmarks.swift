import APIKeyAPI
import APIKeyEngine
import APIKeyServer
import Benchmark
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// A server on loopback over 10,000 keys (and 10,000 more with monthly limits no run reaches,
/// for `verify`), and one keep-alive connection to it. Each request is
/// written whole and its answer read whole on this thread, so a sample counts every allocation
/// of the server (its event loop runs in this process) for exactly its requests.
final class LoopbackFixture: Sendable {
    let keys: [String]
    let verifyKeys: [String]
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
        verifyKeys = (0..<keyCount).map { index in
            let config = JSONValue.object([
                JSONMember("custom_monthlyLimit", .integer(1_000_000_000_000 + Int64(index))),
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

    /// Every key's request, built once by `spell` (and sent once, to check it is answered).
    func requests(of keys: [String]? = nil, _ spell: (String) -> String) -> [[UInt8]] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        return (keys ?? self.keys).map { key in
            let request = Array(spell(key).utf8)
            exchange(request, buffer: buffer)
            return request
        }
    }

    /// Sends `request` and reads its whole answer into `buffer`: the head, then as many bytes as
    /// its Content-Length says (a verify's answer grows as its counts gain digits).
    func exchange(_ request: [UInt8], buffer: UnsafeMutableRawBufferPointer) {
        request.withUnsafeBytes { _ = write(socket, $0.baseAddress, $0.count) }
        var received = 0
        var total: Int?
        while total.map({ received < $0 }) ?? true {
            let count = read(socket, buffer.baseAddress! + received, buffer.count - received)
            precondition(count > 0, "the benchmark server closed the connection")
            received += count
            if total == nil { total = Self.messageLength(UnsafeRawBufferPointer(rebasing: buffer[..<received])) }
        }
    }

    /// The length of the answer whose first bytes are `bytes`; nil until its head is complete.
    private static func messageLength(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let literal: StaticString = "Content-Length: "
        let name = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        guard bytes.count >= 4 else { return nil }
        var lengthStart: Int?
        for index in 0...(bytes.count - 4) {
            if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 {
                guard var digit = lengthStart else { preconditionFailure("an answer without Content-Length") }
                var length = 0
                while bytes[digit] >= 48, bytes[digit] <= 57 {
                    length = length * 10 + Int(bytes[digit] - 48)
                    digit += 1
                }
                return index + 4 + length
            }
            if lengthStart == nil, index + name.count <= bytes.count,
                name.indices.allSatisfy({ bytes[index + $0] == name[$0] })
            {
                lengthStart = index + name.count
            }
        }
        return nil
    }
}

let loopback = LoopbackFixture(keyCount: 10_000)

private func post(_ path: String, _ contentType: String, _ body: String) -> String {
    "POST \(path) HTTP/1.1\r\nHost: bench\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

/// Each request spelling, prepared for every key.
let spellings: [(name: String, requests: [[UInt8]])] = [
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
        "GET verify",
        loopback.requests(of: loopback.verifyKeys) {
            "GET /api/guest/serviceapikey/verify?key=\($0) HTTP/1.1\r\nHost: bench\r\n\r\n"
        }
    ),
    (
        "POST JSON verify",
        loopback.requests(of: loopback.verifyKeys) {
            post("/api/guest/serviceapikey/verify", "application/json", #"{"key": "\#($0)", "cost": 1}"#)
        }
    ),
    (
        "POST form verify",
        loopback.requests(of: loopback.verifyKeys) {
            post("/api/guest/serviceapikey/verify", "application/x-www-form-urlencoded", "key=\($0)&cost=1")
        }
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
                loopback.exchange(requests[position], buffer: buffer)
                position = position + 1 == requests.count ? 0 : position + 1
            }
        }
    }
}

import APIKeyEngine
import APIKeyLimiter
import NIOCore
import NIOEmbedded
import NIOPosix
import TestSupport
import Testing

@testable import APIKeyAPI
@testable import APIKeyServer

#if canImport(Glibc)
    import Glibc
#endif

/// A seeded random mutator over the corpus in `Corpus/`: raw HTTP through the server's real
/// pipeline, form bodies and JSON bodies through their decoders. Every input must come back as a
/// well-formed answer (or a closed connection); a crash fails the run.
///
/// `swift test` runs a short round; `make fuzz` runs it for `FUZZ_SECONDS` and keeps the inputs
/// that reach a new kind of answer in `Corpus/found-*`.
@Suite struct FuzzTests {
    static let corpusDirectory: String = {
        let file = #filePath
        return String(file[..<file.lastIndex(of: "/")!]) + "/Corpus"
    }()

    static let seconds = Double(String(cString: getenv("FUZZ_SECONDS") ?? strdup("0"))) ?? 0
    static let keepFindings = seconds > 0

    static func corpus(prefix: String) -> [[UInt8]] {
        let files = PosixFileLayer()
        let names = ((try? files.list(corpusDirectory)) ?? []).filter {
            $0.hasPrefix(prefix) || $0.hasPrefix("found-" + prefix)
        }
        return names.sorted().compactMap { try? files.read(corpusDirectory + "/" + $0) }
    }

    /// Mutates `input`: flips, inserts, deletes, duplicates, splices and drops in tokens that
    /// matter to the parsers.
    static func mutate(_ input: [UInt8], corpus: [[UInt8]], random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let tokens: [[UInt8]] = [
            "%", "%zz", "%C3", "%FF", "[", "]", "[]", "&", "=", "\r\n", "\r\n\r\n", "{", "}", "\"", "\\u", "\\ud800",
            ":", ",", "0", "-1", "99999999999999999999", "Content-Length: ", "Transfer-Encoding: chunked\r\n", " ",
            "\u{0}",
            "\u{FF}", "null", "true", "[[[[[[[[", "config[", "key=",
        ].map { Array($0.utf8) }
        for _ in 0..<(1 + Int(random.next() % 4)) {
            let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count + 1))
            switch random.next() % 7 {
            case 0 where !bytes.isEmpty:
                bytes[min(position, bytes.count - 1)] ^= UInt8(1 << (random.next() % 8))
            case 1:
                bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
            case 2 where !bytes.isEmpty:
                let end = min(bytes.count, position + 1 + Int(random.next() % 16))
                bytes.removeSubrange(min(position, bytes.count)..<end)
            case 3 where !bytes.isEmpty:
                let start = min(position, bytes.count - 1)
                let end = min(bytes.count, start + 1 + Int(random.next() % 32))
                bytes.insert(contentsOf: bytes[start..<end], at: start)
            case 4 where !corpus.isEmpty:
                let other = corpus[Int(random.next() % UInt64(corpus.count))]
                let cut = Int(random.next() % UInt64(other.count + 1))
                bytes = Array(bytes.prefix(position)) + other[cut...]
            default:
                bytes.insert(
                    contentsOf: tokens[Int(random.next() % UInt64(tokens.count))], at: min(position, bytes.count))
            }
        }
        return Array(bytes.prefix(64 * 1024))
    }

    /// Runs `check` on the corpus and on mutations for the time budget (or `iterations`), saving
    /// inputs with a new signature when asked. Returns how many inputs ran.
    static func run(
        prefix: String, iterations: Int, seed: UInt64, check: ([UInt8]) throws -> String
    ) rethrows -> Int {
        let corpus = corpus(prefix: prefix)
        var random = SplitMix64(seed: seed)
        var seen = Set<String>()
        for input in corpus { seen.insert(try check(input)) }
        var count = corpus.count
        let deadline = SystemClockNanoseconds.now() + Int64(seconds * 1e9)
        while keepFindings ? SystemClockNanoseconds.now() < deadline : count < iterations {
            let base = corpus[Int(random.next() % UInt64(corpus.count))]
            let input = mutate(base, corpus: corpus, random: &random)
            let signature = try check(input)
            count += 1
            if keepFindings, seen.insert(signature).inserted, seen.count < 200 {
                let name = "found-\(prefix)-\(String(stableName(of: input), radix: 16)).txt"
                let file = try? PosixFileLayer().openForAppend(corpusDirectory + "/" + name)
                input.withUnsafeBytes { try? file?.write($0) }
            }
        }
        if keepFindings { print("fuzz \(prefix): \(count) inputs, \(seen.count) distinct outcomes, no crash") }
        return count
    }

    @Test func formBodies() async throws {
        try await fuzzBodies(prefix: "form", seed: 1, refusal: "Malformed", kept: 30, RequestParameters.decodeForm)
    }

    @Test func jsonBodies() async throws {
        try await fuzzBodies(
            prefix: "json", seed: 2, refusal: "Malformed JSON body", kept: 40, RequestParameters.decodeJSON)
    }

    /// Mutated bodies through a decoder: what decodes is a JSON object that survives encoding and
    /// parsing again; what does not is refused with a message starting `refusal`, whose first
    /// `kept` characters name the kind of outcome.
    private func fuzzBodies(
        prefix: String, seed: UInt64, refusal: String, kept: Int,
        _ decode: @escaping @Sendable ([UInt8]) throws(MalformedRequest) -> RequestParameters
    ) async throws {
        try await HeavyWork.run {
            let count = try Self.run(prefix: prefix, iterations: 3000, seed: seed) { (input) throws -> String in
                let parameters: RequestParameters
                do throws(MalformedRequest) {
                    parameters = try decode(input)
                } catch {
                    #expect(error.message.hasPrefix(refusal))
                    return String(error.message.prefix(kept))
                }
                #expect(try JSONValue.parse(parameters.object.encoded) == parameters.object)
                return "ok"
            }
            #expect(count >= 3000 || Self.keepFindings)
        }
    }

    @Test func rawHTTPThroughTheServerPipeline() async throws {
        try await HeavyWork.run { try Self.fuzzTheServerPipeline() }
    }

    private static func fuzzTheServerPipeline() throws {
        let engine = Engine()
        let router = APIRouter(engine: engine, adminToken: "fuzz-token")
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        defer { try? threadPool.syncShutdownGracefully() }
        let count = try Self.run(prefix: "http", iterations: 1500, seed: 3) { input in
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(
                ConnectionGuard(requestTimeout: .seconds(10), idleTimeout: .seconds(60)))
            try channel.pipeline.syncOperations.addHandler(
                HTTPConnectionHandler(
                    router: router,
                    limits: .init(
                        maximumBodyBytes: 4096, maximumTargetBytes: 8192, maximumHeaderBytes: 16384,
                        maximumHeaderCount: 100),
                    threadPool: threadPool))
            _ = try? channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            var buffer = channel.allocator.buffer(capacity: input.count)
            buffer.writeBytes(input)
            _ = try? channel.writeInbound(buffer)
            var output: [UInt8] = []
            while let part = try? channel.readOutbound(as: ByteBuffer.self) {
                output += part.readableBytesView
            }
            _ = try? channel.finish()
            // Every answer is HTTP/1.x with a JSON envelope body.
            let responses = (try? TestHTTPClient.parseResponses(output)) ?? []
            var statuses: [Int] = []
            for response in responses {
                statuses.append(response.status)
                if !response.body.isEmpty {
                    let envelope = try? JSONValue.parse(response.body)
                    #expect(envelope?["error"] != nil, "not an envelope: \(response.body)")
                }
            }
            return statuses.map(String.init).joined(separator: ",")
        }
        #expect(count >= 1500 || Self.keepFindings)
        #expect(engine.keyCount <= count)
    }
}

/// Monotonic nanoseconds, for the fuzzing time budget.
enum SystemClockNanoseconds {
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// A short stable name for an input (FNV-1a).
func stableName(of bytes: [UInt8]) -> UInt64 {
    bytes.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}

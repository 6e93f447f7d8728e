import APIKeyCrypto
import APIKeyEngine
import APIKeyGuard
import Benchmark
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the obvious alternative keeps per key: a record in a `Mutex<[String: Record]>`.
struct BaselineRecord: Sendable {
    var status: KeyStatus
    var expiresAt: Int64?
    var customParametersJSON: [UInt8]
}

/// The obvious alternative a Swift developer would write, measured in the same run.
final class BaselineTable: Sendable {
    let records = Mutex<[String: BaselineRecord]>([:])

    /// Valid now? Reads the clock only for a key with an expiry, as the engine does (expiry takes
    /// effect on the very next check).
    func check(key: String) -> Bool? {
        records.withLock { records in
            guard let record = records[key] else { return nil }
            return record.status == .active && (record.expiresAt.map { $0 > SystemClock().nowSeconds() } ?? true)
        }
    }
}

/// One engine and one baseline holding the same keys (1,000,000 for the measured rows) with
/// realistic configs, and the keys in random order.
struct Fixture: Sendable {
    let engine: Engine
    let baseline = BaselineTable()
    let keys: [String]
    /// One more key, with a monthly limit no run reaches: the one two threads verify at once.
    let hotKey: String

    init(keyCount: Int, keyStorage: KeyStorage = .plain) {
        var configuration = EngineConfiguration()
        configuration.maximumKeys = keyCount + 1
        configuration.keyStorage = keyStorage
        engine = Engine(configuration: configuration)
        let tiers = ["free", "starter", "pro", "enterprise"]
        var keys: [String] = []
        keys.reserveCapacity(keyCount)
        var records: [String: BaselineRecord] = [:]
        records.reserveCapacity(keyCount)
        for index in 0..<keyCount {
            let config = JSONValue.object([
                JSONMember("custom_monthlyLimit", .integer(250 * (index % 40 + 1))),
                JSONMember("custom_tier", .string(tiers[index % tiers.count])),
            ])
            // Fixed inputs cannot fail: a failure here is a bug worth stopping for.
            let record = try! engine.create(NewKey(clientID: Int64(index % 50_000 + 1), config: config))
            keys.append(record.apiKey)
            records[record.apiKey] = BaselineRecord(
                status: record.status, expiresAt: record.expiresAt,
                customParametersJSON: Array(record.customParametersJSON))
        }
        baseline.records.withLock { $0 = records }
        hotKey = try! engine.create(
            NewKey(clientID: 1, config: .object([JSONMember("custom_monthlyLimit", .integer(1_000_000_000_000_000))]))
        ).apiKey
        keys.shuffle()
        // Fresh copies, allocated in lookup order: a server checks the key of the request it has
        // just read, whose bytes are in cache, not a string allocated when the key was created.
        self.keys = keys.map { String(decoding: Array($0.utf8), as: UTF8.self) }
    }
}

let fixture = Fixture(keyCount: 1_000_000)
/// The same keys held as HMAC-SHA-256 hashes (`--key-storage hashed`): each check hashes the key.
let keyHasher = HMACKeyHasher(secret: Array(repeating: 0x5a, count: 32))!
let hashedFixture = Fixture(keyCount: 1_000_000, keyStorage: .hashed(keyHasher))
/// A table small enough to stay in the caches (10,000 keys): what a check costs when no
/// read waits for memory, beside the same check at 1,000,000 keys.
let cachedFixture = Fixture(keyCount: 10_000)

/// The machine's floor for a random lookup: one read of memory no cache holds (256 MiB of 64-byte
/// lines linked in one random cycle, on huge pages like the key table), each read waiting for the
/// one before it, as a lookup's slot read waits for the hash and its record read for the slot.
final class MemoryChase: @unchecked Sendable {
    private var position: UnsafeMutableRawPointer

    init(megabytes: Int) {
        let bytes = megabytes << 20
        let block = 2 << 20
        let raw = mmap(nil, bytes + block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        let base = UnsafeMutableRawPointer(bitPattern: (UInt(bitPattern: raw) + UInt(block - 1)) & ~UInt(block - 1))!
        _ = madvise(base, bytes, MADV_HUGEPAGE)
        var order = Array(0..<(bytes / 64))
        order.shuffle()
        for (index, line) in order.enumerated() {
            let next = base + order[(index + 1) % order.count] * 64
            (base + line * 64).storeBytes(of: next, as: UnsafeMutableRawPointer.self)
        }
        position = base + order[0] * 64
    }

    /// Follows one link.
    @inline(never)
    func step() {
        position = position.load(as: UnsafeMutableRawPointer.self)
    }

    var current: UnsafeMutableRawPointer { position }
}

let memoryChase = MemoryChase(megabytes: 256)

/// Runs `body` once per scaled iteration of `benchmark`, on the shuffled keys of `fixture` in
/// turn from a random start.
func forEachKey(of benchmark: Benchmark, in fixture: Fixture = fixture, _ body: (String) throws -> Void) rethrows {
    let keys = fixture.keys
    var position = Int.random(in: 0..<keys.count)
    for _ in benchmark.scaledIterations {
        try body(keys[position])
        position += 1
        if position == keys.count { position = 0 }
    }
}

/// Runs `body` on `threads` threads at once, each over its own stretch of the shuffled keys.
func onThreads(_ threads: Int, lookupsEach: Int, _ body: @Sendable (String) -> Void) {
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
        let keys = fixture.keys
        var position = Int.random(in: 0..<keys.count)
        for _ in 0..<lookupsEach {
            body(keys[position])
            position += 1
            if position == keys.count { position = 0 }
        }
        _ = thread
    }
}

/// One verify of cost 1 of `key`, through the byte API a server uses.
func verify(_ key: String) throws {
    var key = key
    try key.withUTF8 { bytes in
        let pending = try fixture.engine.deferred.verify(keyBytes: UnsafeRawBufferPointer(bytes)) {
            verification, custom in
            blackHole(verification.code)
            blackHole(custom.count)
        }
        blackHole(pending)
    }
}

let benchmarks: @Sendable () -> Void = {
    // Allocation counts are the thresholds that fail `make bench` (Benchmarks/Thresholds);
    // times are reported, not checked: machines here are shared.
    // One thread: each sample is 1,000 lookups (reported per lookup), so the clock reads and
    // malloc counting of the harness do not swamp a lookup of a few hundred nanoseconds.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 20_000
    )

    Benchmark("check, 1 thread") { benchmark in
        try forEachKey(of: benchmark) { key in blackHole(try fixture.engine.check(key: key)) }
    }

    // Engine.check(keys:) on groups of 16 keys: the per-key figure beside "check, 1 thread".
    Benchmark("check, batches of 16 keys (per key), 1 thread") { benchmark in
        let keys = fixture.keys
        var position = Int.random(in: 0..<keys.count)
        var batch: [String] = []
        batch.reserveCapacity(16)
        var remaining = benchmark.scaledIterations.count
        while remaining > 0 {
            batch.removeAll(keepingCapacity: true)
            for _ in 0..<min(16, remaining) {
                batch.append(keys[position])
                position += 1
                if position == keys.count { position = 0 }
            }
            blackHole(fixture.engine.check(keys: batch))
            remaining -= batch.count
        }
    }

    Benchmark("check, hashed key storage, 1 thread") { benchmark in
        try forEachKey(of: benchmark, in: hashedFixture) { key in blackHole(try hashedFixture.engine.check(key: key)) }
    }

    Benchmark("reference: HMAC-SHA-256 of a key, 1 thread") { benchmark in
        var code = [UInt8](repeating: 0, count: 32)
        forEachKey(of: benchmark) { key in
            var key = key
            key.withUTF8 { bytes in
                code.withUnsafeMutableBytes {
                    keyHasher.authenticationCode(of: UnsafeRawBufferPointer(bytes), into: $0)
                }
            }
            blackHole(code[0])
        }
    }

    Benchmark("get_info, 1 thread") { benchmark in
        try forEachKey(of: benchmark) { key in
            blackHole(try fixture.engine.withInfo(key: key) { valid, custom in valid && custom.count > 2 })
        }
    }

    // What an embedder's route reads per request: the key's order and two custom parameters,
    // in place (Engine.withKey), typed, with no JSON parse.
    Benchmark("withKey order and parameters, 1 thread") { benchmark in
        try forEachKey(of: benchmark) { key in
            blackHole(
                try fixture.engine.withKey(key: key) { view in
                    view.orderID &+ (view.customParameters.int64("monthlyLimit") ?? 0)
                        &+ (view.customParameters.string("tier", equals: "pro") ? 1 : 0)
                })
        }
    }

    // What the web-framework middleware does per request before the route: the key from a
    // header, verify (cost 1), the details copied for the handler.
    Benchmark("guard evaluate (verify), 1 thread") { benchmark in
        let keyGuard = APIKeyGuard(engine: fixture.engine)
        try forEachKey(of: benchmark) { key in
            let evaluation = keyGuard.evaluate(key: keyGuard.key { $0 == "X-API-Key" ? key : nil })
            blackHole(evaluation.pending)
            if case .allowed(let verified) = evaluation.decision { blackHole(verified.orderID) }
        }
    }

    // Verify of keys that all have a monthly limit (usage beside the table, no data directory:
    // what the journal adds is measured over HTTP with `--fsync always`).
    Benchmark("verify, 1 thread") { benchmark in
        try forEachKey(of: benchmark) { key in try verify(key) }
    }

    Benchmark("reference: check, 10,000 keys (in cache), 1 thread") { benchmark in
        try forEachKey(of: benchmark, in: cachedFixture) { key in blackHole(try cachedFixture.engine.check(key: key)) }
    }

    Benchmark("reference: one uncached dependent memory read, 1 thread") { benchmark in
        for _ in benchmark.scaledIterations { memoryChase.step() }
        blackHole(memoryChase.current)
    }

    Benchmark("baseline Mutex<[String: Record]> check, 1 thread") { benchmark in
        forEachKey(of: benchmark) { key in blackHole(fixture.baseline.check(key: key)) }
    }

    // Two threads: each iteration is 2 x 10,000 lookups; throughput counts lookups.
    let twoThreads = Benchmark.Configuration(
        metrics: [.wallClock, .throughput], scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 2000)
    Benchmark("check, 2 threads (20,000 lookups per iteration)", configuration: twoThreads) { benchmark in
        for _ in benchmark.scaledIterations {
            onThreads(2, lookupsEach: 10_000) { key in blackHole(try? fixture.engine.check(key: key)) }
        }
    }

    // One key from two threads: every verify takes the same usage shard, every check reads the
    // same record; exactness under this contention is a test's (UsageModelTests).
    Benchmark("verify one key, 2 threads (20,000 verifies per iteration)", configuration: twoThreads) { benchmark in
        for _ in benchmark.scaledIterations {
            DispatchQueue.concurrentPerform(iterations: 2) { _ in
                for _ in 0..<10_000 { try? verify(fixture.hotKey) }
            }
        }
    }

    Benchmark("reference: check one key, 2 threads (20,000 checks per iteration)", configuration: twoThreads) {
        benchmark in
        for _ in benchmark.scaledIterations {
            DispatchQueue.concurrentPerform(iterations: 2) { _ in
                for _ in 0..<10_000 { blackHole(try? fixture.engine.check(key: fixture.hotKey)) }
            }
        }
    }

    Benchmark(
        "baseline Mutex<[String: Record]> check, 2 threads (20,000 lookups per iteration)", configuration: twoThreads
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            onThreads(2, lookupsEach: 10_000) { key in blackHole(fixture.baseline.check(key: key)) }
        }
    }
}

import APIKeyEngine
import Benchmark

/// One engine holding `keyCount` keys with realistic configs, and those keys in random order.
struct Fixture: Sendable {
    static let keyCount = 1_000_000

    let engine: Engine
    let keys: [String]

    init() {
        var configuration = EngineConfiguration()
        configuration.maximumKeys = Self.keyCount
        engine = Engine(configuration: configuration)
        let tiers = ["free", "starter", "pro", "enterprise"]
        var keys: [String] = []
        keys.reserveCapacity(Self.keyCount)
        for index in 0..<Self.keyCount {
            let config = JSONValue.object([
                JSONMember("custom_monthlyLimit", .integer(250 * (index % 40 + 1))),
                JSONMember("custom_tier", .string(tiers[index % tiers.count])),
            ])
            // Fixed inputs cannot fail: a failure here is a bug worth stopping for.
            let record = try! engine.create(NewKey(clientID: Int64(index % 50_000 + 1), config: config))
            keys.append(record.apiKey)
        }
        keys.shuffle()
        self.keys = keys
    }
}

let fixture = Fixture()

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        scalingFactor: .kilo,
        maxDuration: .seconds(5),
        maxIterations: 1_000_000
    )

    Benchmark("check, 1M keys, random order") { benchmark in
        let keys = fixture.keys
        var position = Int.random(in: 0..<keys.count)
        for _ in benchmark.scaledIterations {
            blackHole(try fixture.engine.check(key: keys[position]))
            position += 1
            if position == keys.count { position = 0 }
        }
    }

    Benchmark("get_info, 1M keys, random order") { benchmark in
        let keys = fixture.keys
        var position = Int.random(in: 0..<keys.count)
        for _ in benchmark.scaledIterations {
            blackHole(try fixture.engine.getInfo(key: keys[position]))
            position += 1
            if position == keys.count { position = 0 }
        }
    }
}

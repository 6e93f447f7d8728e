// swift-tools-version:6.1
import PackageDescription

// The benchmarks live in a package of their own, so `swift test` at the root never builds
// ordo-one/benchmark. Run them with `make bench` (or `swift package benchmark` here).
let package = Package(
    name: "apikeyd-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "apikeyd", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "APIKeyEngine", package: "apikeyd"), .product(name: "APIKeyGuard", package: "apikeyd"),
                .product(name: "APIKeyCrypto", package: "apikeyd"), .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The HTTP stack over loopback: allocations per request of each way to ask for a key.
        .executableTarget(
            name: "HTTPBenchmarks",
            dependencies: [
                .product(name: "APIKeyEngine", package: "apikeyd"), .product(name: "APIKeyAPI", package: "apikeyd"),
                .product(name: "APIKeyServer", package: "apikeyd"), .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/HTTPBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A plain executable, driven by durability.sh: start-up and snapshot figures at scale.
        .executableTarget(
            name: "DurabilityBenchmark",
            dependencies: [.product(name: "APIKeyEngine", package: "apikeyd")],
            path: "Tools/DurabilityBenchmark"
        ),
        // import.sh: the records of an export made again by create calls, for its start-up baseline.
        .executableTarget(
            name: "CreateFromExport",
            dependencies: [.product(name: "APIKeyEngine", package: "apikeyd")],
            path: "Tools/CreateFromExport"
        ),
        // Resident memory of usage metering: keys with limits, a long verify run, remembered answers.
        .executableTarget(
            name: "UsageMemoryBenchmark",
            dependencies: [.product(name: "APIKeyEngine", package: "apikeyd")],
            path: "Tools/UsageMemoryBenchmark"
        ),
        // Check throughput on 1 to 16 threads, built static by scaling.sh for bigger machines.
        .executableTarget(
            name: "ScalingBenchmark",
            dependencies: [.product(name: "APIKeyEngine", package: "apikeyd")],
            path: "Tools/ScalingBenchmark"
        ),
    ],
    swiftLanguageModes: [.v6]
)

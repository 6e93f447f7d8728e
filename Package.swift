// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "apikeyd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "APIKeyEngine", targets: ["APIKeyEngine"]),
        .library(name: "APIKeyGuard", targets: ["APIKeyGuard"]),
        .library(name: "APIKeyEngineService", targets: ["APIKeyEngineService"]),
        .library(name: "APIKeyAPI", targets: ["APIKeyAPI"]),
        .library(name: "APIKeyServer", targets: ["APIKeyServer"]),
        .library(name: "APIKeyCluster", targets: ["APIKeyCluster"]),
        .library(name: "APIKeyCrypto", targets: ["APIKeyCrypto"]),
        .executable(name: "apikeyd", targets: ["apikeyd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: ["JSON", "YAML"]),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/yaslab/CSV.swift.git", from: "2.5.2"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CXXHash",
            pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Header only: a prefetch hint Swift has no spelling for.
        .systemLibrary(name: "CMemoryHints"),
        .target(
            name: "APIKeyEngine",
            dependencies: [
                "CXXHash", "CZlib", "CMemoryHints", "APIKeyLimiter", .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Hashed key storage's HMAC-SHA-256 through swift-crypto: kept out of APIKeyEngine so
        // that embedding the engine with plain keys builds no BoringSSL.
        .target(
            name: "APIKeyCrypto",
            dependencies: ["APIKeyEngine", "CSHA256", .product(name: "Crypto", package: "swift-crypto")]),
        // SHA-256 compression on the x86 SHA extensions: the hashed check's hot path (README,
        // "Keys hashed at rest"); on other CPUs APIKeyCrypto uses swift-crypto.
        .target(name: "CSHA256"),
        // What a web framework's middleware decides for a request, free of any framework: the key
        // from the headers, verify or check, the status and the rate-limit headers of a refusal.
        .target(name: "APIKeyGuard", dependencies: ["APIKeyEngine"]),
        // The engine as a swift-service-lifecycle service: kept out of APIKeyEngine so that
        // embedding the engine needs no lifecycle dependency.
        .target(
            name: "APIKeyEngineService",
            dependencies: [
                "APIKeyEngine", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // Token buckets (per client address for the server, per key for usage limits) and IP
        // addresses; depends on nothing.
        .target(name: "APIKeyLimiter"),
        // The API without a transport: routing, parameters, answers, authentication, limits.
        // Imports no NIO, so it is tested without sockets and a second transport could reuse it.
        .target(
            name: "APIKeyAPI",
            dependencies: [
                "APIKeyEngine", "APIKeyLimiter", .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]),
        // HTTP/1.1 over SwiftNIO: the server, the connection handler, the parser, the guard.
        .target(
            name: "APIKeyServer",
            dependencies: [
                "APIKeyEngine", "APIKeyAPI", "APIKeyLimiter",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),
        // Multi-node mode: PostgreSQL as the system of record, each node a full in-memory copy
        // that follows the change log. The only target that depends on postgres-nio.
        .target(
            name: "APIKeyCluster",
            dependencies: [
                "APIKeyEngine", "APIKeyAPI",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "apikeyd",
            dependencies: [
                "APIKeyEngine", "APIKeyAPI", "APIKeyLimiter", "APIKeyServer", "APIKeyCluster", "APIKeyCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CSV", package: "CSV.swift"),
            ]
        ),
        // What the test targets share: heavy work off the cooperative pool, loopback sockets and a
        // raw HTTP client, a seeded generator, temporary directories, the fault-injecting file
        // layer, whole-engine comparisons.
        .target(
            name: "TestSupport",
            dependencies: ["APIKeyEngine", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"),
        .testTarget(
            name: "APIKeyLimiterTests",
            dependencies: [
                "APIKeyLimiter", "TestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(name: "APIKeyGuardTests", dependencies: ["APIKeyEngine", "APIKeyGuard", "TestSupport"]),
        .testTarget(name: "APIKeyClusterTests", dependencies: ["APIKeyEngine", "APIKeyCluster"]),
        .testTarget(
            name: "APIKeyCryptoTests",
            dependencies: [
                "APIKeyEngine", "APIKeyCrypto", "TestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "APIKeyEngineServiceTests",
            dependencies: [
                "APIKeyEngine", "APIKeyEngineService", "TestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "APIKeyAPITests", dependencies: ["APIKeyEngine", "APIKeyAPI", "APIKeyLimiter", "TestSupport"]),
        .testTarget(
            name: "APIKeyEngineTests",
            dependencies: [
                "APIKeyEngine", "TestSupport", "CZlib",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "apikeydTests",
            dependencies: ["apikeyd", "APIKeyEngine", "TestSupport"]
        ),
        .testTarget(
            name: "APIKeyServerTests",
            dependencies: [
                "APIKeyEngine", "APIKeyAPI", "APIKeyLimiter", "APIKeyServer",
                "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Corpus"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

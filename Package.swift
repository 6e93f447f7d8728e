// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "apikeyd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "APIKeyEngine", targets: ["APIKeyEngine"]),
        .library(name: "APIKeyAPI", targets: ["APIKeyAPI"]),
        .library(name: "APIKeyServer", targets: ["APIKeyServer"]),
        .executable(name: "apikeyd", targets: ["apikeyd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
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
            ]
        ),
        // Token buckets (per client address for the server, per key for usage limits) and IP
        // addresses; depends on nothing.
        .target(name: "APIKeyLimiter"),
        // The API without a transport: routing, parameters, answers, authentication, limits.
        // Imports no NIO, so it is tested without sockets and a second transport could reuse it.
        .target(name: "APIKeyAPI", dependencies: ["APIKeyEngine", "APIKeyLimiter"]),
        // HTTP/1.1 over SwiftNIO: the server, the connection handler, the parser, the guard.
        .target(
            name: "APIKeyServer",
            dependencies: [
                "APIKeyEngine", "APIKeyAPI", "APIKeyLimiter",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "apikeyd",
            dependencies: [
                "APIKeyEngine", "APIKeyAPI", "APIKeyLimiter", "APIKeyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What the test targets share: heavy work off the cooperative pool, loopback sockets and a
        // raw HTTP client, a seeded generator, temporary directories, the fault-injecting file
        // layer, whole-engine comparisons.
        .target(name: "TestSupport", dependencies: ["APIKeyEngine"], path: "Tests/TestSupport"),
        .testTarget(
            name: "APIKeyLimiterTests",
            dependencies: [
                "APIKeyLimiter", "TestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "APIKeyAPITests", dependencies: ["APIKeyEngine", "APIKeyAPI", "APIKeyLimiter", "TestSupport"]),
        .testTarget(
            name: "APIKeyEngineTests",
            dependencies: [
                "APIKeyEngine", "TestSupport",
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

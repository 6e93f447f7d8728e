// swift-tools-version:6.1
import PackageDescription

// A paid weather API on Hummingbird 2 that checks keys in-process with apikeyd's engine: the
// example a newcomer runs first (see README.md). `weather-benchmark` serves the same route open,
// guarded in-process and guarded over HTTP by an apikeyd server, for Benchmarks/embedding.sh.
let package = Package(
    name: "weather-api",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "apikeyd", path: "../.."),
        .package(name: "APIKeyHummingbird", path: "../../Integrations/APIKeyHummingbird"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        .target(
            name: "WeatherAPI",
            dependencies: [
                .product(name: "APIKeyEngine", package: "apikeyd"),
                .product(name: "APIKeyGuard", package: "apikeyd"),
                .product(name: "APIKeyEngineService", package: "apikeyd"),
                .product(name: "APIKeyHummingbird", package: "APIKeyHummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(name: "weather-api", dependencies: ["WeatherAPI"]),
        .executableTarget(
            name: "weather-benchmark",
            dependencies: [
                "WeatherAPI",
                .product(name: "APIKeyEngine", package: "apikeyd"),
                .product(name: "APIKeyGuard", package: "apikeyd"),
                .product(name: "APIKeyHummingbird", package: "APIKeyHummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
        .testTarget(
            name: "WeatherAPITests",
            dependencies: [
                "WeatherAPI",
                .product(name: "APIKeyEngine", package: "apikeyd"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)

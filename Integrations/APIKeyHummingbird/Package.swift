// swift-tools-version:6.1
import PackageDescription

// Hummingbird 2 middleware for apikeyd's engine: a package of its own, so the engine's build stays
// free of Hummingbird. The root package is named by path and by its name, so the folder it is
// cloned into does not matter.
let package = Package(
    name: "APIKeyHummingbird",
    platforms: [.macOS(.v15)],
    products: [.library(name: "APIKeyHummingbird", targets: ["APIKeyHummingbird"])],
    dependencies: [
        .package(name: "apikeyd", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .target(
            name: "APIKeyHummingbird",
            dependencies: [
                .product(name: "APIKeyEngine", package: "apikeyd"),
                .product(name: "APIKeyGuard", package: "apikeyd"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]),
        .testTarget(
            name: "APIKeyHummingbirdTests",
            dependencies: [
                "APIKeyHummingbird",
                .product(name: "APIKeyEngine", package: "apikeyd"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version:6.1
import PackageDescription

// Vapor 4 middleware for apikeyd's engine: a package of its own, so the engine's build stays free
// of Vapor. The root package is named by path and by its name, so the folder it is cloned into
// does not matter.
let package = Package(
    name: "APIKeyVapor",
    platforms: [.macOS(.v15)],
    products: [.library(name: "APIKeyVapor", targets: ["APIKeyVapor"])],
    dependencies: [
        .package(name: "apikeyd", path: "../.."),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
    ],
    targets: [
        .target(
            name: "APIKeyVapor",
            dependencies: [
                .product(name: "APIKeyEngine", package: "apikeyd"),
                .product(name: "APIKeyGuard", package: "apikeyd"),
                .product(name: "Vapor", package: "vapor"),
            ]),
        .testTarget(
            name: "APIKeyVaporTests",
            dependencies: [
                "APIKeyVapor",
                .product(name: "APIKeyEngine", package: "apikeyd"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "VaporTesting", package: "vapor"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)

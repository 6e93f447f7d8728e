// swift-tools-version:6.1
import PackageDescription

// A Swift client of apikeyd's HTTP API generated from docs/openapi.yaml by apple/swift-openapi-generator
// at build time (Sources/APIKeyClient/openapi.yaml is a link to the document), over URLSession. Its
// test drives a real `apikeyd serve`: see README.md.
let package = Package(
    name: "openapi-client",
    platforms: [.macOS(.v15)],
    products: [.library(name: "APIKeyClient", targets: ["APIKeyClient"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-openapi-generator.git", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-openapi-urlsession.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .target(
            name: "APIKeyClient",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIURLSession", package: "swift-openapi-urlsession"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]),
        .testTarget(
            name: "APIKeyClientTests",
            dependencies: ["APIKeyClient", .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")]),
    ],
    swiftLanguageModes: [.v6]
)

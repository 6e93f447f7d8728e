import APIKeyEngine
import APIKeyEngineService
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The weather API as a process: settings from the environment, a durable engine in the data
/// directory, and a `ServiceGroup` that shuts down in order on SIGTERM or SIGINT (the server
/// finishes its requests, then the engine writes its final snapshot and closes).
public struct WeatherServer {
    /// Where to listen (`WEATHER_HOST`, default 127.0.0.1; `WEATHER_PORT`, default 8090).
    public var host: String
    public var port: Int
    /// The engine's data directory (`WEATHER_DATA_DIR`, default `weather-data`).
    public var dataDirectory: String
    /// The admin routes' token (`WEATHER_ADMIN_TOKEN`; when unset, one is made and printed).
    public var adminToken: String
    /// Whether ``adminToken`` was made here (and so must be shown).
    var madeAdminToken: Bool

    /// The settings the environment gives.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        host = environment["WEATHER_HOST"] ?? "127.0.0.1"
        port = environment["WEATHER_PORT"].flatMap(Int.init) ?? 8090
        dataDirectory = environment["WEATHER_DATA_DIR"] ?? "weather-data"
        madeAdminToken = environment["WEATHER_ADMIN_TOKEN"] == nil
        adminToken =
            environment["WEATHER_ADMIN_TOKEN"]
            ?? (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
    }

    /// Opens the engine, serves until SIGTERM or SIGINT, then closes the engine.
    public func run() async throws {
        var logger = Logger(label: "weather-api")
        logger.logLevel = .info
        let engine = try Engine.open(directory: dataDirectory, logger: logger)
        if let report = engine.recoveryReport {
            logger.info("opened \(dataDirectory): \(engine.keyCount) keys, \(report)")
        }
        let app = Application(
            router: WeatherRoutes.router(engine: engine, adminToken: adminToken),
            configuration: .init(address: .hostname(host, port: port), serverName: "weather-api"),
            logger: logger)
        if madeAdminToken {
            // Written at once, not through print's buffer, so it shows when stdout is a pipe too.
            FileHandle.standardOutput.write(
                Data("admin token (set WEATHER_ADMIN_TOKEN to choose one): \(adminToken)\n".utf8))
        }
        // The engine first: a group shuts its services down in reverse order, so the server stops
        // (finishing what it serves) before the engine closes.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: EngineService(engine)), .init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

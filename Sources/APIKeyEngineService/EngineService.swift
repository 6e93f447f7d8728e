import APIKeyEngine
import Logging
import ServiceLifecycle

/// A durable engine as a swift-service-lifecycle `Service`: put it in the same `ServiceGroup` as
/// the HTTP server that uses it, before the server (a group shuts its services down in reverse
/// order), and a SIGTERM shuts down in order: the server stops taking requests and finishes those
/// under way, then this closes the engine (journal fsynced, final snapshot, directory released)
/// off the cooperative pool.
///
/// The engine's own background work (the `everysec` fsync, snapshot triggers, the syncer that
/// acknowledges `always` writes) starts when the engine is opened and runs on its own threads;
/// ``run()`` bounds its life: it returns once the engine is closed.
///
/// ```swift
/// let engine = try Engine.open(directory: "data")
/// let group = ServiceGroup(
///     configuration: .init(
///         services: [.init(service: EngineService(engine)), .init(service: app)],
///         gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
/// try await group.run()
/// ```
public struct EngineService: Service {
    /// The engine this service closes.
    public let engine: Engine

    /// A service that closes `engine` when the group shuts down.
    public init(_ engine: Engine) { self.engine = engine }

    /// Waits for graceful shutdown (or cancellation), then closes the engine. Throws what
    /// `Engine.close()` throws (a failed final snapshot; the journal still holds everything).
    public func run() async throws {
        try? await gracefulShutdown()
        try await engine.close()
        engine.logger.notice("engine closed")
    }
}

import APIKeyEngine
import APIKeyEngineService
import Logging
import ServiceLifecycle
import TestSupport
import Testing

/// The engine in a `ServiceGroup`: shut down after the services listed after it, closed (final
/// snapshot written, directory released) when the group ends.
@Suite struct EngineServiceTests {
    /// Stands for an HTTP server: on graceful shutdown it makes one last write, as a request
    /// under way would, then returns.
    private struct LastWriter: Service {
        let engine: Engine

        func run() async throws {
            try? await gracefulShutdown()
            try await engine.create(NewKey(clientID: 99))
        }
    }

    @Test func gracefulShutdownClosesTheEngineAfterTheServicesListedAfterIt() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path)
        try await engine.create(NewKey(clientID: 1))
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: EngineService(engine)), .init(service: LastWriter(engine: engine))],
                logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await Task.sleep(for: .milliseconds(100))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(engine.writeAvailability == .closed)
        #expect(directory.names().contains { $0.hasPrefix("snapshot-") })
        let reopened = try Engine.open(directory: directory.path)
        #expect(reopened.keyCount == 2, "the last write came before the close")
        #expect(reopened.recoveryReport?.replayedRecords == 0, "the final snapshot holds both")
        try await reopened.close()
    }
}

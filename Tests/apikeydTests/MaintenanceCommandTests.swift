import APIKeyEngine
import Foundation
import TestSupport
import Testing

/// `apikeyd snapshot` and `apikeyd verify-data`, run as the real executable.
@Suite struct MaintenanceCommandTests {
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runTool(try KillNineTests.binary().path, arguments)
    }

    /// Runs the program at `path` to its end; its exit status and its output and errors.
    static func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        // Not waitUntilExit(): it spins a run loop on a test thread and was seen to wait forever
        // for a child that had exited (its zombie never reaped) while other tests spawned processes.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        guard exited.wait(timeout: .now() + 60) == .success else {
            throw KillNineTests.Failure("\(path) \(arguments) did not report its exit within 60 s")
        }
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func snapshotThenVerifyThenDetectCorruption() async throws {
        try await HeavyWork.run {
            let directory = "/tmp/apikeyd-maintenance-\(UInt64.random(in: 0...UInt64.max))"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var options = StorageOptions()
            options.snapshotOnClose = false
            let engine = try Engine.open(directory: directory, options: options)
            for client in 1...20 { try engine.create(NewKey(clientID: Int64(client))) }
            try engine.close()

            let snapshot = try Self.run(["snapshot", "--data-dir", directory])
            #expect(snapshot.status == 0, "\(snapshot.output)")
            #expect(snapshot.output.contains("20 entries"), "\(snapshot.output)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).contains { $0.hasSuffix(".snap") })

            let clean = try Self.run(["verify-data", "--data-dir", directory])
            #expect(clean.status == 0, "\(clean.output)")
            #expect(clean.output.contains("snapshot: snapshot-"), "\(clean.output)")

            // Damage every snapshot: recovery would fall back to the whole journal; verify-data says
            // so, exits 1 and changes nothing.
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".snap") {
                let path = directory + "/" + name
                var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                bytes[bytes.count / 2] ^= 0xFF
                try bytes.write(to: URL(fileURLWithPath: path))
            }
            let before = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
            let damaged = try Self.run(["verify-data", "--data-dir", directory])
            #expect(damaged.status == 1, "\(damaged.output)")
            #expect(damaged.output.contains("rejected snapshot"), "\(damaged.output)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == before)
        }
    }
}

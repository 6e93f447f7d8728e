import APIKeyAPI
import APIKeyEngine
import APIKeyLimiter
import APIKeyServer
import ArgumentParser
import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@main
struct APIKeyDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikeyd",
        abstract: "An API-key validation engine with a FOSSBilling-compatible HTTP API.",
        version: apikeydVersion,
        subcommands: [
            Serve.self, KeysCommand.self, ClientsCommand.self, Import.self, Export.self, Snapshot.self,
            VerifyData.self,
        ],
        defaultSubcommand: Serve.self
    )

    /// As ArgumentParser's, but a bad option or value exits with status 2 (its own default is
    /// 64), as the server's settings do.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

struct Snapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a snapshot of a data directory that no server is using, and prune the journal.")

    @Option(help: "The data directory.")
    var dataDir = "data/store"

    @Option(help: "The secret of a directory with hashed key storage, when not in <data-dir>/key-secret.")
    var keySecretFile: String?

    func run() throws {
        try reportingFailures {
            try requireDataDirectory(dataDir)
            var options = StorageOptions()
            options.snapshotOnClose = false
            var configuration = EngineConfiguration()
            configuration.keyStorage = try KeySecret.written(in: dataDir, secretFile: keySecretFile)
            let display = ProgressDisplay()
            let engine = try Engine.open(
                directory: dataDir, options: options, configuration: configuration, logger: maintenanceLogger,
                progress: display.handler)
            let summary = try engine.snapshot(progress: display.handler)
            try engine.close()
            display.finish()
            print(
                "wrote \(summary.path): \(summary.entries) entries, \(summary.bytes) bytes, last sequence \(summary.lastSequence), \(summary.nanoseconds / 1_000_000) ms"
            )
        }
    }
}

struct VerifyData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-data",
        abstract: "Report what recovery would do with a data directory, changing nothing.",
        discussion:
            "Loads the state as the server would and checks every record. Exits with status 1 when a snapshot is rejected, replay would stop at corruption, or a record is damaged."
    )

    @Option(help: "The data directory.")
    var dataDir = "data/store"

    func run() throws {
        try reportingFailures {
            try requireDataDirectory(dataDir)
            let display = ProgressDisplay()
            let report = try Engine.verifyData(directory: dataDir, progress: display.handler)
            display.finish()
            print(report.description)
            if report.corruption != nil || !report.rejectedSnapshots.isEmpty || !report.integrityProblems.isEmpty {
                throw ExitCode(1)
            }
        }
    }
}

import APIKeyAPI
import APIKeyEngine
import APIKeyLimiter
import APIKeyServer
import ArgumentParser
import Dispatch
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
        subcommands: [Serve.self, Snapshot.self, VerifyData.self],
        defaultSubcommand: Serve.self
    )
}

struct Snapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a snapshot of a data directory that no server is using, and prune the journal.")

    @Option(help: "The data directory.")
    var dataDir = "data/store"

    func run() throws {
        var options = StorageOptions()
        options.snapshotOnClose = false
        let engine = try Engine.open(directory: dataDir, options: options)
        let summary = try engine.snapshot()
        try engine.close()
        print(
            "wrote \(summary.path): \(summary.entries) entries, \(summary.bytes) bytes, last sequence \(summary.lastSequence), \(summary.nanoseconds / 1_000_000) ms"
        )
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
        let report = try Engine.verifyData(directory: dataDir)
        print(report.description)
        if report.corruption != nil || !report.rejectedSnapshots.isEmpty || !report.integrityProblems.isEmpty {
            throw ExitCode(1)
        }
    }
}

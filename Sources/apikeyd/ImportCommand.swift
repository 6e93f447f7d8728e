import APIKeyAPI
import APIKeyEngine
import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import keys and client tokens into a data directory that no server is using.",
        discussion: """
            Formats: jsonl and csv (as export writes them), fossbilling (a mysqldump of a FOSSBilling \
            database: its service_apikey, client_order and client tables). The directory may be empty, \
            missing (it is created) or hold keys already. All or nothing: a bad row stops the import, \
            naming the file and line, and leaves the directory as it was, unless --skip-invalid. The \
            records become durable at once in a snapshot.
            """
    )

    @Option(help: "The data directory.")
    var dataDir = "data/store"

    @Option(help: "jsonl, csv or fossbilling.")
    var format: KeyFileFormat

    @Flag(help: "Skip rows that cannot be imported (each is reported) instead of stopping.")
    var skipInvalid = false

    @Option(
        help:
            "plain or hashed: how a new directory holds keys and tokens (plain keys are hashed on the way in; hmac-sha256: hashes are taken as they are). Default: what the directory holds, plain for a new one."
    )
    var keyStorage: KeyStorageMode?

    @Option(help: "The secret of hashed key storage, when not in <data-dir>/key-secret (made there when missing).")
    var keySecretFile: String?

    @Argument(help: "The file to import.")
    var file: String

    func run() throws {
        try reportingFailures {
            guard !Engine.isInUse(directory: dataDir) else {
                throw CommandFailure("the data directory \(dataDir) is in use by a running server; stop it first")
            }
            let bytes: [UInt8]
            do throws(StorageError) {
                bytes = try PosixFileLayer().read(file)
            } catch {
                throw CommandFailure(error.message)
            }
            let display = ProgressDisplay()
            // Checked against what the directory holds now, read without changing it, so a bad
            // row leaves it untouched; only a good import opens it for writing.
            let exists = FileManager.default.fileExists(atPath: dataDir)
            var configuration = EngineConfiguration()
            // A new directory's secret is written into it once it is built (below).
            var newSecret: String?
            // A secret made now for a directory the import then leaves as it was is removed.
            var createdSecret: String?
            var imported = false
            defer { if !imported, let createdSecret { unlink(createdSecret) } }
            let mode = try keyStorage ?? (Engine.holdsHashedKeys(directory: dataDir) ? .hashed : .plain)
            if mode == .hashed, !exists, keySecretFile == nil {
                let secret = SystemRandomSource().hexToken(byteCount: 32)
                newSecret = secret
                configuration.keyStorage = try KeySecret.hashed(secret, from: "a new secret")
            } else {
                (configuration.keyStorage, createdSecret) = try KeySecret.storage(
                    mode, secretFile: keySecretFile, dataDir: dataDir, mayCreate: true)
            }
            let current =
                exists
                ? try Engine.load(directory: dataDir, configuration: configuration, progress: display.handler)
                : Engine(configuration: configuration)
            display.finish()
            var batch = current.makeImport()
            var summary = ImportSummary()
            let total = UInt64(bytes.count)
            let progress: (Int) -> Void = { read in
                display.show(ProgressReport(phase: "reading \(file)", done: UInt64(read), total: total))
            }
            try read(bytes, progress: progress) { item, line in
                // Why the row cannot be imported; nil when it was taken (or skipped by design).
                var refusal: String?
                do throws(EngineError) {
                    switch item {
                    case .record(let record): try batch.add(record)
                    case .token(let clientID, let token): try batch.addClientToken(clientID: clientID, token: token)
                    case .skipped(let reason): summary.skipped[reason, default: 0] += 1
                    case .invalid(let message): refusal = message
                    }
                } catch {
                    refusal = error.message
                }
                if let refusal {
                    guard skipInvalid else {
                        display.finish()
                        throw CommandFailure("\(file):\(line): \(refusal); nothing was imported")
                    }
                    printOnStandardError("\(file):\(line): skipped: \(refusal)")
                    summary.invalid += 1
                }
            }
            display.finish()
            // A directory that does not exist yet is built under another name and renamed into
            // place once the import is durable: a failure or a crash leaves no empty store at
            // the name given.
            var name = dataDir
            while name.count > 1, name.hasSuffix("/") { name.removeLast() }
            let target = exists ? dataDir : name + ".importing-\(getpid())"
            var options = StorageOptions()
            options.snapshotOnClose = false
            if let newSecret {
                // The secret goes into the directory before the engine opens (and would create) it.
                if !exists, mkdir(target, 0o700) != 0, errno != EEXIST {
                    throw CommandFailure("cannot create \(target): \(String(cString: strerror(errno)))")
                }
                _ = try SecretFile.loadOrCreate(target + "/" + KeySecret.fileName, generated: newSecret)
            }
            let engine = try Engine.open(
                directory: target, options: options, configuration: configuration, logger: maintenanceLogger)
            let snapshot: SnapshotSummary?
            do throws(EngineError) {
                snapshot = try engine.commit(batch, progress: display.handler)
            } catch {
                try? engine.close()
                display.finish()
                if !exists { try? FileManager.default.removeItem(atPath: target) }
                throw CommandFailure("\(error.message); nothing was imported")
            }
            try engine.close()
            imported = true
            display.finish()
            if !exists { try Self.moveIntoPlace(target, name) }
            print(summary.line(records: batch.recordCount, tokens: batch.tokenCount, into: dataDir))
            if let snapshot {
                let name = URL(fileURLWithPath: snapshot.path).lastPathComponent
                print("wrote \(dataDir)/\(name): \(snapshot.entries) entries, \(snapshot.bytes) bytes")
            }
        }
    }

    /// Renames the directory built by the import to the name given, and makes that durable.
    private static func moveIntoPlace(_ built: String, _ directory: String) throws {
        guard rename(built, directory) == 0 else {
            let reason = String(cString: strerror(errno))
            throw CommandFailure("the import is complete in \(built) but cannot become \(directory): \(reason)")
        }
        let parent = URL(fileURLWithPath: directory).deletingLastPathComponent().path
        do throws(StorageError) {
            try PosixFileLayer().syncDirectory(parent)
        } catch {
            throw CommandFailure(error.message)
        }
    }

    private func read(_ bytes: [UInt8], progress: (Int) -> Void, _ sink: ImportSink) throws {
        let now = SystemClock().nowSeconds()
        switch format {
        case .jsonl: try JSONLinesImport.read(bytes, now: now, progress: progress, sink)
        case .csv: try CSVImport.read(bytes, now: now, progress: progress, sink)
        case .fossbilling:
            do {
                try FOSSBillingImport.read(bytes, now: now, progress: progress, sink)
            } catch let failure as CommandFailure where !failure.description.contains("nothing was imported") {
                throw CommandFailure("\(file): \(failure.description); nothing was imported")
            }
        }
    }
}

/// What an import did: `imported N keys and M client tokens into D; skipped K: reason n, ...`.
struct ImportSummary {
    /// Rows left out by design, by reason.
    var skipped: [String: Int] = [:]
    /// Rows that could not be imported, with --skip-invalid.
    var invalid = 0

    func line(records: Int, tokens: Int, into directory: String) -> String {
        var reasons = skipped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        if invalid > 0 { reasons.append("invalid \(invalid)") }
        let total = skipped.values.reduce(invalid, +)
        return "imported \(records) keys and \(tokens) client tokens into \(directory); skipped \(total)"
            + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: ", "))
    }
}

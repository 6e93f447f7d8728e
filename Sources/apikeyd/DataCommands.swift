import APIKeyAPI
import APIKeyEngine
import ArgumentParser
import Foundation
import Logging

/// The data directory of a maintenance command: it must exist (a typo must not look like an
/// empty store).
func requireDataDirectory(_ path: String) throws(CommandFailure) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CommandFailure("no data directory at \(path)")
    }
    guard isDirectory.boolValue else { throw CommandFailure("\(path) is not a directory") }
}

/// The engine's log in maintenance commands: warnings and worse, on standard error (standard
/// output carries the command's own output).
let maintenanceLogger: Logger = {
    var logger = Logger(label: "APIKeyEngine", factory: { StreamLogHandler.standardError(label: $0) })
    logger.logLevel = .warning
    return logger
}()

/// Runs a maintenance command's body: a ``CommandFailure`` or a storage error is printed on
/// standard error and becomes the exit status.
func reportingFailures(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as CommandFailure {
        printOnStandardError(failure.description)
        throw ExitCode(failure.status)
    } catch let error as StorageError {
        printOnStandardError(error.message)
        throw ExitCode(1)
    } catch let error as EngineError {
        printOnStandardError(error.message)
        throw ExitCode(1)
    }
}

extension KeyFileFormat: ExpressibleByArgument {}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write every key (and, in JSONL, every client token) of a data directory.",
        discussion:
            "Reads the newest snapshot and the journal without the lock, so it works on a directory a running server is using; the export is consistent as of one journal record. Changes no file in the directory."
    )

    @Option(help: "The data directory.")
    var dataDir = "data/store"

    @Option(help: "jsonl (records, then client tokens) or csv (records only).")
    var format: KeyFileFormat = .jsonl

    @Option(help: "The file to write (default: standard output); written whole, then renamed into place.")
    var output: String?

    func validate() throws {
        guard format != .fossbilling else { throw ValidationError("export writes jsonl or csv") }
    }

    func run() throws {
        try reportingFailures {
            try requireDataDirectory(dataDir)
            let display = ProgressDisplay()
            let engine = try Engine.load(directory: dataDir, progress: display.handler)
            display.finish()
            if let corruption = engine.recoveryReport?.corruption {
                printOnStandardError("warning: the journal is damaged; exporting what precedes it: \(corruption)")
            }
            let sink = try OutputSink(path: output)
            var counter = ExportCounter(total: UInt64(engine.keyCount), display: display)
            let tokens = engine.clientTokens
            var written = tokens.count
            switch format {
            case .csv:
                try writeCSV(engine, to: sink, &counter)
                if !tokens.isEmpty {
                    printOnStandardError("\(tokens.count) client tokens are not in CSV; --format jsonl keeps them")
                }
                written = 0
            default:
                try writeJSONLines(engine, tokens: tokens, to: sink, &counter)
            }
            try sink.finish()
            display.finish()
            printOnStandardError(
                "exported \(counter.done) keys and \(written) client tokens from \(dataDir)\(output.map { " to \($0)" } ?? "")"
            )
        }
    }

    private func writeJSONLines(
        _ engine: Engine, tokens: [(clientID: Int64, token: String)], to sink: OutputSink,
        _ counter: inout ExportCounter
    ) throws {
        try engine.forEachRecord { record in
            var line = record.apiJSON
            line.append(UInt8(ascii: "\n"))
            try sink.write(line)
            counter.advance()
        }
        for (clientID, token) in tokens {
            var line = JSONValue.object([
                JSONMember("client_id", .integer(clientID)), JSONMember("api_token", .string(token)),
            ])
            .encoded
            line.append(UInt8(ascii: "\n"))
            try sink.write(line)
        }
    }

    private func writeCSV(_ engine: Engine, to sink: OutputSink, _ counter: inout ExportCounter) throws {
        var line: [UInt8] = []
        func write(_ fields: [String]) throws {
            line.removeAll(keepingCapacity: true)
            for (index, field) in fields.enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                Self.appendCSVField(field, to: &line)
            }
            line.append(UInt8(ascii: "\n"))
            try sink.write(line)
        }
        try write(KeyFileFormat.recordFields)
        try engine.forEachRecord { record in
            try write(Self.csvRow(record))
            counter.advance()
        }
    }

    /// Appends `field` as RFC 4180 says: quoted, with its quotes doubled, when it holds a comma,
    /// a quote or a line break; as it is otherwise. Hand-written: CSV.swift's writer, which the
    /// import's reader is, writes a byte at a time through an OutputStream and took 62 s to
    /// export 925,659 records where this takes seconds (README, Measured).
    static func appendCSVField(_ field: String, to line: inout [UInt8]) {
        let utf8 = field.utf8
        let special = utf8.contains {
            $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r")
        }
        guard special else {
            line.append(contentsOf: utf8)
            return
        }
        line.append(UInt8(ascii: "\""))
        for byte in utf8 {
            if byte == UInt8(ascii: "\"") { line.append(byte) }
            line.append(byte)
        }
        line.append(UInt8(ascii: "\""))
    }

    /// A record's CSV fields, in ``KeyFileFormat/recordFields`` order.
    static func csvRow(_ record: KeyRecord) -> [String] {
        [
            String(record.orderID), String(record.clientID), record.apiKey,
            String(decoding: record.configJSON, as: UTF8.self), record.status.rawValue,
            record.expiresAt.map(Timestamp.format) ?? "", Timestamp.format(record.createdAt),
            Timestamp.format(record.updatedAt),
        ]
    }
}

/// Counts exported records for the progress display.
struct ExportCounter {
    let total: UInt64
    let display: ProgressDisplay
    private(set) var done: UInt64 = 0

    init(total: UInt64, display: ProgressDisplay) {
        self.total = total
        self.display = display
    }

    mutating func advance() {
        done += 1
        if done % 16384 == 0 || done == total {
            display.show(ProgressReport(phase: "exporting", done: done, total: total))
        }
    }
}

/// Standard output, or a file written under a temporary name and renamed into place when done.
final class OutputSink {
    private let handle: FileHandle
    private let path: String?
    private var buffer: [UInt8] = []

    init(path: String?) throws(CommandFailure) {
        self.path = path
        guard let path else {
            handle = FileHandle.standardOutput
            return
        }
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
            let handle = FileHandle(forWritingAtPath: temporary)
        else { throw CommandFailure("cannot create \(temporary)") }
        self.handle = handle
    }

    func write(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func flush() throws {
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw CommandFailure(
                "cannot write \(path.map { $0 + ".tmp" } ?? "standard output"): \(error.localizedDescription)")
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is left and, for a file, fsyncs it and renames it into place.
    func finish() throws {
        try flush()
        guard let path else { return }
        do {
            try handle.synchronize()
            try handle.close()
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
        } catch {
            throw CommandFailure("cannot finish \(path): \(error.localizedDescription)")
        }
    }
}

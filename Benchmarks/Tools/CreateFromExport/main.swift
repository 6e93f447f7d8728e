// Makes, by `create` calls, a data directory holding the same records as an `apikeyd export`
// (JSON Lines): each record's order, client, config, status and expiry through `create` (the
// key is generated, of the length its config asks for), each client token through
// `resetClientToken`, then the snapshot `close` writes. import.sh starts the server on it
// beside the imported directory, so both start-ups load the same data.
// Usage: CreateFromExport EXPORT.jsonl DIRECTORY
import APIKeyEngine
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 3, let text = try? String(contentsOfFile: arguments[1], encoding: .utf8) else {
    FileHandle.standardError.write(Data("usage: CreateFromExport EXPORT.jsonl DIRECTORY\n".utf8))
    exit(2)
}
var options = StorageOptions()
options.fsync = .no
options.snapshotAfterJournalBytes = .max
let engine = try Engine.open(directory: arguments[2], options: options)
let started = Date()
var keys = 0
var tokens = 0
for line in text.split(separator: "\n") {
    let value = try JSONValue.parse(String(line))
    func integer(_ name: String) -> Int64? {
        if case .number(let digits)? = value[name] { return Int64(digits) }
        return nil
    }
    guard value["api_key"] != nil else {
        _ = try engine.deferred.resetClientToken(clientID: integer("client_id")!)
        tokens += 1
        continue
    }
    var expiresAt: Int64?
    if case .string(let time)? = value["expires_at"] { expiresAt = Timestamp.parse(time) }
    guard case .string(let status)? = value["status"], let keyStatus = KeyStatus(rawValue: status) else { exit(1) }
    _ = try engine.deferred.create(
        NewKey(
            orderID: integer("order_id"), clientID: integer("client_id")!, config: value["config"] ?? .object([]),
            status: keyStatus, expiresAt: expiresAt))
    keys += 1
}
try engine.close()
print("created \(keys) keys and \(tokens) client tokens in \(Date().timeIntervalSince(started)) s")

// Builds a data directory of N keys plus a journal of M records, and measures the snapshot and
// a cold start-up in-process. Also writes the same records as a Redis protocol file, so
// durability.sh can load Redis with identical data.
//
// usage: DurabilityBenchmark <data-dir> <keys> <journal-records> <redis-protocol-file> [<keys-file>]
// With a keys file, every key is also written there, one per line, for HTTP load scripts.
// With OPEN_ONLY=1 in the environment it only opens <data-dir> (made by an earlier run), in a
// fresh process, and prints the start-up time and the process's resident memory then.

import APIKeyEngine

#if canImport(Glibc)
    import Glibc
#endif

func monotonicSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard (5...6).contains(arguments.count), let keyCount = Int(arguments[2]), let journalRecords = Int(arguments[3]) else {
    fatalError("usage: DurabilityBenchmark <data-dir> <keys> <journal-records> <redis-protocol-file> [<keys-file>]")
}
let directory = arguments[1]
let respPath = arguments[4]

var options = StorageOptions()
options.fsync = .no
options.snapshotOnClose = false
options.snapshotIntervalSeconds = 0
options.snapshotAfterJournalBytes = Int.max
var configuration = EngineConfiguration()
configuration.maximumKeys = keyCount + 1

/// This process's resident memory in kB, from /proc/self/status.
func residentKilobytes() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(cString: line)
        if text.hasPrefix("VmRSS:") { return Int(text.split(separator: " ")[1]) ?? -1 }
    }
    return -1
}

if getenv("OPEN_ONLY") != nil {
    let start = monotonicSeconds()
    let reopened = try Engine.open(directory: directory, options: options, configuration: configuration)
    print("open only: \(monotonicSeconds() - start) s, \(reopened.keyCount) keys, RSS \(residentKilobytes()) kB")
    try reopened.close()
    exit(0)
}

let tiers = ["free", "starter", "pro", "enterprise"]
var start = monotonicSeconds()
let engine = try Engine.open(directory: directory, options: options, configuration: configuration)
var keys: [(Int64, String)] = []
keys.reserveCapacity(keyCount)
for index in 0..<keyCount {
    let config = JSONValue.object([
        JSONMember("custom_monthlyLimit", .integer(250 * (index % 40 + 1))),
        JSONMember("custom_tier", .string(tiers[index % tiers.count])),
    ])
    let record = try engine.create(NewKey(clientID: Int64(index % 50_000 + 1), config: config))
    keys.append((record.orderID, record.apiKey))
}
print("created \(keyCount) keys in \(monotonicSeconds() - start) s")

let summary = try engine.snapshot()
print(
    "snapshot: \(summary.entries) entries, \(summary.bytes) bytes (\(Double(summary.bytes) / Double(summary.entries)) bytes/key), \(Double(summary.nanoseconds) / 1e9) s"
)

start = monotonicSeconds()
for index in 0..<journalRecords {
    let (orderID, _) = keys[index * 7919 % keys.count]
    try engine.update(KeyChanges(orderID: orderID, valid: index % 2 == 1))
}
print("journaled \(journalRecords) updates in \(monotonicSeconds() - start) s")
try engine.close()

// The same records as Redis SET commands: the key, and the record's JSON as get returns it.
let descriptor = open(respPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
var buffer: [UInt8] = []
func bulk(_ bytes: [UInt8], into buffer: inout [UInt8]) {
    buffer += Array("$\(bytes.count)\r\n".utf8) + bytes + Array("\r\n".utf8)
}
for (orderID, key) in keys {
    let record = try engine.get(.orderID(orderID))
    let json =
        #"{"order_id": \#(record.orderID), "client_id": \#(record.clientID), "api_key": "\#(record.apiKey)", "config": "#
        + String(decoding: record.configJSON, as: UTF8.self)
        + #", "status": "\#(record.status.rawValue)", "expires_at": null, "created_at": "\#(Timestamp.format(record.createdAt))", "updated_at": "\#(Timestamp.format(record.updatedAt))"}"#
    buffer += Array("*3\r\n".utf8)
    bulk(Array("SET".utf8), into: &buffer)
    bulk(Array(key.utf8), into: &buffer)
    bulk(Array(json.utf8), into: &buffer)
    if buffer.count > 1 << 20 {
        _ = buffer.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        buffer.removeAll(keepingCapacity: true)
    }
}
_ = buffer.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
close(descriptor)

if arguments.count == 6 {
    let keysFile = open(arguments[5], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let lines = Array(keys.map(\.1).joined(separator: "\n").utf8) + [0x0A]
    _ = lines.withUnsafeBytes { write(keysFile, $0.baseAddress, $0.count) }
    close(keysFile)
}

// Cold start: snapshot load plus journal replay, three times.
for run in 1...3 {
    start = monotonicSeconds()
    let reopened = try Engine.open(directory: directory, options: options, configuration: configuration)
    let seconds = monotonicSeconds() - start
    let report = reopened.recoveryReport!
    print(
        "start-up \(run): \(seconds) s, \(reopened.keyCount) keys, \(report.snapshotEntries) snapshot entries, \(report.replayedRecords) journal records"
    )
    try reopened.close()
}

// Memory of usage metering, in-process. With `plain`: the resident size of an engine holding the
// keys without limits. With `limited`: the same keys each with a monthly limit, then after each
// round of a long verify run (every key verified once per round, in random order), then after one
// verify per key with a distinct request ID (remembered answers). Run both modes, one process
// each, and compare.
//
// usage: UsageMemoryBenchmark plain|limited [keys] [rounds]

import APIKeyEngine

#if canImport(Glibc)
    import Glibc
#endif

/// The resident set size in bytes, from /proc/self/statm.
func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, 256, file) != nil else { return 0 }
    let fields = String(cString: line).split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

func megabytes(_ bytes: Int) -> String {
    let tenths = bytes * 10 / 1_000_000
    return (bytes < 0 ? "-" : "") + "\(abs(tenths) / 10).\(abs(tenths) % 10) MB"
}

let arguments = CommandLine.arguments
let limited = arguments.count > 1 && arguments[1] == "limited"
let keyCount = arguments.count > 2 ? Int(arguments[2]) ?? 1_000_000 : 1_000_000
let rounds = arguments.count > 3 ? Int(arguments[3]) ?? 10 : 10

var configuration = EngineConfiguration()
configuration.maximumKeys = keyCount
let engine = Engine(configuration: configuration)
var keys: [String] = []
keys.reserveCapacity(keyCount)
for index in 0..<keyCount {
    var members = [JSONMember("custom_tier", .string(["free", "pro"][index % 2]))]
    if limited { members.append(JSONMember("custom_monthlyLimit", .integer(1_000_000_000))) }
    keys.append(try engine.create(NewKey(clientID: Int64(index % 50_000 + 1), config: .object(members))).apiKey)
}
keys.shuffle()
keys = keys.map { String(decoding: Array($0.utf8), as: UTF8.self) }
let loaded = residentBytes()
print("\(keyCount) keys \(limited ? "with" : "without") a monthly limit: RSS \(megabytes(loaded))")
guard limited else { exit(0) }
var previous = loaded
for round in 1...rounds {
    for key in keys { _ = try engine.verify(key: key) }
    let now = residentBytes()
    print(
        "after round \(round) of verifies (\(round * keyCount) in all): RSS \(megabytes(now)) (\(megabytes(now - previous)))"
    )
    previous = now
}
for (index, key) in keys.enumerated() { _ = try engine.verify(key: key, cost: 0, requestID: "request-\(index)") }
let remembered = residentBytes()
print(
    "after \(keyCount) verifies with distinct request IDs: RSS \(megabytes(remembered)), "
        + "\(megabytes(remembered - previous)), \((remembered - previous) / keyCount) B per remembered answer")
print("uses of the first key: \(try engine.usage(.key(keys[0])).used)")

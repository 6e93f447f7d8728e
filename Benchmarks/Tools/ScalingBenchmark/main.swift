// In-process `check` throughput on 1, 2, 4, 8 and 16 threads over 1,000,000 keys, for measuring
// how the engine scales on machines with more cores. Built as a static binary by
// Benchmarks/scaling.sh so it runs where no Swift toolchain is installed.
//
// usage: ROUNDS=3 ScalingBenchmark [keys] [seconds-per-step] [thread counts...]

import APIKeyEngine
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

func monotonicNanoseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
}

let arguments = CommandLine.arguments
let keyCount = arguments.count > 1 ? Int(arguments[1]) ?? 1_000_000 : 1_000_000
let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 3 : 3
let threadCounts = arguments.count > 3 ? arguments[3...].compactMap { Int($0) } : [1, 2, 4, 8, 16]

var configuration = EngineConfiguration()
configuration.maximumKeys = keyCount
let engine = Engine(configuration: configuration)
var keys: [String] = []
keys.reserveCapacity(keyCount)
let tiers = ["free", "starter", "pro", "enterprise"]
for index in 0..<keyCount {
    let config = JSONValue.object([
        JSONMember("custom_monthlyLimit", .integer(250 * (index % 40 + 1))),
        JSONMember("custom_tier", .string(tiers[index % tiers.count])),
    ])
    keys.append(try engine.create(NewKey(clientID: Int64(index % 50_000 + 1), config: config)).apiKey)
}
keys.shuffle()
// Fresh copies in lookup order: a server checks the key of the request it just read (in cache).
let shuffled = keys.map { String(decoding: Array($0.utf8), as: UTF8.self) }
print("cores online: \(sysconf(Int32(_SC_NPROCESSORS_ONLN))), keys: \(keyCount), \(seconds) s per step")

/// Checks per second with `threads` threads looking keys up for `seconds`.
func measure(threads: Int) -> Double {
    let total = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    let start = monotonicNanoseconds()
    let group = DispatchGroup()
    for thread in 0..<threads {
        group.enter()
        DetachedThread.start {
            var position = (thread * 7919) % shuffled.count
            var done = 0
            while !stop.load(ordering: .relaxed) {
                for _ in 0..<1000 {
                    _ = try? engine.check(key: shuffled[position])
                    position += 1
                    if position == shuffled.count { position = 0 }
                }
                done += 1000
            }
            total.add(done, ordering: .relaxed)
            group.leave()
        }
    }
    usleep(UInt32(seconds * 1_000_000))
    stop.store(true, ordering: .relaxed)
    group.wait()
    let elapsed = Double(monotonicNanoseconds() - start) / 1e9
    return Double(total.load(ordering: .relaxed)) / elapsed
}

// The thread counts take turns, ROUNDS times (3 by default), so every count sees the same moments
// of a shared machine; the summary compares medians.
let rounds = max(1, Int(getenv("ROUNDS").map { String(cString: $0) } ?? "") ?? 3)
var rates: [Int: [Double]] = [:]
for round in 1...rounds {
    for threads in threadCounts {
        let rate = measure(threads: threads)
        rates[threads, default: []].append(rate)
        print("round \(round), threads \(threads): \(Int(rate)) checks/s")
    }
}
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
let single = median(rates[threadCounts[0]]!) / Double(threadCounts[0])
print("medians of \(rounds) rounds:")
for threads in threadCounts {
    let rate = median(rates[threads]!)
    print(
        "threads \(threads): \(Int(rate)) checks/s, \(Int(rate / Double(threads))) per thread, \(twoDecimals(rate / single)) x one thread"
    )
}

/// A thread of its own (not Dispatch's pool, whose width follows the cores it sees).
enum DetachedThread {
    static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var handle = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(
            &handle, nil,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, box)
        pthread_detach(handle)
    }
}

func twoDecimals(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
}

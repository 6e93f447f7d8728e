import TestSupport
import Testing

@testable import APIKeyEngine

/// Seeded workloads on a file layer that keeps unsynced writes aside and, at a simulated power
/// cut, keeps, drops, cuts or garbles them. After recovery the state must be exactly the state
/// after some prefix of the writes that were attempted, and that prefix must include every write
/// the fsync policy promised: under `always`, every acknowledged one.
@Suite struct CrashSimulationTests {
    /// A comparable picture of the whole state.
    private struct Picture: Equatable {
        var records: [KeyRecord]
        var tokens: [Int64: String]
    }

    @Test(arguments: FsyncPolicy.allCases)
    func recoveryAfterASimulatedPowerCutHoldsTheInvariants(_ policy: FsyncPolicy) throws {
        for seed in UInt64(1)...15 {
            let policyIndex = UInt64(FsyncPolicy.allCases.firstIndex(of: policy)!)
            try run(seed: seed &* 7919 &+ policyIndex, policy: policy)
        }
    }

    private func run(seed: UInt64, policy: FsyncPolicy) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var random = SplitMix64(seed: seed)
        let files = FaultyFileLayer(seed: seed)
        var options = StorageOptions()
        options.fsync = policy
        options.segmentBytes = 4096
        options.snapshotOnClose = false
        options.snapshotIntervalSeconds = 0
        let engine = try Engine.open(directory: directory.path, options: options, files: files)
        files.crash(afterOperations: Int(20 + random.next() % 400))

        var tokens: [Int64: String] = [:]
        /// The state after each acknowledged write; index 0 is the empty start.
        var pictures = [Picture(records: [], tokens: [:])]
        /// The state the write in flight at the crash would have produced, if it got that far.
        var inFlight: Picture?
        loop: for step in 0..<2000 {
            do {
                switch random.next() % 10 {
                case 0...3:
                    try engine.create(
                        NewKey(
                            clientID: Int64(random.next() % 5 + 1),
                            config: .object([JSONMember("custom_s", .integer(step))])))
                case 4, 5:
                    let records = engine.allRecords()
                    guard !records.isEmpty else { continue }
                    let record = records[Int(random.next() % UInt64(records.count))]
                    try engine.update(KeyChanges(orderID: record.orderID, valid: record.status != .active))
                case 6:
                    let records = engine.allRecords()
                    guard !records.isEmpty else { continue }
                    try engine.reset(.orderID(records[Int(random.next() % UInt64(records.count))].orderID))
                case 7:
                    let records = engine.allRecords()
                    guard !records.isEmpty else { continue }
                    try engine.delete(orderID: records[Int(random.next() % UInt64(records.count))].orderID)
                case 8:
                    let client = Int64(random.next() % 3 + 1)
                    tokens[client] = try engine.resetClientToken(clientID: client)
                default:
                    try engine.snapshot()
                }
                pictures.append(Picture(records: engine.allRecords(), tokens: tokens))
            } catch {
                // The write that met the crash: applied in memory or not, it was never
                // acknowledged. Its in-memory effect is what recovery may or may not find.
                inFlight = Picture(records: engine.allRecords(), tokens: tokens)
                break loop
            }
        }
        engine.abandonForTesting()

        let reopened = try Engine.open(directory: directory.path, options: options)
        var recoveredTokens: [Int64: String] = [:]
        for client in Int64(1)...3 {
            for candidate in Set(pictures.compactMap { $0.tokens[client] })
            where reopened.authenticateClient(token: candidate) == client {
                recoveredTokens[client] = candidate
            }
        }
        let recovered = Picture(records: reopened.allRecords(), tokens: recoveredTokens)
        let report = reopened.recoveryReport!
        try reopened.close()

        let candidates = pictures + (inFlight.map { [$0] } ?? [])
        let matching = candidates.lastIndex(of: recovered)
        #expect(matching != nil, "seed \(seed) \(policy): the recovered state is no prefix of the writes; \(report)")
        if policy == .always, let matching {
            #expect(matching >= pictures.count - 1, "seed \(seed): acknowledged writes lost; \(report)")
        }
    }
}

import PropertyBased
import TestSupport
import Testing

@testable import APIKeyEngine

/// The engine against a plain dictionary of records: random sequences of create, update, reset,
/// lifecycle changes and deletes, with configs of every size from empty to the maximum, on a real
/// data directory, with snapshots, clean restarts and crash restarts among them.
@Suite struct EngineModelTests {
    /// Custom-parameter lengths from empty to the largest a 16 KiB config holds, with records (about
    /// twice the length) on both sides of every arena chunk size; some just over the limit.
    static let blobSizes: [Int] =
        [0, 1, 50, 1_000, 2_040, 2_100, 4_000, 4_100, 8_100, 8_200, 12_000, 16_000] + [
            16_363, 16_364, 16_365, 16_366, 16_367, 16_400,
        ]

    /// One config of `blobSize` characters in a custom parameter, and what `get_info` shows of it.
    static func config(blobSize: Int, step: Int) -> JSONValue {
        .object([
            JSONMember(
                "custom_blob", .string(String(repeating: String(UnicodeScalar(UInt8(97 + step % 26))), count: blobSize))
            ),
            JSONMember("length", .integer(Int64(8 + step % 20))),
        ])
    }

    @Test func matchesADictionaryAcrossRestarts() async throws {
        let runs = FuzzBudget.scaled(20)
        await HeavyWork.run {
            await propertyCheck(count: runs, input: Gen.uint64(in: 0...UInt64.max).array(of: 20...70)) { operations in
                try Self.run(operations)
            }
        }
    }

    static func run(_ operations: [UInt64]) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock(seconds: 1_767_225_600)
        func open() throws -> Engine {
            let engine = try Engine.open(directory: directory.path, options: .forModelTests, clock: clock)
            #expect(engine.integrityProblems() == [])
            return engine
        }
        var engine = try open()
        var model: [Int64: KeyRecord] = [:]
        // Assigned order IDs follow the highest ever used, deleted ones included.
        var highestOrder: Int64 = 0
        for (step, operation) in operations.enumerated() {
            clock.advance(seconds: 1)
            let now = clock.nowSeconds()
            let orders = model.keys.sorted()
            let target = orders.isEmpty ? 1 : orders[Int(operation >> 40) % orders.count]
            let blobSize = blobSizes[Int((operation >> 8) % UInt64(blobSizes.count))]
            let config = Self.config(blobSize: blobSize, step: step)
            let fits = config.encoded.count <= engine.configuration.maximumConfigBytes
            switch operation % 10 {
            case 0, 1, 2:
                let client = Int64(operation >> 20 % 4 + 1)
                do {
                    let created = try engine.create(NewKey(clientID: client, config: config))
                    #expect(fits, "a config of \(config.encoded.count) bytes was accepted")
                    #expect(model[created.orderID] == nil)
                    #expect(created.orderID == highestOrder + 1)
                    highestOrder = created.orderID
                    model[created.orderID] = KeyRecord(
                        orderID: created.orderID, clientID: client, apiKey: created.apiKey, config: config,
                        status: .active, expiresAt: nil, createdAt: now, updatedAt: now)
                } catch {
                    #expect(!fits, "\(error)")
                }
            case 3, 4:
                guard var record = model[target] else { continue }
                let status = KeyStatus.allCases[Int(operation >> 30 % 3)]
                let expiry: Int64? = operation & 1 << 50 == 0 ? nil : now + Int64(operation >> 52 % 5) - 2
                do {
                    try engine.update(
                        KeyChanges(orderID: target, config: config, status: status, expiresAt: .some(expiry)))
                    #expect(fits)
                    record.config = config
                    record.status = status
                    record.expiresAt = expiry
                    record.updatedAt = now
                    model[target] = record
                } catch {
                    #expect(!fits, "\(error)")
                }
            case 5:
                guard var record = model[target] else { continue }
                let reset = try engine.reset(operation & 1 << 45 == 0 ? .orderID(target) : .key(record.apiKey))
                #expect(reset.apiKey != record.apiKey)
                #expect(throws: EngineError.self) { try engine.get(.key(record.apiKey)) }
                record.apiKey = reset.apiKey
                record.updatedAt = now
                model[target] = record
            case 6:
                guard model[target] != nil else { continue }
                try engine.delete(orderID: target)
                model[target] = nil
            case 7:
                try engine.snapshot()
            case 8:
                try engine.close()
                engine = try open()
            default:
                // A crash: nothing closed, nothing synced beyond what the kernel has.
                engine.abandonForTesting()
                engine = try open()
            }
            try expectAgrees(engine, model, clock, "step \(step)")
        }
        try engine.close()
        engine = try open()
        try expectAgrees(engine, model, clock, "after the last restart")
        try engine.close()
    }

    static func expectAgrees(_ engine: Engine, _ model: [Int64: KeyRecord], _ clock: ManualClock, _ when: String) throws
    {
        #expect(engine.keyCount == model.count, "\(when)")
        let counts = engine.statistics.keysByStatus
        for status in KeyStatus.allCases {
            #expect(counts[status] == model.values.count { $0.status == status }, "\(when): \(status) keys")
        }
        for (orderID, expected) in model {
            #expect(try engine.get(.orderID(orderID)) == expected, "\(when): order \(orderID)")
            #expect(try engine.get(.key(expected.apiKey)) == expected, "\(when): key of order \(orderID)")
            // SPEC: valid when active and either without expiry or expiring after now.
            let valid =
                expected.status == .active
                && (expected.expiresAt.map { $0 > clock.nowNanoseconds() / 1_000_000_000 } ?? true)
            #expect(try engine.check(key: expected.apiKey) == valid, "\(when): check of order \(orderID)")
            let info = try engine.getInfo(key: expected.apiKey)
            #expect(info.valid == valid && info.customParametersJSON == expected.customParametersJSON, "\(when)")
        }
        #expect(engine.allRecords() == model.keys.sorted().map { model[$0]! }, "\(when)")
    }
}

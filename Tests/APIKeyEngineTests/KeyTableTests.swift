import PropertyBased
import Testing

@testable import APIKeyEngine

@Suite struct KeyTableTests {
    private func record(_ key: String, order: Int64, client: Int64 = 1) -> KeyRecord {
        KeyRecord(
            orderID: order, clientID: client, apiKey: key, config: .object([]), status: .active, expiresAt: nil,
            createdAt: 0, updatedAt: 0)
    }

    @Test func findsOnlyTheExactKey() {
        let table = KeyTable(shardCountLog2: 2, hashFunction: SeededXXH3(seed: 42))
        #expect(table.insert(record("AB-CD", order: 1)))
        #expect(table.read("AB-CD") { $0.orderID } == 1)
        #expect(table.read("ab-cd") { $0.orderID } == nil)
        #expect(table.read("ABCD") { $0.orderID } == nil)
        #expect(table.read("AB-CD ") { $0.orderID } == nil)
        #expect(table.read("") { $0.orderID } == nil)
    }

    @Test func aSharedHashNeverMatchesAnotherKey() {
        let table = KeyTable(shardCountLog2: 0, hashFunction: ConstantHash())
        for index in 0..<100 { #expect(table.insert(record("key-\(index)", order: Int64(index + 1)))) }
        for index in 0..<100 { #expect(table.read("key-\(index)") { $0.orderID } == Int64(index + 1)) }
        #expect(table.read("key-100") { $0.orderID } == nil)
        #expect(!table.insert(record("key-7", order: 500)))
        #expect(table.count == 100)
    }

    @Test func removalKeepsEveryProbeRunReachable() {
        let table = KeyTable(shardCountLog2: 0, hashFunction: TinyHash())
        let keys = (0..<200).map { "k\($0)" }
        for (index, key) in keys.enumerated() { _ = table.insert(record(key, order: Int64(index + 1))) }
        for key in keys.enumerated() where key.offset % 3 == 0 {
            #expect(table.remove(key.element)?.apiKey == key.element)
        }
        for (index, key) in keys.enumerated() {
            #expect(table.contains(key) == (index % 3 != 0), "key \(key)")
        }
    }

    @Test func updateChangesTheStoredRecordInPlace() {
        let table = KeyTable(shardCountLog2: 1, hashFunction: SeededXXH3(seed: 1))
        _ = table.insert(record("K", order: 1))
        #expect(table.update("K") { $0.status = .suspended } != nil)
        #expect(table.read("K") { $0.status } == .suspended)
        #expect(table.update("missing") { $0.status = .canceled } == nil)
    }

    /// Random inserts, removals, updates and reads against a plain dictionary: after every step
    /// both agree on every key of the pool.
    @Test(arguments: [0, 1, 2])
    func behavesLikeADictionary(_ hashKind: Int) async {
        await propertyCheck(count: 150, input: Gen.int(in: 0...1_000_000).array(of: 1...300)) { operations in
            switch hashKind {
            case 0: Self.check(operations, KeyTable(shardCountLog2: 2, hashFunction: SeededXXH3(seed: 7)))
            case 1: Self.check(operations, KeyTable(shardCountLog2: 0, hashFunction: TinyHash()))
            default: Self.check(operations, KeyTable(shardCountLog2: 0, hashFunction: ConstantHash()))
            }
        }
    }

    private static func check<Hash>(_ operations: [Int], _ table: KeyTable<Hash>) {
        var model: [String: Int64] = [:]
        let pool = (0..<40).map { "key-\($0)" }
        for (step, operation) in operations.enumerated() {
            let key = pool[operation / 4 % pool.count]
            switch operation % 4 {
            case 0:
                let inserted = table.insert(
                    KeyRecord(
                        orderID: Int64(step + 1), clientID: 1, apiKey: key, config: .object([]), status: .active,
                        expiresAt: nil, createdAt: 0, updatedAt: 0))
                #expect(inserted == (model[key] == nil))
                if inserted { model[key] = Int64(step + 1) }
            case 1:
                #expect(table.remove(key)?.orderID == model.removeValue(forKey: key))
            case 2:
                let changed: Void? = table.update(key) { $0.clientID = Int64(step + 100) }
                #expect((changed != nil) == (model[key] != nil))
            default:
                #expect(table.read(key) { $0.orderID } == model[key])
            }
        }
        for key in pool { #expect(table.read(key) { $0.orderID } == model[key]) }
        #expect(table.count == model.count)
    }

    @Test func growsFarBeyondItsInitialCapacity() {
        let table = KeyTable(shardCountLog2: 1, hashFunction: SeededXXH3(seed: 3))
        for index in 0..<20_000 { #expect(table.insert(record("grow-\(index)", order: Int64(index + 1)))) }
        #expect(table.count == 20_000)
        #expect((0..<20_000).allSatisfy { table.read("grow-\($0)") { $0.orderID } == Int64($0 + 1) })
    }
}

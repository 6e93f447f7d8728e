import PropertyBased
import Testing

@testable import APIKeyEngine

@Suite struct OrderIndexTests {
    /// Random sets, removals and lookups against a dictionary; the entries stay sorted, and a bulk
    /// load (unsorted appends, then one sort) gives the same index.
    @Test func behavesLikeASortedDictionary() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...10_000).array(of: 1...200)) { operations in
            var index = OrderIndex()
            var model: [Int64: UInt64] = [:]
            for (step, operation) in operations.enumerated() {
                let orderID = Int64(operation / 3 % 50 + 1)
                switch operation % 3 {
                case 0:
                    index.set(orderID, keyHash: UInt64(step))
                    model[orderID] = UInt64(step)
                case 1:
                    #expect(index.remove(orderID) == model.removeValue(forKey: orderID))
                default:
                    #expect(index[orderID] == model[orderID])
                }
            }
            #expect(index.entries.map(\.orderID) == model.keys.sorted())
            #expect(index.entries.map(\.keyHash) == model.keys.sorted().map { model[$0]! })
            var loaded = OrderIndex()
            for (orderID, keyHash) in model.shuffled() { loaded.appendUnsorted(orderID, keyHash: keyHash) }
            loaded.sortAfterLoading()
            #expect(loaded.entries.map(\.orderID) == index.entries.map(\.orderID))
            #expect(loaded.entries.map(\.keyHash) == index.entries.map(\.keyHash))
        }
    }
}

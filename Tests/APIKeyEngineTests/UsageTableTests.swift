import PropertyBased
import Testing

@testable import APIKeyEngine

/// The usage table's open-addressed slots against a dictionary: stores, replacements, removals
/// (backward shift) and growth, with key hashes drawn from a small range so that probe runs
/// collide and wrap; and moves between shards as a reset does.
@Suite struct UsageTableTests {
    private func entry(_ orderID: Int64, hash: UInt64, used: Int64, limit: Int64?) -> UsageTable.Entry {
        var meter = UsageMeter()
        if used > 0 { meter.add(used, in: UsageMonth(year: 2026, month: 3)!) }
        return UsageTable.Entry(keyHash: hash, orderID: orderID, limits: UsageLimits(monthlyLimit: limit), meter: meter)
    }

    @Test func slotsMatchADictionary() async {
        await propertyCheck(count: 200, input: Gen.uint64(in: 0...UInt64.max).array(of: 1...400)) { operations in
            var slots = UsageTable.Slots()
            var model: [Int64: UsageTable.Entry] = [:]
            for operation in operations {
                let orderID = Int64(operation % 97) + 1
                // Hashes in a range of 64 (and wrapping at the table's end) collide often.
                let hash = (operation >> 8) % 64 | (UInt64(orderID) << 50)
                let existing = model[orderID]
                switch operation >> 20 % 4 {
                case 0, 1:
                    let stored = entry(
                        orderID, hash: existing?.keyHash ?? hash, used: Int64(operation >> 24 % 5),
                        limit: operation >> 30 % 2 == 0 ? nil : 10)
                    slots.store(stored)
                    model[orderID] = stored.isEmpty ? nil : stored
                case 2:
                    if let existing {
                        #expect(slots.remove(keyHash: existing.keyHash, orderID: orderID) == existing)
                        model[orderID] = nil
                    } else {
                        #expect(slots.remove(keyHash: hash, orderID: orderID) == nil)
                    }
                default:
                    if let existing { #expect(slots.entry(keyHash: existing.keyHash ^ 1, orderID: orderID) == nil) }
                }
                #expect(slots.count == model.count)
                for (id, expected) in model {
                    #expect(slots.entry(keyHash: expected.keyHash, orderID: id) == expected, "order \(id)")
                }
            }
            #expect(Set(slots.entries().map(\.orderID)) == Set(model.keys))
        }
    }

    @Test func aPutMovesUsageToTheNewKeysShardAndKeepsEarlierMonths() {
        let table = UsageTable()
        // Shards are picked by bits 40-47: these two hashes lie in different shards.
        let (first, second): (UInt64, UInt64) = (1 << 40 | 7, 2 << 40 | 7)
        // A new order gets no slot from its put (its first verify makes one).
        table.put(orderID: 9, from: nil, to: first, limits: { UsageLimits(monthlyLimit: 5) }) {}
        #expect(table.count == 0)
        table.withShard(keyHash: first) { slots in
            var entry = UsageTable.Entry(
                keyHash: first, orderID: 9, limits: UsageLimits(monthlyLimit: 5), meter: UsageMeter())
            entry.meter.add(3, in: UsageMonth(year: 2026, month: 2)!)
            entry.meter.add(2, in: UsageMonth(year: 2026, month: 3)!)
            slots.store(entry)
        }
        var limitsRead = 0
        table.put(
            orderID: 9, from: first, to: second,
            limits: {
                limitsRead += 1
                return UsageLimits(monthlyLimit: 7)
            }
        ) {}
        #expect(limitsRead == 1)
        #expect(table.withShard(keyHash: first) { $0.entry(keyHash: first, orderID: 9) } == nil)
        let moved = table.withShard(keyHash: second) { $0.entry(keyHash: second, orderID: 9) }
        #expect(moved?.meter.used(in: UsageMonth(year: 2026, month: 2)!) == 3)
        #expect(moved?.meter.used(in: UsageMonth(year: 2026, month: 3)!) == 2)
        #expect(moved?.limits == UsageLimits(monthlyLimit: 7))
        // An order without a slot is not read at all.
        table.put(
            orderID: 10, from: first, to: second,
            limits: {
                limitsRead += 1
                return UsageLimits()
            }
        ) {}
        #expect(limitsRead == 1)
        table.delete(orderID: 9, keyHash: second) {}
        #expect(table.count == 0)
    }
}

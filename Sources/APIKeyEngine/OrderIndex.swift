/// The engine's index by order: every order ID in ascending order with the hash of its key (see
/// ``KeyTable/record(orderID:hash:)``), 16 bytes an order in one array, searched by bisection.
///
/// A dictionary from order ID to key hash took about three times the memory and, at start-up, a
/// hashed insert per snapshot entry; orders mostly arrive in ascending order, so keeping the array
/// sorted is an append.
struct OrderIndex {
    struct Entry {
        var orderID: Int64
        var keyHash: UInt64
    }

    /// Ascending by order ID.
    private(set) var entries: [Entry] = []

    var count: Int { entries.count }

    /// The index of the first entry whose order ID is not less than `orderID`.
    private func position(_ orderID: Int64) -> Int {
        entries.partitionIndex { $0.orderID < orderID }
    }

    /// The key hash of `orderID`; nil when there is no such order.
    subscript(orderID: Int64) -> UInt64? {
        let index = position(orderID)
        return index < entries.count && entries[index].orderID == orderID ? entries[index].keyHash : nil
    }

    /// Records `keyHash` for `orderID`, adding the order in its place when it is new.
    mutating func set(_ orderID: Int64, keyHash: UInt64) {
        if entries.last.map({ $0.orderID < orderID }) ?? true {
            entries.append(Entry(orderID: orderID, keyHash: keyHash))
            return
        }
        let index = position(orderID)
        if index < entries.count, entries[index].orderID == orderID {
            entries[index].keyHash = keyHash
        } else {
            entries.insert(Entry(orderID: orderID, keyHash: keyHash), at: index)
        }
    }

    /// Removes `orderID` and returns its key hash; nil when there is no such order.
    @discardableResult
    mutating func remove(_ orderID: Int64) -> UInt64? {
        let index = position(orderID)
        guard index < entries.count, entries[index].orderID == orderID else { return nil }
        return entries.remove(at: index).keyHash
    }

    /// Adds an order without keeping the order, for loading a snapshot (each order once);
    /// ``sortAfterLoading()`` must follow.
    mutating func appendUnsorted(_ orderID: Int64, keyHash: UInt64) {
        entries.append(Entry(orderID: orderID, keyHash: keyHash))
    }

    mutating func sortAfterLoading() {
        entries.sort { $0.orderID < $1.orderID }
    }

    mutating func reserveCapacity(_ count: Int) {
        entries.reserveCapacity(count)
    }
}

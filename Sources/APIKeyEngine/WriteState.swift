/// A keyed 128-bit hash of a client token: the index of tokens, never compared in place of them.
struct TokenDigest: Hashable {
    var low: UInt64
    var high: UInt64
}

/// Everything the write lock guards besides the table: indexes by order and client, and tokens.
struct WriteState: ~Copyable {
    var orders = OrderIndex()
    var ordersByClient: [Int64: [Int64]] = [:]
    /// The order ID `create` assigns when none is given: one past the highest ever used, or
    /// `Int64.max` once that is used (then assigning fails with a clear error).
    var nextOrderID: Int64 = 1
    var tokenByClient: [Int64: String] = [:]
    var clientByTokenDigest: [TokenDigest: Int64] = [:]
    /// How many keys have each status, kept as records are put and deleted.
    var keysByStatus = KeyCounts()
    /// While a snapshot loads, new orders are appended to the indexes unsorted (a snapshot lists
    /// them shard by shard, and sorted insertion would make loading quadratic); `endBulkLoad`
    /// sorts once.
    var isBulkLoading = false
    /// Whether a record or token put since the engine was made holds a stored hash: a directory
    /// of hashed keys, whatever its `key-storage` file says.
    var holdsStoredHashes = false
    /// Usage entries of the snapshot being loaded, applied once its orders are indexed.
    var usageLoaded: [KeyMutation] = []
    /// The cluster change log's position this state holds; nil outside multi-node mode.
    var changePosition: ChangePosition?

    /// Every client token, by ascending client ID.
    var tokensByClientID: [(clientID: Int64, token: String)] {
        tokenByClient.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    mutating func endBulkLoad() {
        isBulkLoading = false
        orders.sortAfterLoading()
        for clientID in ordersByClient.keys { ordersByClient[clientID]!.sort() }
    }

    /// Makes the next assigned order ID follow `orderID`; saturates, never traps.
    mutating func raiseNextOrderID(past orderID: Int64) {
        let (next, overflow) = orderID.addingReportingOverflow(1)
        nextOrderID = max(nextOrderID, overflow ? Int64.max : next)
    }

    mutating func addToClient(_ clientID: Int64, _ orderID: Int64) {
        ordersByClient[clientID, default: []].insertSorted(orderID)
    }

    mutating func removeFromClient(_ clientID: Int64, _ orderID: Int64) {
        ordersByClient[clientID]?.removeSorted(orderID)
        if ordersByClient[clientID]?.isEmpty == true { ordersByClient[clientID] = nil }
    }
}

/// Keys by ``KeyStatus``.
public struct KeyCounts: Hashable, Sendable, CustomStringConvertible {
    /// Indexed by ``KeyStatus/code``.
    private var counts: [Int] = Array(repeating: 0, count: KeyStatus.allCases.count)

    /// Counts of zero for every status.
    public init() {}

    /// How many keys have `status`.
    public subscript(status: KeyStatus) -> Int { counts[Int(status.code)] }

    mutating func add(_ status: KeyStatus) { counts[Int(status.code)] += 1 }
    mutating func remove(_ status: KeyStatus) { counts[Int(status.code)] -= 1 }

    /// Each status's name followed by its count, separated by commas, in ``KeyStatus`` order.
    public var description: String {
        KeyStatus.allCases.map { "\($0.rawValue) \(self[$0])" }.joined(separator: ", ")
    }
}

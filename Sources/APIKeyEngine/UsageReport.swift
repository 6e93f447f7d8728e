/// What one order used in one month (`admin/serviceapikey/usage`).
public struct OrderUsage: Hashable, Sendable {
    /// The order whose key was counted.
    public var orderID: Int64
    /// The month counted.
    public var month: UsageMonth
    /// The uses counted for the key in ``month``: the sum of the costs of the verifies that passed.
    public var used: Int64
    /// The key's monthly limit as its config sets it now; nil for none.
    public var limit: Int64?

    /// The usage of `orderID` in `month`: `used` against `limit` (nil for none).
    public init(orderID: Int64, month: UsageMonth, used: Int64, limit: Int64?) {
        self.orderID = orderID
        self.month = month
        self.used = used
        self.limit = limit
    }

    /// What is left of the limit; nil without one.
    public var remaining: Int64? { limit.map { max(0, $0 - min(used, $0)) } }
}

/// What every key of one client used in one month.
public struct ClientUsage: Hashable, Sendable {
    /// The client whose keys were counted.
    public var clientID: Int64
    /// The month counted.
    public var month: UsageMonth
    /// The sum over the client's keys (saturating).
    public var used: Int64
    /// Per key, by ascending order ID.
    public var keys: [OrderUsage]

    /// The usage of the keys of `clientID` in `month`: `used` in all, and `keys` one by one.
    public init(clientID: Int64, month: UsageMonth, used: Int64, keys: [OrderUsage]) {
        self.clientID = clientID
        self.month = month
        self.used = used
        self.keys = keys
    }
}

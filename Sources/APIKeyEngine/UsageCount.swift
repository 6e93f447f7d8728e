/// How many uses one order counted in one calendar month.
public struct UsageCount: Hashable, Sendable {
    /// The month counted.
    public var month: UsageMonth
    /// Its count: the sum of the costs of the verifies that passed.
    public var used: Int64

    /// A count of `used` for `month`.
    public init(month: UsageMonth, used: Int64) {
        self.month = month
        self.used = used
    }
}

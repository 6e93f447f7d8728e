import Synchronization

/// Token buckets per client address, in a table of fixed capacity.
///
/// An address with no entry has, in effect, a full bucket, so an entry whose bucket has refilled
/// to full holds no information and may be dropped. When a shard is full, inserting scans up to
/// ``evictionScan`` entries and drops the first full one, or else the one closest to full: a flood of
/// distinct addresses can never grow the table past its capacity, and an honest client whose entry
/// is dropped only gets a fresh (full) bucket.
///
/// Memory: an entry is a 16-byte key and an 8-byte bucket in a `Dictionary`, which keeps at most
/// 75% of its slots filled: 24 bytes a slot, about 32 to 64 bytes an entry depending on how far
/// the table is from its next growth. The default capacity of 100,000 entries is at most about
/// 6.4 MB per limiter.
public final class AddressLimiter: Sendable {
    /// How many entries an insertion into a full shard looks at to choose one to drop.
    public static let evictionScan = 8
    private static let shardCount = 16

    /// The shape of every bucket.
    public let rate: TokenBucket.Rate
    /// The most entries the table holds.
    public let capacity: Int
    private let shards: [LimiterShard]

    /// A limiter whose table holds at most `capacity` entries (at least one per shard).
    public init(rate: TokenBucket.Rate, capacity: Int = 100_000) {
        self.rate = rate
        let perShard = max(1, capacity / Self.shardCount)
        self.capacity = perShard * Self.shardCount
        shards = (0..<Self.shardCount).map { _ in LimiterShard(capacity: perShard) }
    }

    private func shard(_ address: IPAddress) -> LimiterShard {
        var hasher = Hasher()
        hasher.combine(address)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))]
    }

    /// Takes `cost` tokens from `address`'s bucket when it can pay; a refusal takes nothing.
    @discardableResult
    public func take(_ address: IPAddress, cost: Int = 1, nowNanoseconds: Int64) -> TokenBucket.Decision {
        shard(address).entries.withLock { state in
            if var bucket = state.buckets[address] {
                let decision = bucket.take(cost: cost, rate: rate, nowNanoseconds: nowNanoseconds)
                state.buckets[address] = bucket
                return decision
            }
            var bucket = TokenBucket(rate: rate, nowNanoseconds: nowNanoseconds)
            let decision = bucket.take(cost: cost, rate: rate, nowNanoseconds: nowNanoseconds)
            if state.buckets.count >= state.capacity { state.evictOne(rate: rate, nowNanoseconds: nowNanoseconds) }
            state.buckets[address] = bucket
            return decision
        }
    }

    /// Returns `cost` tokens to `address`'s bucket after a ``take(_:cost:nowNanoseconds:)`` whose
    /// request was refused for another reason; nothing when its entry has been dropped since (a
    /// dropped entry is a full bucket).
    public func giveBack(_ address: IPAddress, cost: Int = 1) {
        shard(address).entries.withLock { state in
            state.buckets[address]?.giveBack(cost: cost, rate: rate)
        }
    }

    /// The number of entries now held.
    public var count: Int { shards.reduce(0) { $0 + $1.entries.withLock { $0.buckets.count } } }
}

private final class LimiterShard: Sendable {
    let entries: Mutex<LimiterShardState>

    init(capacity: Int) {
        entries = Mutex(LimiterShardState(capacity: capacity))
    }
}

private struct LimiterShardState {
    let capacity: Int
    var buckets: [IPAddress: TokenBucket] = [:]

    init(capacity: Int) {
        self.capacity = capacity
    }

    mutating func evictOne(rate: TokenBucket.Rate, nowNanoseconds: Int64) {
        var victim: IPAddress?
        var oldest = Int64.max
        for (address, bucket) in buckets.prefix(AddressLimiter.evictionScan) {
            if bucket.isFull(rate: rate, nowNanoseconds: nowNanoseconds) {
                victim = address
                break
            }
            if bucket.fullAtNanoseconds < oldest {
                oldest = bucket.fullAtNanoseconds
                victim = address
            }
        }
        if let victim { buckets.removeValue(forKey: victim) }
    }
}

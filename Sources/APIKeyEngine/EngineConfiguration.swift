/// Limits and sizes of an engine.
public struct EngineConfiguration: Hashable, Sendable {
    /// The most keys the engine holds; `create` fails beyond it.
    public var maximumKeys: Int = 10_000_000
    /// The largest config, as JSON text, in bytes.
    public var maximumConfigBytes: Int = 16 * 1024
    /// The key table has `1 << shardCountLog2` lock shards.
    public var shardCountLog2: Int = 8
    /// The most records one `list` page returns.
    public var maximumPageSize: Int = 1000
    /// The page size of `list` when none is asked for.
    public var defaultPageSize: Int = 100
    /// The most verify answers remembered for their request IDs; the oldest is dropped first.
    /// 0 remembers none (a repeated request ID is then verified again).
    public var idempotencyEntries: Int = 1_000_000
    /// Whether keys and client tokens are held as they are or as keyed hashes (``KeyStorage``).
    /// A data directory keeps the storage it was made with: opening it with another one fails.
    public var keyStorage: KeyStorage = .plain

    /// The defaults: 10,000,000 keys, 16 KiB configs, 256 shards, pages of 100 (at most 1000),
    /// 1,000,000 remembered request IDs, plain key storage.
    public init() {}
}

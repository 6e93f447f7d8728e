#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The bytes of one record in a key table's arena, laid out so that `check` reads one short run
/// from the record's start: lengths, status and expiry, then the key, then the `get_info` text.
///
/// | offset | field |
/// |---|---|
/// | 0 | key length, u16 |
/// | 2 | status code, u8 (``KeyStatus/code``) |
/// | 3 | 1 when there is an expiry, else 0 |
/// | 4 | custom-parameter text length, u32 |
/// | 8 | expires at, i64 seconds |
/// | 16 | key, then custom-parameter text |
/// | then | order i64, client i64, created i64, updated i64, config length u32, config text |
///
/// Native byte order (the arena never leaves memory), no alignment inside; every record starts
/// on an 8-byte boundary and its size is rounded up to 8.
enum ArenaRecord {
    static let keyOffset = 16
    /// Order, client, created, updated and the config length.
    static let coldFixedBytes = 4 * 8 + 4

    /// The bytes `record` takes in the arena.
    static func size(of record: KeyRecord) -> Int {
        size(
            keyLength: record.apiKey.utf8.count, customLength: record.customParametersJSON.count,
            configLength: record.configJSON.count)
    }

    static func size(keyLength: Int, customLength: Int, configLength: Int) -> Int {
        (keyOffset + keyLength + customLength + coldFixedBytes + configLength + 7) & ~7
    }

    /// Writes `record` at `pointer`, which has room for ``size(of:)`` bytes.
    static func write(_ record: KeyRecord, to pointer: UnsafeMutableRawPointer) {
        var key = record.apiKey
        let keyLength = key.withUTF8 { utf8 in
            UnsafeMutableRawBufferPointer(start: pointer + keyOffset, count: utf8.count).copyMemory(
                from: UnsafeRawBufferPointer(utf8))
            return utf8.count
        }
        precondition(keyLength <= Int(UInt16.max), "a key is at most 65535 bytes")
        let custom = record.customParametersJSON
        let config = record.configJSON
        pointer.storeBytes(of: UInt16(keyLength), as: UInt16.self)
        pointer.storeBytes(of: record.status.code, toByteOffset: 2, as: UInt8.self)
        pointer.storeBytes(of: record.expiresAt == nil ? 0 : 1, toByteOffset: 3, as: UInt8.self)
        pointer.storeBytes(of: UInt32(custom.count), toByteOffset: 4, as: UInt32.self)
        pointer.storeBytes(of: record.expiresAt ?? 0, toByteOffset: 8, as: Int64.self)
        var offset = keyOffset + keyLength
        custom.withUnsafeBytes { (pointer + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        offset += custom.count
        for value in [record.orderID, record.clientID, record.createdAt, record.updatedAt] {
            pointer.storeBytes(of: value, toByteOffset: offset, as: Int64.self)
            offset += 8
        }
        pointer.storeBytes(of: UInt32(config.count), toByteOffset: offset, as: UInt32.self)
        offset += 4
        config.withUnsafeBytes { (pointer + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
}

/// Reads the fields of an ``ArenaRecord`` in place.
///
/// `available` is how many bytes from `base` belong to the arena chunk: a record read without
/// the shard's lock may be torn, so the `fits...` checks must pass before the variable parts are
/// touched.
struct ArenaRecordView {
    let base: UnsafeRawPointer
    let available: Int

    @inline(__always) var keyLength: Int { Int(base.loadUnaligned(as: UInt16.self)) }
    @inline(__always) var statusCode: UInt8 { base.load(fromByteOffset: 2, as: UInt8.self) }
    @inline(__always) var hasExpiry: Bool { base.load(fromByteOffset: 3, as: UInt8.self) != 0 }
    @inline(__always) var customLength: Int { Int(base.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) }
    @inline(__always) var expiresAt: Int64 { base.loadUnaligned(fromByteOffset: 8, as: Int64.self) }

    /// Whether every field, read in order, lies inside the chunk; for checking a record read
    /// under the shard's lock, where nothing changes meanwhile.
    var liesInsideChunk: Bool {
        coldOffset + ArenaRecord.coldFixedBytes <= available && size <= available
    }

    @inline(__always)
    var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + ArenaRecord.keyOffset, count: keyLength) }

    @inline(__always)
    var custom: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + ArenaRecord.keyOffset + keyLength, count: customLength)
    }

    /// Whether the stored key is exactly `key`; nil when the stored length leaves the chunk (a
    /// torn read). Safe without the lock: the length is read once, checked, then used.
    @inline(__always)
    func keyMatches(_ key: UnsafeRawBufferPointer) -> Bool? {
        let length = keyLength
        guard ArenaRecord.keyOffset &+ length <= available else { return nil }
        return length == key.count
            && (length == 0 || memcmp(base + ArenaRecord.keyOffset, key.baseAddress!, length) == 0)
    }

    /// Whether the stored key is exactly `key`; for records read under the shard's lock.
    @inline(__always)
    func keyEquals(_ key: UnsafeRawBufferPointer) -> Bool { keyMatches(key) == true }

    /// The custom-parameter text; nil when it would leave the chunk (a torn read). Safe without
    /// the lock: each length is read once, checked, then used.
    @inline(__always)
    var customIfInside: UnsafeRawBufferPointer? {
        let start = ArenaRecord.keyOffset &+ keyLength
        let length = customLength
        guard start &+ length <= available else { return nil }
        return UnsafeRawBufferPointer(start: base + start, count: length)
    }

    /// The order and client IDs; nil when they would leave the chunk (a torn read). Safe without
    /// the lock: each length is read once, checked, then used.
    @inline(__always)
    var ownersIfInside: (orderID: Int64, clientID: Int64)? {
        let start = ArenaRecord.keyOffset &+ keyLength &+ customLength
        guard start &+ 16 <= available else { return nil }
        return (
            base.loadUnaligned(fromByteOffset: start, as: Int64.self),
            base.loadUnaligned(fromByteOffset: start + 8, as: Int64.self)
        )
    }

    /// Status and expiry; nil when the status byte is not a status (a torn read).
    @inline(__always)
    var validity: KeyValidity? {
        guard let status = KeyStatus(code: statusCode) else { return nil }
        return KeyValidity(status: status, expiresAt: hasExpiry ? expiresAt : nil)
    }

    // The fields below are only for a record read under the shard's lock (or copied out).

    private var coldOffset: Int { ArenaRecord.keyOffset + keyLength + customLength }
    var orderID: Int64 { base.loadUnaligned(fromByteOffset: coldOffset, as: Int64.self) }
    var clientID: Int64 { base.loadUnaligned(fromByteOffset: coldOffset + 8, as: Int64.self) }
    var createdAt: Int64 { base.loadUnaligned(fromByteOffset: coldOffset + 16, as: Int64.self) }
    var updatedAt: Int64 { base.loadUnaligned(fromByteOffset: coldOffset + 24, as: Int64.self) }
    private var configLength: Int { Int(base.loadUnaligned(fromByteOffset: coldOffset + 32, as: UInt32.self)) }
    var config: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + coldOffset + ArenaRecord.coldFixedBytes, count: configLength)
    }

    /// The record's size in the arena.
    var size: Int { ArenaRecord.size(keyLength: keyLength, customLength: customLength, configLength: configLength) }

    /// The record as a value.
    var record: KeyRecord {
        let validity = self.validity!
        return KeyRecord(
            orderID: orderID, clientID: clientID, apiKey: String(decoding: key, as: UTF8.self),
            configJSON: Array(config)[...], customParametersJSON: Array(custom)[...], status: validity.status,
            expiresAt: validity.expiresAt, createdAt: createdAt, updatedAt: updatedAt)
    }
}

/// Records copied out of a key table shard by shard (their arena bytes, back to back), for a
/// snapshot: copying is a memcpy per record under each shard's lock; encoding happens later.
struct KeyTableCopy: Sendable {
    /// Per shard, its records' bytes; each record starts on an 8-byte boundary.
    var shards: [[UInt8]]

    /// Calls `body` on every record, shard by shard.
    func forEach<E: Error>(_ body: (ArenaRecordView) throws(E) -> Void) throws(E) {
        for shard in shards {
            let outcome: Result<Void, E> = shard.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let view = ArenaRecordView(base: bytes.baseAddress! + offset, available: bytes.count - offset)
                    do throws(E) {
                        try body(view)
                    } catch {
                        return .failure(error)
                    }
                    offset += view.size
                }
                return .success(())
            }
            try outcome.get()
        }
    }
}

/// What decides whether a key is valid: its status and expiry.
public struct KeyValidity: Hashable, Sendable {
    /// Whether the order is active, suspended or canceled.
    public var status: KeyStatus
    /// When the key stops being valid, in seconds since the Unix epoch; nil for never.
    public var expiresAt: Int64?

    /// The validity rule: active, and either no expiry or an expiry later than `now()`, in
    /// nanoseconds since the Unix epoch. `now` is called only for a key that has an expiry.
    @inline(__always)
    public func isValid(now: () -> Int64) -> Bool {
        guard status == .active else { return false }
        guard let expiresAt else { return true }
        let (expiryNanoseconds, overflow) = expiresAt.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? expiresAt > 0 : expiryNanoseconds > now()
    }
}

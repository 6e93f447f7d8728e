/// The binary form of a ``KeyMutation``, shared by journal records and snapshots.
///
/// Little-endian throughout. A put carries the record's config text and its pre-encoded custom
/// parameters, so loading never re-parses JSON.
///
/// | type | payload |
/// |---|---|
/// | 1 put | order i64, client i64, status u8, has-expiry u8, expires i64, created i64, updated i64, key (u16 length + bytes), config (u32 + bytes), custom (u32 + bytes) |
/// | 2 delete | order i64 |
/// | 3 client token | client i64, token (u16 + bytes) |
/// | 4 use | order i64, month, count i64 |
/// | 5 reset usage | order i64, month |
/// | 6 set usage | order i64, count u16, then per month: month, used i64 |
/// | 7 remember | digest (low u64, high u64), at i64, verification, has-use u8, then month, count i64 |
/// | 8 retire | order i64, until (nanoseconds) i64, key (u16 + bytes), current key (u16 + bytes) |
///
/// A month is year u16 and month u8. A verification is code u8, order i64, client i64, flags u8
/// (1: usage follows, 2: rate limit follows), usage (month, limit i64, used i64, remaining i64),
/// rate limit (limit i64, remaining i64, reset milliseconds i64). Types 4 to 7 came with usage
/// metering, type 8 with rotation grace periods: a build before them refuses a journal or snapshot
/// that holds them.
enum MutationCodec {
    static let putType: UInt8 = 1
    static let deleteType: UInt8 = 2
    static let clientTokenType: UInt8 = 3
    static let useType: UInt8 = 4
    static let resetUsageType: UInt8 = 5
    static let setUsageType: UInt8 = 6
    static let rememberType: UInt8 = 7
    static let retireType: UInt8 = 8
    static let changePositionType: UInt8 = 9

    /// The type byte of `mutation`.
    static func type(of mutation: KeyMutation) -> UInt8 {
        switch mutation {
        case .put: putType
        case .delete: deleteType
        case .setClientToken: clientTokenType
        case .use: useType
        case .resetUsage: resetUsageType
        case .setUsage: setUsageType
        case .remember: rememberType
        case .retire: retireType
        case .changePosition: changePositionType
        }
    }

    /// Appends the payload of `mutation` (without its type) to `bytes`.
    static func encodePayload(_ mutation: KeyMutation, into bytes: inout [UInt8]) {
        switch mutation {
        case .put(let record):
            encodePut(
                orderID: record.orderID, clientID: record.clientID, status: record.status.code,
                expiresAt: record.expiresAt, createdAt: record.createdAt, updatedAt: record.updatedAt,
                key: record.apiKey.utf8, config: record.configJSON, custom: record.customParametersJSON, into: &bytes)
        case .delete(let orderID):
            bytes.appendLittleEndian(orderID)
        case .setClientToken(let clientID, let token):
            bytes.appendLittleEndian(clientID)
            bytes.appendLittleEndian(UInt16(token.utf8.count))
            bytes.append(contentsOf: token.utf8)
        case .use(let orderID, let month, let count):
            bytes.appendLittleEndian(orderID)
            encode(month, into: &bytes)
            bytes.appendLittleEndian(count)
        case .resetUsage(let orderID, let month):
            bytes.appendLittleEndian(orderID)
            encode(month, into: &bytes)
        case .setUsage(let orderID, let counts):
            bytes.appendLittleEndian(orderID)
            bytes.appendLittleEndian(UInt16(counts.count))
            for count in counts {
                encode(count.month, into: &bytes)
                bytes.appendLittleEndian(count.used)
            }
        case .remember(let remembered):
            bytes.appendLittleEndian(remembered.digest.low)
            bytes.appendLittleEndian(remembered.digest.high)
            bytes.appendLittleEndian(remembered.atNanoseconds)
            encode(remembered.verification, into: &bytes)
            bytes.append(remembered.consumed == nil ? 0 : 1)
            if let use = remembered.consumed {
                encode(use.month, into: &bytes)
                bytes.appendLittleEndian(use.used)
            }
        case .retire(let retired):
            bytes.appendLittleEndian(retired.orderID)
            bytes.appendLittleEndian(retired.untilNanoseconds)
            bytes.appendLittleEndian(UInt16(retired.key.utf8.count))
            bytes.append(contentsOf: retired.key.utf8)
            bytes.appendLittleEndian(UInt16(retired.currentKey.utf8.count))
            bytes.append(contentsOf: retired.currentKey.utf8)
        case .changePosition(let position):
            bytes.appendLittleEndian(position.logID)
            bytes.appendLittleEndian(position.position)
        }
    }

    private static func encode(_ month: UsageMonth, into bytes: inout [UInt8]) {
        bytes.appendLittleEndian(UInt16(month.year))
        bytes.append(UInt8(month.month))
    }

    private static func encode(_ verification: Verification, into bytes: inout [UInt8]) {
        bytes.append(verification.code.rawValue)
        bytes.appendLittleEndian(verification.orderID)
        bytes.appendLittleEndian(verification.clientID)
        bytes.append((verification.usage == nil ? 0 : 1) | (verification.rateLimit == nil ? 0 : 2))
        if let usage = verification.usage {
            encode(usage.month, into: &bytes)
            bytes.appendLittleEndian(usage.limit)
            bytes.appendLittleEndian(usage.used)
            bytes.appendLittleEndian(usage.remaining)
        }
        if let rate = verification.rateLimit {
            bytes.appendLittleEndian(rate.limit)
            bytes.appendLittleEndian(rate.remaining)
            bytes.appendLittleEndian(rate.resetInMilliseconds)
        }
    }

    /// Appends the put payload of a record copied out of the key table.
    static func encodePut(_ record: ArenaRecordView, into bytes: inout [UInt8]) {
        let validity = record.validity!
        encodePut(
            orderID: record.orderID, clientID: record.clientID, status: validity.status.code,
            expiresAt: validity.expiresAt, createdAt: record.createdAt, updatedAt: record.updatedAt, key: record.key,
            config: record.config, custom: record.custom, into: &bytes)
    }

    private static func encodePut(
        orderID: Int64, clientID: Int64, status: UInt8, expiresAt: Int64?, createdAt: Int64, updatedAt: Int64,
        key: some Collection<UInt8>, config: some Collection<UInt8>, custom: some Collection<UInt8>,
        into bytes: inout [UInt8]
    ) {
        bytes.appendLittleEndian(orderID)
        bytes.appendLittleEndian(clientID)
        bytes.append(status)
        bytes.append(expiresAt == nil ? 0 : 1)
        bytes.appendLittleEndian(expiresAt ?? 0)
        bytes.appendLittleEndian(createdAt)
        bytes.appendLittleEndian(updatedAt)
        bytes.appendLittleEndian(UInt16(key.count))
        bytes.append(contentsOf: key)
        bytes.appendLittleEndian(UInt32(config.count))
        bytes.append(contentsOf: config)
        bytes.appendLittleEndian(UInt32(custom.count))
        bytes.append(contentsOf: custom)
    }

    /// Decodes a payload of the given type; nil when it is not a well-formed mutation.
    static func decode(type: UInt8, payload: ArraySlice<UInt8>) -> KeyMutation? {
        var reader = ByteReader(payload)
        let mutation: KeyMutation?
        switch type {
        case putType:
            guard let orderID = reader.int64(), let clientID = reader.int64(), let statusByte = reader.uint8(),
                let status = KeyStatus(code: statusByte), let hasExpiry = reader.uint8(), hasExpiry <= 1,
                let expiresAt = reader.int64(), let createdAt = reader.int64(), let updatedAt = reader.int64(),
                let keyLength = reader.uint16(), let keyBytes = reader.bytes(Int(keyLength)),
                let apiKey = String(validating: keyBytes, as: UTF8.self),
                let configLength = reader.uint32(), let config = reader.bytes(Int(configLength)),
                let customLength = reader.uint32(), let custom = reader.bytes(Int(customLength))
            else { return nil }
            mutation = .put(
                KeyRecord(
                    orderID: orderID, clientID: clientID, apiKey: apiKey, configJSON: config,
                    customParametersJSON: custom, status: status, expiresAt: hasExpiry == 1 ? expiresAt : nil,
                    createdAt: createdAt, updatedAt: updatedAt))
        case deleteType:
            guard let orderID = reader.int64() else { return nil }
            mutation = .delete(orderID: orderID)
        case clientTokenType:
            guard let clientID = reader.int64(), let token = string(&reader) else { return nil }
            mutation = .setClientToken(clientID: clientID, token: token)
        case useType:
            guard let orderID = reader.int64(), let month = month(&reader), let count = reader.int64(), count >= 0
            else { return nil }
            mutation = .use(orderID: orderID, month: month, count: count)
        case resetUsageType:
            guard let orderID = reader.int64(), let month = month(&reader) else { return nil }
            mutation = .resetUsage(orderID: orderID, month: month)
        case setUsageType:
            guard let orderID = reader.int64(), let count = reader.uint16() else { return nil }
            var counts: [UsageCount] = []
            for _ in 0..<count {
                guard let month = month(&reader), let used = reader.int64(), used >= 0 else { return nil }
                counts.append(UsageCount(month: month, used: used))
            }
            mutation = .setUsage(orderID: orderID, counts: counts)
        case rememberType:
            guard let low = reader.uint64(), let high = reader.uint64(), let at = reader.int64(),
                let verification = verification(&reader), let hasUse = reader.uint8(), hasUse <= 1
            else { return nil }
            var consumed: UsageCount?
            if hasUse == 1 {
                guard let month = month(&reader), let count = reader.int64(), count > 0 else { return nil }
                consumed = UsageCount(month: month, used: count)
            }
            mutation = .remember(
                RememberedVerification(
                    digest: RequestDigest(low: low, high: high), atNanoseconds: at, verification: verification,
                    consumed: consumed))
        case retireType:
            guard let orderID = reader.int64(), let until = reader.int64(), let key = string(&reader),
                let currentKey = string(&reader)
            else { return nil }
            mutation = .retire(
                RetiredKey(key: key, orderID: orderID, currentKey: currentKey, untilNanoseconds: until))
        case changePositionType:
            guard let logID = reader.uint64(), let position = reader.int64(), position >= 0 else { return nil }
            mutation = .changePosition(ChangePosition(logID: logID, position: position))
        default:
            return nil
        }
        return reader.isAtEnd ? mutation : nil
    }

    /// A UTF-8 string with a u16 length.
    private static func string(_ reader: inout ByteReader) -> String? {
        guard let length = reader.uint16(), let bytes = reader.bytes(Int(length)) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func month(_ reader: inout ByteReader) -> UsageMonth? {
        guard let year = reader.uint16(), let month = reader.uint8() else { return nil }
        return UsageMonth(year: Int(year), month: Int(month))
    }

    private static func verification(_ reader: inout ByteReader) -> Verification? {
        guard let codeByte = reader.uint8(), let code = Verification.Code(rawValue: codeByte),
            let orderID = reader.int64(), let clientID = reader.int64(), let flags = reader.uint8(), flags <= 3
        else { return nil }
        var verification = Verification(code: code, orderID: orderID, clientID: clientID)
        if flags & 1 != 0 {
            guard let month = month(&reader), let limit = reader.int64(), let used = reader.int64(),
                let remaining = reader.int64()
            else { return nil }
            verification.usage = Verification.Usage(month: month, limit: limit, used: used, remaining: remaining)
        }
        if flags & 2 != 0 {
            guard let limit = reader.int64(), let remaining = reader.int64(), let reset = reader.int64() else {
                return nil
            }
            verification.rateLimit = Verification.RateLimit(
                limit: limit, remaining: remaining, resetInMilliseconds: reset)
        }
        return verification
    }
}

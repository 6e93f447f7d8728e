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
enum MutationCodec {
    static let putType: UInt8 = 1
    static let deleteType: UInt8 = 2
    static let clientTokenType: UInt8 = 3

    /// The type byte of `mutation`.
    static func type(of mutation: KeyMutation) -> UInt8 {
        switch mutation {
        case .put: putType
        case .delete: deleteType
        case .setClientToken: clientTokenType
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
            guard let clientID = reader.int64(), let length = reader.uint16(),
                let tokenBytes = reader.bytes(Int(length)),
                let token = String(validating: tokenBytes, as: UTF8.self)
            else { return nil }
            mutation = .setClientToken(clientID: clientID, token: token)
        default:
            return nil
        }
        return reader.isAtEnd ? mutation : nil
    }
}

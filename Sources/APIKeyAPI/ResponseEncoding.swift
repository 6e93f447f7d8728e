import APIKeyEngine

/// The JSON the API answers with: FOSSBilling's envelope around a result or an error.
enum ResponseEncoding {
    private static let successPrefix = Array(#"{"result": "#.utf8)
    private static let successSuffix = Array(#", "error": null}"#.utf8)

    /// `{"result": <result>, "error": null}`, with `result` already JSON text.
    static func success(_ result: [UInt8]) -> [UInt8] {
        var body = successPrefix
        body.reserveCapacity(successPrefix.count + result.count + successSuffix.count)
        body.append(contentsOf: result)
        body.append(contentsOf: successSuffix)
        return body
    }

    /// `{"result": null, "error": {"message": ..., "code": ...}}`.
    static func failure(message: String, code: Int) -> [UInt8] {
        JSONValue.object([
            JSONMember("result", .null),
            JSONMember(
                "error", .object([JSONMember("message", .string(message)), JSONMember("code", .integer(code))])),
        ]).encoded
    }

    /// The JSON for a boolean result.
    static func boolean(_ value: Bool) -> [UInt8] { Array((value ? "true" : "false").utf8) }

    /// The `get_info` result: `{"valid": 1|0, "config": {...}}`.
    static func info(valid: Bool, customParameters: some Collection<UInt8>) -> [UInt8] {
        var bytes = Array((valid ? #"{"valid": 1, "config": "# : #"{"valid": 0, "config": "#).utf8)
        bytes.append(contentsOf: customParameters)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// A key record as the API shows it: `api_key` null for a stored hash (hashed key storage,
    /// where only create and reset show a key). `showingStoredHash` keeps the hash, for exports.
    static func record(_ record: KeyRecord, showingStoredHash: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        append(record, showingStoredHash: showingStoredHash, to: &bytes)
        return bytes
    }

    /// A page of records: `{"list": [...], "total": N, "page": P, "per_page": K}`.
    static func page(_ page: KeyPage) -> [UInt8] {
        var bytes = Array(#"{"list": ["#.utf8)
        for (index, record) in page.list.enumerated() {
            if index > 0 { bytes.append(contentsOf: ", ".utf8) }
            append(record, to: &bytes)
        }
        bytes.append(
            contentsOf: #"], "total": \#(page.total), "page": \#(page.page), "per_page": \#(page.perPage)}"#.utf8)
        return bytes
    }

    /// One order's usage: `{"order_id", "month", "used", "limit", "remaining", "reset_at"}`.
    static func usage(_ usage: OrderUsage) -> [UInt8] {
        JSONValue.object([
            JSONMember("order_id", .integer(usage.orderID)), JSONMember("month", .string(usage.month.description)),
            JSONMember("used", .integer(usage.used)), JSONMember("limit", usage.limit.map { .integer($0) } ?? .null),
            JSONMember("remaining", usage.remaining.map { .integer($0) } ?? .null),
            JSONMember("reset_at", .string(usage.month.resetAt)),
        ]).encoded
    }

    /// A client's usage: `{"client_id", "month", "used", "keys": [{"order_id", "used", "limit"}]}`.
    static func usage(_ usage: ClientUsage) -> [UInt8] {
        JSONValue.object([
            JSONMember("client_id", .integer(usage.clientID)), JSONMember("month", .string(usage.month.description)),
            JSONMember("used", .integer(usage.used)),
            JSONMember(
                "keys",
                .array(
                    usage.keys.map { key in
                        .object([
                            JSONMember("order_id", .integer(key.orderID)), JSONMember("used", .integer(key.used)),
                            JSONMember("limit", key.limit.map { .integer($0) } ?? .null),
                        ])
                    })),
        ]).encoded
    }

    private static func append(_ record: KeyRecord, showingStoredHash: Bool = false, to bytes: inout [UInt8]) {
        bytes.append(
            contentsOf: #"{"order_id": \#(record.orderID), "client_id": \#(record.clientID), "api_key": "#.utf8)
        if !showingStoredHash, KeyStorage.isStoredHash(record.apiKey) {
            bytes.append(contentsOf: "null".utf8)
        } else {
            JSONValue.encodeString(record.apiKey, into: &bytes)
        }
        bytes.append(contentsOf: #", "config": "#.utf8)
        bytes.append(contentsOf: record.configJSON)
        bytes.append(contentsOf: #", "status": "\#(record.status.rawValue)", "expires_at": "#.utf8)
        if let expiresAt = record.expiresAt {
            bytes.append(contentsOf: #""\#(Timestamp.format(expiresAt))""#.utf8)
        } else {
            bytes.append(contentsOf: "null".utf8)
        }
        bytes.append(contentsOf: #", "created_at": "\#(Timestamp.format(record.createdAt))""#.utf8)
        bytes.append(contentsOf: #", "updated_at": "\#(Timestamp.format(record.updatedAt))"}"#.utf8)
    }
}

extension KeyRecord {
    /// The record as the API shows it (`get`): `order_id`, `client_id`, `api_key`, `config`,
    /// `status`, `expires_at`, `created_at`, `updated_at`, dates as `YYYY-MM-DD HH:MM:SS` UTC;
    /// with hashed key storage, `api_key` is the stored hash (`hmac-sha256:...`), where the API
    /// answers null.
    public var apiJSON: [UInt8] { ResponseEncoding.record(self, showingStoredHash: true) }
}

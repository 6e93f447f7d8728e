import APIKeyEngine
import CSV
import Foundation

/// What an import file gives, one row at a time.
enum ImportItem {
    /// A key to import.
    case record(KeyRecord)
    /// A client's API token.
    case token(clientID: Int64, token: String)
    /// A row left out by design (a FOSSBilling order never set up, a key never issued), by reason.
    case skipped(reason: String)
    /// A row that cannot be imported, and why.
    case invalid(String)
}

/// Receives each item with the line of the file it comes from; throws to stop the import.
typealias ImportSink = (ImportItem, _ line: Int) throws -> Void

/// The file formats of `import` and `export`.
enum KeyFileFormat: String, CaseIterable {
    case jsonl, csv, fossbilling

    /// The record columns of CSV files and the members of JSONL records, in order.
    static let recordFields = [
        "order_id", "client_id", "api_key", "config", "status", "expires_at", "created_at", "updated_at",
    ]
}

/// The fields of one record, as texts, turned into a ``KeyRecord``; shared by the formats.
struct RecordFields {
    var orderID: String?
    var clientID: String?
    var apiKey: String?
    /// The config as JSON text; nil or empty for `{}`.
    var config: String?
    var status: String?
    var expiresAt: String?
    var createdAt: String?
    var updatedAt: String?

    /// The record; throws a message naming the field that is wrong. `now` stands in for a
    /// missing creation or update time.
    func record(now: Int64) throws(CommandFailure) -> KeyRecord {
        let orderID = try Self.positive(orderID, "order_id")
        let clientID = try Self.positive(clientID, "client_id")
        guard let apiKey, !apiKey.isEmpty else { throw CommandFailure("api_key is missing") }
        var configValue = JSONValue.object([])
        if let config, !config.isEmpty {
            guard let parsed = try? JSONValue.parse(config) else { throw CommandFailure("config is not valid JSON") }
            switch parsed {
            case .object: configValue = parsed
            // PHP's json_encode writes an empty array for an empty config.
            case .array(let elements) where elements.isEmpty: break
            default: throw CommandFailure("config must be a JSON object")
            }
        }
        let statusText = status.flatMap { $0.isEmpty ? nil : $0 } ?? "active"
        guard let status = KeyStatus(rawValue: statusText) else {
            throw CommandFailure("status must be active, suspended or canceled (got '\(statusText)')")
        }
        let created = try Self.time(createdAt, "created_at") ?? now
        return KeyRecord(
            orderID: orderID, clientID: clientID, apiKey: apiKey, config: configValue, status: status,
            expiresAt: try Self.time(expiresAt, "expires_at"), createdAt: created,
            updatedAt: try Self.time(updatedAt, "updated_at") ?? created)
    }

    static func positive(_ text: String?, _ name: String) throws(CommandFailure) -> Int64 {
        guard let text else { throw CommandFailure("\(name) must be a positive integer (it is missing or null)") }
        guard let value = Int64(text), value > 0 else {
            throw CommandFailure("\(name) must be a positive integer (got '\(text)')")
        }
        return value
    }

    /// `YYYY-MM-DD HH:MM:SS` (UTC) in seconds; nil for no value, MySQL's zero date included.
    static func time(_ text: String?, _ name: String) throws(CommandFailure) -> Int64? {
        guard let text, !text.isEmpty, text != "0000-00-00 00:00:00" else { return nil }
        guard let seconds = Timestamp.parse(text) else {
            throw CommandFailure("\(name) must be YYYY-MM-DD HH:MM:SS (got '\(text)')")
        }
        return seconds
    }
}

/// JSON Lines: a record object a line (the members of ``KeyFileFormat/recordFields``), or a
/// client token `{"client_id": C, "api_token": T}`; blank lines are ignored.
enum JSONLinesImport {
    static func read(
        _ bytes: [UInt8], now: Int64, progress: (Int) -> Void, _ sink: ImportSink
    ) throws {
        var line = 0
        // A byte-order mark some editors write is not part of the first line.
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start < bytes.count {
            line += 1
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            defer { start = end + 1 }
            if line % 4096 == 0 { progress(start) }
            let text = bytes[start..<end]
            guard text.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != 9 }) else {
                continue
            }
            try sink(item(text, now: now), line)
        }
        progress(bytes.count)
    }

    /// The members a token line may have.
    static let tokenFields = ["client_id", "api_token"]

    private static func item(_ text: ArraySlice<UInt8>, now: Int64) -> ImportItem {
        let value: JSONValue
        do throws(JSONParseError) {
            value = try JSONValue.parse(text)
        } catch {
            return .invalid("the line is not valid JSON: \(error)")
        }
        guard case .object(let members) = value else { return .invalid("the line is not a JSON object") }
        let isToken = value["api_token"] != nil && value["api_key"] == nil
        let known = isToken ? tokenFields : KeyFileFormat.recordFields
        // A misspelt field would otherwise be dropped and its default taken silently.
        if let unknown = members.first(where: { !known.contains($0.name) }) {
            return .invalid("unknown field '\(unknown.name)' (the fields are \(known.joined(separator: ", ")))")
        }
        do throws(CommandFailure) {
            if isToken {
                guard case .string(let token)? = value["api_token"] else {
                    throw CommandFailure("api_token must be a string")
                }
                return .token(
                    clientID: try RecordFields.positive(scalar(value["client_id"]), "client_id"), token: token)
            }
            var config: String?
            switch value["config"] {
            case nil, .null: config = nil
            case .string(let text): config = text
            case let other?: config = String(decoding: other.encoded, as: UTF8.self)
            }
            let fields = RecordFields(
                orderID: scalar(value["order_id"]), clientID: scalar(value["client_id"]),
                apiKey: scalar(value["api_key"]), config: config, status: scalar(value["status"]),
                expiresAt: scalar(value["expires_at"]), createdAt: scalar(value["created_at"]),
                updatedAt: scalar(value["updated_at"]))
            return .record(try fields.record(now: now))
        } catch {
            return .invalid(error.description)
        }
    }

    /// A string or number member as its text; nil for null or anything else.
    private static func scalar(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text)?, .number(let text)?: text
        default: nil
        }
    }
}

/// CSV (RFC 4180) with a header line naming the columns of ``KeyFileFormat/recordFields``
/// (`order_id`, `client_id` and `api_key` required, the rest optional, in any order); an empty
/// `expires_at` is none. Read with yaslab/CSV.swift.
enum CSVImport {
    static func read(_ bytes: [UInt8], now: Int64, progress: (Int) -> Void, _ sink: ImportSink) throws {
        let reader: CSVReader
        do {
            reader = try CSVReader(stream: InputStream(data: Data(bytes)), hasHeaderRow: true)
        } catch {
            throw CommandFailure("cannot read the CSV header: \(error)")
        }
        guard let header = reader.headerRow else { throw CommandFailure("the CSV file has no header line") }
        for required in ["order_id", "client_id", "api_key"] where !header.contains(required) {
            throw CommandFailure("the CSV header has no \(required) column (it has \(header.joined(separator: ",")))")
        }
        if let unknown = header.first(where: { !KeyFileFormat.recordFields.contains($0) }) {
            throw CommandFailure(
                "the CSV header names an unknown column '\(unknown)' (the columns are \(KeyFileFormat.recordFields.joined(separator: ",")))"
            )
        }
        let column = Dictionary(header.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        // Lines, counting those inside quoted fields.
        var line = 1 + header.reduce(0) { $0 + $1.count(where: \.isNewline) }
        var rows = 0
        while let row = reader.next() {
            line += 1
            rows += 1
            if rows % 4096 == 0 { progress(min(bytes.count, rows * 100)) }
            let rowLine = line
            line += row.reduce(0) { $0 + $1.count(where: \.isNewline) }
            if row.count == 1, row[0].isEmpty { continue }
            guard row.count == header.count else {
                try sink(.invalid("the row has \(row.count) fields; the header names \(header.count)"), rowLine)
                continue
            }
            func field(_ name: String) -> String? { column[name].map { row[$0] } }
            let fields = RecordFields(
                orderID: field("order_id"), clientID: field("client_id"), apiKey: field("api_key"),
                config: field("config"), status: field("status"), expiresAt: field("expires_at"),
                createdAt: field("created_at"), updatedAt: field("updated_at"))
            let item: ImportItem
            do throws(CommandFailure) {
                item = .record(try fields.record(now: now))
            } catch {
                item = .invalid(error.description)
            }
            try sink(item, rowLine)
        }
        if let error = reader.error { throw CommandFailure("the CSV file is malformed after line \(line): \(error)") }
        progress(bytes.count)
    }
}

import APIKeyEngine
import Foundation

/// How the management commands print what the server answered: readable by default, the API's
/// own JSON with `--json`.
struct RecordPrinter {
    let json: Bool

    /// The columns of a listing, and the record members they show.
    static let listColumns: [(title: String, member: String)] = [
        ("ORDER_ID", "order_id"), ("CLIENT_ID", "client_id"), ("STATUS", "status"), ("EXPIRES_AT", "expires_at"),
        ("API_KEY", "api_key"), ("CONFIG", "config"),
    ]

    /// One value as it reads on a line: strings bare, null as `-`, the rest as JSON.
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case nil, .null: "-"
        case .string(let text): text
        case .number(let text): text
        case let value?: String(decoding: value.encoded, as: UTF8.self)
        }
    }

    /// An object as `name: value` lines (a result that is no object, as itself).
    func lines(_ value: JSONValue) -> String {
        if json { return String(decoding: value.encoded, as: UTF8.self) }
        guard case .object(let members) = value else { return Self.text(value) }
        return members.map { "\($0.name): \(Self.text($0.value))" }.joined(separator: "\n")
    }

    /// A record after create or reset: its key alone on the first line (for a script to take
    /// with `head -n 1`), then the record's lines.
    func issued(_ record: JSONValue) -> String {
        if json { return lines(record) }
        return Self.text(record["api_key"]) + "\n" + lines(record)
    }

    /// Records as an aligned table with a header line, or as JSON Lines.
    func table(_ records: [JSONValue]) -> String {
        if json { return records.map { String(decoding: $0.encoded, as: UTF8.self) }.joined(separator: "\n") }
        let rows = records.map { record in Self.listColumns.map { Self.text(record[$0.member]) } }
        let titles = Self.listColumns.map(\.title)
        var widths = titles.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(titles)] + rows.map(line)).joined(separator: "\n")
    }

    /// A bare acknowledgement: `true` as JSON, else `message`.
    func done(_ result: JSONValue, _ message: String) -> String {
        json ? String(decoding: result.encoded, as: UTF8.self) : message
    }
}

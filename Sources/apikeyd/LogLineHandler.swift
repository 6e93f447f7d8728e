import APIKeyEngine
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// swift-log's handler for the daemon: one line per event on standard error, as text
/// (`2026-12-01T20:00:00.123Z info message key=value`) or as one JSON object (`timestamp` in
/// RFC 3339 UTC, `level`, `message`, then the metadata as further members).
struct LogLineHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let format: LogFormat

    /// Lines from every thread leave whole, one at a time.
    private static let output = Mutex(())

    init(format: LogFormat, level: Logger.Level) {
        self.format = format
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        let text = Self.line(
            format: format, timestamp: Self.timestamp(), level: event.level, message: event.message.description,
            metadata: all)
        var bytes = Array(text.utf8)
        Self.output.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes {
                    Glibc.write(2, $0.baseAddress! + offset, $0.count - offset)
                }
                if written <= 0 { break }
                offset += written
            }
        }
    }

    /// One line (with its newline) in `format`.
    static func line(
        format: LogFormat, timestamp: String, level: Logger.Level, message: String, metadata: Logger.Metadata
    ) -> String {
        let keys = metadata.keys.sorted()
        switch format {
        case .json:
            var members = [
                JSONMember("timestamp", .string(timestamp)), JSONMember("level", .string(level.rawValue)),
                JSONMember("message", .string(message)),
            ]
            for key in keys where !["timestamp", "level", "message"].contains(key) {
                members.append(JSONMember(key, .string(text(metadata[key]!))))
            }
            return String(decoding: JSONValue.object(members).encoded, as: UTF8.self) + "\n"
        case .text:
            var line = "\(timestamp) \(level.rawValue) \(message.replacingNewlines)"
            for key in keys {
                let value = text(metadata[key]!).replacingNewlines
                let quoted = value.isEmpty || value.contains(" ") || value.contains("\"")
                line += " \(key)=" + (quoted ? "\"\(value.replacingQuotes)\"" : value)
            }
            return line + "\n"
        }
    }

    private static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map(text).joined(separator: ", ") + "]"
        case .dictionary(let values):
            "{" + values.keys.sorted().map { "\($0): \(text(values[$0]!))" }.joined(separator: ", ") + "}"
        }
    }

    /// Now in RFC 3339, UTC, with milliseconds: `2026-12-01T20:00:00.123Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milliseconds = Int(now.tv_nsec / 1_000_000)
        let fraction =
            milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}

extension String {
    fileprivate var replacingNewlines: String {
        contains(where: \.isNewline) ? String(map { $0.isNewline ? " " : $0 }) : self
    }

    fileprivate var replacingQuotes: String {
        contains("\"") ? String(map { $0 == "\"" ? "'" : $0 }) : self
    }
}

import Logging
import Synchronization

/// A logger whose lines are kept in memory, for tests of what is logged and how often.
public final class CapturedLog: Sendable {
    /// One logged line.
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let captured = Mutex<[Line]>([])

    public init() {}

    /// A logger that writes here, at every level.
    public var logger: Logger {
        var logger = Logger(label: "test") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    /// Every line so far.
    public var lines: [Line] { captured.withLock { $0 } }

    /// The lines whose message contains `text`.
    public func lines(containing text: String) -> [Line] { lines.filter { $0.message.contains(text) } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            if let explicit = event.metadata { all.merge(explicit) { $1 } }
            let line = Line(
                level: event.level, message: event.message.description,
                metadata: all.mapValues { "\($0)" })
            log.captured.withLock { $0.append(line) }
        }
    }
}

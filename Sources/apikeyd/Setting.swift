import APIKeyEngine
import APIKeyLimiter
import Logging

/// One `serve` setting: its name (the flag without dashes and the config file's key), the
/// environment variable that sets it, what kind of value it takes, and how a value is checked
/// into ``ServeSettings`` and shown back.
struct Setting: Sendable {
    /// The kinds of value, as a config provider is asked for them.
    enum Kind: Sendable { case integer, number, boolean, text, list }

    /// A value as a source gave it.
    enum Value: Sendable {
        case integer(Int)
        case number(Double)
        case boolean(Bool)
        case text(String)
        case list([String])
    }

    let name: String
    let kind: Kind
    /// Shown redacted by `--print-config`.
    let isSecret: Bool
    private let apply: @Sendable (Value, inout ServeSettings) -> String?
    let render: @Sendable (ServeSettings) -> String

    /// `APIKEYD_` and the name in upper snake case.
    var environmentName: String { "APIKEYD_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 }) }

    /// Sets `value` into `settings`; the problem (without the key's name) when it is not valid.
    func set(_ value: Value, into settings: inout ServeSettings) -> String? {
        apply(value, &settings)
    }

    private init(
        _ name: String, _ kind: Kind, isSecret: Bool = false,
        apply: @escaping @Sendable (Value, inout ServeSettings) -> String?,
        render: @escaping @Sendable (ServeSettings) -> String
    ) {
        self.name = name
        self.kind = kind
        self.isSecret = isSecret
        self.apply = apply
        self.render = render
    }

    // MARK: - Kinds

    static func integer(
        _ name: String, _ path: WritableKeyPath<ServeSettings, Int> & Sendable, in range: ClosedRange<Int>
    ) -> Setting {
        Setting(
            name, .integer,
            apply: { value, settings in
                guard case .integer(let integer) = value, range.contains(integer) else {
                    return "must be a whole number \(describe(range))"
                }
                settings[keyPath: path] = integer
                return nil
            }, render: { String($0[keyPath: path]) })
    }

    static func optionalInteger(
        _ name: String, _ path: WritableKeyPath<ServeSettings, Int?> & Sendable, in range: ClosedRange<Int>,
        absent: String
    ) -> Setting {
        Setting(
            name, .integer,
            apply: { value, settings in
                guard case .integer(let integer) = value, range.contains(integer) else {
                    return "must be a whole number \(describe(range))"
                }
                settings[keyPath: path] = integer
                return nil
            }, render: { $0[keyPath: path].map(String.init) ?? absent })
    }

    static func number(
        _ name: String, _ path: WritableKeyPath<ServeSettings, Double> & Sendable, atLeast minimum: Double,
        atMost maximum: Double = 1e12
    ) -> Setting {
        Setting(
            name, .number,
            apply: { value, settings in
                guard case .number(let number) = value, number.isFinite, number >= minimum, number <= maximum else {
                    return "must be a number from \(minimum.formatted) to \(maximum.formatted)"
                }
                settings[keyPath: path] = number
                return nil
            }, render: { $0[keyPath: path].formatted })
    }

    static func boolean(_ name: String, _ path: WritableKeyPath<ServeSettings, Bool> & Sendable) -> Setting {
        Setting(
            name, .boolean,
            apply: { value, settings in
                guard case .boolean(let boolean) = value else { return "must be true or false" }
                settings[keyPath: path] = boolean
                return nil
            }, render: { String($0[keyPath: path]) })
    }

    static func text(_ name: String, _ path: WritableKeyPath<ServeSettings, String> & Sendable) -> Setting {
        Setting(
            name, .text,
            apply: { value, settings in
                guard case .text(let text) = value, !text.isEmpty else { return "must be a non-empty text" }
                settings[keyPath: path] = text
                return nil
            }, render: { $0[keyPath: path] })
    }

    static func optionalText(
        _ name: String, _ path: WritableKeyPath<ServeSettings, String?> & Sendable, isSecret: Bool = false
    ) -> Setting {
        Setting(
            name, .text, isSecret: isSecret,
            apply: { value, settings in
                guard case .text(let text) = value, !text.isEmpty else { return "must be a non-empty text" }
                settings[keyPath: path] = text
                return nil
            }, render: { $0[keyPath: path] ?? "(none)" })
    }

    static func choice<Choice: RawRepresentable<String> & CaseIterable & Sendable>(
        _ name: String, _ path: WritableKeyPath<ServeSettings, Choice> & Sendable
    ) -> Setting {
        Setting(
            name, .text,
            apply: { value, settings in
                guard case .text(let text) = value, let choice = Choice(rawValue: text) else {
                    return "must be one of \(Choice.allCases.map(\.rawValue).joined(separator: ", "))"
                }
                settings[keyPath: path] = choice
                return nil
            }, render: { $0[keyPath: path].rawValue })
    }

    static func addresses(_ name: String, _ path: WritableKeyPath<ServeSettings, [String]> & Sendable) -> Setting {
        Setting(
            name, .list,
            apply: { value, settings in
                guard case .list(let list) = value else { return "must be a list of IP addresses or CIDR ranges" }
                let entries = list.map { String($0.trimmingCharacters(in: " ")) }.filter { !$0.isEmpty }
                if let bad = entries.first(where: { CIDRRange($0) == nil }) {
                    return "'\(bad)' is not an IP address or CIDR range"
                }
                settings[keyPath: path] = entries
                return nil
            }, render: { $0[keyPath: path].isEmpty ? "(none)" : $0[keyPath: path].joined(separator: ",") })
    }

    private static func describe(_ range: ClosedRange<Int>) -> String {
        range.upperBound == .max ? "of at least \(range.lowerBound)" : "from \(range.lowerBound) to \(range.upperBound)"
    }

    // MARK: - The table

    /// Every setting, in the order `--print-config` lists them.
    static let all: [Setting] = [
        text("host", \.host),
        integer("port", \.port, in: 0...65535),
        text("data-dir", \.dataDir),
        optionalText("admin-token", \.adminToken, isSecret: true),
        optionalText("admin-token-file", \.adminTokenFile),
        optionalInteger("event-loops", \.eventLoops, in: 1...4096, absent: "(one per core)"),
        integer("max-body-bytes", \.maxBodyBytes, in: 1...Int.max),
        integer("max-keys", \.maxKeys, in: 1...Int.max),
        integer("idempotency-entries", \.idempotencyEntries, in: 0...Int.max),
        choice("fsync", \.fsync),
        boolean("strict-recovery", \.strictRecovery),
        integer("snapshot-journal-bytes", \.snapshotJournalBytes, in: 1...Int.max),
        integer("snapshot-interval-seconds", \.snapshotIntervalSeconds, in: 0...Int.max),
        integer("segment-bytes", \.segmentBytes, in: 4096...Int.max),
        boolean("rate-limit", \.rateLimit),
        integer("rate-burst", \.rateBurst, in: 1...Int.max),
        number("rate-per-second", \.ratePerSecond, atLeast: 0),
        integer("failed-burst", \.failedBurst, in: 1...Int.max),
        number("failed-per-minute", \.failedPerMinute, atLeast: 0),
        addresses("allow", \.allow),
        addresses("trusted-proxy", \.trustedProxy),
        integer("limiter-entries", \.limiterEntries, in: 16...Int.max),
        integer("max-connections", \.maxConnections, in: 1...Int.max),
        integer("idle-timeout-seconds", \.idleTimeoutSeconds, in: 1...Int(Int32.max)),
        integer("request-timeout-seconds", \.requestTimeoutSeconds, in: 1...Int(Int32.max)),
        number("shutdown-timeout-seconds", \.shutdownTimeoutSeconds, atLeast: 0, atMost: 86_400),
        choice("log-level", \.logLevel),
        choice("log-format", \.logFormat),
        boolean("access-log", \.accessLog),
        boolean("metrics", \.metrics),
        addresses("metrics-allow", \.metricsAllow),
        optionalText("tls-certificate", \.tlsCertificate),
        optionalText("tls-private-key", \.tlsPrivateKey),
        optionalText("postgres", \.postgres, isSecret: true),
        text("postgres-schema", \.postgresSchema),
        optionalText("node-name", \.nodeName),
        integer("postgres-retained-changes", \.postgresRetainedChanges, in: 1...Int.max),
        choice("key-storage", \.keyStorage),
        optionalText("key-secret-file", \.keySecretFile),
    ]

    static let byName: [String: Setting] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}

extension Double {
    /// Without a fraction when whole (`10000`, not `10000.0`).
    var formatted: String {
        self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}

import Configuration
import Foundation
import SystemPackage
import Yams

/// Where a setting's value came from, in precedence order: a flag beats the environment, which
/// beats the config file, which beats the default.
enum SettingSource: String, Sendable {
    case flag, environment, file, `default`
}

/// A setting that could not be used, named with where its value came from.
struct SettingError: Error, CustomStringConvertible {
    var description: String
}

/// The effective `serve` settings and where each came from.
struct ResolvedSettings: Sendable {
    var settings = ServeSettings()
    /// Every setting's source, by name.
    var sources: [String: SettingSource] = [:]
    /// `APIKEYD_*` variables that name no setting (worth a warning: a typo is silently ignored).
    var unknownEnvironment: [String] = []

    /// `key = value (source)` for every setting, the secret ones redacted.
    var printed: String {
        Setting.all.map { setting in
            let source = sources[setting.name] ?? .default
            let value = setting.isSecret && source != .default ? "(redacted)" : setting.render(settings)
            return "\(setting.name) = \(value) (\(source.rawValue))"
        }.joined(separator: "\n")
    }
}

/// Reads the settings from flags, the environment and a config file, through
/// swift-configuration's providers (`EnvironmentVariablesProvider`, `FileProvider` with a YAML or
/// JSON snapshot), and checks every value.
enum SettingSources {
    /// The settings `flags` (values given on the command line, by setting name), `environment`
    /// and the file at `configPath` (YAML; JSON when the name ends in `.json`) come to. Throws
    /// on an unknown key in the file, or a value that does not parse or is out of range,
    /// naming the key and its source.
    static func resolve(
        flags: [String: Setting.Value], environment: [String: String], configPath: String?
    ) async throws -> ResolvedSettings {
        var resolved = ResolvedSettings()
        let environmentReader = ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: environment))
        var fileReader: ConfigReader?
        var fileKeys: Set<String> = []
        if let configPath {
            fileKeys = try topLevelKeys(configPath)
            if let unknown = fileKeys.sorted().first(where: { Setting.byName[$0] == nil }) {
                throw SettingError(
                    description:
                        "unknown key '\(unknown)' in the config file \(configPath)\(suggestion(for: unknown)); the keys are the serve option names without the dashes"
                )
            }
            if !fileKeys.isEmpty {
                let path = FilePath(configPath)
                do {
                    let provider: any ConfigProvider =
                        configPath.hasSuffix(".json")
                        ? try await FileProvider<JSONSnapshot>(filePath: path)
                        : try await FileProvider<YAMLSnapshot>(filePath: path)
                    fileReader = ConfigReader(provider: provider)
                } catch {
                    throw SettingError(description: "the config file \(configPath) cannot be used: \(error)")
                }
            }
        }
        let known = Set(Setting.all.map(\.environmentName))
        resolved.unknownEnvironment = environment.keys.filter { $0.hasPrefix("APIKEYD_") && !known.contains($0) }
            .sorted()

        for setting in Setting.all {
            let value: Setting.Value
            let source: SettingSource
            let origin: String
            if let flag = flags[setting.name] {
                (value, source, origin) = (flag, .flag, "the flag --\(setting.name)")
            } else if environment[setting.environmentName] != nil {
                origin = "the environment variable \(setting.environmentName)"
                value = try read(
                    setting, from: environmentReader, key: ConfigKey(["apikeyd", setting.name]), origin: origin,
                    text: environment[setting.environmentName])
                source = .environment
            } else if let fileReader, fileKeys.contains(setting.name) {
                origin = "key '\(setting.name)' of the config file \(configPath ?? "")"
                value = try read(setting, from: fileReader, key: ConfigKey([setting.name]), origin: origin, text: nil)
                source = .file
            } else {
                continue
            }
            if let problem = setting.set(value, into: &resolved.settings) {
                throw SettingError(description: "\(setting.name) from \(origin): \(problem)")
            }
            resolved.sources[setting.name] = source
        }
        if let problem = resolved.settings.problems().first {
            throw SettingError(description: problem)
        }
        return resolved
    }

    /// The value of `setting` in one provider, converted as its kind asks.
    private static func read(
        _ setting: Setting, from reader: ConfigReader, key: ConfigKey, origin: String, text: String?
    ) throws -> Setting.Value {
        do {
            switch setting.kind {
            case .integer: return .integer(try reader.requiredInt(forKey: key))
            case .number: return .number(try reader.requiredDouble(forKey: key))
            case .boolean: return .boolean(try reader.requiredBool(forKey: key))
            case .text: return .text(try reader.requiredString(forKey: key, isSecret: setting.isSecret))
            case .list: return .list(try reader.requiredStringArray(forKey: key))
            }
        } catch {
            let shown = setting.isSecret ? "" : text.map { " '\($0)'" } ?? ""
            throw SettingError(
                description: "\(setting.name) from \(origin): the value\(shown) is not \(expected(setting.kind))")
        }
    }

    private static func expected(_ kind: Setting.Kind) -> String {
        switch kind {
        case .integer: "a whole number"
        case .number: "a number"
        case .boolean: "true or false"
        case .text: "a text"
        case .list: "a list (in the environment: comma-separated)"
        }
    }

    /// The keys of the file's top-level mapping; throws when it cannot be read or is no mapping
    /// of plain values (a nested mapping is no setting).
    static func topLevelKeys(_ path: String) throws -> Set<String> {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SettingError(description: "cannot read the config file \(path): \(error.localizedDescription)")
        }
        if path.hasSuffix(".json") {
            guard let data = text.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data),
                let members = object as? [String: Any]
            else { throw SettingError(description: "the config file \(path) is not a JSON object") }
            for (key, value) in members where value is [String: Any] || value is NSNull {
                throw SettingError(
                    description:
                        "key '\(key)' of the config file \(path) holds \(value is NSNull ? "null" : "an object"), not a value"
                )
            }
            return Set(members.keys)
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw SettingError(description: "the config file \(path) is not valid YAML: \(error)")
        }
        guard let node else { return [] }
        guard let mapping = node.mapping else {
            throw SettingError(description: "the config file \(path) is not a YAML mapping of option names to values")
        }
        var keys: Set<String> = []
        for (key, value) in mapping {
            guard let name = key.string else {
                throw SettingError(description: "the config file \(path) has a key that is not a text")
            }
            if value.mapping != nil {
                throw SettingError(description: "key '\(name)' of the config file \(path) holds a mapping, not a value")
            }
            // A plain `~`, `null` or nothing is YAML's null: no value, not the text "~".
            if let scalar = value.scalar, scalar.style == .plain,
                ["", "~", "null", "Null", "NULL"].contains(scalar.string)
            {
                throw SettingError(
                    description:
                        "key '\(name)' of the config file \(path) holds null; give a value or leave the key out")
            }
            keys.insert(name)
        }
        return keys
    }

    /// ", did you mean 'port'?" for a key one or two edits from a setting's name.
    private static func suggestion(for key: String) -> String {
        let close = Setting.all.map(\.name).min { distance($0, key) < distance($1, key) }
        guard let close, distance(close, key) <= 2 else { return "" }
        return " (did you mean '\(close)'?)"
    }

    /// Levenshtein distance.
    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var row = [i + 1]
            for (j, y) in b.enumerated() {
                row.append(min(previous[j + 1] + 1, row[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = row
        }
        return previous[b.count]
    }
}

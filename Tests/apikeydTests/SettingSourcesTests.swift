import APIKeyEngine
import Foundation
import Logging
import TestSupport
import Testing

@testable import apikeyd

/// The settings' sources in-process: precedence, every kind of value from each source, and the
/// errors that name the key and where its value came from.
@Suite struct SettingSourcesTests {
    static func resolve(
        flags: [String: Setting.Value] = [:], environment: [String: String] = [:], file: String? = nil,
        json: Bool = false
    ) async throws -> ResolvedSettings {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var path: String?
        if let file {
            path = directory.path + (json ? "/apikeyd.json" : "/apikeyd.yaml")
            try file.write(toFile: path!, atomically: true, encoding: .utf8)
        }
        return try await SettingSources.resolve(flags: flags, environment: environment, configPath: path)
    }

    static func failure(
        flags: [String: Setting.Value] = [:], environment: [String: String] = [:], file: String? = nil,
        json: Bool = false
    ) async -> String {
        do {
            _ = try await resolve(flags: flags, environment: environment, file: file, json: json)
            return "(no error)"
        } catch {
            return "\(error)"
        }
    }

    @Test func flagsBeatTheEnvironmentWhichBeatsTheFile() async throws {
        let file = "port: 1\nrate-burst: 2\nfailed-burst: 3\n"
        let environment = ["APIKEYD_PORT": "4", "APIKEYD_RATE_BURST": "5"]
        let resolved = try await Self.resolve(flags: ["port": .integer(6)], environment: environment, file: file)
        #expect(resolved.settings.port == 6)
        #expect(resolved.settings.rateBurst == 5)
        #expect(resolved.settings.failedBurst == 3)
        #expect(resolved.settings.maxKeys == ServeSettings().maxKeys)
        #expect(resolved.sources["port"] == .flag)
        #expect(resolved.sources["rate-burst"] == .environment)
        #expect(resolved.sources["failed-burst"] == .file)
        #expect(resolved.sources["max-keys"] == nil)
        #expect(resolved.printed.contains("max-keys = 10000000 (default)"))
    }

    @Test func everyKindReadsFromEverySource() async throws {
        let yaml = """
            fsync: no
            allow: ["10.0.0.0/8", "::1"]
            rate-per-second: 2.5
            rate-limit: false
            log-level: debug
            tls-certificate: /etc/cert.pem
            tls-private-key: /etc/key.pem
            """
        var resolved = try await Self.resolve(file: yaml)
        #expect(resolved.settings.fsync == .no)
        #expect(resolved.settings.allow == ["10.0.0.0/8", "::1"])
        #expect(resolved.settings.ratePerSecond == 2.5)
        #expect(resolved.settings.rateLimit == false)
        #expect(resolved.settings.logLevel == .debug)

        let json = #"{"port": 9000, "rate-per-second": 7, "allow": ["10.0.0.0/8"], "access-log": true, "host": "::1"}"#
        resolved = try await Self.resolve(file: json, json: true)
        #expect(resolved.settings.port == 9000)
        #expect(resolved.settings.ratePerSecond == 7)
        #expect(resolved.settings.allow == ["10.0.0.0/8"])
        #expect(resolved.settings.accessLog)
        #expect(resolved.settings.host == "::1")

        resolved = try await Self.resolve(environment: [
            "APIKEYD_ALLOW": "10.0.0.0/8,::1", "APIKEYD_METRICS": "false", "APIKEYD_SHUTDOWN_TIMEOUT_SECONDS": "2.5",
            "APIKEYD_LOG_FORMAT": "json", "APIKEYD_ADMIN_TOKEN": "t", "APIKEYD_PROT": "1",
        ])
        #expect(resolved.settings.allow == ["10.0.0.0/8", "::1"])
        #expect(resolved.settings.metrics == false)
        #expect(resolved.settings.shutdownTimeoutSeconds == 2.5)
        #expect(resolved.settings.logFormat == .json)
        #expect(resolved.unknownEnvironment == ["APIKEYD_PROT"])
        #expect(resolved.printed.contains("admin-token = (redacted) (environment)"))
        #expect(!resolved.printed.contains("= t "))
    }

    @Test func everyOptionHasOneEnvironmentVariable() {
        let names = Setting.all.map(\.environmentName)
        #expect(Set(names).count == names.count)
        #expect(Setting.byName["rate-burst"]?.environmentName == "APIKEYD_RATE_BURST")
        #expect(Setting.byName["allow"]?.environmentName == "APIKEYD_ALLOW")
        for setting in Setting.all {
            #expect(setting.name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" })
        }
    }

    @Test func errorsNameTheKeyAndTheSource() async throws {
        var message = await Self.failure(file: "prot: 9000\n")
        #expect(message.contains("'prot'") && message.contains("did you mean 'port'"), "\(message)")
        message = await Self.failure(file: "port: 70000\n")
        #expect(
            message.contains("port from key 'port' of the config file") && message.contains("0 to 65535"), "\(message)")
        message = await Self.failure(file: "port: nine\n")
        #expect(message.contains("port") && message.contains("whole number"), "\(message)")
        message = await Self.failure(file: "tls:\n  certificate: x\n")
        #expect(message.contains("'tls'") && message.contains("mapping"), "\(message)")
        message = await Self.failure(file: "- port\n")
        #expect(message.contains("not a YAML mapping"), "\(message)")
        message = await Self.failure(file: "port: [1\n")
        #expect(message.contains("not valid YAML"), "\(message)")
        message = await Self.failure(file: #"{"port": "x"}"#, json: true)
        #expect(message.contains("port") && message.contains("whole number"), "\(message)")
        message = await Self.failure(file: #"{"port": {"a": 1}}"#, json: true)
        #expect(message.contains("'port'") && message.contains("object"), "\(message)")
        message = await Self.failure(environment: ["APIKEYD_FSYNC": "sometimes"])
        #expect(message.contains("APIKEYD_FSYNC") && message.contains("always, everysec, no"), "\(message)")
        message = await Self.failure(environment: ["APIKEYD_RATE_PER_SECOND": "-1"])
        #expect(message.contains("APIKEYD_RATE_PER_SECOND") && message.contains("from 0 to"), "\(message)")
        message = await Self.failure(flags: ["shutdown-timeout-seconds": .number(1e300)])
        #expect(message.contains("--shutdown-timeout-seconds") && message.contains("from 0 to 86400"), "\(message)")
        for null in ["admin-token: ~\n", "host: null\n", "data-dir:\n"] {
            message = await Self.failure(file: null)
            #expect(message.contains("holds null"), "\(null): \(message)")
        }
        #expect(try await Self.resolve(file: "host: \"null\"\n").settings.host == "null", "a quoted null is text")
        message = await Self.failure(file: #"{"admin-token": null}"#, json: true)
        #expect(message.contains("holds null"), "\(message)")
        message = await Self.failure(file: "allow: [10.0.0.0/8, {a: b}]\n")
        #expect(message.contains("config file") && message.contains("cannot be used"), "\(message)")
        message = await Self.failure(file: "rate-per-second: .inf\n")
        #expect(message.contains("rate-per-second"), "\(message)")
        message = await Self.failure(flags: ["trusted-proxy": .list(["10.0.0.0/33"])])
        #expect(message.contains("--trusted-proxy") && message.contains("10.0.0.0/33"), "\(message)")
        message = await Self.failure(flags: ["tls-certificate": .text("/c.pem")])
        #expect(message.contains("together"), "\(message)")
        message = await Self.failure(flags: ["segment-bytes": .integer(100)])
        #expect(message.contains("--segment-bytes") && message.contains("at least 4096"), "\(message)")
    }

    @Test func jsonLogLinesAreObjectsWithTheMetadataAsMembers() throws {
        let line = LogLineHandler.line(
            format: .json, timestamp: "2026-12-01T20:00:00.123Z", level: .notice,
            message: "listening on http://[::1]:8080 \"quoted\"\nsecond line",
            metadata: ["port": "8080", "path": "a b", "message": "shadowed"])
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let object = try JSONValue.parse(String(line.dropLast()))
        #expect(object["timestamp"] == .string("2026-12-01T20:00:00.123Z"))
        #expect(object["level"] == .string("notice"))
        #expect(object["message"] == .string("listening on http://[::1]:8080 \"quoted\"\nsecond line"))
        #expect(object["port"] == .string("8080") && object["path"] == .string("a b"))

        let text = LogLineHandler.line(
            format: .text, timestamp: "T", level: .info, message: "two\nlines", metadata: ["b": "x y", "a": "1"])
        #expect(text == "T info two lines a=1 b=\"x y\"\n")
        #expect(LogLineHandler.timestamp().wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/#) != nil)
    }

    @Test func listenAddressesAreURLs() {
        #expect(Daemon.url(host: "::1", port: 8080, tls: false) == "http://[::1]:8080")
        #expect(Daemon.url(host: "127.0.0.1", port: 443, tls: true) == "https://127.0.0.1:443")
        #expect(Daemon.url(host: "localhost", port: 1, tls: false) == "http://localhost:1")
    }
}

/// The commented sample config lists every setting once with its default, and uncommented it is
/// a valid config that changes nothing.
@Suite struct SampleConfigTests {
    static func sample() throws -> String {
        let here = URL(fileURLWithPath: #filePath)
        let path = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("data/apikeyd.yaml").path
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func theSampleListsEverySettingWithItsDefault() async throws {
        let lines = try Self.sample().split(separator: "\n").map(String.init)
        let settings = lines.compactMap { line -> (String, String)? in
            guard let match = line.wholeMatch(of: #/# ([a-z-]+):(.*)/#) else { return nil }
            return (String(match.1), String(match.2).trimmingCharacters(in: .whitespaces))
        }
        #expect(settings.map(\.0).sorted() == Setting.all.map(\.name).sorted())
        // Uncommented (but for the settings without a default), it comes to the defaults.
        let uncommented = settings.filter { !$0.1.isEmpty }.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
        let resolved = try await SettingSourcesTests.resolve(file: uncommented)
        for setting in Setting.all {
            #expect(setting.render(resolved.settings) == setting.render(ServeSettings()), "\(setting.name)")
        }
        #expect(resolved.sources.count == settings.filter { !$0.1.isEmpty }.count)
    }
}

/// The README's table of `serve` options: every option once, with its file key and its
/// environment variable.
@Suite struct OptionTableTests {
    @Test func theReadmeListsEveryOptionOnceWithItsKeyAndVariable() throws {
        let here = URL(fileURLWithPath: #filePath)
        let readme = try String(
            contentsOf: here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("README.md"), encoding: .utf8)
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `--") }
        var listed: [String] = []
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, cells[1].hasPrefix("`"), cells[2].hasPrefix("`APIKEYD_") else { continue }
            let key = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            listed.append(key)
            #expect(cells[0].contains("`--\(key)"), "\(row)")
            #expect(cells[2] == "`\(Setting.byName[key]?.environmentName ?? "?")`", "\(row)")
        }
        #expect(listed.sorted() == Setting.all.map(\.name).sorted())
    }
}

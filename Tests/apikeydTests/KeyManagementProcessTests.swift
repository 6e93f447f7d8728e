import APIKeyEngine
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Managing and migrating keys with the real `apikeyd`: a FOSSBilling dump imported and served,
/// export and import round trips (also from a directory a server is using), every `keys` and
/// `clients` command against a real server with its error paths, and imports that fail whole.
@Suite(.serialized) struct KeyManagementProcessTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let generator = root + "/Benchmarks/fossbilling-dump.py"

    /// `apikeyd` with `arguments`: exit status, standard output, standard error.
    static func apikeyd(
        _ arguments: [String], _ environment: [String: String] = [:]
    ) throws -> (
        status: Int32, out: String, err: String
    ) {
        let (status, out, err) = try OperationsProcessTests.run(
            arguments, environment: OperationsProcessTests.environment(environment))
        return (status, out, err)
    }

    /// The environment that points the management commands at `server`.
    static func pointing(at server: ServerProcess, token: String = ServerProcess.adminToken) -> [String: String] {
        ["APIKEYD_URL": "http://127.0.0.1:\(server.port)", "APIKEYD_ADMIN_TOKEN": token]
    }

    static func temporary(_ name: String) -> String {
        "/tmp/apikeyd-keys-\(name)-\(UInt64.random(in: 0...UInt64.max))"
    }

    /// Every file of a directory with its bytes.
    static func contents(_ directory: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            files[name] = FileManager.default.contents(atPath: directory + "/" + name)
        }
        return files
    }

    static func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    // MARK: - FOSSBilling

    @Test(.timeLimit(.minutes(5)))
    func aFOSSBillingDumpImportsAndEveryKeyAnswersAsItsOrderSays() async throws {
        try await HeavyWork.run {
            let work = Self.temporary("fossbilling")
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            var exports: [String] = []
            for style in ["extended", "single", "columns"] {
                let dump = "\(work)/\(style).sql"
                let (generated, output) = try OperationsProcessTests.tool(
                    "/usr/bin/env",
                    [
                        "python3", Self.generator, "--orders", "1500", "--seed", "14", "--style", style, "--output",
                        dump, "--expected", "\(work)/expected.jsonl",
                    ])
                try #require(generated == 0, "\(output)")
                let imported = try Self.apikeyd([
                    "import", "--data-dir", "\(work)/\(style)", "--format", "fossbilling", dump,
                ])
                try #require(imported.status == 0, "\(imported.err)")
                let expected = try Self.jsonLines(String(contentsOfFile: "\(work)/expected.jsonl", encoding: .utf8))
                let summary = try #require(expected.last?["summary"] as? [String: Any])
                let skipped = try #require(summary["skipped"] as? [String: Int])
                let tokens = expected.filter { $0["api_token"] != nil }
                #expect(
                    imported.out.hasPrefix(
                        "imported \(summary["imported"] as! Int) keys and \(tokens.count) client tokens into"),
                    "\(imported.out)")
                #expect(imported.out.contains("failed_setup \(skipped["failed_setup"]!)"), "\(imported.out)")
                #expect(imported.out.contains("pending_setup \(skipped["pending_setup"]!)"), "\(imported.out)")
                #expect(imported.out.contains("no api_key \(skipped["no_api_key"]!)"), "\(imported.out)")
                let export = try Self.apikeyd(["export", "--data-dir", "\(work)/\(style)"])
                try #require(export.status == 0, "\(export.err)")
                exports.append(export.out)
            }
            // The three forms of INSERT give the same keys.
            #expect(exports[0] == exports[1] && exports[1] == exports[2])

            let expected = try Self.jsonLines(String(contentsOfFile: "\(work)/expected.jsonl", encoding: .utf8))
            let keys = expected.filter { $0["api_key"] != nil }
            let server = try ServerProcess.start(dataDirectory: "\(work)/extended")
            defer { try? server.stop() }
            let now = Int64(Date().timeIntervalSince1970)
            for key in keys {
                let apiKey = key["api_key"] as! String
                let status = key["status"] as! String
                let expires = (key["expires_at"] as? String).flatMap(Timestamp.parse)
                let valid = status == "active" && (expires.map { $0 > now } ?? true)
                let escaped = apiKey.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let check = server.request("GET", "/api/guest/serviceapikey/check?key=\(escaped)", admin: false)
                #expect(check?.body?["result"] == .bool(valid), "\(key): \(String(describing: check))")
                let record = try server.result("GET", "/api/admin/serviceapikey/get?key=\(escaped)")
                #expect(record["order_id"] == .integer(key["order_id"] as! Int), "\(key)")
                #expect(record["client_id"] == .integer(key["client_id"] as! Int), "\(key)")
                #expect(record["status"] == .string(status), "\(key)")
                #expect(record["expires_at"] == ((key["expires_at"] as? String).map { .string($0) } ?? .null))
                #expect(record["created_at"] == .string(key["created_at"] as! String), "\(key)")
                let storedConfig = try JSONSerialization.jsonObject(with: Data(record["config"]!.encoded))
                #expect(
                    NSDictionary(dictionary: storedConfig as! [String: Any])
                        == NSDictionary(dictionary: key["config"] as! [String: Any]), "\(key)")
                let info = server.request("GET", "/api/guest/serviceapikey/get_info?key=\(escaped)", admin: false)
                #expect(info?.body?["result"]?["valid"] == .integer(valid ? 1 : 0), "\(key)")
                if let tier = (key["config"] as! [String: Any])["custom_tier"] as? String {
                    #expect(info?.body?["result"]?["config"]?["tier"] == .string(tier), "\(key)")
                }
            }
            // A client's FOSSBilling API token lists that client's keys.
            for token in expected.filter({ $0["api_token"] != nil }).prefix(20) {
                let clientID = token["client_id"] as! Int
                let credentials = Data("client:\(token["api_token"] as! String)".utf8).base64EncodedString()
                let head =
                    "GET /api/client/serviceapikey/get_list?per_page=1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic \(credentials)\r\n\r\n"
                let answer = String(
                    decoding: ServerProcess.exchange(port: server.port, Array(head.utf8)) ?? [], as: UTF8.self)
                let body = try #require(answer.range(of: "\r\n\r\n").map { String(answer[$0.upperBound...]) })
                let list = try JSONValue.parse(body)["result"]?["list"]
                guard case .array(let records)? = list else {
                    Issue.record("client \(clientID): \(answer)")
                    continue
                }
                let own = keys.filter { $0["client_id"] as! Int == clientID }.map { $0["order_id"] as! Int }.sorted()
                #expect(records.map { $0["order_id"] } == own.map { .integer($0) }, "client \(clientID)")
            }
        }
    }

    // MARK: - Export and import

    @Test(.timeLimit(.minutes(3)))
    func exportImportExportIsIdenticalAlsoFromARunningServer() async throws {
        try await HeavyWork.run {
            let work = Self.temporary("roundtrip")
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let server = try ServerProcess.start(dataDirectory: "\(work)/live")
            defer { try? server.stop() }
            let configs = [
                "", "&config[custom_tier]=pro&config[custom_monthlyLimit]=100", "&config[length]=10&config[case]=mixed",
                "&status=suspended&expires_at=2031-05-06%2007:08:09", "&config[custom_note]=a%2Cb%22c%0Ad",
            ]
            for index in 0..<200 {
                #expect(server.create(form: "client_id=\(index % 17 + 1)" + configs[index % configs.count]) != nil)
            }
            for client in 1...5 {
                _ = try server.result("POST", "/api/admin/client/token_reset", form: "client_id=\(client)")
            }
            let filesBefore = try Self.contents("\(work)/live")
            for format in ["jsonl", "csv"] {
                let first = try Self.apikeyd([
                    "export", "--data-dir", "\(work)/live", "--format", format, "--output", "\(work)/one.\(format)",
                ])
                try #require(first.status == 0, "\(first.err)")
                #expect(first.err.contains("exported 200 keys"), "\(first.err)")
                let imported = try Self.apikeyd([
                    "import", "--data-dir", "\(work)/copy-\(format)", "--format", format, "\(work)/one.\(format)",
                ])
                try #require(imported.status == 0, "\(imported.err)")
                let second = try Self.apikeyd([
                    "export", "--data-dir", "\(work)/copy-\(format)", "--format", format, "--output",
                    "\(work)/two.\(format)",
                ])
                try #require(second.status == 0, "\(second.err)")
                let one = try String(contentsOfFile: "\(work)/one.\(format)", encoding: .utf8)
                #expect(one == (try String(contentsOfFile: "\(work)/two.\(format)", encoding: .utf8)))
                // Every line a record (CSV: after its header), each ended by a line break.
                let lines = one.split(separator: "\n", omittingEmptySubsequences: false)
                #expect(lines.count == (format == "jsonl" ? 206 : 202) && lines.last == "", "\(lines.prefix(3))")
                #expect(!lines.dropLast().contains(""), "an empty line in the \(format) export")
            }
            // The running server's files are as they were.
            #expect(try Self.contents("\(work)/live") == filesBefore)

            // Under a write load, an export is whole: every line a record, as of one moment.
            let writer = Thread {
                for index in 0..<300 { _ = server.create(form: "client_id=\(index + 100)") }
            }
            writer.start()
            var counts: [Int] = []
            for _ in 0..<5 {
                let export = try Self.apikeyd(["export", "--data-dir", "\(work)/live"])
                try #require(export.status == 0, "\(export.err)")
                let lines = try Self.jsonLines(export.out)
                #expect(lines.allSatisfy { $0["order_id"] != nil || $0["api_token"] != nil })
                counts.append(lines.filter { $0["api_key"] != nil }.count)
            }
            while !writer.isFinished { usleep(1000) }
            #expect(counts == counts.sorted() && counts.allSatisfy { (200...500).contains($0) }, "\(counts)")
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aBadRowStopsTheImportAndLeavesTheDirectoryAsItWas() async throws {
        try await HeavyWork.run {
            let work = Self.temporary("bad-row")
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let good =
                #"{"order_id": 1, "client_id": 1, "api_key": "ONE", "config": {}, "status": "active", "expires_at": null, "created_at": "2024-01-01 00:00:00", "updated_at": "2024-01-01 00:00:00"}"#
            try OperationsProcessTests.write(
                "\(good)\n{\"order_id\": 5, \"client_id\": 1, \"api_key\": \"FIVE\"}\n", to: "\(work)/base.jsonl")
            let base = try Self.apikeyd([
                "import", "--data-dir", "\(work)/store", "--format", "jsonl", "\(work)/base.jsonl",
            ])
            try #require(base.status == 0, "\(base.err)")
            let before = try Self.contents("\(work)/store")

            let rows = [
                #"{"order_id": 2, "client_id": 1, "api_key": "TWO"}"#,
                "",
                #"{"order_id": 3, "client_id": 1, "api_key": "THREE", "config": {"custom_monthlyLimit": "lots"}}"#,
                #"{"order_id": 4, "client_id": 1, "api_key": "ONE"}"#,
                #"{"order_id": 5, "client_id": 2, "api_key": "OTHER"}"#,
                #"{"order_id": 6, "client_id": 1, "api_key": "SIX", "config": "{not json"}"#,
                #"{"order_id": 7, "client_id": 1, "api_key": "SEVEN", "status": "paused"}"#,
                #"{"order_id": 8, "client_id": 1, "api_key": "EIGHT"}"#,
            ]
            try OperationsProcessTests.write(rows.joined(separator: "\n") + "\n", to: "\(work)/more.jsonl")
            let refused = try Self.apikeyd([
                "import", "--data-dir", "\(work)/store", "--format", "jsonl", "\(work)/more.jsonl",
            ])
            #expect(refused.status == 1)
            #expect(refused.err.contains("\(work)/more.jsonl:3: custom_monthlyLimit"), "\(refused.err)")
            #expect(refused.err.contains("nothing was imported"), "\(refused.err)")
            #expect(try Self.contents("\(work)/store") == before)
            // Into a directory that does not exist: none is made.
            let fresh = try Self.apikeyd([
                "import", "--data-dir", "\(work)/new", "--format", "jsonl", "\(work)/more.jsonl",
            ])
            #expect(fresh.status == 1)
            #expect(!FileManager.default.fileExists(atPath: "\(work)/new"))
            // A misspelt field is refused, not dropped for its default.
            try OperationsProcessTests.write(
                #"{"order_id": 9, "client_id": 1, "api_key": "NINE", "Status": "canceled"}"# + "\n",
                to: "\(work)/typo.jsonl")
            let typo = try Self.apikeyd([
                "import", "--data-dir", "\(work)/store", "--format", "jsonl", "\(work)/typo.jsonl",
            ])
            #expect(typo.status == 1 && typo.err.contains("\(work)/typo.jsonl:1: unknown field 'Status'"), "\(typo)")
            #expect(try Self.contents("\(work)/store") == before)
            // A good import into a new directory: built aside, then renamed into place.
            let made = try Self.apikeyd([
                "import", "--data-dir", "\(work)/made/", "--format", "jsonl", "\(work)/base.jsonl",
            ])
            #expect(made.status == 0, "\(made)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.contains("importing") } == [])
            #expect(try Self.contents("\(work)/made").keys.contains { $0.hasPrefix("snapshot-") })

            let skipping = try Self.apikeyd([
                "import", "--data-dir", "\(work)/store", "--format", "jsonl", "--skip-invalid", "\(work)/more.jsonl",
            ])
            #expect(skipping.status == 0, "\(skipping.err)")
            for line in [3, 4, 5, 6, 7] {
                #expect(skipping.err.contains("\(work)/more.jsonl:\(line): skipped:"), "line \(line): \(skipping.err)")
            }
            #expect(skipping.err.contains("already the key of order 1"), "\(skipping.err)")
            #expect(skipping.err.contains("Order 5 already has an API key"), "\(skipping.err)")
            #expect(
                skipping.out.hasPrefix("imported 2 keys and 0 client tokens into \(work)/store; skipped 5: invalid 5"))
            let export = try Self.apikeyd(["export", "--data-dir", "\(work)/store"])
            #expect(try Self.jsonLines(export.out).map { $0["api_key"] as! String } == ["ONE", "TWO", "FIVE", "EIGHT"])

            // A directory a server is using is refused.
            let server = try ServerProcess.start(dataDirectory: "\(work)/store")
            defer { try? server.stop() }
            let busy = try Self.apikeyd([
                "import", "--data-dir", "\(work)/store", "--format", "jsonl", "\(work)/base.jsonl",
            ])
            #expect(busy.status == 1)
            #expect(busy.err.contains("in use by a running server"), "\(busy.err)")
        }
    }

    @Test func maintenanceCommandsRefuseADirectoryThatDoesNotExist() throws {
        let missing = Self.temporary("typo")
        for command in ["snapshot", "verify-data", "export"] {
            let run = try Self.apikeyd([command, "--data-dir", missing])
            #expect(run.status == 1, "\(command)")
            #expect(run.err == "apikeyd: no data directory at \(missing)\n", "\(command)")
            #expect(!FileManager.default.fileExists(atPath: missing), "\(command)")
        }
    }

    // MARK: - Commands against a server

    @Test(.timeLimit(.minutes(3)))
    func everyKeysCommandAgainstARealServer() async throws {
        try await HeavyWork.run {
            let work = Self.temporary("cli")
            defer { try? FileManager.default.removeItem(atPath: work) }
            let server = try ServerProcess.start(dataDirectory: work)
            defer { try? server.stop() }
            let env = Self.pointing(at: server)
            func keys(
                _ arguments: [String], _ environment: [String: String]? = nil
            ) throws -> (
                status: Int32, out: String, err: String
            ) {
                try Self.apikeyd(["keys"] + arguments, environment ?? env)
            }

            let created = try keys([
                "create", "--client-id", "7", "--order-id", "70", "--config", #"{"custom_tier": "pro", "length": 12}"#,
                "--expires-at", "2030-01-02 03:04:05",
            ])
            try #require(created.status == 0, "\(created.err)")
            let lines = created.out.split(separator: "\n").map(String.init)
            let key = lines[0]
            #expect(key.count == 13 && !key.contains(":"), "\(created.out)")
            #expect(lines.contains("order_id: 70") && lines.contains("api_key: \(key)"), "\(created.out)")
            #expect(lines.contains(#"config: {"custom_tier": "pro", "length": 12}"#), "\(created.out)")
            #expect(lines.contains("expires_at: 2030-01-02 03:04:05"), "\(created.out)")
            #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(key)") == .bool(true))

            let json = try keys(["create", "--client-id", "7", "--json", "--status", "suspended"])
            let record = try JSONValue.parse(json.out.trimmingCharacters(in: .newlines))
            #expect(record["status"] == .string("suspended") && record["order_id"] == .integer(71), "\(json.out)")

            let got = try keys(["get", "--key", key])
            #expect(got.status == 0 && got.out.contains("order_id: 70\nclient_id: 7\napi_key: \(key)\n"), "\(got.out)")
            #expect(try keys(["get", "--order-id", "71", "--json"]).out == json.out)

            for index in 0..<1200 { _ = server.create(form: "client_id=\(index % 2 == 0 ? 8 : 9)") }
            let listed = try keys(["list", "--client-id", "8", "--json"])
            #expect(listed.status == 0)
            #expect(try Self.jsonLines(listed.out).count == 600)
            let all = try keys(["list"])
            let table = all.out.split(separator: "\n")
            #expect(table.count == 1203 && table[0].hasPrefix("ORDER_ID  CLIENT_ID  STATUS"), "\(table.prefix(3))")
            #expect(table[1].hasPrefix("70        7          active     2030-01-02 03:04:05  \(key)"), "\(table[1])")
            #expect(try keys(["list", "--status", "suspended", "--json"]).out.split(separator: "\n").count == 1)

            let updated = try keys([
                "update", "--order-id", "70", "--config", #"{"custom_tier": "free"}"#, "--expires-at", "none",
            ])
            #expect(updated.out == "updated order 70\n", "\(updated)")
            let afterUpdate = try server.result("GET", "/api/admin/serviceapikey/get?order_id=70")
            #expect(afterUpdate["expires_at"] == .null && afterUpdate["config"]?["custom_tier"] == .string("free"))
            #expect(try keys(["update", "--order-id", "70", "--valid", "false"]).status == 0)
            #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(key)") == .bool(false))

            for (command, status) in [
                ("unsuspend", "active"), ("suspend", "suspended"), ("unsuspend", "active"), ("cancel", "canceled"),
                ("uncancel", "active"),
            ] {
                let run = try keys([command, "--order-id", "70"])
                #expect(run.status == 0, "\(command): \(run.err)")
                #expect(
                    try server.result("GET", "/api/admin/serviceapikey/get?order_id=70")["status"] == .string(status))
            }

            // Rotation with a grace period: both keys work until a second reset.
            let reset = try keys(["reset", "--key", key, "--grace", "1h"])
            let newKey = String(reset.out.split(separator: "\n")[0])
            #expect(reset.status == 0 && newKey != key && reset.out.contains("api_key: \(newKey)"), "\(reset)")
            #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(key)") == .bool(true))
            #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(newKey)") == .bool(true))
            let again = try keys(["reset", "--order-id", "70"])
            let newest = String(again.out.split(separator: "\n")[0])
            for gone in [key, newKey] {
                let answer = server.request("GET", "/api/guest/serviceapikey/check?key=\(gone)", admin: false)
                #expect(answer?.body?["error"]?["message"] == .string("API key does not exist"))
            }
            #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(newest)") == .bool(true))

            _ = server.request("GET", "/api/guest/serviceapikey/verify?key=\(newest)", admin: false)
            let usage = try keys(["usage", "--order-id", "70"])
            #expect(usage.out.contains("order_id: 70\n") && usage.out.contains("used: 1\n"), "\(usage)")
            let clientUsage = try keys(["usage", "--client-id", "7", "--month", "2020-01"])
            #expect(clientUsage.out.contains("month: 2020-01") && clientUsage.out.contains("order 70: used 0"))

            let token = try Self.apikeyd(["clients", "token-reset", "--client-id", "7"], env)
            let tokenLine = String(token.out.split(separator: "\n")[0])
            #expect(tokenLine.count == 64 && token.out.contains("api_token: \(tokenLine)"), "\(token)")

            #expect(try keys(["delete", "--order-id", "71"]).out == "deleted order 71\n")

            // Errors: the server's message and status 1; bad options status 2.
            let unknown = try keys(["get", "--order-id", "999999"])
            #expect(unknown.status == 1 && unknown.err == "apikeyd: Order not found\n", "\(unknown)")
            let denied = try keys(["list"], Self.pointing(at: server, token: "wrong"))
            #expect(denied.status == 1 && denied.err == "apikeyd: Authentication Failed\n", "\(denied)")
            let refused = try keys(["suspend", "--order-id", "71"])
            #expect(refused.status == 1 && refused.err == "apikeyd: Order not found\n", "\(refused)")
            // Every command's refusal by the server: its message, status 1.
            for (command, message) in [
                (["create", "--client-id", "7", "--order-id", "70"], "Order 70 already has an API key"),
                (["create", "--client-id", "7", "--config", #"{"length": 0}"#], nil),
                (["get", "--key", "NO-SUCH-KEY"], "API key does not exist"),
                (["list", "--client-id", "0"], "client_id must be a positive integer"),
                (["update", "--order-id", "999999", "--valid", "true"], "Order not found"),
                (["update", "--order-id", "70", "--expires-at", "soon"], nil),
                (["reset", "--order-id", "999999"], "Order not found"),
                (["reset", "--key", "NO-SUCH-KEY", "--grace", "60"], "API key does not exist"),
                (["unsuspend", "--order-id", "70"], "Only suspended orders can be unsuspended"),
                (["uncancel", "--order-id", "70"], "Only canceled orders can be uncanceled"),
                (["cancel", "--order-id", "999999"], "Order not found"),
                (["delete", "--order-id", "71"], "Order not found"),
                (["usage", "--order-id", "999999"], "Order not found"),
                (["usage", "--order-id", "70", "--month", "2020-13"], nil),
            ] as [([String], String?)] {
                let run = try keys(command)
                #expect(run.status == 1 && run.out.isEmpty, "\(command): \(run)")
                if let message { #expect(run.err == "apikeyd: \(message)\n", "\(command)") }
                #expect(run.err.hasPrefix("apikeyd: ") && run.err.split(separator: "\n").count == 1, "\(command)")
            }
            let badClient = try Self.apikeyd(["clients", "token-reset", "--client-id", "0"], env)
            #expect(badClient.status == 1 && badClient.err == "apikeyd: client_id must be a positive integer\n")
            let port = try OperationsProcessTests.freePort()
            let away = try keys(["list", "--url", "http://127.0.0.1:\(port)"])
            #expect(
                away.status == 1 && away.err.contains("cannot reach the server at http://127.0.0.1:\(port)"), "\(away)")
            for bad in [
                ["get"], ["get", "--order-id", "1", "--key", "K"], ["create"], ["create", "--client-id", "x"],
                ["create", "--client-id", "1", "--config", "[1]"],
                ["create", "--client-id", "1", "--status", "paused"],
                ["reset", "--order-id", "70", "--grace", "31d"], ["reset", "--order-id", "70", "--grace", "1w"],
                ["update", "--order-id", "70"], ["usage"], ["nonsense"], ["list", "--url", "ftp://x"],
            ] {
                let run = try keys(bad)
                #expect(run.status == 2, "\(bad): \(run)")
                #expect(!run.err.isEmpty, "\(bad)")
            }
            // A server that takes the connection and never answers.
            let (silent, silentPort) = try OperationsProcessTests.loopbackSocket(listening: true)
            defer { close(silent) }
            let started = Date()
            let hung = try keys(["list", "--url", "http://127.0.0.1:\(silentPort)", "--timeout-seconds", "1"])
            #expect(hung.status == 1 && hung.err.contains("did not answer within 1 s"), "\(hung)")
            #expect(Date().timeIntervalSince(started) < 30)
            let noToken = try Self.apikeyd(["keys", "list"], ["APIKEYD_URL": "http://127.0.0.1:\(server.port)"])
            #expect(noToken.status == 2 && noToken.err.contains("no admin token"), "\(noToken)")
            // A token file, as --admin-token-file.
            try OperationsProcessTests.write("\n  \(ServerProcess.adminToken)  \n", to: work + "-token")
            defer { try? FileManager.default.removeItem(atPath: work + "-token") }
            let fromFile = try Self.apikeyd(
                ["keys", "get", "--order-id", "70", "--admin-token-file", work + "-token"],
                ["APIKEYD_URL": "http://127.0.0.1:\(server.port)"])
            #expect(fromFile.status == 0, "\(fromFile)")
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func keysCommandsWorkOverHTTPS() async throws {
        try await HeavyWork.run {
            let work = Self.temporary("cli-https")
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            try OperationsProcessTests.makeCertificate("apikeyd-cli", in: work)
            let server = try ServerProcess.start(
                dataDirectory: work + "/store",
                arguments: ["--tls-certificate", work + "/cert.pem", "--tls-private-key", work + "/key.pem"])
            defer { try? server.stop() }
            let env = [
                "APIKEYD_URL": "https://127.0.0.1:\(server.port)", "APIKEYD_ADMIN_TOKEN": ServerProcess.adminToken,
            ]
            let created = try Self.apikeyd(
                ["keys", "create", "--client-id", "3", "--ca-certificate", work + "/cert.pem"], env)
            #expect(created.status == 0, "\(created)")
            // Without trusting the certificate, the server cannot be reached.
            let untrusted = try Self.apikeyd(["keys", "list"], env)
            #expect(
                untrusted.status == 1 && untrusted.err.contains("cannot reach the server at https://"), "\(untrusted)")
        }
    }
}

import APIKeyEngine
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `apikeyd serve --key-storage hashed` as a process: keys and tokens shown once, `get` answering
/// `api_key: null`, nothing of them in the data directory, export and import of hashes, and a
/// directory that refuses to start with another key storage.
@Suite(.serialized) struct HashedKeyStorageProcessTests {
    /// The files of `directory` (its secret aside) that hold `text`.
    private static func holds(_ directory: String, _ text: String) throws -> [String] {
        try KeyManagementProcessTests.contents(directory).filter { name, bytes in
            name != "key-secret" && String(decoding: bytes, as: UTF8.self).contains(text)
        }.keys.sorted()
    }

    @Test(.timeLimit(.minutes(3)))
    func aHashedServerShowsKeysOnceAndItsFilesHoldNone() async throws {
        try await HeavyWork.run {
            let work = KeyManagementProcessTests.temporary("hashed")
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let live = "\(work)/live"
            var server = try ServerProcess.start(dataDirectory: live, arguments: ["--key-storage", "hashed"])
            #expect(
                server.output.log.contains("generated a new key secret in \(live)/key-secret"), "\(server.output.log)")
            var status = stat()
            #expect(stat("\(live)/key-secret", &status) == 0 && status.st_mode & 0o777 == 0o600)

            var keys: [String] = []
            for client in 1...3 { keys.append(try #require(server.create(form: "client_id=\(client)")).key) }
            #expect(keys.allSatisfy { !KeyStorage.isStoredHash($0) && $0.count == 35 }, "\(keys)")
            for key in keys {
                #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(key)") == .bool(true))
            }
            #expect(try server.result("GET", "/api/admin/serviceapikey/get?order_id=1")["api_key"] == .null)
            let list = try server.result("GET", "/api/admin/serviceapikey/get_list")
            guard case .array(let records) = list["list"] else { throw KillNineTests.Failure("\(list)") }
            #expect(records.count == 3 && records.allSatisfy { $0["api_key"] == .null }, "\(records)")

            // reset answers the record with the new key, the only time it is shown.
            let reset = try server.result("POST", "/api/admin/serviceapikey/reset", form: "order_id=2")
            guard case .string(let newKey) = reset["api_key"] else { throw KillNineTests.Failure("\(reset)") }
            #expect(newKey != keys[1] && reset["order_id"] == .number("2"))
            #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(newKey)") == .bool(true))
            #expect(server.request("GET", "/api/guest/serviceapikey/check?key=\(keys[1])")?.body?["error"] != .null)
            keys[1] = newKey
            let token = try server.result("POST", "/api/admin/client/token_reset", form: "client_id=1")["api_token"]
            guard case .string(let clientToken) = token else {
                throw KillNineTests.Failure("\(String(describing: token))")
            }
            let mine = ServerProcess.exchange(
                port: server.port,
                Array(
                    "GET /api/client/serviceapikey/get?order_id=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic \(Data("client:\(clientToken)".utf8).base64EncodedString())\r\n\r\n"
                        .utf8))
            #expect(String(decoding: mine ?? [], as: UTF8.self).contains(#""api_key": null"#))

            // `apikeyd keys reset` prints the new key first, from the reset's answer; `keys get` shows none.
            let environment = KeyManagementProcessTests.pointing(at: server)
            let cli = try KeyManagementProcessTests.apikeyd(["keys", "reset", "--order-id", "3"], environment)
            try #require(cli.status == 0, "\(cli.err)")
            let cliKey = String(cli.out.split(separator: "\n").first ?? "")
            #expect(cliKey != keys[2] && cliKey.count == 35, "\(cli.out)")
            #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(cliKey)") == .bool(true))
            keys[2] = cliKey
            let shown = try KeyManagementProcessTests.apikeyd(["keys", "get", "--order-id", "3"], environment)
            #expect(shown.status == 0 && shown.out.contains("api_key: -"), "\(shown.out)")

            // Nothing of a key or the token in any file, journal or snapshot, before or after a stop.
            for text in keys + [clientToken] { #expect(try Self.holds(live, text) == [], "\(text)") }
            _ = try server.result("POST", "/api/admin/storage/snapshot")
            try server.stop()
            for text in keys + [clientToken] { #expect(try Self.holds(live, text) == [], "\(text)") }

            // Plain storage, or another secret, refuses the directory.
            let plain = try KeyManagementProcessTests.apikeyd([
                "serve", "--port", "0", "--data-dir", live, "--admin-token", "x",
            ])
            #expect(plain.status != 0 && plain.err.contains("hashed"), "\(plain.err)")
            let otherSecret = "\(work)/other-secret"
            try String(repeating: "o", count: 40).write(toFile: otherSecret, atomically: true, encoding: .utf8)
            let other = try KeyManagementProcessTests.apikeyd([
                "serve", "--port", "0", "--data-dir", live, "--admin-token", "x", "--key-storage", "hashed",
                "--key-secret-file", otherSecret,
            ])
            #expect(other.status != 0 && other.err.contains("cannot be opened with hashed"), "\(other.err)")

            // The export carries hashes; an import with the same secret answers the same keys.
            let export = try KeyManagementProcessTests.apikeyd(["export", "--data-dir", live])
            try #require(export.status == 0, "\(export.err)")
            let lines = try KeyManagementProcessTests.jsonLines(export.out)
            #expect(lines.count == 4)
            #expect(lines.compactMap { $0["api_key"] as? String }.allSatisfy(KeyStorage.isStoredHash))
            #expect(lines.compactMap { $0["api_token"] as? String }.allSatisfy(KeyStorage.isStoredHash))
            try export.out.write(toFile: "\(work)/export.jsonl", atomically: true, encoding: .utf8)
            let refused = try KeyManagementProcessTests.apikeyd([
                "import", "--data-dir", "\(work)/plain-copy", "--format", "jsonl", "\(work)/export.jsonl",
            ])
            #expect(refused.status == 1 && refused.err.contains("stored hash"), "\(refused.err)")
            let imported = try KeyManagementProcessTests.apikeyd([
                "import", "--data-dir", "\(work)/copy", "--format", "jsonl", "--key-storage", "hashed",
                "--key-secret-file", "\(live)/key-secret", "\(work)/export.jsonl",
            ])
            try #require(imported.status == 0, "\(imported.err)")
            server = try ServerProcess.start(
                dataDirectory: "\(work)/copy",
                arguments: ["--key-storage", "hashed", "--key-secret-file", "\(live)/key-secret"])
            defer { try? server.stop() }
            for key in keys {
                #expect(try server.result("GET", "/api/guest/serviceapikey/check?key=\(key)") == .bool(true))
            }

            // A lost secret is never replaced by a new one for a directory of hashed keys.
            try FileManager.default.moveItem(atPath: "\(live)/key-secret", toPath: "\(work)/saved-secret")
            let lost = try KeyManagementProcessTests.apikeyd([
                "serve", "--port", "0", "--data-dir", live, "--admin-token", "x", "--key-storage", "hashed",
            ])
            #expect(lost.status != 0 && lost.err.contains("key-secret is missing"), "\(lost.err)")
            #expect(!FileManager.default.fileExists(atPath: "\(live)/key-secret"))
            // Nor is one left behind for a plain directory that refuses hashed storage.
            let plainDirectory = "\(work)/plain"
            let plainServer = try ServerProcess.start(dataDirectory: plainDirectory)
            _ = try #require(plainServer.create(form: "client_id=1"))
            try plainServer.stop()
            let switched = try KeyManagementProcessTests.apikeyd([
                "serve", "--port", "0", "--data-dir", plainDirectory, "--admin-token", "x", "--key-storage", "hashed",
            ])
            #expect(
                switched.status != 0 && switched.err.contains("was written with plain key storage"), "\(switched.err)")
            #expect(!FileManager.default.fileExists(atPath: "\(plainDirectory)/key-secret"))

            // Plain keys imported into a new directory with hashed storage: the secret is made in
            // it (a hostile pass found the import failing, the directory not yet there).
            try #"{"order_id": 1, "client_id": 1, "api_key": "PLAIN-KEY-1"}"#.write(
                toFile: "\(work)/plain.jsonl", atomically: true, encoding: .utf8)
            let fresh = "\(work)/fresh-hashed"
            let freshImport = try KeyManagementProcessTests.apikeyd([
                "import", "--data-dir", fresh, "--format", "jsonl", "--key-storage", "hashed", "\(work)/plain.jsonl",
            ])
            try #require(freshImport.status == 0, "\(freshImport.err)")
            #expect(FileManager.default.fileExists(atPath: "\(fresh)/key-secret"))
            let freshServer = try ServerProcess.start(dataDirectory: fresh, arguments: ["--key-storage", "hashed"])
            defer { try? freshServer.stop() }
            #expect(try freshServer.result("GET", "/api/guest/serviceapikey/check?key=PLAIN-KEY-1") == .bool(true))
        }
    }
}

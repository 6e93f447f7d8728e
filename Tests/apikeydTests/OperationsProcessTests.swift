import APIKeyEngine
import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Running it like production software, against the real `apikeyd` process: configuration from
/// flags, the environment and a file; `/metrics` after a load; SIGTERM under a write load;
/// HTTPS and a certificate reloaded on SIGHUP; JSON logs and an access log that holds no key.
@Suite(.serialized) struct OperationsProcessTests {
    /// This process's environment without any `APIKEYD_` setting, plus `extra`.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("APIKEYD_") }.merging(extra) { $1 }
    }

    /// A port nothing listens on now.
    static func freePort() throws -> Int {
        let (descriptor, port) = try loopbackSocket(listening: false)
        close(descriptor)
        return port
    }

    /// A TCP socket bound to a free loopback port (listening, when asked: connections complete
    /// in its backlog and are never answered); the caller closes it.
    static func loopbackSocket(listening: Bool) throws -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && (!listening || listen(descriptor, 8) == 0)
                    && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else {
            close(descriptor)
            throw KillNineTests.Failure("no free port")
        }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Runs `apikeyd` with `arguments` to its end: exit status, standard output, standard error.
    static func run(_ arguments: [String], environment: [String: String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = try KillNineTests.binary()
        process.arguments = arguments
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Runs a helper program (openssl, curl): its exit status and its output and errors together.
    static func tool(_ path: String, _ arguments: [String], input: String = "") throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        let inputPipe = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = inputPipe
        try process.run()
        inputPipe.fileHandleForWriting.write(Data(input.utf8))
        try inputPipe.fileHandleForWriting.close()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: text, as: UTF8.self))
    }

    static func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    // MARK: - Configuration

    @Test(.timeLimit(.minutes(3)))
    func aFlagBeatsTheEnvironmentWhichBeatsTheFile() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let filePort = try Self.freePort()
            let environmentPort = try Self.freePort()
            let config = directory.path + "/apikeyd.yaml"
            try Self.write(
                "# a comment\nport: \(filePort)\nfsync: always\nrate-burst: 100\nallow: [\"10.0.0.0/8\"]\nadmin-token: file-token\n",
                to: config)
            let common = ["--config", config, "--data-dir", directory.path + "/data"]
            let withEnvironment = Self.environment(["APIKEYD_PORT": String(environmentPort), "APIKEYD_FSYNC": "no"])

            // All three: the flag wins.
            var server = try ServerProcess.start(
                dataDirectory: "", arguments: common + ["--port", "0", "--fsync", "everysec"],
                environment: withEnvironment, defaults: false)
            #expect(server.port != filePort && server.port != environmentPort)
            #expect(server.output.log.contains("fsync=everysec"), "\(server.output.log)")
            try server.stop()
            #expect(server.exitStatus(within: 30) == 0)

            // The environment and the file: the environment wins.
            server = try ServerProcess.start(
                dataDirectory: "", arguments: common, environment: withEnvironment, defaults: false)
            #expect(server.port == environmentPort)
            #expect(server.output.log.contains("fsync=no"), "\(server.output.log)")
            // The file's admin token is the one in use.
            let answer = ServerProcess.exchange(
                port: server.port,
                Array(
                    "GET /api/admin/serviceapikey/get_list HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(Data("admin:file-token".utf8).base64EncodedString())\r\nConnection: close\r\n\r\n"
                        .utf8))
            #expect(answer.map { String(decoding: $0, as: UTF8.self).hasPrefix("HTTP/1.1 200") } == true)
            try server.stop()
            #expect(server.exitStatus(within: 30) == 0)

            // The file alone.
            server = try ServerProcess.start(
                dataDirectory: "", arguments: common, environment: Self.environment(), defaults: false)
            #expect(server.port == filePort)
            #expect(server.output.log.contains("fsync=always"), "\(server.output.log)")
            try server.stop()
            #expect(server.exitStatus(within: 30) == 0)

            // --print-config says the same, with every source, the token redacted.
            let (status, printed, _) = try Self.run(
                ["serve", "--print-config"] + common + ["--rate-burst", "7"], environment: withEnvironment)
            #expect(status == 0)
            let lines = Set(printed.split(separator: "\n").map(String.init))
            #expect(lines.contains("port = \(environmentPort) (environment)"))
            #expect(lines.contains("fsync = no (environment)"))
            #expect(lines.contains("rate-burst = 7 (flag)"))
            #expect(lines.contains("allow = 10.0.0.0/8 (file)"))
            #expect(lines.contains("admin-token = (redacted) (file)"))
            #expect(lines.contains("max-keys = 10000000 (default)"))
            #expect(!printed.contains("file-token"))
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aTypoOrABadValueStopsStartUpNamingTheKeyAndSource() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let config = directory.path + "/apikeyd.yaml"
            let data = ["--data-dir", directory.path + "/data", "--port", "0"]
            try Self.write("port: 0\nrate-brust: 100\n", to: config)
            var (status, out, errors) = try Self.run(
                ["serve", "--config", config] + data, environment: Self.environment())
            #expect(status != 0)
            #expect(errors.contains("rate-brust") && errors.contains(config), "\(errors)")
            #expect(!out.contains("listening") && !errors.contains("listening"))

            try Self.write("max-keys: lots\n", to: config)
            (status, _, errors) = try Self.run(["serve", "--config", config] + data, environment: Self.environment())
            #expect(status != 0)
            #expect(errors.contains("max-keys") && errors.contains("config file"), "\(errors)")

            let json = directory.path + "/apikeyd.json"
            try Self.write(#"{"port": 0, "fsync": "sometimes"}"#, to: json)
            (status, _, errors) = try Self.run(["serve", "--config", json] + data, environment: Self.environment())
            #expect(status != 0)
            #expect(errors.contains("fsync") && errors.contains("always, everysec, no"), "\(errors)")

            (status, _, errors) = try Self.run(
                ["serve"] + data, environment: Self.environment(["APIKEYD_RATE_PER_SECOND": "fast"]))
            #expect(status != 0)
            #expect(errors.contains("APIKEYD_RATE_PER_SECOND"), "\(errors)")

            (status, _, errors) = try Self.run(
                ["serve"] + data, environment: Self.environment(["APIKEYD_ALLOW": "10.0.0.0/8,not-an-address"]))
            #expect(status != 0)
            #expect(errors.contains("APIKEYD_ALLOW") && errors.contains("not-an-address"), "\(errors)")
            #expect(!FileManager.default.fileExists(atPath: directory.path + "/data"), "nothing was created")
        }
    }

    // MARK: - Metrics

    /// The metrics' samples by their name and labels, as written.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    @Test(.timeLimit(.minutes(3)))
    func metricsMatchTheLoad() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let server = try ServerProcess.start(
                dataDirectory: directory.path, arguments: ["--metrics-allow", "127.0.0.1/32"])
            defer { try? server.stop() }
            var keys: [String] = []
            for client in 1...5 {
                keys.append(
                    try #require(server.create(form: "client_id=\(client)&config[custom_monthlyLimit]=100")).key)
            }
            _ = try server.result("POST", "/api/admin/serviceapikey/suspend", form: "order_id=2")
            _ = try server.result("POST", "/api/admin/serviceapikey/cancel", form: "order_id=3")
            _ = try server.result("POST", "/api/admin/storage/snapshot")

            // 300 checks of a known key and 40 of an unknown one, pipelined; 25 get_info by
            // POST; 7 verifies.
            var load = ""
            for index in 0..<340 {
                let key = index < 300 ? keys[0] : "UNKNOWN-\(index)"
                load += "GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\nHost: x\r\n\r\n"
            }
            let body = #"{"key": "\#(keys[3])"}"#
            for _ in 0..<25 {
                load +=
                    "POST /api/guest/serviceapikey/get_info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            for _ in 0..<7 { load += "GET /api/guest/serviceapikey/verify?key=\(keys[0]) HTTP/1.1\r\nHost: x\r\n\r\n" }
            load += "GET /not/a/path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let answers = try #require(ServerProcess.exchange(port: server.port, Array(load.utf8)))
            let text = String(decoding: answers, as: UTF8.self)
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 372)

            let scrape = try #require(
                ServerProcess.exchange(
                    port: server.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)))
            let response = String(decoding: scrape, as: UTF8.self)
            #expect(response.hasPrefix("HTTP/1.1 200 OK"))
            #expect(response.contains("Content-Type: text/plain; version=0.0.4"))
            let samples = Self.samples(response)
            func sample(_ name: String) -> Double? { samples[name] }
            let check = #"endpoint="guest/serviceapikey/check""#
            #expect(sample(#"apikeyd_http_requests_total{\#(check),code="200"}"#) == 340)
            #expect(
                sample(#"apikeyd_http_requests_total{endpoint="guest/serviceapikey/get_info",code="200"}"#) == 25)
            #expect(sample(#"apikeyd_http_requests_total{endpoint="guest/serviceapikey/verify",code="200"}"#) == 7)
            #expect(sample(#"apikeyd_http_requests_total{endpoint="admin/serviceapikey/create",code="200"}"#) == 5)
            #expect(sample(#"apikeyd_http_requests_total{endpoint="other",code="404"}"#) == 1)
            #expect(sample(#"apikeyd_http_request_duration_seconds_count{\#(check)}"#) == 340)
            #expect(sample(#"apikeyd_http_request_duration_seconds_bucket{\#(check),le="+Inf"}"#) == 340)
            #expect((sample(#"apikeyd_http_request_duration_seconds_sum{\#(check)}"#) ?? 0) > 0)
            // Buckets are cumulative and end at the count.
            let bounds = ["0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "10"]
            let buckets = bounds.compactMap {
                sample(#"apikeyd_http_request_duration_seconds_bucket{\#(check),le="\#($0)"}"#)
            }
            #expect(buckets.count == bounds.count)
            #expect(buckets == buckets.sorted() && (buckets.last ?? 0) <= 340)
            #expect(sample(#"apikeyd_keys{status="active"}"#) == 3)
            #expect(sample(#"apikeyd_keys{status="suspended"}"#) == 1)
            #expect(sample(#"apikeyd_keys{status="canceled"}"#) == 1)
            #expect(sample(#"apikeyd_verifications_total{code="VALID"}"#) == 7)
            #expect(sample("apikeyd_writes_stopped") == 0)
            #expect((sample("apikeyd_connections") ?? 0) >= 1)
            #expect(sample("apikeyd_journal_bytes").map { $0 > 0 } == true, "7 verifies journaled since the snapshot")
            let snapshotAt = try #require(sample("apikeyd_snapshot_last_success_timestamp_seconds"))
            #expect(abs(snapshotAt - Date().timeIntervalSince1970) < 300)
            #expect(samples.keys.contains { $0.hasPrefix("apikeyd_journal_fsync_duration_seconds_bucket") })
            #expect(sample(#"apikeyd_rate_limited_total{bucket="general"}"#) == 0)

            // From an address not allowed: 403 with the envelope.
            let refused = try #require(
                ServerProcess.exchange(
                    port: server.port, from: "127.0.0.2",
                    Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)))
            let refusal = String(decoding: refused, as: UTF8.self)
            #expect(refusal.hasPrefix("HTTP/1.1 403 Forbidden"))
            #expect(refusal.contains(#""code": 403"#))
            #expect(!refusal.contains("apikeyd_keys"))
        }
    }

    // MARK: - Lifecycle

    @Test(.timeLimit(.minutes(4)))
    func sigtermUnderAWriteLoadExitsZeroAndLosesNoAcknowledgedWrite() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            for round in 0..<3 {
                let server = try ServerProcess.start(
                    dataDirectory: directory.path, arguments: ["--fsync", "always", "--shutdown-timeout-seconds", "5"])
                let acknowledged = Mutex<[(orderID: Int64, key: String)]>([])
                let stop = Atomic(false)
                let finished = DispatchGroup()
                for client in 0..<8 {
                    finished.enter()
                    Thread.detachNewThread {
                        defer { finished.leave() }
                        while !stop.load(ordering: .relaxed) {
                            if let record = server.create(form: "client_id=\(round * 10 + client + 1)") {
                                acknowledged.withLock { $0.append(record) }
                            }
                        }
                    }
                }
                usleep(UInt32(200_000 + round * 150_000))
                let signalled = Date()
                kill(server.process.processIdentifier, SIGTERM)
                let status = server.exitStatus(within: 60)
                let seconds = Date().timeIntervalSince(signalled)
                stop.store(true, ordering: .relaxed)
                finished.wait()
                #expect(status == 0, "round \(round): \(server.output.log.suffix(2000))")
                #expect(seconds < 5 + 10, "round \(round): exit took \(seconds) s")
                #expect(server.output.log.contains("stopped cleanly"), "round \(round)")

                let engine = try Engine.open(directory: directory.path)
                let expected = acknowledged.withLock { $0 }
                let missing = expected.filter { (try? engine.get(.orderID($0.orderID)).apiKey) != $0.key }
                #expect(expected.count > 0, "round \(round): the load acknowledged nothing")
                #expect(missing.isEmpty, "round \(round): \(missing.count) of \(expected.count) acknowledged keys lost")
                #expect(engine.recoveryReport?.replayedRecords == 0, "round \(round): the final snapshot holds all")
                try engine.close()
            }
        }
    }

    // MARK: - HTTPS

    static let openssl = "/usr/bin/openssl"
    static let curl = "/usr/bin/curl"

    /// A self-signed certificate for 127.0.0.1 and localhost with common name `name`.
    static func makeCertificate(_ name: String, in directory: String) throws {
        let (status, output) = try tool(
            openssl,
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(name)", "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", directory + "/new-key.pem", "-out",
                directory + "/new-cert.pem",
            ])
        try #require(status == 0, "\(output)")
        // Moved into place whole, as a certificate renewal would.
        _ = rename(directory + "/new-key.pem", directory + "/key.pem")
        _ = rename(directory + "/new-cert.pem", directory + "/cert.pem")
    }

    /// The subject of the certificate a new TLS connection is served, and whether `version`
    /// (`-tls1_2`, `-tls1_3`) was negotiated.
    static func handshake(port: Int, _ version: String) throws -> (status: Int32, output: String) {
        try tool(
            openssl, ["s_client", "-connect", "127.0.0.1:\(port)", version, "-servername", "localhost"], input: "")
    }

    @Test(.timeLimit(.minutes(3)))
    func httpsServesTheAPIAndSighupServesARenewedCertificate() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            try Self.makeCertificate("first", in: directory.path)
            let server = try ServerProcess.start(
                dataDirectory: directory.path + "/data",
                arguments: [
                    "--tls-certificate", directory.path + "/cert.pem", "--tls-private-key", directory.path + "/key.pem",
                ])
            defer { try? server.stop() }
            #expect(server.output.log.contains("listening on https://127.0.0.1:\(server.port)"))
            let key = try Self.createOverTLS(port: server.port, certificate: directory.path + "/cert.pem")

            let (status, answer) = try Self.tool(
                Self.curl,
                [
                    "-s", "--cacert", directory.path + "/cert.pem",
                    "https://127.0.0.1:\(server.port)/api/guest/serviceapikey/check?key=\(key)",
                ])
            #expect(status == 0)
            #expect(answer == #"{"result": true, "error": null}"#, "\(answer)")
            // Plain HTTP on the TLS port gets no answer.
            let plain = ServerProcess.exchange(
                port: server.port, Array("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
            #expect(plain.map { String(decoding: $0, as: UTF8.self).hasPrefix("HTTP/1.1") } != true)

            let tls12 = try Self.handshake(port: server.port, "-tls1_2")
            #expect(tls12.output.contains("TLSv1.2") && tls12.output.contains("CN = first"), "\(tls12.output)")
            let tls13 = try Self.handshake(port: server.port, "-tls1_3")
            #expect(tls13.output.contains("TLSv1.3") && tls13.output.contains("CN = first"), "\(tls13.output)")
            let tls11 = try Self.handshake(port: server.port, "-tls1_1")
            #expect(!tls11.output.contains("CN = first"), "TLS 1.1 is refused")

            try Self.makeCertificate("renewed", in: directory.path)
            kill(server.process.processIdentifier, SIGHUP)
            let deadline = Date().addingTimeInterval(20)
            while !server.output.log.contains("reloaded the TLS certificate"), Date() < deadline { usleep(20_000) }
            let renewed = try Self.handshake(port: server.port, "-tls1_3")
            #expect(renewed.output.contains("CN = renewed"), "\(renewed.output)")
            #expect(server.isAlive)

            // A broken file on SIGHUP keeps the certificate in use.
            try Self.write("not a certificate", to: directory.path + "/cert.pem")
            kill(server.process.processIdentifier, SIGHUP)
            while !server.output.log.contains("kept the TLS certificate"), Date() < deadline { usleep(20_000) }
            #expect(try Self.handshake(port: server.port, "-tls1_3").output.contains("CN = renewed"))
            try server.stop()
            #expect(server.exitStatus(within: 30) == 0)
        }
    }

    /// Creates a key over HTTPS with curl; returns it.
    static func createOverTLS(port: Int, certificate: String) throws -> String {
        let (status, answer) = try tool(
            curl,
            [
                "-s", "--cacert", certificate, "-u", "admin:\(ServerProcess.adminToken)", "-d", "client_id=1",
                "https://127.0.0.1:\(port)/api/admin/serviceapikey/create",
            ])
        try #require(status == 0, "\(answer)")
        guard case .string(let key) = try JSONValue.parse(answer)["result"]?["api_key"] else {
            throw KillNineTests.Failure("no key in \(answer)")
        }
        return key
    }

    // MARK: - Behind nginx

    static let nginx = "/usr/sbin/nginx"

    /// nginx running `deploy/nginx-apikeyd.conf` on `port` (TLS with the certificate in
    /// `directory`), passing to apikeyd on `upstream`; stopped by `stop`.
    static func startNginx(directory: String, port: Int, upstream: Int) throws -> Process {
        let here = URL(fileURLWithPath: #filePath)
        let snippet = try String(
            contentsOf: here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("deploy/nginx-apikeyd.conf"), encoding: .utf8)
        let site =
            snippet
            .replacingOccurrences(of: "listen 443 ssl", with: "listen 127.0.0.1:\(port) ssl")
            .replacingOccurrences(of: "listen [::]:443 ssl http2;", with: "")
            .replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(upstream)")
            .replacingOccurrences(of: "/etc/ssl/certs/keys.example.com.pem", with: directory + "/cert.pem")
            .replacingOccurrences(of: "/etc/ssl/private/keys.example.com.key", with: directory + "/key.pem")
        try write(site, to: directory + "/site.conf")
        try write(
            """
            pid \(directory)/nginx.pid;
            error_log \(directory)/nginx-error.log;
            daemon off;
            events {}
            http { access_log off; include \(directory)/site.conf; }
            """, to: directory + "/nginx.conf")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: nginx)
        process.arguments = ["-c", directory + "/nginx.conf"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let socket = LoopbackSocket.connect(port: port, timeoutSeconds: 1) {
                close(socket)
                return process
            }
            usleep(20_000)
        }
        process.terminate()
        throw KillNineTests.Failure(
            "nginx did not start: \((try? String(contentsOfFile: directory + "/nginx-error.log", encoding: .utf8)) ?? "")"
        )
    }

    /// A check through nginx from the loopback address `source`: the answer's body.
    static func check(_ key: String, through port: Int, from source: String, certificate: String) throws -> String {
        let (_, answer) = try tool(
            curl,
            [
                "-s", "--cacert", certificate, "--interface", source,
                "https://127.0.0.1:\(port)/api/guest/serviceapikey/check?key=\(key)",
            ])
        return answer
    }

    @Test(.timeLimit(.minutes(3)))
    func behindTheShippedNginxSnippetEachClientHasItsOwnLimits() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            try Self.makeCertificate("proxy", in: directory.path)
            let certificate = directory.path + "/cert.pem"
            let upstream = try Self.freePort()
            let port = try Self.freePort()
            let nginx = try Self.startNginx(directory: directory.path, port: port, upstream: upstream)
            defer {
                nginx.terminate()
                nginx.waitUntilExit()
            }
            let refused = #""code": 429"#
            for trusted in [true, false] {
                let server = try ServerProcess.start(
                    dataDirectory: "",
                    arguments: [
                        "--port", String(upstream), "--data-dir", directory.path + "/data-\(trusted)", "--admin-token",
                        ServerProcess.adminToken, "--failed-burst", "3", "--failed-per-minute", "0",
                    ] + (trusted ? ["--trusted-proxy", "127.0.0.1"] : []), environment: Self.environment(),
                    defaults: false)
                let key = try #require(server.create(form: "client_id=1")).key
                // One client fails lookups until it is refused.
                let answers = try (0..<5).map { _ in
                    try Self.check("NO-SUCH-KEY", through: port, from: "127.0.0.2", certificate: certificate)
                }
                #expect(answers.prefix(3).allSatisfy { $0.contains("API key does not exist") }, "\(answers)")
                #expect(answers.suffix(2).allSatisfy { $0.contains(refused) }, "\(answers)")
                // Another client behind the same nginx: a valid key checks either way; its own
                // mistyped key is answered only when the two are told apart.
                let valid = try Self.check(key, through: port, from: "127.0.0.3", certificate: certificate)
                #expect(valid == #"{"result": true, "error": null}"#, "\(valid)")
                let typo = try Self.check("TYPO", through: port, from: "127.0.0.3", certificate: certificate)
                let warnings = server.output.log.components(separatedBy: "X-Forwarded-For").count - 1
                if trusted {
                    #expect(typo.contains("API key does not exist"), "\(typo)")
                    #expect(warnings == 0, "\(server.output.log)")
                } else {
                    // Without --trusted-proxy every client is nginx: locked out together, and said once.
                    #expect(typo.contains(refused), "\(typo)")
                    #expect(warnings == 1, "\(server.output.log)")
                }
                try server.stop()
                #expect(server.exitStatus(within: 30) == 0)
            }
        }
    }

    // MARK: - Logs

    @Test(.timeLimit(.minutes(3)))
    func jsonLogsParseAndTheAccessLogHoldsNoKeyOrToken() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            try Self.write("secret-admin-token-from-file\n", to: directory.path + "/token")
            try FileManager.default.createDirectory(atPath: directory.path + "/data", withIntermediateDirectories: true)
            chmod(directory.path + "/data", 0o755)
            let server = try ServerProcess.start(
                dataDirectory: "",
                arguments: [
                    "--port", "0", "--data-dir", directory.path + "/data", "--admin-token-file",
                    directory.path + "/token",
                    "--log-format", "json", "--access-log", "--failed-burst", "2",
                ], environment: Self.environment(), defaults: false)
            let authorization =
                "Authorization: Basic \(Data("admin:secret-admin-token-from-file".utf8).base64EncodedString())\r\n"
            func send(_ head: String, body: String = "") -> String {
                let answer = ServerProcess.exchange(
                    port: server.port, Array((head + "Host: x\r\nConnection: close\r\n\r\n" + body).utf8))
                return answer.map { String(decoding: $0, as: UTF8.self) } ?? ""
            }
            let created = send(
                "POST /api/admin/serviceapikey/create HTTP/1.1\r\n\(authorization)Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n",
                body: "client_id=1")
            let bodyStart = try #require(created.range(of: "\r\n\r\n"))
            guard
                case .string(let key) = try JSONValue.parse(String(created[bodyStart.upperBound...]))["result"]?[
                    "api_key"]
            else { throw KillNineTests.Failure("no key in \(created)") }
            _ = send("GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\n")
            _ = send("GET /api/guest/serviceapikey/verify?key=\(key)&request_id=r1 HTTP/1.1\r\n")
            _ = send(
                "POST /api/guest/serviceapikey/get_info HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(key.utf8.count + 11)\r\n",
                body: #"{"key": "\#(key)"}"#)
            _ = send("GET /api/guest/serviceapikey/\(key) HTTP/1.1\r\n")
            _ = send("GET /\(key)?key=\(key) HTTP/1.1\r\n")
            _ = send("GET /api/admin/serviceapikey/get?key=\(key) HTTP/1.1\r\n\(authorization)")
            // From behind an untrusted proxy, three times: one warning. Failed lookups past the
            // burst of 2: refused, logged once.
            for _ in 0..<3 {
                _ = send("GET /api/guest/serviceapikey/check?key=NOPE HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\n")
            }
            try server.stop()
            #expect(server.exitStatus(within: 30) == 0)
            let deadline = Date().addingTimeInterval(10)
            while !server.output.log.contains("stopped cleanly"), Date() < deadline { usleep(10_000) }

            let lines = server.output.log.split(separator: "\n").map(String.init)
            #expect(lines.count > 10)
            let timestamp = #/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/#
            var objects: [JSONValue] = []
            for line in lines {
                let object = try JSONValue.parse(line)
                guard case .string(let time) = object["timestamp"], case .string = object["level"],
                    case .string = object["message"]
                else {
                    Issue.record("not a log object: \(line)")
                    continue
                }
                #expect(time.wholeMatch(of: timestamp) != nil, "\(time)")
                objects.append(object)
            }
            let access = objects.filter { $0["message"] == .string("request") }
            #expect(access.count == 10, "\(access)")
            #expect(access.allSatisfy { $0["status"] != nil && $0["microseconds"] != nil && $0["client"] != nil })
            #expect(access.contains { $0["path"] == .string("/api/guest/serviceapikey/check") })
            #expect(!server.output.log.contains(key), "a key was logged")
            #expect(!server.output.log.contains("secret-admin-token-from-file"), "the token was logged")
            #expect(server.output.log.components(separatedBy: "X-Forwarded-For").count - 1 == 1)
            #expect(server.output.log.components(separatedBy: "rate limit refused").count - 1 == 1)
            let listening = try #require(objects.first { "\($0["message"] ?? .null)".contains("listening on") })
            for field in ["data_dir", "fsync", "keys", "recovery", "seconds"] {
                #expect(listening[field] != nil, "\(field) missing from \(listening)")
            }
            #expect(server.output.log.contains("tightened the data directory"))
            var status = stat()
            stat(directory.path + "/data", &status)
            #expect(status.st_mode & 0o777 == 0o700)
        }
    }

    @Test func versionIsPrinted() throws {
        let (status, out, _) = try Self.run(["--version"], environment: Self.environment())
        #expect(status == 0)
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines).wholeMatch(of: #/\d+\.\d+\.\d+/#) != nil, "\(out)")
    }
}

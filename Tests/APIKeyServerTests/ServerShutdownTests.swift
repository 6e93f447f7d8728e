import APIKeyAPI
import APIKeyEngine
import Foundation
import Logging
import TestSupport
import Testing

@testable import APIKeyServer

#if canImport(Glibc)
    import Glibc
#endif

/// Stopping the server: idle connections close at once, a request under way is answered first
/// (with `Connection: close`), and the access log names what was asked without a key in it.
@Suite(.serialized) struct ServerShutdownTests {
    static let token = "shutdown-test-token"

    @Test(.timeLimit(.minutes(2)))
    func shutdownAnswersTheRequestUnderWayAndClosesIdleConnections() async throws {
        try await HeavyWork.run {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let files = FaultyFileLayer(seed: 1)
            var options = StorageOptions()
            options.fsync = .always
            let engine = try Engine.open(directory: directory.path, options: options, files: files)
            var configuration = ServerConfiguration()
            configuration.port = 0
            configuration.eventLoopCount = 2
            let server = try await APIServer.start(
                router: APIRouter(engine: engine, adminToken: Self.token), configuration: configuration)
            let client = TestHTTPClient(port: server.port)
            let idle = try client.connectSocket()
            defer { close(idle) }
            let busy = try client.connectSocket()
            defer { close(busy) }
            // A 3 s fsync: the create is under way when the shutdown begins (its fsync has started,
            // seen in the layer's count, whatever the machine's load).
            let syncsBefore = files.syncCount
            files.setSyncDelay(microseconds: 3_000_000)
            let form = "client_id=1"
            let request =
                "POST /api/admin/serviceapikey/create HTTP/1.1\r\nHost: x\r\nAuthorization: \(basicAuthorization("admin", Self.token))\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(form.utf8.count)\r\n\r\n\(form)"
            let sent = request.withCString { send(busy, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            #expect(sent == request.utf8.count)
            let deadline = Date().addingTimeInterval(60)
            while files.syncCount == syncsBefore, Date() < deadline { usleep(1_000) }
            #expect(files.syncCount > syncsBefore, "the create's fsync never started")
            let stopping = Date()
            try await server.shutdown(drainSeconds: 30)
            let seconds = Date().timeIntervalSince(stopping)
            let answer = String(decoding: try TestHTTPClient.readToEnd(busy), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
            #expect(answer.contains("Connection: close"))
            #expect(answer.contains(#""api_key""#))
            #expect(try TestHTTPClient.readToEnd(idle).isEmpty, "the idle connection is closed without an answer")
            #expect(seconds < 20, "shutdown waited \(seconds) s for connections that were done")
            files.setSyncDelay(microseconds: 0)
            try await engine.close()
            let reopened = try Engine.open(directory: directory.path)
            #expect(reopened.keyCount == 1)
            try await reopened.close()
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func theAccessLogNamesRequestsWithoutTheirKeys() async throws {
        try await HeavyWork.run {
            let engine = Engine()
            let key = try await engine.create(NewKey(clientID: 1)).apiKey
            let log = CapturedLog()
            var configuration = ServerConfiguration()
            configuration.port = 0
            configuration.eventLoopCount = 1
            configuration.accessLog = log.logger
            configuration.collectsStatistics = true
            let server = try await APIServer.start(
                router: APIRouter(engine: engine, adminToken: Self.token), configuration: configuration)
            let client = TestHTTPClient(port: server.port)
            _ = try client.request("GET", "/api/guest/serviceapikey/check?key=\(key)")
            _ = try client.request(
                "POST", "/api/guest/serviceapikey/verify", body: #"{"key": "\#(key)"}"#, contentType: "application/json"
            )
            _ = try client.request("GET", "/api/guest/serviceapikey/check/\(key)")
            _ = try client.request("BREW", "/\(key)")
            _ = try client.request(
                "GET", "/api/admin/serviceapikey/get?key=\(key)", authorization: basicAuthorization("admin", Self.token)
            )
            _ = try client.exchange(Array("NOT HTTP\r\n\r\n".utf8))
            try await server.shutdown()
            let lines = log.lines(containing: "request")
            #expect(lines.count == 6, "\(lines)")
            #expect(
                lines.map { $0.metadata["path"] ?? "" } == [
                    "/api/guest/serviceapikey/check", "/api/guest/serviceapikey/verify", "(unknown path)",
                    "(unknown path)", "/api/admin/serviceapikey/get", "-",
                ])
            #expect(lines.map { $0.metadata["method"] ?? "" } == ["GET", "POST", "GET", "(other)", "GET", "-"])
            #expect(lines.map { $0.metadata["status"] ?? "" } == ["200", "200", "404", "404", "200", "400"])
            #expect(
                lines.allSatisfy {
                    $0.metadata["client"] == "127.0.0.1" && Int($0.metadata["microseconds"] ?? "") != nil
                })
            for line in log.lines {
                #expect(!line.message.contains(key) && !line.metadata.values.contains { $0.contains(key) })
                #expect(!line.metadata.values.contains { $0.contains(Self.token) })
            }
            var text = ""
            server.statistics?.render(into: &text)
            #expect(text.contains(#"apikeyd_http_requests_total{endpoint="guest/serviceapikey/check",code="200"} 1"#))
            #expect(text.contains(#"apikeyd_http_requests_total{endpoint="other",code="400"} 1"#))
        }
    }
}

import APIKeyEngine
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL

/// Where the management commands find the server, and how they print.
struct ServerOptions: ParsableArguments {
    @Option(help: "The server's address (default $APIKEYD_URL, else http://127.0.0.1:8080; https:// works too).")
    var url: String?

    @Option(
        help: ArgumentHelp(
            "A file whose first line is the admin token (default $APIKEYD_ADMIN_TOKEN, else data/store/admin-token).",
            valueName: "path"))
    var adminTokenFile: String?

    @Option(
        help: ArgumentHelp("PEM certificates to trust for an https:// server, beside the system's.", valueName: "path"))
    var caCertificate: String?

    @Flag(help: "Print the API's result as JSON (a list as JSON Lines, one record a line).")
    var json = false

    @Option(help: "Give up on a request the server has not answered after this many seconds (1 to 3600).")
    var timeoutSeconds: Int64 = 30

    func validate() throws {
        guard (1...3600).contains(timeoutSeconds) else { throw ValidationError("--timeout-seconds must be 1 to 3600") }
    }

    /// The default address when neither --url nor APIKEYD_URL gives one.
    static let defaultURL = "http://127.0.0.1:8080"
    /// The token file read when neither --admin-token-file nor APIKEYD_ADMIN_TOKEN gives a token.
    static let defaultTokenFile = "data/store/admin-token"

    /// The server's base address, without a trailing slash.
    func baseURL(_ environment: [String: String]) throws(CommandFailure) -> String {
        let text = url ?? environment["APIKEYD_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultURL
        guard text.hasPrefix("http://") || text.hasPrefix("https://") else {
            throw CommandFailure.usage("--url must start with http:// or https:// (got '\(text)')")
        }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    /// The admin token: the file named by --admin-token-file, else APIKEYD_ADMIN_TOKEN, else the
    /// server's own token file when it is readable.
    func adminToken(_ environment: [String: String]) throws(CommandFailure) -> String {
        if let adminTokenFile { return try TokenFile.read(adminTokenFile) }
        if let token = environment["APIKEYD_ADMIN_TOKEN"], !token.isEmpty { return token }
        if FileManager.default.isReadableFile(atPath: Self.defaultTokenFile) {
            return try TokenFile.read(Self.defaultTokenFile)
        }
        throw CommandFailure.usage(
            "no admin token: give --admin-token-file, set APIKEYD_ADMIN_TOKEN, or run where \(Self.defaultTokenFile) is readable"
        )
    }
}

/// Calls the admin API of a running server over HTTP(S) with async-http-client, and hands back
/// the `result` of FOSSBilling's envelope or the server's error message.
struct AdminClient {
    /// The longest answer read, in bytes (a page of 1,000 records with large configs fits).
    static let maximumAnswerBytes = 256 << 20

    let baseURL: String
    private let authorization: String
    private let client: HTTPClient
    private let timeoutSeconds: Int64

    /// A client for the server `options` name; call ``shutdown()`` when done.
    init(
        _ options: ServerOptions, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CommandFailure) {
        baseURL = try options.baseURL(environment)
        let token = try options.adminToken(environment)
        authorization = "Basic " + Data("admin:\(token)".utf8).base64EncodedString()
        var configuration = HTTPClient.Configuration()
        if let path = options.caCertificate {
            var tls = TLSConfiguration.makeClientConfiguration()
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(path))]
            } catch {
                throw CommandFailure.usage("cannot read the certificates in \(path): \(error)")
            }
            configuration.tlsConfiguration = tls
        }
        timeoutSeconds = options.timeoutSeconds
        configuration.timeout = HTTPClient.Configuration.Timeout(
            connect: .seconds(min(10, timeoutSeconds)), read: .seconds(timeoutSeconds))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    /// POSTs `parameters` as a JSON object to `/api/<path>` and returns the result; throws the
    /// server's error message, or a message with the address when it cannot be reached.
    func call(_ path: String, _ parameters: [JSONMember]) async throws(CommandFailure) -> JSONValue {
        let address = baseURL + "/api/" + path
        var request = HTTPClientRequest(url: address)
        request.method = .POST
        request.headers.add(name: "Authorization", value: authorization)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: JSONValue.object(parameters).encoded))
        let body: ByteBuffer
        let status: UInt
        do {
            let response = try await client.execute(request, timeout: .seconds(timeoutSeconds))
            status = response.status.code
            body = try await response.body.collect(upTo: Self.maximumAnswerBytes)
        } catch let error as HTTPClientError where error == .readTimeout || error == .deadlineExceeded {
            throw CommandFailure("the server at \(baseURL) did not answer within \(timeoutSeconds) s")
        } catch {
            throw CommandFailure("cannot reach the server at \(baseURL): \(Self.describe(error))")
        }
        guard let envelope = try? JSONValue.parse(body.readableBytesView), case .object = envelope else {
            throw CommandFailure("the server at \(baseURL) answered HTTP \(status) without an API answer")
        }
        if case .object = envelope["error"], let message = envelope["error"]?["message"] {
            if case .string(let text) = message { throw CommandFailure(text) }
            throw CommandFailure("the server answered an error without a message")
        }
        return envelope["result"] ?? .null
    }

    /// A short reason for a transport failure.
    private static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        if let error = error as? IOError { return error.description }
        return "\(error)"
    }
}

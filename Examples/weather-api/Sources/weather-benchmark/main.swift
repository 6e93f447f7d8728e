// The forecast route three ways on one server, for Benchmarks/embedding.sh to compare with wrk:
//   /open/forecast     no key at all;
//   /noop/forecast     no key, behind a middleware that does nothing: what Hummingbird's own
//                      middleware layer costs, for telling it apart from the guard's work;
//   /guarded/forecast  the key verified in-process by APIKeyMiddleware (as the example does);
//   /checked/forecast  the key checked in-process (status and expiry, nothing metered);
//   /http/forecast     the key verified by calling an apikeyd server's HTTP `verify` over
//                      loopback, as a FOSSBilling shop guards a route today.
// Environment: BENCH_PORT (default 8091); BENCH_APIKEYD_URL (default http://127.0.0.1:8080) for
// /http. On start it prints the in-process engine's first key, a pro key without limits; with
// BENCH_KEYS_FILE it also makes BENCH_KEY_COUNT (default 10000) more such keys and writes them
// there, one a line.
import APIKeyEngine
import APIKeyGuard
import APIKeyHummingbird
import AsyncHTTPClient
import Foundation
import Hummingbird
import WeatherAPI

/// Calls the route and nothing else.
struct NoOpMiddleware: RouterMiddleware {
    typealias Context = APIKeyRequestContextType

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        try await next(request, context)
    }
}

/// Verifies the request's key with apikeyd's HTTP API, one loopback request per request.
struct RemoteVerifyMiddleware: RouterMiddleware {
    typealias Context = APIKeyRequestContextType
    let baseURL: String
    let client: HTTPClient

    /// The part of `verify`'s envelope the route needs.
    struct Envelope: Decodable {
        struct Result: Decodable {
            var valid: Int
            var config: [String: String]?
        }
        var result: Result?
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        guard let key = request.headers[.init("X-API-Key")!] else { return Response(status: .unauthorized) }
        var verify = HTTPClientRequest(url: "\(baseURL)/api/guest/serviceapikey/verify?key=\(key)&cost=1")
        verify.method = .GET
        let answer = try await client.execute(verify, timeout: .seconds(5))
        let body = try await answer.body.collect(upTo: 1 << 16)
        let envelope = try JSONDecoder().decode(Envelope.self, from: body)
        guard let result = envelope.result, result.valid == 1 else { return Response(status: .unauthorized) }
        var context = context
        let tier = result.config?["tier"] ?? "free"
        context.apiKey = VerifiedKey(
            orderID: 0, clientID: 0,
            customParameters: CustomParameterValues(json: Array("{\"tier\": \"\(tier)\"}".utf8)), usage: nil,
            rateLimit: nil, headers: [])
        return try await next(request, context)
    }
}

let environment = ProcessInfo.processInfo.environment
let port = environment["BENCH_PORT"].flatMap(Int.init) ?? 8091
let apikeydURL = environment["BENCH_APIKEYD_URL"] ?? "http://127.0.0.1:8080"
let engine = Engine()
let key = try engine.create(NewKey(clientID: 1, config: .object([JSONMember("custom_tier", .string("pro"))])))
// Written at once, not through print's buffer: the script reads it from a file.
FileHandle.standardOutput.write(Data("key: \(key.apiKey)\n".utf8))
if let path = environment["BENCH_KEYS_FILE"] {
    let count = environment["BENCH_KEY_COUNT"].flatMap(Int.init) ?? 10_000
    let more = try (0..<count).map { client in
        try engine.create(
            NewKey(clientID: Int64(client + 2), config: .object([JSONMember("custom_tier", .string("pro"))]))
        ).apiKey
    }
    try Data(more.joined(separator: "\n").utf8 + [0x0A]).write(to: URL(fileURLWithPath: path))
}
let unlimited = VerifiedKey(
    orderID: 0, clientID: 0, customParameters: CustomParameterValues(json: Array("{\"tier\": \"pro\"}".utf8)),
    usage: nil, rateLimit: nil, headers: [])

let router = Router(context: APIKeyRequestContextType.self)
router.get("open/forecast") { request, _ in try WeatherRoutes.forecast(request, key: unlimited) }
router.group("noop").add(middleware: NoOpMiddleware())
    .get("forecast") { request, _ in try WeatherRoutes.forecast(request, key: unlimited) }
router.group("guarded").add(middleware: APIKeyMiddleware(APIKeyGuard(engine: engine)))
    .get("forecast") { request, context in try WeatherRoutes.forecast(request, key: context.apiKey!) }
router.group("checked").add(middleware: APIKeyMiddleware(APIKeyGuard(engine: engine, mode: .check)))
    .get("forecast") { request, context in try WeatherRoutes.forecast(request, key: context.apiKey!) }
router.group("http").add(middleware: RemoteVerifyMiddleware(baseURL: apikeydURL, client: HTTPClient.shared))
    .get("forecast") { request, context in try WeatherRoutes.forecast(request, key: context.apiKey!) }
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()

import APIKeyEngine
import APIKeyGuard
import Vapor

/// Vapor middleware that lets a request through only with a valid key: it reads the key from
/// `X-API-Key` (or the guard's header) or `Authorization: Bearer`, verifies it in-process
/// (metering the route's cost) or only checks it, and either calls the route with `request.apiKey`
/// set, adding the `RateLimit-*` headers to its answer, or answers itself: 401 for a missing,
/// unknown, expired, suspended or canceled key, 429 with `Retry-After` for `RATE_LIMITED` and
/// `USAGE_EXCEEDED`, 503 when the engine takes no writes. Refusals have a JSON body
/// `{"error": {"code": "NOT_FOUND", "message": "..."}}`.
///
/// ```swift
/// let keyGuard = APIKeyGuard(engine: engine)
/// app.grouped(APIKeyMiddleware(keyGuard)).get("forecast") { request in
///     "tier \(request.apiKey!.customParameters.string("tier") ?? "free")"
/// }
/// app.grouped(APIKeyMiddleware(keyGuard.with(mode: .verify(cost: 10)))).get("bulk") { _ in "bulk" }
/// ```
public struct APIKeyMiddleware: AsyncMiddleware {
    /// What the middleware decides with.
    public let keyGuard: APIKeyGuard

    /// Middleware that decides with `keyGuard`.
    public init(_ keyGuard: APIKeyGuard) { self.keyGuard = keyGuard }

    /// Decides for the request, then calls `next` or answers the refusal. Suspends only when a
    /// verify's use must become durable first (the `always` fsync policy).
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let key = keyGuard.key { name in request.headers.first(name: name) }
        let evaluation = keyGuard.evaluate(key: key)
        let decision = evaluation.pending == nil ? evaluation.decision : await keyGuard.finish(evaluation)
        switch decision {
        case .allowed(let verified):
            request.apiKey = verified
            let response = try await next.respond(to: request)
            for field in verified.headers { response.headers.replaceOrAdd(name: field.name, value: field.value) }
            return response
        case .refused(let refusal):
            var headers = HTTPHeaders([("Content-Type", "application/json; charset=utf-8")])
            for field in refusal.headers { headers.replaceOrAdd(name: field.name, value: field.value) }
            return Response(
                status: HTTPResponseStatus(statusCode: refusal.status), headers: headers,
                body: .init(string: refusal.body))
        }
    }
}

extension Request {
    private struct APIKeyStorageKey: StorageKey {
        typealias Value = VerifiedKey
    }

    /// The key ``APIKeyMiddleware`` let this request through with; nil on a route without it.
    public var apiKey: VerifiedKey? {
        get { storage[APIKeyStorageKey.self] }
        set { storage[APIKeyStorageKey.self] = newValue }
    }
}

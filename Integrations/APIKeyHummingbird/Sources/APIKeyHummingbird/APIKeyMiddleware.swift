import APIKeyEngine
import APIKeyGuard
import HTTPTypes
import Hummingbird

/// A request context that carries the key a request was let through with: what
/// ``APIKeyMiddleware`` needs of the application's context. Use ``APIKeyRequestContextType`` as
/// is, or add ``apiKey`` to a context of your own.
public protocol APIKeyRequestContext: RequestContext {
    /// The key the middleware let the request through with; nil before it ran.
    var apiKey: VerifiedKey? { get set }
}

/// The request context of an application whose only addition is the verified key.
public struct APIKeyRequestContextType: APIKeyRequestContext {
    /// Hummingbird's own state of the request.
    public var coreContext: CoreRequestContextStorage
    /// The key the middleware let the request through with.
    public var apiKey: VerifiedKey?

    /// The context of a new request.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.apiKey = nil
    }
}

/// Hummingbird middleware that lets a request through only with a valid key: it reads the key
/// from `X-API-Key` (or the guard's header) or `Authorization: Bearer`, verifies it in-process
/// (metering the route's cost) or only checks it, and either calls the route with
/// `context.apiKey` set, adding the `RateLimit-*` headers to its answer, or answers itself: 401
/// for a missing, unknown, expired, suspended or canceled key, 429 with `Retry-After` for
/// `RATE_LIMITED` and `USAGE_EXCEEDED`, 503 when the engine takes no writes. Refusals have a JSON
/// body `{"error": {"code": "NOT_FOUND", "message": "..."}}`.
///
/// ```swift
/// let router = Router(context: APIKeyRequestContextType.self)
/// router.group("v1")
///     .add(middleware: APIKeyMiddleware(APIKeyGuard(engine: engine)))
///     .get("forecast") { request, context in "tier \(context.apiKey!.customParameters.string("tier") ?? "free")" }
/// ```
public struct APIKeyMiddleware<Context: APIKeyRequestContext>: RouterMiddleware {
    /// What the middleware decides with.
    public let keyGuard: APIKeyGuard
    /// The guard's header name, parsed once.
    @usableFromInline let keyHeader: HTTPField.Name?

    /// Middleware that decides with `keyGuard`; give a route its own cost with
    /// `APIKeyMiddleware(keyGuard.with(mode: .verify(cost: 10)))`.
    public init(_ keyGuard: APIKeyGuard) {
        self.keyGuard = keyGuard
        self.keyHeader = HTTPField.Name(keyGuard.headerName)
    }

    /// Decides for the request, then calls `next` or answers the refusal. Suspends only when a
    /// verify's use must become durable first (the `always` fsync policy). Inlinable, so that it
    /// is specialised for the application's context type rather than run generically.
    @inlinable
    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let key = keyGuard.key { name in
            name == keyGuard.headerName ? keyHeader.flatMap { request.headers[$0] } : request.headers[.authorization]
        }
        let evaluation = keyGuard.evaluate(key: key)
        let decision = evaluation.pending == nil ? evaluation.decision : await keyGuard.finish(evaluation)
        switch decision {
        case .allowed(let verified):
            var context = context
            context.apiKey = verified
            var response = try await next(request, context)
            Self.add(verified.headers, to: &response.headers)
            return response
        case .refused(let refusal):
            var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
            Self.add(refusal.headers, to: &headers)
            return Response(
                status: .init(code: refusal.status), headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(string: refusal.body)))
        }
    }

    @usableFromInline
    static func add(_ fields: [HeaderField], to headers: inout HTTPFields) {
        for field in fields {
            if let name = HTTPField.Name(field.name) { headers[name] = field.value }
        }
    }
}

import APIKeyEngine

/// One HTTP request as the router needs it, independent of the HTTP library underneath.
public struct APIRequest: Sendable {
    /// The method, upper case (`GET`, `POST`).
    public var method: String
    /// The request target: the path and any query string.
    public var target: String
    /// The value of the `Authorization` header.
    public var authorization: String?
    /// The value of the `Content-Type` header.
    public var contentType: String?
    /// The body bytes.
    public var body: [UInt8]

    public init(
        method: String, target: String, authorization: String? = nil, contentType: String? = nil, body: [UInt8] = []
    ) {
        self.method = method
        self.target = target
        self.authorization = authorization
        self.contentType = contentType
        self.body = body
    }
}

/// The answer to an ``APIRequest``: always a JSON body.
public struct APIResponse: Sendable {
    /// The HTTP status code.
    public var status: Int
    /// Headers besides `Content-Type` and `Content-Length`.
    public var headers: [(String, String)]
    /// The JSON body.
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// An envelope error answer.
    static func failure(status: Int, code: Int, _ message: String, headers: [(String, String)] = []) -> APIResponse {
        APIResponse(status: status, headers: headers, body: ResponseEncoding.failure(message: message, code: code))
    }
}

/// Maps API requests onto engine operations (SPEC section 5) and engine answers onto FOSSBilling's
/// envelope, codes and HTTP statuses.
public struct APIRouter: Sendable {
    private typealias Handler = @Sendable (Engine, RequestParameters, Requester) throws(EngineError) -> [UInt8]

    /// The engine the router serves.
    public let engine: Engine
    private let authenticator: Authenticator
    let limiter: RequestLimiter

    /// A router over `engine`, authenticating administrators with `adminToken` and limiting
    /// request rates per client address as `rateLimits` says.
    public init(
        engine: Engine, adminToken: String, rateLimits: RateLimitConfiguration = RateLimitConfiguration(),
        clock: any EngineClock = SystemClock()
    ) {
        self.engine = engine
        self.authenticator = Authenticator(adminToken: adminToken, engine: engine)
        self.limiter = RequestLimiter(configuration: rateLimits, clock: clock)
    }

    /// The answer to `request`, with an envelope for every failure, and what must be durable
    /// before the answer may be sent: nil for reads, errors, and writes under `everysec` or `no`.
    /// A write is applied when this returns; under `always` its answer waits until the write is
    /// durable: the server hands it to ``Engine/whenDurable(_:_:)`` (the journal's syncer answers
    /// it with the next fsync), or blocks in ``Engine/waitUntilDurable(_:)`` on its blocking pool
    /// for a call that may block anyway.
    ///
    /// `client` is the address the request is charged to (see ``clientAddress(peer:forwardedFor:)``);
    /// nil leaves it unlimited. API requests take a token from the client's general bucket, and
    /// failed key lookups and authentications one from its failure bucket; an empty bucket
    /// answers 429 with `Retry-After`, and a refused request takes nothing.
    public func respond(
        to request: APIRequest, client: IPAddress? = nil
    ) -> (
        response: APIResponse, pending: PendingDurability?
    ) {
        let charged = request.target.hasPrefix("/api/") ? client.flatMap { limiter.isExempt($0) ? nil : $0 } : nil
        if let charged, let refusal = limiter.admit(charged) { return (refusal, nil) }
        let (response, pending, failed) = run(request)
        if let charged, let refusal = limiter.charge(charged, failed: failed) { return (refusal, pending) }
        return (response, pending)
    }

    /// The two endpoints called on every request of a customer's application.
    public enum KeyLookup: Sendable {
        case check, getInfo
    }

    /// What a key lookup answers, handed to the caller's closure (the custom-parameter text lives
    /// only during the call).
    public enum KeyLookupAnswer {
        /// `check` found the key: valid or not.
        case check(Bool)
        /// `get_info` found the key: validity and the custom parameters as JSON object text.
        case info(valid: Bool, customParameters: UnsafeRawBufferPointer)
        /// Any other answer (unknown key, rate limit), as ``respond(to:client:)`` gives it.
        case response(APIResponse)
    }

    /// The answer to `GET /api/guest/serviceapikey/check?key=...` (or `get_info`) for the key
    /// with these bytes, exactly as ``respond(to:client:)`` would give it, without building a
    /// request or an answer: for servers that write the common answers from pre-encoded bytes.
    public func respondToKeyLookup(
        _ lookup: KeyLookup, key: UnsafeRawBufferPointer, client: IPAddress?, _ answer: (KeyLookupAnswer) -> Void
    ) {
        let charged = client.flatMap { limiter.isExempt($0) ? nil : $0 }
        if let charged, let refusal = limiter.admitAndCharge(charged) { return answer(.response(refusal)) }
        do throws(EngineError) {
            switch lookup {
            case .check:
                answer(.check(try engine.check(keyBytes: key)))
            case .getInfo:
                try engine.withInfo(keyBytes: key) { valid, custom in
                    answer(.info(valid: valid, customParameters: custom))
                }
            }
        } catch {
            if error == .keyNotFound, let charged, let refusal = limiter.chargeFailure(charged) {
                return answer(.response(refusal))
            }
            answer(.response(Self.failure(error)))
        }
    }

    /// The address to charge for a request from `peer` with these `X-Forwarded-For` values.
    public func clientAddress(peer: IPAddress, forwardedFor: [String]) -> IPAddress {
        limiter.clientAddress(peer: peer, forwardedFor: forwardedFor)
    }

    /// Routes and runs a request; `failed` when it failed a key lookup or an authentication.
    private func run(_ request: APIRequest) -> (response: APIResponse, pending: PendingDurability?, failed: Bool) {
        switch route(request) {
        case .answer(let response):
            return (response, nil, response.status == 401)
        case .run(let handler, let parameters, let requester):
            let (result, pending) = engine.deferringDurability {
                () throws(EngineError) in try handler(engine, parameters, requester)
            }
            switch result {
            case .success(let bytes):
                return (APIResponse(status: 200, body: ResponseEncoding.success(bytes)), pending, false)
            case .failure(let error):
                return (Self.failure(error), pending, error == .keyNotFound)
            }
        }
    }

    /// The envelope of an engine error: HTTP 503 when writes are stopped, else 200.
    static func failure(_ error: EngineError) -> APIResponse {
        .failure(status: error.code == EngineError.unavailableCode ? 503 : 200, code: error.code, error.message)
    }

    /// What a request comes to: an answer without running anything (an error, or `/health`), or
    /// an endpoint to run with its parameters and caller.
    private enum Route {
        case answer(APIResponse)
        case run(Handler, RequestParameters, Requester)
    }

    private func route(_ request: APIRequest) -> Route {
        let target = request.target.utf8
        let queryStart = target.firstIndex(of: UInt8(ascii: "?"))
        let path = String(decoding: target[target.startIndex..<(queryStart ?? target.endIndex)], as: UTF8.self)

        if path == "/health" {
            guard request.method == "GET" || request.method == "HEAD" else {
                return .answer(methodNotAllowed(request.method))
            }
            return .answer(APIResponse(status: 200, body: ResponseEncoding.success(Array(#""ok""#.utf8))))
        }

        var segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count == 4, segments[0] == "api",
            let role = ["guest", "admin", "client"].first(where: { $0 == segments[1] })
        else {
            return .answer(.failure(status: 404, code: 404, "Not found: \(path) is not an API path"))
        }
        guard request.method == "GET" || request.method == "POST" else {
            return .answer(methodNotAllowed(request.method))
        }
        let module = String(segments[2])
        let method = String(segments.removeLast())

        let requester: Requester
        if role == "guest" {
            requester = .admin
        } else {
            do {
                requester = try authenticator.authenticate(
                    request.authorization, for: role == "admin" ? .admin : .client)
            } catch {
                return .answer(
                    .failure(
                        status: 401, code: error.rawValue, "Authentication Failed",
                        headers: [("WWW-Authenticate", #"Basic realm="apikeyd""#)]))
            }
        }

        guard let handler = Self.handlers["\(role)/\(module)/\(method)"] else {
            return .answer(
                .failure(
                    status: 404, code: 740,
                    "\(role.prefix(1).uppercased() + role.dropFirst()) API call \(method) does not exist in module \(module)"
                ))
        }

        let parameters: RequestParameters
        do {
            parameters = try Self.parameters(of: request, queryStart: queryStart)
        } catch {
            return .answer(.failure(status: 400, code: 400, error.message))
        }

        return .run(handler, parameters, requester)
    }

    /// Whether answering `target` blocks on the disk for long (a snapshot writes the whole
    /// state), so the server runs it on a thread of its own rather than on an event loop.
    public static func mayBlock(target: String) -> Bool {
        target.hasPrefix("/api/admin/storage/")
    }

    private func methodNotAllowed(_ method: String) -> APIResponse {
        .failure(
            status: 405, code: 405, "Method \(method) is not allowed; use GET or POST",
            headers: [("Allow", "GET, POST")])
    }

    /// Query parameters, then body parameters over them.
    private static func parameters(
        of request: APIRequest, queryStart: String.UTF8View.Index?
    ) throws(MalformedRequest)
        -> RequestParameters
    {
        var parameters = RequestParameters()
        if let queryStart {
            let target = request.target.utf8
            parameters = try RequestParameters.decodeForm(target[target.index(after: queryStart)...])
        }
        guard request.method == "POST", !request.body.isEmpty else { return parameters }
        let mediaType =
            (request.contentType ?? "").split(separator: ";").first.map {
                $0.trimmingCharacters(in: " ").lowercased()
            } ?? ""
        let body: RequestParameters
        switch mediaType {
        case "application/json":
            body = try RequestParameters.decodeJSON(request.body)
        case "application/x-www-form-urlencoded", "":
            body = try RequestParameters.decodeForm(request.body)
        default:
            if mediaType.hasSuffix("+json") {
                body = try RequestParameters.decodeJSON(request.body)
            } else {
                throw MalformedRequest(
                    "Malformed request: unsupported Content-Type '\(mediaType)'; send application/json or application/x-www-form-urlencoded"
                )
            }
        }
        parameters.merge(body)
        return parameters
    }

    // MARK: - Endpoints

    private static let handlers: [String: Handler] = [
        "guest/serviceapikey/check": { engine, parameters, _ throws(EngineError) in
            ResponseEncoding.boolean(try engine.check(key: try requiredKey(parameters)))
        },
        "guest/serviceapikey/get_info": { engine, parameters, _ throws(EngineError) in
            try engine.withInfo(key: try requiredKey(parameters)) { valid, custom in
                ResponseEncoding.info(valid: valid, customParameters: custom)
            }
        },
        "admin/serviceapikey/update": { engine, parameters, _ throws(EngineError) in
            guard let orderID = try parameters.positiveInteger("order_id") else {
                throw EngineError.missingOrderIDForUpdate
            }
            try engine.update(
                KeyChanges(
                    orderID: orderID, config: try parameters.config("config"), valid: try parameters.boolean("valid"),
                    status: try parameters.status("status"), expiresAt: try parameters.time("expires_at"),
                    apiKey: try parameters.string("api_key")))
            return ResponseEncoding.boolean(true)
        },
        "admin/serviceapikey/reset": reset,
        "client/serviceapikey/reset": reset,
        "admin/serviceapikey/create": { engine, parameters, _ throws(EngineError) in
            guard let clientID = try parameters.positiveInteger("client_id") else { throw EngineError.missingClientID }
            let record = try engine.create(
                NewKey(
                    orderID: try parameters.positiveInteger("order_id"), clientID: clientID,
                    config: try parameters.config("config") ?? .object([]),
                    status: try parameters.status("status") ?? .active,
                    expiresAt: try parameters.time("expires_at") ?? nil))
            return ResponseEncoding.record(record)
        },
        "admin/serviceapikey/get": get,
        "client/serviceapikey/get": get,
        "admin/serviceapikey/get_list": list,
        "client/serviceapikey/get_list": list,
        "admin/serviceapikey/suspend": lifecycle { engine, orderID throws(EngineError) in
            try engine.suspend(orderID: orderID)
        },
        "admin/serviceapikey/unsuspend": lifecycle { engine, orderID throws(EngineError) in
            try engine.unsuspend(orderID: orderID)
        },
        "admin/serviceapikey/cancel": lifecycle { engine, orderID throws(EngineError) in
            try engine.cancel(orderID: orderID)
        },
        "admin/serviceapikey/uncancel": lifecycle { engine, orderID throws(EngineError) in
            try engine.uncancel(orderID: orderID)
        },
        "admin/serviceapikey/delete": lifecycle { engine, orderID throws(EngineError) in
            try engine.delete(orderID: orderID)
        },
        "admin/storage/snapshot": { engine, _, _ throws(EngineError) in
            let summary = try engine.snapshot()
            return JSONValue.object([
                JSONMember("path", .string(summary.path)), JSONMember("last_sequence", .integer(summary.lastSequence)),
                JSONMember("entries", .integer(summary.entries)), JSONMember("bytes", .integer(summary.bytes)),
                JSONMember("milliseconds", .integer(summary.nanoseconds / 1_000_000)),
            ]).encoded
        },
        "admin/client/token_reset": { engine, parameters, _ throws(EngineError) in
            guard let clientID = try parameters.positiveInteger("client_id") else { throw EngineError.missingClientID }
            let token = try engine.resetClientToken(clientID: clientID)
            return JSONValue.object([
                JSONMember("client_id", .integer(clientID)), JSONMember("api_token", .string(token)),
            ])
            .encoded
        },
    ]

    private static let reset: Handler = { engine, parameters, requester throws(EngineError) in
        guard let reference = try reference(parameters) else { throw EngineError.missingResetTarget }
        try engine.reset(reference, as: requester)
        return ResponseEncoding.boolean(true)
    }

    private static let get: Handler = { engine, parameters, requester throws(EngineError) in
        guard let reference = try reference(parameters) else {
            throw EngineError("You must provide either the API key or API key order ID.")
        }
        return ResponseEncoding.record(try engine.get(reference, as: requester))
    }

    private static let list: Handler = { engine, parameters, requester throws(EngineError) in
        let page = try engine.list(
            clientID: try parameters.positiveInteger("client_id"), status: try parameters.status("status"),
            page: Int(try parameters.integer("page") ?? 1), perPage: try parameters.integer("per_page").map { Int($0) },
            as: requester)
        return ResponseEncoding.page(page)
    }

    private static func lifecycle(
        _ operation: @escaping @Sendable (Engine, Int64) throws(EngineError) -> Void
    )
        -> Handler
    {
        { engine, parameters, _ throws(EngineError) in
            guard let orderID = try parameters.positiveInteger("order_id") else { throw EngineError.missingOrderID }
            try operation(engine, orderID)
            return ResponseEncoding.boolean(true)
        }
    }

    /// `order_id` when given (it wins), else `key`; nil when neither is.
    private static func reference(_ parameters: RequestParameters) throws(EngineError) -> KeyReference? {
        if let orderID = try parameters.positiveInteger("order_id") { return .orderID(orderID) }
        if let key = try parameters.string("key"), !key.isEmpty { return .key(key) }
        return nil
    }

    private static func requiredKey(_ parameters: RequestParameters) throws(EngineError) -> String {
        guard let key = try parameters.string("key"), !key.isEmpty else { throw EngineError.missingKey }
        return key
    }
}

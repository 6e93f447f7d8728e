import APIKeyEngine
import APIKeyLimiter
import Logging

/// Maps API requests onto engine operations (SPEC section 5) and engine answers onto FOSSBilling's
/// envelope, codes and HTTP statuses; decides for each request what the transport must do
/// (``APIAnswer``). Knows nothing of sockets or HTTP libraries.
public struct APIRouter: Sendable {
    /// The engine the router serves.
    public let engine: Engine
    private let authenticator: Authenticator
    let limiter: RequestLimiter
    private let metrics: MetricsEndpoint?
    private let coordinator: (any WriteCoordinator)?

    /// A router over `engine`, authenticating administrators with `adminToken`, limiting
    /// request rates per client address as `rateLimits` says, and serving `metrics` (none: a
    /// 404 like any unknown path). Rate-limit refusals and misplaced proxies go to `logger`.
    /// With a `coordinator` (multi-node mode), writes go through it and `/health` asks it.
    public init(
        engine: Engine, adminToken: String, rateLimits: RateLimitConfiguration = RateLimitConfiguration(),
        metrics: MetricsEndpoint? = nil, clock: any EngineClock = SystemClock(),
        logger: Logger = Logger(label: "apikeyd"), coordinator: (any WriteCoordinator)? = nil
    ) {
        self.engine = engine
        self.coordinator = coordinator
        self.authenticator = Authenticator(adminToken: adminToken, engine: engine)
        self.limiter = RequestLimiter(configuration: rateLimits, clock: clock, logger: logger)
        self.metrics = metrics
    }

    /// What to answer `request` with, an envelope for every failure, and when: a write is applied
    /// when this returns, and under `always` its answer waits until the write is durable.
    ///
    /// `client` is the address the request is charged to (see ``clientAddress(peer:forwardedFor:)``);
    /// nil leaves it unlimited. API requests take a token from the client's general bucket, and
    /// failed key lookups and authentications one from its failure bucket; an empty bucket
    /// answers 429 with `Retry-After`, and a refused request takes nothing.
    public func respond(to request: APIRequest, client: IPAddress? = nil) -> APIAnswer {
        if let metrics, request.target.prefix(while: { $0 != "?" }) == "/metrics" {
            guard request.method == "GET" || request.method == "HEAD" else {
                return .now(Self.methodNotAllowed(request.method, on: "/metrics", allowed: ["GET", "HEAD"]))
            }
            return .now(metrics.answer(client: client))
        }
        let charged = request.target.hasPrefix("/api/") ? limiter.charged(client) : nil
        if let charged, let refusal = limiter.admit(charged) { return .now(refusal) }
        switch route(request) {
        case .answer(let response):
            return .now(charging(response, failed: response.status == 401, to: charged))
        case .lookup(let lookup, let parameters):
            return lookUp(lookup, parameters, charged: charged)
        case .run(let endpoint, let parameters, let requester):
            if endpoint.writes, let coordinator {
                return .later { [self] deliver in
                    coordinator.write({ writes throws(EngineError) in
                        try endpoint.run(engine, writes, parameters, requester)
                    }) { result in
                        switch result {
                        case .success(let body): deliver(.success(body))
                        case .failure(let error): deliver(failure(error, chargedTo: charged))
                        }
                    }
                }
            }
            if endpoint.mayBlock {
                return .offLoop { [self] in
                    let (response, pending) = run(endpoint, parameters, requester, charged)
                    do throws(EngineError) {
                        try engine.waitUntilDurable(pending)
                    } catch {
                        return APIResponse(error)
                    }
                    return response
                }
            }
            let (response, pending) = run(endpoint, parameters, requester, charged)
            guard let pending else { return .now(response) }
            return .afterDurable(response, pending)
        }
    }

    /// Calls `deliver` with `response` once `pending` is durable, or with the error answer when
    /// the journal failed first. Never blocks: the journal's syncer calls `deliver` (keep it
    /// short: hand the answer to the connection's thread).
    public func whenDurable(
        _ pending: PendingDurability, answering response: APIResponse,
        _ deliver: @escaping @Sendable (APIResponse) -> Void
    ) {
        engine.whenDurable(pending) { failure in deliver(failure.map(APIResponse.init) ?? response) }
    }

    /// Starts loading the memory a lookup of the key with these bytes reads first: a transport
    /// that sees the key before it has parsed the whole request calls this, so that parsing
    /// overlaps the wait for memory. A hint; any bytes are fine. Returns the key's hash for
    /// ``respondToKeyLookup(_:key:cost:requestID:hash:client:_:)`` of the same bytes.
    public func prefetch(key: UnsafeRawBufferPointer) -> KeyHash {
        engine.prefetch(keyBytes: key)
    }

    /// The answer to a ``KeyLookup`` for the key with these bytes, exactly as
    /// ``respond(to:client:)`` would give it (limits included), without building a request or an
    /// answer: for transports that write the common answers from ``KeyLookupBodies``. `cost` and
    /// `requestID` are `verify`'s (nil: not given). `hash` is what ``prefetch(key:)`` returned for
    /// these same bytes, if it was called.
    ///
    /// Returns nil once `answer` has been called. A verify whose use must be durable before it is
    /// answered (`--fsync always`) does not call it and returns the answer to carry out instead.
    public func respondToKeyLookup(
        _ lookup: KeyLookup, key: UnsafeRawBufferPointer, cost: Int64? = nil, requestID: UnsafeRawBufferPointer? = nil,
        hash: KeyHash? = nil, client: IPAddress?, _ answer: (KeyLookupAnswer) -> Void
    ) -> APIAnswer? {
        let charged = limiter.charged(client)
        if let charged, let refusal = limiter.admit(charged) {
            answer(.response(refusal))
            return nil
        }
        return lookUp(lookup, key: key, cost: cost, requestID: requestID, hash: hash, charged: charged, answer)
    }

    /// A key lookup once the request is admitted; one definition for both paths.
    private func lookUp(
        _ lookup: KeyLookup, key: UnsafeRawBufferPointer, cost: Int64?, requestID: UnsafeRawBufferPointer?,
        hash: KeyHash?, charged: IPAddress?, _ answer: (KeyLookupAnswer) -> Void
    ) -> APIAnswer? {
        do throws(EngineError) {
            switch lookup {
            case .check:
                answer(.check(try engine.check(keyBytes: key, hash: hash)))
            case .getInfo:
                try engine.withInfo(keyBytes: key, hash: hash) { valid, custom in
                    answer(.info(valid: valid, customParameters: custom))
                }
            case .verify:
                return try verify(key: key, cost: cost, requestID: requestID, hash: hash, charged: charged, answer)
            }
        } catch {
            if let request = error.leaseRequest, let coordinator {
                let key = Array(key)
                let requestID = requestID.map { Array($0) }
                return .later { [self] deliver in
                    verifyAfterLease(
                        request, coordinator, key: key, cost: cost, requestID: requestID, charged: charged,
                        attempt: 1, deliver)
                }
            }
            answer(.response(failure(error, chargedTo: charged)))
        }
        return nil
    }

    /// How often a verify leases quota and tries again before it answers 503 (other verifies
    /// took each lease first).
    static let leaseAttempts = 8

    /// Multi-node mode: leases `request` through the cluster, then verifies again; a verify that
    /// needs yet another lease goes round again, up to ``leaseAttempts`` times.
    private func verifyAfterLease(
        _ request: LeaseRequest, _ coordinator: any WriteCoordinator, key: [UInt8], cost: Int64?, requestID: [UInt8]?,
        charged: IPAddress?, attempt: Int, _ deliver: @escaping @Sendable (APIResponse) -> Void
    ) {
        coordinator.lease(request) { [self] leaseFailure in
            if let leaseFailure { return deliver(APIResponse(leaseFailure)) }
            var response: APIResponse?
            var pending: PendingDurability?
            var next: LeaseRequest?
            key.withUnsafeBytes { keyBytes in
                func run(_ requestBytes: UnsafeRawBufferPointer?) {
                    do throws(EngineError) {
                        pending = try engine.deferred.verify(
                            keyBytes: keyBytes, cost: cost ?? 1, requestID: requestBytes
                        ) { verification, custom in
                            response = KeyLookupAnswer.verification(verification, customParameters: custom).response
                        }
                    } catch {
                        next = error.leaseRequest
                        response = failure(error, chargedTo: charged)
                    }
                }
                guard let requestID else { return run(nil) }
                requestID.withUnsafeBytes { run($0) }
            }
            if let next {
                guard attempt < Self.leaseAttempts else {
                    return deliver(
                        .failure(
                            status: 503, code: 503, "The key's monthly quota is in demand on other nodes; try again"))
                }
                return verifyAfterLease(
                    next, coordinator, key: key, cost: cost, requestID: requestID, charged: charged,
                    attempt: attempt + 1, deliver)
            }
            guard let pending, let answered = response else { return deliver(response!) }
            whenDurable(pending, answering: answered, deliver)
        }
    }

    /// `verify` for ``respondToKeyLookup(_:key:cost:requestID:hash:client:_:)``. An unknown key
    /// takes a failure token, as on `check`. When the engine acknowledges only after an fsync,
    /// the answer is copied out and handed back with what it waits for.
    private func verify(
        key: UnsafeRawBufferPointer, cost: Int64?, requestID: UnsafeRawBufferPointer?, hash: KeyHash?,
        charged: IPAddress?, _ answer: (KeyLookupAnswer) -> Void
    ) throws(EngineError) -> APIAnswer? {
        let waitsForFsync = engine.acknowledgesAfterFsync
        var copied: APIResponse?
        let pending = try engine.deferred.verify(keyBytes: key, hash: hash, cost: cost ?? 1, requestID: requestID) {
            verification, custom in
            let found = KeyLookupAnswer.verification(verification, customParameters: custom)
            if verification.code == .notFound {
                answer(.response(charging(found.response, failed: true, to: charged)))
            } else if waitsForFsync {
                copied = found.response
            } else {
                answer(found)
            }
        }
        guard let copied else { return nil }
        guard let pending else {
            answer(.response(copied))
            return nil
        }
        return .afterDurable(copied, pending)
    }

    /// The address to charge for a request from `peer` with these `X-Forwarded-For` values.
    public func clientAddress(peer: IPAddress, forwardedFor: [String]) -> IPAddress {
        limiter.clientAddress(peer: peer, forwardedFor: forwardedFor)
    }

    /// `response`, or the 429 to send instead when it `failed` and the failure bucket of
    /// `charged` is empty.
    private func charging(_ response: APIResponse, failed: Bool, to charged: IPAddress?) -> APIResponse {
        guard failed, let charged, let refusal = limiter.chargeFailure(charged) else { return response }
        return refusal
    }

    /// The answer to an engine error: a failed key lookup also takes a failure token (or is
    /// answered 429 when there is none left).
    private func failure(_ error: EngineError, chargedTo charged: IPAddress?) -> APIResponse {
        charging(APIResponse(error), failed: error == .keyNotFound, to: charged)
    }

    /// Runs an endpoint: its answer, and what must be durable before it may be sent.
    private func run(
        _ endpoint: Endpoint, _ parameters: RequestParameters, _ requester: Requester, _ charged: IPAddress?
    ) -> (APIResponse, PendingDurability?) {
        do throws(EngineError) {
            let written = try endpoint.run(engine, engine.deferred, parameters, requester)
            return (.success(written.value), written.pending)
        } catch {
            return (failure(error, chargedTo: charged), nil)
        }
    }

    /// A ``KeyLookup`` on the general path: its parameters read as on any endpoint, then the
    /// same code as the fast path.
    private func lookUp(_ lookup: KeyLookup, _ parameters: RequestParameters, charged: IPAddress?) -> APIAnswer {
        do throws(EngineError) {
            guard var key = try parameters.string("key"), !key.isEmpty else { throw EngineError.missingKey }
            var cost: Int64?
            var requestID: String?
            if lookup == .verify {
                do throws(EngineError) {
                    cost = try parameters.integer("cost")
                } catch {
                    throw EngineError.invalidCost
                }
                requestID = try parameters.string("request_id")
            }
            var response: APIResponse?
            let later = key.withUTF8 { keyBytes in
                func run(_ requestBytes: UnsafeRawBufferPointer?) -> APIAnswer? {
                    lookUp(
                        lookup, key: UnsafeRawBufferPointer(keyBytes), cost: cost, requestID: requestBytes, hash: nil,
                        charged: charged
                    ) { response = $0.response }
                }
                guard var requestID else { return run(nil) }
                return requestID.withUTF8 { run(UnsafeRawBufferPointer($0)) }
            }
            return later ?? .now(response!)
        } catch {
            return .now(failure(error, chargedTo: charged))
        }
    }

    /// What a request comes to: an answer without running anything (an error, or `/health`), a
    /// key lookup, or an endpoint to run with its parameters and caller.
    private enum Route {
        case answer(APIResponse)
        case lookup(KeyLookup, RequestParameters)
        case run(Endpoint, RequestParameters, Requester)
    }

    private func route(_ request: APIRequest) -> Route {
        let target = request.target.utf8
        let queryStart = target.firstIndex(of: UInt8(ascii: "?"))
        let path = String(decoding: target[target.startIndex..<(queryStart ?? target.endIndex)], as: UTF8.self)

        if path == "/health" || path == "/openapi.yaml" {
            guard request.method == "GET" || request.method == "HEAD" else {
                return .answer(Self.methodNotAllowed(request.method, on: path, allowed: ["GET", "HEAD"]))
            }
            if path == "/openapi.yaml" {
                return .answer(
                    APIResponse(status: 200, body: Array(OpenAPIDocument.yaml.utf8), contentType: Self.yamlContentType))
            }
            if let reason = coordinator?.notReadyReason { return .answer(.failure(status: 503, code: 503, reason)) }
            return .answer(APIResponse(status: 200, body: ResponseEncoding.success(Array(#""ok""#.utf8))))
        }

        var segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count == 4, segments[0] == "api",
            let role = ["guest", "admin", "client"].first(where: { $0 == segments[1] })
        else {
            return .answer(.failure(status: 404, code: 404, "Not found: \(path) is not an API path"))
        }
        guard request.method == "GET" || request.method == "POST" else {
            return .answer(Self.methodNotAllowed(request.method))
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

        let name = "\(role)/\(module)/\(method)"
        let lookup = KeyLookup.byEndpointName[name]
        guard lookup != nil || Self.endpoints[name] != nil else {
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

        if let lookup { return .lookup(lookup, parameters) }
        return .run(Self.endpoints[name]!, parameters, requester)
    }

    /// The content type of `GET /openapi.yaml`.
    static let yamlContentType: StaticString = "application/yaml; charset=utf-8"

    /// 405, naming the methods `path` takes in the message and in `Allow`.
    private static func methodNotAllowed(
        _ method: String, on path: String? = nil, allowed: [String] = ["GET", "POST"]
    ) -> APIResponse {
        .failure(
            status: 405, code: 405,
            "Method \(method) is not allowed\(path.map { " on \($0)" } ?? ""); use \(allowed.joined(separator: " or "))",
            headers: [("Allow", allowed.joined(separator: ", "))])
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
}

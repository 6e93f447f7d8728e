import APIKeyEngine

/// What a web framework's middleware asks of the engine for one request, with no framework in
/// sight: find the key in the request's headers, verify it (metering `cost`) or only check it, and
/// turn the answer into either the key's details for the handler or the refusal to send.
///
/// The statuses: 401 for a missing, unknown, expired, suspended or canceled key, 429 for
/// `RATE_LIMITED` and `USAGE_EXCEEDED` (with `Retry-After`), 503 when the engine takes no writes
/// (a verify is a write), 500 for anything else. Answers carry the `RateLimit-Limit`,
/// `RateLimit-Remaining` and `RateLimit-Reset` headers of the IETF draft for the limit closest to
/// running out (the key's own rate or its monthly quota), when the key has one.
public struct APIKeyGuard: Sendable {
    /// What the guard does with a key.
    public enum Mode: Hashable, Sendable {
        /// `Engine.verify(key:cost:requestID:)`: status, expiry, the key's own rate and its
        /// monthly quota, consuming `cost` (0 to ``DeferredWrites/maximumCost``) when it passes.
        case verify(cost: Int64)
        /// ``Engine/withKey(key:_:)``: status and expiry only; nothing is consumed or written.
        case check
    }

    /// The engine that holds the keys.
    public let engine: Engine
    /// Verify (the default, cost 1) or check.
    public var mode: Mode
    /// The header that carries the key, matched without regard to case.
    public var headerName: String
    /// Whether `Authorization: Bearer <key>` is read when ``headerName`` is absent.
    public var acceptsBearer: Bool

    /// A guard over `engine`; see the properties for the defaults.
    public init(
        engine: Engine, mode: Mode = .verify(cost: 1), headerName: String = "X-API-Key", acceptsBearer: Bool = true
    ) {
        self.engine = engine
        self.mode = mode
        self.headerName = headerName
        self.acceptsBearer = acceptsBearer
    }

    /// The same guard with another mode: `guard.with(mode: .verify(cost: 10))` for a costly route.
    public func with(mode: Mode) -> APIKeyGuard {
        var copy = self
        copy.mode = mode
        return copy
    }

    /// The key in a request whose headers `header` looks up by name (the first value, or nil):
    /// ``headerName``'s value, else the credentials of `Authorization: Bearer ...`; surrounding
    /// white space removed; nil when neither carries one.
    public func key(header: (String) -> String?) -> String? {
        if let value = header(headerName), !value.isEmpty {
            // The usual header has nothing to trim: hand it on without a copy.
            if value.first != " ", value.first != "\t", value.last != " ", value.last != "\t" { return value }
            let trimmed = value.trimmingSpaces
            if !trimmed.isEmpty { return String(trimmed) }
        }
        guard acceptsBearer, let authorization = header("Authorization")?.trimmingSpaces else { return nil }
        let scheme = authorization.prefix { $0 != " " }
        guard scheme.lowercased() == "bearer" else { return nil }
        let credentials = authorization.dropFirst(scheme.count).trimmingSpaces
        return credentials.isEmpty ? nil : String(credentials)
    }

    /// Decides for `key` (what ``key(header:)`` found): the key's details, or the refusal.
    /// Suspends until a verify's use is durable under the fsync policy.
    public func decide(key: String?) async -> GuardDecision {
        let evaluation = evaluate(key: key)
        guard evaluation.pending != nil else { return evaluation.decision }
        return await finish(evaluation)
    }

    /// The synchronous half of ``decide(key:)``: the decision as applied, and what must become
    /// durable before it may be acted on (nil under `everysec` and `no`, and for a refusal).
    /// Middleware calls this and only awaits ``finish(_:)`` when something is pending: an `await`
    /// that need not suspend still moves a nonisolated call off the caller's event loop and back.
    public func evaluate(key: String?) -> GuardEvaluation {
        guard let key, !key.isEmpty else { return GuardEvaluation(.refused(.missingKey)) }
        switch mode {
        case .check: return GuardEvaluation(check(key))
        case .verify(let cost): return verify(key, cost: cost)
        }
    }

    /// The decision of `evaluation` once its pending use is durable; a refusal (503) when the
    /// journal failed first.
    public func finish(_ evaluation: GuardEvaluation) async -> GuardDecision {
        do {
            try await engine.durable(evaluation.pending)
        } catch {
            return .refused(GuardRefusal(error))
        }
        return evaluation.decision
    }

    private func check(_ key: String) -> GuardDecision {
        do {
            return try engine.withKey(key: key) { view -> GuardDecision in
                guard view.isValid else { return .refused(.invalid(view.code)) }
                return .allowed(
                    VerifiedKey(
                        orderID: view.orderID, clientID: view.clientID,
                        customParameters: CustomParameterValues(view.customParameters), usage: nil, rateLimit: nil,
                        headers: []))
            }
        } catch {
            return .refused(GuardRefusal(error))
        }
    }

    private func verify(_ key: String, cost: Int64) -> GuardEvaluation {
        var key = key
        var answer: (Verification, CustomParameterValues)?
        let pending: PendingDurability?
        do {
            pending = try key.withUTF8 { bytes in
                Result { () throws(EngineError) in
                    try engine.deferred.verify(keyBytes: UnsafeRawBufferPointer(bytes), cost: cost) {
                        verification, custom in
                        answer = (verification, CustomParameterValues(CustomParameterView(json: custom)))
                    }
                }
            }.get()
        } catch {
            return GuardEvaluation(.refused(GuardRefusal(error)))
        }
        guard let (verification, parameters) = answer else { return GuardEvaluation(.refused(.internalError)) }
        let headers = RateLimitHeaders(verification, nowSeconds: engine.clock.nowSeconds())
        switch verification.code {
        case .valid:
            return GuardEvaluation(
                .allowed(
                    VerifiedKey(
                        orderID: verification.orderID, clientID: verification.clientID, customParameters: parameters,
                        usage: verification.usage, rateLimit: verification.rateLimit, headers: headers.closest)),
                pending: pending)
        case .rateLimited:
            return GuardEvaluation(
                .refused(.limited(verification.code, headers: headers.rate, retryAfter: headers.rateRetryAfter)))
        case .usageExceeded:
            return GuardEvaluation(
                .refused(.limited(verification.code, headers: headers.quota, retryAfter: headers.quotaRetryAfter)))
        case .notFound, .suspended, .canceled, .expired:
            return GuardEvaluation(.refused(.invalid(verification.code)))
        }
    }
}

/// A decision as ``APIKeyGuard/evaluate(key:)`` made it, before its use is durable.
public struct GuardEvaluation: Sendable {
    /// What was decided.
    public let decision: GuardDecision
    /// What must be durable before the decision is acted on; nil when nothing is.
    public let pending: PendingDurability?

    init(_ decision: GuardDecision, pending: PendingDurability? = nil) {
        self.decision = decision
        self.pending = pending
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: Substring {
        let trimmed = drop { $0 == " " || $0 == "\t" }
        var end = trimmed.endIndex
        while end > trimmed.startIndex, [" ", "\t"].contains(trimmed[trimmed.index(before: end)]) {
            end = trimmed.index(before: end)
        }
        return Substring(trimmed[..<end])
    }
}

import APIKeyEngine

/// What ``APIKeyGuard/decide(key:)`` decided.
public enum GuardDecision: Hashable, Sendable {
    /// The key may make the call: hand the details to the handler, add the headers to its answer.
    case allowed(VerifiedKey)
    /// The key may not: send this answer instead of calling the handler.
    case refused(GuardRefusal)
}

/// One header of an answer.
public struct HeaderField: Hashable, Sendable {
    /// The header's name.
    public var name: String
    /// The header's value.
    public var value: String

    /// A header named `name` with `value`.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// The key a request was let through with, as the middleware hands it to the handler.
public struct VerifiedKey: Hashable, Sendable {
    /// The key's order.
    public var orderID: Int64
    /// The client that owns the order.
    public var clientID: Int64
    /// The key's custom parameters (`customParameters.string("tier")`).
    public var customParameters: CustomParameterValues
    /// The monthly quota after this request; nil in check mode and for a key without a limit.
    public var usage: Verification.Usage?
    /// The key's own token bucket after this request; nil in check mode and without a rate.
    public var rateLimit: Verification.RateLimit?
    /// The `RateLimit-*` headers to add to the handler's answer (none without a limit).
    public var headers: [HeaderField]

    /// A key's details, as the guard builds them.
    public init(
        orderID: Int64, clientID: Int64, customParameters: CustomParameterValues, usage: Verification.Usage?,
        rateLimit: Verification.RateLimit?, headers: [HeaderField]
    ) {
        self.orderID = orderID
        self.clientID = clientID
        self.customParameters = customParameters
        self.usage = usage
        self.rateLimit = rateLimit
        self.headers = headers
    }
}

/// The answer sent instead of the handler's: a status, headers and a JSON body
/// `{"error": {"code": "NOT_FOUND", "message": "..."}}`.
public struct GuardRefusal: Hashable, Sendable {
    /// 401, 429, 503 or 500.
    public var status: Int
    /// `MISSING_KEY`, a ``Verification/Code`` name (`NOT_FOUND`, `EXPIRED`, `SUSPENDED`,
    /// `CANCELED`, `RATE_LIMITED`, `USAGE_EXCEEDED`), `UNAVAILABLE` or `INTERNAL_ERROR`.
    public var code: String
    /// What went wrong, for people.
    public var message: String
    /// `WWW-Authenticate` on a 401; `Retry-After` and the `RateLimit-*` headers on a 429.
    public var headers: [HeaderField]

    /// A refusal with these parts.
    public init(status: Int, code: String, message: String, headers: [HeaderField] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// The body: a JSON object naming the code and the message.
    public var body: String {
        var bytes: [UInt8] = []
        JSONValue.object([
            JSONMember("error", .object([JSONMember("code", .string(code)), JSONMember("message", .string(message))]))
        ]).encode(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static let challenge = [HeaderField("WWW-Authenticate", "Bearer")]

    /// No key in the request.
    static let missingKey = GuardRefusal(
        status: 401, code: "MISSING_KEY", message: "An API key is required", headers: challenge)

    /// A verify that gave no answer (it cannot happen; kept for the type's sake).
    static let internalError = GuardRefusal(
        status: 500, code: "INTERNAL_ERROR", message: "The key could not be verified")

    /// A key that exists no more, or not yet, or is not in a state to be used.
    static func invalid(_ code: Verification.Code) -> GuardRefusal {
        let message =
            switch code {
            case .notFound: "The API key does not exist"
            case .suspended: "The API key is suspended"
            case .canceled: "The API key is canceled"
            case .expired: "The API key has expired"
            default: "The API key may not be used"
            }
        return GuardRefusal(status: 401, code: "\(code.name)", message: message, headers: challenge)
    }

    /// A key over its own rate or its monthly quota.
    static func limited(_ code: Verification.Code, headers: [HeaderField], retryAfter: Int64) -> GuardRefusal {
        let message =
            code == .rateLimited ? "The API key is over its rate limit" : "The API key has used its monthly quota"
        return GuardRefusal(
            status: 429, code: "\(code.name)", message: message,
            headers: [HeaderField("Retry-After", String(retryAfter))] + headers)
    }

    /// An engine error: a missing key is a 401, an engine that takes no writes a 503.
    init(_ error: EngineError) {
        switch error.code {
        case .missingKey: self = .missingKey
        case .keyNotFound: self = .invalid(.notFound)
        case .writesStopped, .closed, .quotaLeaseNeeded:
            self.init(
                status: 503, code: "UNAVAILABLE", message: error.message, headers: [HeaderField("Retry-After", "1")])
        default: self.init(status: 500, code: "INTERNAL_ERROR", message: error.message)
        }
    }
}

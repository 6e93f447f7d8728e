import APIKeyEngine

/// The answer to an ``APIRequest``: a JSON body, but for `/metrics`.
public struct APIResponse: Sendable {
    /// The HTTP status code.
    public var status: Int
    /// Headers besides `Content-Type` and `Content-Length`.
    public var headers: [(String, String)]
    /// The body.
    public var body: [UInt8]
    /// The body's `Content-Type`.
    public var contentType: StaticString

    /// The content type of every answer but the metrics.
    public static let jsonContentType: StaticString = "application/json; charset=utf-8"

    public init(
        status: Int, headers: [(String, String)] = [], body: [UInt8], contentType: StaticString = jsonContentType
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.contentType = contentType
    }

    /// A successful answer: FOSSBilling's envelope around `result`, JSON text.
    static func success(_ result: [UInt8]) -> APIResponse {
        APIResponse(status: 200, body: ResponseEncoding.success(result))
    }

    /// The one family of error answers: FOSSBilling's envelope with `code` and `message`, under
    /// an HTTP `status`. Every refusal goes through here: the transport's parse failures, the
    /// router's request and authentication failures, rate limits and engine errors.
    public static func failure(
        status: Int, code: Int, _ message: String, headers: [(String, String)] = []
    )
        -> APIResponse
    {
        APIResponse(status: status, headers: headers, body: ResponseEncoding.failure(message: message, code: code))
    }

    /// The envelope code FOSSBilling gives every error a service module raises.
    public static let moduleErrorCode = 9999
    /// The status and envelope code of errors that mean the engine cannot take writes.
    public static let unavailableStatus = 503

    /// An engine error as FOSSBilling shows it: code 9999 under HTTP 200, except that failures
    /// of the storage (writes stopped, a failed snapshot) answer 503 with code 503.
    public init(_ error: EngineError) {
        switch error.code {
        case .writesStopped, .closed, .snapshotFailed, .quotaLeaseNeeded:
            self = .failure(status: Self.unavailableStatus, code: Self.unavailableStatus, error.message)
        default:
            self = .failure(status: 200, code: Self.moduleErrorCode, error.message)
        }
    }
}

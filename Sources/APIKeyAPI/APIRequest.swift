/// One HTTP request as the router needs it, independent of the HTTP library underneath.
public struct APIRequest: Hashable, Sendable {
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

import APIKeyLimiter

/// `GET /metrics`: who may read it, and what it answers (the Prometheus text format).
public struct MetricsEndpoint: Sendable {
    /// Client addresses allowed; everyone else is answered 403.
    public var allowed: [CIDRRange]
    /// Writes the metrics text, called once per scrape.
    public var render: @Sendable () -> [UInt8]

    /// The content type of the Prometheus text format, version 0.0.4.
    public static let contentType: StaticString = "text/plain; version=0.0.4; charset=utf-8"

    public init(allowed: [CIDRRange], render: @escaping @Sendable () -> [UInt8]) {
        self.allowed = allowed
        self.render = render
    }

    /// The answer to a `GET` or `HEAD` of `/metrics` from `client` (nil: not an IP peer).
    func answer(client: IPAddress?) -> APIResponse {
        guard let client, allowed.contains(where: { $0.contains(client) }) else {
            return .failure(status: 403, code: 403, "Forbidden: /metrics answers only the --metrics-allow addresses")
        }
        return APIResponse(status: 200, body: render(), contentType: Self.contentType)
    }
}

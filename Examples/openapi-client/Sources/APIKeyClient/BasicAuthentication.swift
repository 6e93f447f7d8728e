import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Sends HTTP Basic credentials with every request: user `admin` with the admin token, or user
/// `client` with a client's API token, as apikeyd's security schemes say.
public struct BasicAuthentication: ClientMiddleware {
    private let header: String

    /// Credentials of `user` (`admin` or `client`) with `password` (the token).
    public init(user: String, password: String) {
        header = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    /// Adds the `Authorization` header and sends the request on.
    public func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = header
        return try await next(request, body, baseURL)
    }
}

import Foundation
import OpenAPIRuntime
import OpenAPIURLSession

extension Client {
    /// A client of the apikeyd server at `serverURL` (for example `http://127.0.0.1:8080`) over
    /// URLSession, sending `credentials` with every call (none: guest calls only).
    public static func apikeyd(serverURL: URL, credentials: BasicAuthentication? = nil) -> Client {
        Client(
            serverURL: serverURL, transport: URLSessionTransport(), middlewares: credentials.map { [$0] } ?? [])
    }
}

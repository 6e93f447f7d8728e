import APIKeyEngine
import APIKeyGuard
import APIKeyHummingbird
import Foundation
import Hummingbird

/// The weather API's routes: the paid forecast behind apikeyd's middleware, the key's own usage,
/// and the admin routes that issue keys and change a customer's tier.
public enum WeatherRoutes {
    /// What `POST /admin/keys` takes: the customer and the tier to sell them.
    struct IssueRequest: Decodable {
        var customer: Int64
        var tier: Tier
    }

    /// What `POST /admin/keys` answers: the key, shown once, and its order.
    struct IssuedKey: ResponseEncodable {
        var key: String
        var order: Int64
        var customer: Int64
        var tier: Tier
    }

    /// What `POST /admin/keys/{order}/tier` takes.
    struct TierChange: Decodable {
        var tier: Tier
    }

    /// What `GET /v1/usage` answers.
    struct UsageAnswer: ResponseEncodable {
        var month: String
        var used: Int64
        var limit: Int64?
        var remaining: Int64?
        var resetsAt: String
    }

    /// The router: `/health`, `/v1/forecast` (cost 1), `/v1/usage` (checked, not metered) and
    /// `/admin/...` behind `adminToken`.
    public static func router(engine: Engine, adminToken: String) -> Router<APIKeyRequestContextType> {
        let router = Router(context: APIKeyRequestContextType.self)
        router.get("health") { _, _ -> Response in
            Response(status: engine.writeAvailability.isAccepting ? .ok : .serviceUnavailable)
        }
        let keyGuard = APIKeyGuard(engine: engine)
        router.group("v1").add(middleware: APIKeyMiddleware(keyGuard))
            .get("forecast") { request, context in try forecast(request, key: context.apiKey!) }
        router.group("v1").add(middleware: APIKeyMiddleware(keyGuard.with(mode: .check)))
            .get("usage") { _, context -> UsageAnswer in
                let usage = try engine.usage(.orderID(context.apiKey!.orderID))
                return UsageAnswer(
                    month: "\(usage.month)", used: usage.used, limit: usage.limit, remaining: usage.remaining,
                    resetsAt: usage.month.resetAt)
            }
        let admin = router.group("admin").add(middleware: AdminTokenMiddleware(token: adminToken))
        admin.post("keys") { request, context -> EditedResponse<IssuedKey> in
            let issue = try await request.decode(as: IssueRequest.self, context: context)
            guard issue.customer > 0 else {
                throw HTTPError(.badRequest, message: "customer must be a positive integer")
            }
            let record = try await engine.create(NewKey(clientID: issue.customer, config: issue.tier.config))
            return EditedResponse(
                status: .created,
                response: IssuedKey(
                    key: record.apiKey, order: record.orderID, customer: issue.customer, tier: issue.tier))
        }
        admin.post("keys/:order/tier") { request, context -> HTTPResponse.Status in
            let change = try await request.decode(as: TierChange.self, context: context)
            let order = try context.parameters.require("order", as: Int64.self)
            // In a closure, Swift infers `any Error` for a plain `do`; naming the type keeps `.code`.
            do throws(EngineError) {
                try await engine.update(KeyChanges(orderID: order, config: change.tier.config))
            } catch {
                switch error.code {
                case .orderNotFound, .invalidArgument: throw HTTPError(.notFound, message: error.message)
                default: throw HTTPError(.serviceUnavailable, message: error.message)
                }
            }
            return .noContent
        }
        return router
    }

    /// The forecast for the request's `city`, as long as the key's tier allows.
    public static func forecast(_ request: Request, key: VerifiedKey) throws -> Forecast {
        guard let city = request.uri.queryParameters["city"].map(String.init), !city.isEmpty else {
            throw HTTPError(.badRequest, message: "city is required: /v1/forecast?city=Oslo")
        }
        let tier = key.customParameters.string("tier").flatMap(Tier.init(rawValue:)) ?? .free
        return Forecast(
            city: city, tier: tier.rawValue, days: tier.forecastDays, remainingThisMonth: key.usage?.remaining)
    }
}

/// Lets a request through only with `Authorization: Bearer <admin token>`.
struct AdminTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        let expected = Array("Bearer \(token)".utf8)
        let given = Array((request.headers[.authorization] ?? "").utf8)
        // Compared in constant time: every byte is looked at whatever the first difference.
        var difference = UInt8(expected.count == given.count ? 0 : 1)
        for index in 0..<expected.count { difference |= expected[index] ^ (index < given.count ? given[index] : 0) }
        guard difference == 0 else { throw HTTPError(.unauthorized, message: "admin token required") }
        return try await next(request, context)
    }
}

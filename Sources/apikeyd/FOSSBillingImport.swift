import APIKeyEngine

/// A `mysqldump` of a FOSSBilling database turned into keys and client tokens.
///
/// A key is a `service_apikey` row joined to the `client_order` row whose `service_type` is
/// `apikey` and whose `service_id` is the row's `id`: the order's `id`, `client_id`, `status` and
/// `expires_at`, the service row's `api_key`, `config` and dates. Statuses `active`, `suspended`
/// and `canceled` stay, `failed_renew` becomes `suspended`; orders in `pending_setup` or
/// `failed_setup`, without a service row or with a NULL `api_key` are skipped and counted. Each
/// `client.api_token` that is set becomes that client's token. FOSSBilling's dates are taken as
/// UTC.
enum FOSSBillingImport {
    /// The columns read, in the order of the rows' values.
    static let serviceColumns = ["id", "api_key", "config", "created_at", "updated_at"]
    static let orderColumns = [
        "id", "client_id", "service_id", "service_type", "status", "expires_at", "created_at", "updated_at",
    ]
    static let clientColumns = ["id", "api_token"]

    /// Positions in the rows' values.
    enum Service {
        static let id = 0, apiKey = 1, config = 2, createdAt = 3, updatedAt = 4
    }
    enum Order {
        static let id = 0, clientID = 1, serviceID = 2, serviceType = 3, status = 4, expiresAt = 5, createdAt = 6
        static let updatedAt = 7
    }
    enum Client {
        static let id = 0, apiToken = 1
    }

    /// What each FOSSBilling order status becomes; nil for the statuses that are skipped.
    static func status(_ text: String) -> KeyStatus?? {
        switch text {
        case "active": .some(.active)
        case "suspended", "failed_renew": .some(.suspended)
        case "canceled", "cancelled": .some(.canceled)
        case "pending_setup", "failed_setup": .some(nil)
        default: nil
        }
    }

    static func read(_ bytes: [UInt8], now: Int64, progress: (Int) -> Void, _ sink: ImportSink) throws {
        var reader = MySQLDumpReader(
            bytes: bytes,
            tables: ["service_apikey": serviceColumns, "client_order": orderColumns, "client": clientColumns])
        var services: [Int64: MySQLDumpReader.Row] = [:]
        var orders: [MySQLDumpReader.Row] = []
        var clients: [MySQLDumpReader.Row] = []
        do {
            try reader.read(
                row: { table, row in
                    switch table {
                    case "service_apikey":
                        if let id = row.values[Service.id].text.flatMap({ Int64($0) }) { services[id] = row }
                    case "client_order":
                        if row.values[Order.serviceType].text == "apikey" { orders.append(row) }
                    default:
                        clients.append(row)
                    }
                }, progress: progress)
        } catch let failure as MySQLDumpReader.Failure {
            throw CommandFailure("line \(failure.line): \(failure.message)")
        }
        for (table, wanted) in [
            ("service_apikey", serviceColumns), ("client_order", orderColumns), ("client", clientColumns),
        ] {
            guard let declared = reader.columnOrder(of: table) else {
                throw CommandFailure("the dump has no CREATE TABLE of \(table): is it a FOSSBilling database?")
            }
            let missing = Set(wanted).subtracting(declared).subtracting(["created_at", "updated_at", "expires_at"])
            guard missing.isEmpty else {
                throw CommandFailure("the table \(table) has no column \(missing.sorted().joined(separator: ", "))")
            }
        }
        for order in orders { try sink(item(order: order, services: services, now: now), order.line) }
        for client in clients {
            guard let token = client.values[Client.apiToken].text, !token.isEmpty else { continue }
            let item: ImportItem
            do throws(CommandFailure) {
                item = .token(
                    clientID: try RecordFields.positive(client.values[Client.id].text, "client id"), token: token)
            } catch {
                item = .invalid("client: \(error.description)")
            }
            try sink(item, client.line)
        }
    }

    /// The key an `apikey` order and its service row make.
    private static func item(
        order: MySQLDumpReader.Row, services: [Int64: MySQLDumpReader.Row], now: Int64
    ) -> ImportItem {
        let statusText = order.values[Order.status].text ?? ""
        guard let mapped = status(statusText) else {
            return .invalid("order status '\(statusText)' is not a FOSSBilling order status")
        }
        guard let status = mapped else { return .skipped(reason: statusText) }
        guard let serviceID = order.values[Order.serviceID].text.flatMap({ Int64($0) }),
            let service = services[serviceID]
        else { return .skipped(reason: "no service_apikey row") }
        guard let apiKey = service.values[Service.apiKey].text, !apiKey.isEmpty else {
            return .skipped(reason: "no api_key")
        }
        let fields = RecordFields(
            orderID: order.values[Order.id].text, clientID: order.values[Order.clientID].text, apiKey: apiKey,
            config: service.values[Service.config].text, status: status.rawValue,
            expiresAt: order.values[Order.expiresAt].text,
            createdAt: service.values[Service.createdAt].text ?? order.values[Order.createdAt].text,
            updatedAt: service.values[Service.updatedAt].text ?? order.values[Order.updatedAt].text)
        do throws(CommandFailure) {
            return .record(try fields.record(now: now))
        } catch {
            let orderID = order.values[Order.id].text ?? "?"
            return .invalid("order \(orderID) (service_apikey line \(service.line)): \(error.description)")
        }
    }
}

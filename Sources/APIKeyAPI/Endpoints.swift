import APIKeyEngine

/// One API endpoint: what it runs, whether it writes, and whether it may block for long (then
/// the transport runs it off its event loop).
struct Endpoint: Sendable {
    /// Runs the endpoint with the engine to read and the writes to make (the engine's own, or
    /// planned ones in multi-node mode).
    typealias Run =
        @Sendable (Engine, DeferredWrites, RequestParameters, Requester) throws(EngineError) -> Written<[UInt8]>

    /// Runs the endpoint: its result as JSON text, and what must be durable before it is sent.
    let run: Run
    /// Whether it changes the keys (in multi-node mode it then goes through the cluster).
    let writes: Bool
    /// Whether it blocks on the disk for long (a snapshot writes the whole state).
    let mayBlock: Bool

    init(mayBlock: Bool = false, writes: Bool = true, _ run: @escaping Run) {
        self.run = run
        self.writes = writes
        self.mayBlock = mayBlock
    }

    /// An endpoint that only reads.
    static func read(
        _ read: @escaping @Sendable (Engine, RequestParameters, Requester) throws(EngineError) -> [UInt8]
    ) -> Endpoint {
        Endpoint(writes: false) { engine, _, parameters, requester throws(EngineError) in
            Written(try read(engine, parameters, requester))
        }
    }
}

extension APIRouter {
    /// Every endpoint by `role/module/method`.
    static let endpoints: [String: Endpoint] = {
        var table: [String: Endpoint] = [
            "admin/serviceapikey/update": Endpoint { _, writes, parameters, _ throws(EngineError) in
                guard let orderID = try parameters.positiveInteger("order_id") else {
                    throw EngineError.missingOrderIDForUpdate
                }
                return try writes.update(
                    KeyChanges(
                        orderID: orderID, config: try parameters.config("config"),
                        valid: try parameters.boolean("valid"), status: try parameters.status("status"),
                        expiresAt: try parameters.time("expires_at"), apiKey: try parameters.string("api_key"))
                ).map { _ in ResponseEncoding.boolean(true) }
            },
            "admin/serviceapikey/reset": reset,
            "client/serviceapikey/reset": reset,
            "admin/serviceapikey/create": Endpoint { _, writes, parameters, _ throws(EngineError) in
                guard let clientID = try parameters.positiveInteger("client_id") else {
                    throw EngineError.missingClientID
                }
                return try writes.create(
                    NewKey(
                        orderID: try parameters.positiveInteger("order_id"), clientID: clientID,
                        config: try parameters.config("config") ?? .object([]),
                        status: try parameters.status("status") ?? .active,
                        expiresAt: try parameters.time("expires_at") ?? nil)
                ).map { ResponseEncoding.record($0) }
            },
            "admin/serviceapikey/usage": usage,
            "client/serviceapikey/usage": usage,
            "admin/serviceapikey/usage_reset": lifecycle { writes, orderID throws(EngineError) in
                try writes.resetUsage(orderID: orderID)
            },
            "admin/serviceapikey/get": get,
            "client/serviceapikey/get": get,
            "admin/serviceapikey/get_list": list,
            "client/serviceapikey/get_list": list,
            "admin/serviceapikey/suspend": lifecycle { writes, orderID throws(EngineError) in
                try writes.suspend(orderID: orderID)
            },
            "admin/serviceapikey/unsuspend": lifecycle { writes, orderID throws(EngineError) in
                try writes.unsuspend(orderID: orderID)
            },
            "admin/serviceapikey/cancel": lifecycle { writes, orderID throws(EngineError) in
                try writes.cancel(orderID: orderID)
            },
            "admin/serviceapikey/uncancel": lifecycle { writes, orderID throws(EngineError) in
                try writes.uncancel(orderID: orderID)
            },
            "admin/serviceapikey/delete": lifecycle { writes, orderID throws(EngineError) in
                try writes.delete(orderID: orderID)
            },
            "admin/storage/snapshot": .read { engine, _, _ throws(EngineError) in
                let summary = try engine.snapshot()
                return JSONValue.object([
                    JSONMember("path", .string(summary.path)),
                    JSONMember("last_sequence", .integer(summary.lastSequence)),
                    JSONMember("entries", .integer(summary.entries)), JSONMember("bytes", .integer(summary.bytes)),
                    JSONMember("milliseconds", .integer(summary.nanoseconds / 1_000_000)),
                ]).encoded
            }.blocking,
            "admin/client/token_reset": Endpoint { _, writes, parameters, _ throws(EngineError) in
                guard let clientID = try parameters.positiveInteger("client_id") else {
                    throw EngineError.missingClientID
                }
                return try writes.resetClientToken(clientID: clientID).map { token in
                    JSONValue.object([
                        JSONMember("client_id", .integer(clientID)), JSONMember("api_token", .string(token)),
                    ]).encoded
                }
            },
        ]
        return table
    }()

    /// `reset` answers `true`, as FOSSBilling does; with hashed key storage, the record with the
    /// new key instead, the only time the key is shown.
    private static let reset = Endpoint { engine, writes, parameters, requester throws(EngineError) in
        guard let reference = try reference(parameters) else { throw EngineError.missingResetTarget }
        let graceSeconds: Int64
        do throws(EngineError) {
            graceSeconds = try parameters.integer("grace_seconds") ?? 0
        } catch {
            throw EngineError.invalidGrace
        }
        let showsKey = engine.configuration.keyStorage.isHashed
        return try writes.reset(reference, as: requester, graceSeconds: graceSeconds).map { record in
            showsKey ? ResponseEncoding.record(record) : ResponseEncoding.boolean(true)
        }
    }

    private static let get = Endpoint.read { engine, parameters, requester throws(EngineError) in
        guard let reference = try reference(parameters) else { throw EngineError.missingGetTarget }
        return ResponseEncoding.record(try engine.get(reference, as: requester))
    }

    /// `usage`: of one order (`order_id` or `key`) or of a client's keys (`client_id`), in
    /// `month` (default: the current one).
    private static let usage = Endpoint.read { engine, parameters, requester throws(EngineError) in
        var month: UsageMonth?
        if let text = try parameters.string("month") {
            guard let parsed = UsageMonth(text) else { throw EngineError.invalidMonth }
            month = parsed
        }
        if let reference = try reference(parameters) {
            return ResponseEncoding.usage(try engine.usage(reference, month: month, as: requester))
        }
        guard let clientID = try parameters.positiveInteger("client_id") else { throw EngineError.missingUsageTarget }
        return ResponseEncoding.usage(try engine.usage(clientID: clientID, month: month, as: requester))
    }

    private static let list = Endpoint.read { engine, parameters, requester throws(EngineError) in
        let page = try engine.list(
            clientID: try parameters.positiveInteger("client_id"), status: try parameters.status("status"),
            afterOrderID: try parameters.integer("after_order_id"), page: Int(try parameters.integer("page") ?? 1),
            perPage: try parameters.integer("per_page").map { Int($0) }, as: requester)
        return ResponseEncoding.page(page)
    }

    private static func lifecycle(
        _ operation: @escaping @Sendable (DeferredWrites, Int64) throws(EngineError) -> Written<Void>
    )
        -> Endpoint
    {
        Endpoint { _, writes, parameters, _ throws(EngineError) in
            guard let orderID = try parameters.positiveInteger("order_id") else { throw EngineError.missingOrderID }
            return try operation(writes, orderID).map { _ in ResponseEncoding.boolean(true) }
        }
    }

    /// `order_id` when given (it wins), else `key`; nil when neither is.
    private static func reference(_ parameters: RequestParameters) throws(EngineError) -> KeyReference? {
        if let orderID = try parameters.positiveInteger("order_id") { return .orderID(orderID) }
        if let key = try parameters.string("key"), !key.isEmpty { return .key(key) }
        return nil
    }
}

extension Endpoint {
    /// The same endpoint, run off the event loop.
    fileprivate var blocking: Endpoint { Endpoint(mayBlock: true, writes: writes, run) }
}

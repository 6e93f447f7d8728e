import APIKeyEngine
import ArgumentParser
import Foundation

/// `apikeyd keys ...`: manage the keys of a running server through its admin API.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, find, change, rotate and delete keys on a running server.",
        discussion:
            "Talks to the server's admin API (--url, default $APIKEYD_URL or http://127.0.0.1:8080). Exit status 1 with the server's message when it refuses, 2 for bad options.",
        subcommands: [
            CreateKey.self, GetKey.self, ListKeys.self, UpdateKey.self, ResetKey.self, LifecycleKey.Suspend.self,
            LifecycleKey.Unsuspend.self, LifecycleKey.Cancel.self, LifecycleKey.Uncancel.self,
            LifecycleKey.Delete.self, KeyUsage.self,
        ]
    )
}

/// `apikeyd clients ...`: client API tokens.
struct ClientsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients", abstract: "Manage the API tokens of clients on a running server.",
        subcommands: [TokenReset.self])
}

/// What every management command shares: a client for the server, one line on standard error
/// and exit status 1 or 2 when it fails.
protocol ServerCommand: AsyncParsableCommand {
    var server: ServerOptions { get }
    /// The command's work; returns what to print on standard output.
    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String
}

extension ServerCommand {
    func run() async throws {
        do throws(CommandFailure) {
            let client = try AdminClient(server)
            let output: String
            do throws(CommandFailure) {
                output = try await perform(client, RecordPrinter(json: server.json))
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
            if !output.isEmpty { print(output) }
        } catch {
            printOnStandardError(error.description)
            throw ExitCode(error.status)
        }
    }
}

/// The API's module path of the key methods.
private let keys = "admin/serviceapikey/"

/// Parameters for the request: only the options given.
private func members(_ pairs: [(String, JSONValue?)]) -> [JSONMember] {
    pairs.compactMap { name, value in value.map { JSONMember(name, $0) } }
}

/// `--config` as the JSON object it must be.
private func configObject(_ text: String?) throws(CommandFailure) -> JSONValue? {
    guard let text else { return nil }
    guard let value = try? JSONValue.parse(text), case .object = value else {
        throw CommandFailure.usage("--config must be a JSON object, such as '{\"custom_tier\": \"pro\"}'")
    }
    return value
}

/// `--status` as one of the three statuses.
private func statusValue(_ text: String?) throws(CommandFailure) -> JSONValue? {
    guard let text else { return nil }
    guard KeyStatus(rawValue: text) != nil else {
        throw CommandFailure.usage("--status must be active, suspended or canceled (got '\(text)')")
    }
    return .string(text)
}

/// A key named by `--order-id` or `--key` (exactly one).
struct KeyReferenceOptions: ParsableArguments {
    @Option(help: "The key's order ID.")
    var orderId: Int64?

    @Option(help: "The key itself.")
    var key: String?

    func validate() throws {
        guard (orderId == nil) != (key == nil) else { throw ValidationError("give one of --order-id and --key") }
    }

    var parameters: [JSONMember] {
        members([("order_id", orderId.map { .integer($0) }), ("key", key.map { .string($0) })])
    }
}

struct CreateKey: ServerCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a key; prints the key alone on the first line, then the record.")

    @Option(help: "The owning client.") var clientId: Int64
    @Option(help: "The order (default: the next free one).") var orderId: Int64?
    @Option(help: "Generation options and custom parameters, as a JSON object.") var config: String?
    @Option(help: "active (default), suspended or canceled.") var status: String?
    @Option(help: "When the key expires: YYYY-MM-DD HH:MM:SS (UTC).") var expiresAt: String?
    @OptionGroup var server: ServerOptions

    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        let parameters = members([
            ("client_id", .integer(clientId)), ("order_id", orderId.map { .integer($0) }),
            ("config", try configObject(config)), ("status", try statusValue(status)),
            ("expires_at", expiresAt.map { .string($0) }),
        ])
        return printer.issued(try await client.call(keys + "create", parameters))
    }
}

struct GetKey: ServerCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show one key's record.")

    @OptionGroup var reference: KeyReferenceOptions
    @OptionGroup var server: ServerOptions

    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        printer.lines(try await client.call(keys + "get", reference.parameters))
    }
}

struct ListKeys: ServerCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List every key (every page), by order ID.")

    /// Records asked for per request.
    static let pageSize = 1000

    @Option(help: "Only this client's keys.") var clientId: Int64?
    @Option(help: "Only keys with this status.") var status: String?
    @OptionGroup var server: ServerOptions

    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        let filter = members([("client_id", clientId.map { .integer($0) }), ("status", try statusValue(status))])
        var records: [JSONValue] = []
        // Paged by the last order ID seen, not by page number: a record deleted meanwhile shifts
        // nothing into a page already read.
        var after: Int64 = 0
        while true {
            let result = try await client.call(
                keys + "get_list",
                filter + [
                    JSONMember("after_order_id", .integer(after)), JSONMember("per_page", .integer(Self.pageSize)),
                ])
            guard case .array(let list)? = result["list"] else {
                throw CommandFailure("the server's get_list answer has no list")
            }
            records += list
            guard list.count == Self.pageSize, case .number(let last)? = list.last?["order_id"], let id = Int64(last)
            else { break }
            after = id
        }
        return printer.table(records)
    }
}

struct UpdateKey: ServerCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Change a key's config, validity, status or expiry.")

    @Option(help: "The key's order ID.") var orderId: Int64
    @Option(help: "A config replacing the whole config, as a JSON object.") var config: String?
    @Option(help: "true makes the key active, false suspends it.") var valid: Bool?
    @Option(help: "active, suspended or canceled.") var status: String?
    @Option(help: "YYYY-MM-DD HH:MM:SS (UTC), or none to remove the expiry.") var expiresAt: String?
    @OptionGroup var server: ServerOptions

    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        var parameters = members([
            ("order_id", .integer(orderId)), ("config", try configObject(config)), ("valid", valid.map { .bool($0) }),
            ("status", try statusValue(status)),
        ])
        if let expiresAt {
            parameters.append(JSONMember("expires_at", expiresAt == "none" ? .null : .string(expiresAt)))
        }
        guard parameters.count > 1 else {
            throw CommandFailure.usage("nothing to change: give --config, --valid, --status or --expires-at")
        }
        return printer.done(try await client.call(keys + "update", parameters), "updated order \(orderId)")
    }
}

struct ResetKey: ServerCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Replace a key with a new one; prints the new key alone on the first line, then the record.")

    @OptionGroup var reference: KeyReferenceOptions
    @Option(
        help: ArgumentHelp(
            "How long the old key keeps working: seconds, or a number with s, m, h or d (at most 30d).",
            valueName: "duration"))
    var grace: String?
    @OptionGroup var server: ServerOptions

    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        var parameters = reference.parameters
        if let grace {
            guard let seconds = Self.seconds(grace), (0...DeferredWrites.maximumGraceSeconds).contains(seconds) else {
                throw CommandFailure.usage("--grace must be a duration such as 90, 30m, 1h or 7d, at most 30d")
            }
            parameters.append(JSONMember("grace_seconds", .integer(seconds)))
        }
        // The order first, so the record shown afterwards is found by it, not by the old key.
        let orderID: JSONValue
        if let id = reference.orderId {
            orderID = .integer(id)
        } else {
            orderID = try await client.call(keys + "get", reference.parameters)["order_id"] ?? .null
        }
        let answer = try await client.call(keys + "reset", parameters)
        // With hashed key storage the answer is the record with the new key, shown only there.
        if case .object = answer { return printer.issued(answer) }
        return printer.issued(try await client.call(keys + "get", [JSONMember("order_id", orderID)]))
    }

    /// `90`, `90s`, `30m`, `1h`, `7d` in seconds; nil when it is none of these.
    static func seconds(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var digits = Substring(text)
        var unit: Int64 = 1
        if let last = text.last, let scale = units[last] {
            unit = scale
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int64(digits), value >= 0 else { return nil }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : seconds
    }
}

/// The status changes named by order: suspend, unsuspend, cancel, uncancel, delete.
enum LifecycleKey {
    struct Options: ParsableArguments {
        @Option(help: "The key's order ID.") var orderId: Int64
        @OptionGroup var server: ServerOptions
    }

    /// One of them: the API method it calls and the word for what it did.
    protocol Change: ServerCommand {
        static var method: String { get }
        static var done: String { get }
        var options: Options { get }
    }

    struct Suspend: Change {
        static let configuration = CommandConfiguration(commandName: "suspend", abstract: "Suspend an active key.")
        static let method = "suspend", done = "suspended"
        @OptionGroup var options: Options
    }

    struct Unsuspend: Change {
        static let configuration = CommandConfiguration(
            commandName: "unsuspend", abstract: "Make a suspended key active again.")
        static let method = "unsuspend", done = "unsuspended"
        @OptionGroup var options: Options
    }

    struct Cancel: Change {
        static let configuration = CommandConfiguration(
            commandName: "cancel", abstract: "Cancel an active or suspended key.")
        static let method = "cancel", done = "canceled"
        @OptionGroup var options: Options
    }

    struct Uncancel: Change {
        static let configuration = CommandConfiguration(
            commandName: "uncancel", abstract: "Make a canceled key active again.")
        static let method = "uncancel", done = "uncanceled"
        @OptionGroup var options: Options
    }

    struct Delete: Change {
        static let configuration = CommandConfiguration(
            commandName: "delete", abstract: "Delete a key; it stops existing at once.")
        static let method = "delete", done = "deleted"
        @OptionGroup var options: Options
    }
}

extension LifecycleKey.Change {
    var server: ServerOptions { options.server }

    /// Calls the method with the order and prints what it did (or `true` with --json).
    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        let result = try await client.call(keys + Self.method, [JSONMember("order_id", .integer(options.orderId))])
        return printer.done(result, "\(Self.done) order \(options.orderId)")
    }
}

struct KeyUsage: ServerCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Show the usage of one key or of a client's keys in a month.")

    @Option(help: "The key's order ID.") var orderId: Int64?
    @Option(help: "The key itself.") var key: String?
    @Option(help: "Every key of this client.") var clientId: Int64?
    @Option(help: "YYYY-MM (default: this month, UTC).") var month: String?
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard [orderId != nil, key != nil, clientId != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give one of --order-id, --key and --client-id")
        }
    }

    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        let parameters = members([
            ("order_id", orderId.map { .integer($0) }), ("key", key.map { .string($0) }),
            ("client_id", clientId.map { .integer($0) }), ("month", month.map { .string($0) }),
        ])
        let result = try await client.call(keys + "usage", parameters)
        guard !printer.json, case .array(let perKey)? = result["keys"], case .object(let members) = result else {
            return printer.lines(result)
        }
        // A client's usage: its totals, then a line per key.
        let totals = JSONValue.object(members.filter { $0.name != "keys" })
        let rows = perKey.map { key in
            "order \(RecordPrinter.text(key["order_id"])): used \(RecordPrinter.text(key["used"])), limit \(RecordPrinter.text(key["limit"]))"
        }
        return ([printer.lines(totals)] + rows).joined(separator: "\n")
    }
}

struct TokenReset: ServerCommand {
    static let configuration = CommandConfiguration(
        commandName: "token-reset",
        abstract: "Create or rotate a client's API token; prints the token alone on the first line.")

    @Option(help: "The client.") var clientId: Int64
    @OptionGroup var server: ServerOptions

    func perform(_ client: AdminClient, _ printer: RecordPrinter) async throws(CommandFailure) -> String {
        let result = try await client.call(
            "admin/client/token_reset", [JSONMember("client_id", .integer(clientId))])
        return printer.json
            ? printer.lines(result) : RecordPrinter.text(result["api_token"]) + "\n" + printer.lines(result)
    }
}

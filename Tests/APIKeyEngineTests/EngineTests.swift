import Synchronization
import TestSupport
import Testing

@testable import APIKeyEngine

@Suite struct EngineTests {
    private let proConfig = JSONValue.object([
        JSONMember("custom_monthlyLimit", .integer(250)), JSONMember("custom_tier", .string("pro")),
    ])

    @Test func anEmbedderCreatesAndChecksKeysInProcess() throws {
        let engine = Engine()
        let record = try engine.create(NewKey(clientID: 7, config: proConfig))
        #expect(record.orderID == 1)
        #expect(try engine.check(key: record.apiKey) == true)
        let info = try engine.getInfo(key: record.apiKey)
        #expect(info.valid)
        #expect(String(decoding: info.customParametersJSON, as: UTF8.self) == #"{"monthlyLimit": 250, "tier": "pro"}"#)
    }

    @Test func unknownAndEmptyKeysAreErrors() throws {
        let (engine, _) = Engine.testing()
        let record = try engine.create(NewKey(clientID: 1))
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: "nope") }
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: record.apiKey.lowercased()) }
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: String(record.apiKey.dropLast())) }
        #expect(throws: EngineError.missingKey) { try engine.check(key: "") }
        #expect(throws: EngineError.keyNotFound) { try engine.getInfo(key: "nope") }
        #expect(throws: EngineError.missingKey) { try engine.getInfo(key: "") }
    }

    @Test func expiryTakesEffectOnTheNextCheck() throws {
        let (engine, clock) = Engine.testing()
        let now = clock.nowSeconds()
        let record = try engine.create(NewKey(clientID: 1, expiresAt: now + 10))
        #expect(try engine.check(key: record.apiKey))
        clock.advance(nanoseconds: 9_999_999_999)
        #expect(try engine.check(key: record.apiKey))
        clock.advance(nanoseconds: 1)
        #expect(try engine.check(key: record.apiKey) == false)
        #expect(try engine.getInfo(key: record.apiKey).valid == false)
        try engine.update(KeyChanges(orderID: record.orderID, expiresAt: .some(nil)))
        #expect(try engine.check(key: record.apiKey))
    }

    @Test(arguments: [KeyStatus.suspended, .canceled])
    func onlyActiveKeysAreValid(_ status: KeyStatus) throws {
        let (engine, _) = Engine.testing()
        let record = try engine.create(NewKey(clientID: 1, status: status))
        #expect(try engine.check(key: record.apiKey) == false)
        try engine.update(KeyChanges(orderID: record.orderID, status: .active))
        #expect(try engine.check(key: record.apiKey) == true)
    }

    @Test func orderIDsAreAssignedAfterTheHighestAndNeverReused() throws {
        let (engine, _) = Engine.testing()
        #expect(try engine.create(NewKey(orderID: 41, clientID: 1)).orderID == 41)
        #expect(try engine.create(NewKey(clientID: 1)).orderID == 42)
        expectEngineError(.orderExists, "Order 41 already has an API key") {
            try engine.create(NewKey(orderID: 41, clientID: 2))
        }
        expectEngineError(.invalidArgument, "order_id must be a positive integer") {
            try engine.create(NewKey(orderID: 0, clientID: 2))
        }
        expectEngineError(.invalidArgument, "client_id must be a positive integer") {
            try engine.create(NewKey(clientID: -1))
        }
    }

    @Test func createRefusesBadOptionsAndOversizedConfigs() throws {
        var configuration = EngineConfiguration()
        configuration.maximumConfigBytes = 64
        let (engine, _) = Engine.testing(configuration: configuration)
        #expect(throws: EngineError.self) {
            try engine.create(NewKey(clientID: 1, config: .object([JSONMember("case", .string("X"))])))
        }
        expectEngineError(.invalidArgument, "config must be a JSON object") {
            try engine.create(NewKey(clientID: 1, config: .array([])))
        }
        let big = JSONValue.object([JSONMember("custom_note", .string(String(repeating: "x", count: 100)))])
        #expect(throws: EngineError.self) { try engine.create(NewKey(clientID: 1, config: big)) }
        #expect(engine.keyCount == 0)
    }

    @Test func theKeyCapacityIsALimit() throws {
        var configuration = EngineConfiguration()
        configuration.maximumKeys = 2
        let (engine, _) = Engine.testing(configuration: configuration)
        try engine.create(NewKey(clientID: 1))
        try engine.create(NewKey(clientID: 1))
        expectEngineError(.capacityReached, "The engine holds its maximum of 2 keys") {
            try engine.create(NewKey(clientID: 1))
        }
        try engine.delete(orderID: 1)
        try engine.create(NewKey(clientID: 1))
    }

    @Test func generationRetriesAreBoundedWhenKeysCollide() throws {
        let (engine, _) = Engine.testing(random: ScriptedRandom([0x5A]))
        try engine.create(NewKey(clientID: 1))
        #expect(throws: EngineError.generationExhausted) { try engine.create(NewKey(clientID: 1)) }
        #expect(engine.keyCount == 1)
    }

    @Test func updateFollowsTheFOSSBillingRules() throws {
        let (engine, clock) = Engine.testing()
        let record = try engine.create(NewKey(orderID: 5, clientID: 1, config: proConfig))
        clock.advance(seconds: 60)

        #expect(throws: EngineError.keyChangeRefused) {
            try engine.update(KeyChanges(orderID: 5, apiKey: "something-else"))
        }
        try engine.update(KeyChanges(orderID: 5, apiKey: record.apiKey))
        #expect(throws: EngineError.orderNotFound) { try engine.update(KeyChanges(orderID: 6)) }

        try engine.update(KeyChanges(orderID: 5, valid: false))
        #expect(try engine.get(.orderID(5)).status == .suspended)
        try engine.update(KeyChanges(orderID: 5, valid: true))
        #expect(try engine.get(.orderID(5)).status == .active)
        expectEngineError(.invalidArgument, "valid and status disagree; give one of them") {
            try engine.update(KeyChanges(orderID: 5, valid: true, status: .canceled))
        }

        let newConfig = JSONValue.object([JSONMember("custom_tier", .string("free"))])
        try engine.update(KeyChanges(orderID: 5, config: newConfig))
        let updated = try engine.get(.orderID(5))
        #expect(updated.config == newConfig)
        #expect(
            String(decoding: try engine.getInfo(key: record.apiKey).customParametersJSON, as: UTF8.self)
                == #"{"tier": "free"}"#)
        #expect(updated.apiKey == record.apiKey)
        #expect(updated.createdAt == record.createdAt)
        #expect(updated.updatedAt == record.createdAt + 60)
    }

    @Test func resetReplacesTheKeyAtOnce() throws {
        let (engine, _) = Engine.testing()
        let record = try engine.create(NewKey(orderID: 3, clientID: 1, config: proConfig))
        let byOrder = try engine.reset(.orderID(3))
        #expect(byOrder.apiKey != record.apiKey)
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: record.apiKey) }
        #expect(try engine.check(key: byOrder.apiKey))
        #expect(try engine.getInfo(key: byOrder.apiKey).customParametersJSON == record.customParametersJSON)

        let byKey = try engine.reset(.key(byOrder.apiKey))
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: byOrder.apiKey) }
        #expect(try engine.get(.orderID(3)).apiKey == byKey.apiKey)
        #expect(throws: EngineError.keyNotFound) { try engine.reset(.key(byOrder.apiKey)) }
        #expect(throws: EngineError.orderNotFound) { try engine.reset(.orderID(99)) }
    }

    @Test func resetUsesTheRecordsGenerationOptions() throws {
        let (engine, _) = Engine.testing()
        let config = JSONValue.object([JSONMember("length", .string("7")), JSONMember("split", .string("0"))])
        try engine.create(NewKey(orderID: 1, clientID: 1, config: config))
        let reset = try engine.reset(.orderID(1))
        #expect(reset.apiKey.count == 7)
        #expect(!reset.apiKey.contains("-"))
    }

    @Test func clientsSeeAndResetOnlyTheirOwnKeys() throws {
        let (engine, _) = Engine.testing()
        let mine = try engine.create(NewKey(clientID: 1))
        let theirs = try engine.create(NewKey(clientID: 2))

        #expect(try engine.get(.key(mine.apiKey), as: .client(1)).orderID == mine.orderID)
        #expect(throws: EngineError.keyNotFound) { try engine.reset(.key(theirs.apiKey), as: .client(1)) }
        #expect(throws: EngineError.keyNotFound) { try engine.reset(.orderID(theirs.orderID), as: .client(1)) }
        #expect(throws: EngineError.keyNotFound) { try engine.reset(.orderID(999), as: .client(1)) }
        #expect(throws: EngineError.keyNotFound) { try engine.get(.key(theirs.apiKey), as: .client(1)) }
        #expect(try engine.check(key: theirs.apiKey))

        let reset = try engine.reset(.orderID(mine.orderID), as: .client(1))
        #expect(try engine.check(key: reset.apiKey))
        let page = try engine.list(as: .client(2))
        #expect(page.list.map(\.orderID) == [theirs.orderID])
    }

    @Test func lifecycleTransitions() throws {
        let (engine, _) = Engine.testing()
        let record = try engine.create(NewKey(orderID: 1, clientID: 1))
        expectEngineError(.invalidTransition, "Only suspended orders can be unsuspended") {
            try engine.unsuspend(orderID: 1)
        }
        try engine.suspend(orderID: 1)
        #expect(try engine.check(key: record.apiKey) == false)
        expectEngineError(.invalidTransition, "Only active orders can be suspended") { try engine.suspend(orderID: 1) }
        try engine.unsuspend(orderID: 1)
        #expect(try engine.check(key: record.apiKey))
        try engine.cancel(orderID: 1)
        #expect(try engine.check(key: record.apiKey) == false)
        expectEngineError(.invalidTransition, "The order is already canceled") { try engine.cancel(orderID: 1) }
        try engine.uncancel(orderID: 1)
        #expect(try engine.check(key: record.apiKey))
        expectEngineError(.invalidTransition, "Only canceled orders can be uncanceled") {
            try engine.uncancel(orderID: 1)
        }
        #expect(throws: EngineError.orderNotFound) { try engine.suspend(orderID: 2) }
    }

    @Test func deleteMakesTheKeyStopExisting() throws {
        let (engine, _) = Engine.testing()
        let record = try engine.create(NewKey(orderID: 1, clientID: 4))
        try engine.delete(orderID: 1)
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: record.apiKey) }
        #expect(throws: EngineError.orderNotFound) { try engine.get(.orderID(1)) }
        #expect(try engine.list(clientID: 4).total == 0)
        #expect(throws: EngineError.orderNotFound) { try engine.delete(orderID: 1) }
    }

    @Test func listingPagesFiltersAndOrders() throws {
        let (engine, _) = Engine.testing()
        for orderID in [5, 3, 9, 1, 7] as [Int64] {
            try engine.create(NewKey(orderID: orderID, clientID: orderID % 2 == 0 ? 2 : 1))
        }
        try engine.create(NewKey(orderID: 4, clientID: 2))
        try engine.suspend(orderID: 3)

        let all = try engine.list(perPage: 4)
        #expect(all.list.map(\.orderID) == [1, 3, 4, 5])
        #expect(all.total == 6)
        #expect(try engine.list(page: 2, perPage: 4).list.map(\.orderID) == [7, 9])
        #expect(try engine.list(page: 3, perPage: 4).list.isEmpty)
        #expect(try engine.list(clientID: 2).list.map(\.orderID) == [4])
        let suspended = try engine.list(status: .suspended)
        #expect(suspended.list.map(\.orderID) == [3])
        #expect(suspended.total == 1)
        #expect(throws: EngineError.self) { try engine.list(page: 0) }
        #expect(throws: EngineError.self) { try engine.list(perPage: 1001) }
    }

    @Test func clientTokensAuthenticateAndRotate() throws {
        let (engine, _) = Engine.testing()
        let first = try engine.resetClientToken(clientID: 9)
        #expect(first.count == 64)
        #expect(engine.authenticateClient(token: first) == 9)
        #expect(engine.authenticateClient(token: first + "x") == nil)
        #expect(engine.authenticateClient(token: "") == nil)
        let second = try engine.resetClientToken(clientID: 9)
        #expect(second != first)
        #expect(engine.authenticateClient(token: first) == nil)
        #expect(engine.authenticateClient(token: second) == 9)
        #expect(throws: EngineError.self) { try engine.resetClientToken(clientID: 0) }
    }

    @Test func constantTimeComparison() {
        #expect(constantTimeEqual("abc", "abc"))
        #expect(!constantTimeEqual("abc", "abd"))
        #expect(!constantTimeEqual("abc", "abcd"))
        #expect(!constantTimeEqual("", "a"))
        #expect(constantTimeEqual("", ""))
    }

    /// Checks on one thread while another resets the same order: every check of the current key
    /// either succeeds or reports the key gone, and the final key is valid.
    @Test func checksRunConcurrentlyWithResets() async throws {
        let engine = Engine()
        let first = try await engine.create(NewKey(orderID: 1, clientID: 1))
        let others = try (0..<1000).map { _ in try engine.create(NewKey(clientID: 2)).apiKey }
        let current = SharedKey(first.apiKey)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for _ in 0..<500 {
                    let record = try! engine.reset(.orderID(1))
                    current.set(record.apiKey)
                }
            }
            group.addTask {
                for round in 0..<20_000 {
                    #expect(try! engine.check(key: others[round % others.count]))
                    let key = current.get()
                    do {
                        #expect(try engine.check(key: key))
                    } catch {
                        #expect(error as? EngineError == .keyNotFound)
                    }
                }
            }
        }
        #expect(try engine.check(key: current.get()))
        #expect(engine.keyCount == 1001)
    }
}

/// A key shared between the tasks of a test.
private final class SharedKey: Sendable {
    private let key: Mutex<String>

    init(_ key: String) { self.key = Mutex(key) }

    func get() -> String { key.withLock { $0 } }

    func set(_ newKey: String) { key.withLock { $0 = newKey } }
}

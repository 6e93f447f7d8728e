import APIKeyEngine
import Testing

@testable import APIKeyCluster

/// A write's answer: once, and never "changed nothing" once COMMIT was sent.
@Suite struct WriteAnswerStateTests {
    enum Event { case timeOut, beginCommit, finish }

    /// What each event answers, applied in order to a new state.
    static func run(_ events: [Event]) -> [Bool] {
        var state = WriteAnswerState()
        return events.map { event in
            switch event {
            case .timeOut: state.timeOut()
            case .beginCommit: state.beginCommit()
            case .finish: state.finish()
            }
        }
    }

    @Test func theTimeoutAnswersOnlyAWriteThatHasNotBegunCommitting() {
        // Timed out: the write must roll back, and nothing answers again.
        #expect(Self.run([.timeOut, .beginCommit, .finish, .timeOut]) == [true, false, false, false])
        // COMMIT sent: only its outcome answers, once.
        #expect(Self.run([.beginCommit, .timeOut, .finish, .finish]) == [true, false, true, false])
        // Refused before COMMIT: the refusal answers.
        #expect(Self.run([.finish, .timeOut, .beginCommit]) == [true, false, false])
        var state = WriteAnswerState()
        #expect(!state.isAnswered)
        _ = state.beginCommit()
        #expect(!state.isAnswered)
        _ = state.finish()
        #expect(state.isAnswered)
    }

    @Test func theCompletionRunsOnceWhicheverComesFirst() {
        let calls = Calls()
        let answer = WriteAnswer<Int> { calls.add($0) }
        answer.timeOut(1)
        answer.finish(2)
        #expect(!answer.beginCommit())
        #expect(calls.values == [1])

        let committed = WriteAnswer<Int> { calls.add($0) }
        #expect(committed.beginCommit())
        committed.timeOut(3)
        committed.finish(4)
        #expect(calls.values == [1, 4])
    }

    final class Calls: @unchecked Sendable {
        private(set) var values: [Int] = []
        func add(_ value: Int) { values.append(value) }
    }
}

/// A node's leases of monthly quotas, without PostgreSQL.
@Suite struct QuotaLeasesTests {
    let month = UsageMonth(year: 2026, month: 12)!

    @Test func usesPassOnlyFromGrantedUnitsAndAreCounted() {
        let leases = QuotaLeases(exhaustedForNanoseconds: 1_000_000_000)
        let request = LeaseRequest(orderID: 1, month: month, cost: 1, limit: 100)
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 100) == .needsLease)
        leases.granted(3, for: request, generation: 0)
        for _ in 0..<3 {
            #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 100) == .taken)
            leases.count(orderID: 1, month: month, cost: 1, leased: true)
        }
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 100) == .needsLease)
        // A cost larger than what is left is not split: it needs a new lease.
        leases.granted(2, for: request, generation: 0)
        #expect(leases.take(orderID: 1, month: month, cost: 3, limit: 100) == .needsLease)
        #expect(leases.unitsHeld == 2)
        // Nothing left in the cluster: believed for a while, then asked again.
        leases.granted(0, for: request, generation: 0)
        #expect(leases.take(orderID: 1, month: month, cost: 3, limit: 100) == .exhausted)
        leases.forgetExhaustion(orderID: 1)
        #expect(leases.take(orderID: 1, month: month, cost: 3, limit: 100) == .needsLease)

        leases.count(orderID: 2, month: month, cost: 5, leased: false)
        let counts = leases.takeCounts()
        #expect(counts[QuotaLeases.Key(orderID: 1, month: month)]?.used == 3)
        #expect(counts[QuotaLeases.Key(orderID: 1, month: month)]?.unleased == 0)
        #expect(counts[QuotaLeases.Key(orderID: 2, month: month)]?.unleased == 5)
        #expect(leases.takeCounts().isEmpty)
        // A failed flush puts them back, added to what was counted meanwhile.
        leases.count(orderID: 1, month: month, cost: 1, leased: true)
        leases.restore(counts)
        #expect(leases.takeCounts()[QuotaLeases.Key(orderID: 1, month: month)]?.used == 4)
    }

    @Test func aCostOfZeroPassesOnlyWhereACostOfOneWouldAndTakesNothing() {
        let leases = QuotaLeases(exhaustedForNanoseconds: 1_000_000_000)
        let request = LeaseRequest(orderID: 1, month: month, cost: 1, limit: 10)
        leases.granted(1, for: request, generation: 0)
        #expect(leases.take(orderID: 1, month: month, cost: 0, limit: 10) == .taken)
        #expect(leases.unitsHeld == 1)
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 10) == .taken)
        #expect(leases.take(orderID: 1, month: month, cost: 0, limit: 10) == .needsLease)
        leases.granted(0, for: request, generation: 0)
        #expect(leases.take(orderID: 1, month: month, cost: 0, limit: 10) == .exhausted)
    }

    @Test func unflushedUsesAreThoseCountedSinceTheLastFlush() {
        let leases = QuotaLeases(exhaustedForNanoseconds: 1_000_000_000)
        leases.count(orderID: 1, month: month, cost: 4, leased: true)
        leases.count(orderID: 1, month: month, cost: 3, leased: false)
        #expect(leases.unflushed(orderID: 1, month: month) == 7)
        #expect(leases.unflushed(orderID: 2, month: month) == 0)
        _ = leases.takeCounts()
        #expect(leases.unflushed(orderID: 1, month: month) == 0)
    }

    @Test func aBlockIsAtLeastTheCostAndAtMostAnEighthOfTheLimit() {
        let leases = QuotaLeases(exhaustedForNanoseconds: 1_000_000_000)
        #expect(leases.blockToAsk(for: LeaseRequest(orderID: 1, month: month, cost: 1, limit: 1000)).block == 1)
        #expect(leases.blockToAsk(for: LeaseRequest(orderID: 1, month: month, cost: 500, limit: 1000)).block == 500)
        // Leases that run out within an interval double the block, up to the limit's eighth.
        let request = LeaseRequest(orderID: 1, month: month, cost: 1, limit: 1000)
        for _ in 0..<20 { leases.granted(1, for: request, generation: 0) }
        #expect(leases.blockToAsk(for: request).block == 125)
        #expect(leases.blockToAsk(for: LeaseRequest(orderID: 1, month: month, cost: 1, limit: 3)).block == 1)
    }

    @Test func aChangedRecordRevokesItsLeasesAndTheirUnitsGoBack() {
        let leases = QuotaLeases(exhaustedForNanoseconds: 1_000_000_000)
        leases.granted(6, for: LeaseRequest(orderID: 1, month: month, cost: 1, limit: 100), generation: 0)
        leases.granted(2, for: LeaseRequest(orderID: 9, month: month, cost: 1, limit: 100), generation: 0)
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 100) == .taken)
        leases.revoke(orderID: 1)
        // Nothing leased under the old record passes; the next verify leases anew.
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 5) == .needsLease)
        #expect(leases.take(orderID: 9, month: month, cost: 1, limit: 100) == .taken)
        // The 5 unused units go back with the next flush, even though the other lease is not idle.
        #expect(
            leases.takeIdle(idleNanoseconds: 60_000_000_000, currentMonth: month)
                == [QuotaLeases.Key(orderID: 1, month: month): 5])
        #expect(leases.takeIdle(idleNanoseconds: 60_000_000_000, currentMonth: month).isEmpty)
    }

    @Test func aGrantAskedForBeforeARevokeGoesBack() {
        let leases = QuotaLeases(exhaustedForNanoseconds: 1_000_000_000)
        let request = LeaseRequest(orderID: 1, month: month, cost: 1, limit: 100)
        let (_, generation) = leases.blockToAsk(for: request)
        // The record changes while the lease is on its way.
        leases.revoke(orderID: 1)
        leases.granted(12, for: request, generation: generation)
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 100) == .needsLease)
        #expect(
            leases.takeIdle(idleNanoseconds: 60_000_000_000, currentMonth: month)
                == [QuotaLeases.Key(orderID: 1, month: month): 12])
        // A grant asked for after the revoke is used.
        let (_, current) = leases.blockToAsk(for: request)
        #expect(current != generation)
        leases.granted(3, for: request, generation: current)
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 100) == .taken)
    }

    @Test func idleLeasesAndThoseOfPastMonthsAreTakenBack() {
        let leases = QuotaLeases(exhaustedForNanoseconds: 1_000_000_000)
        let november = UsageMonth(year: 2026, month: 11)!
        leases.granted(7, for: LeaseRequest(orderID: 1, month: month, cost: 1, limit: 100), generation: 0)
        leases.granted(4, for: LeaseRequest(orderID: 2, month: november, cost: 1, limit: 100), generation: 0)
        // Not idle long enough: only the past month's lease goes, with nothing to hand back.
        #expect(leases.takeIdle(idleNanoseconds: 60_000_000_000, currentMonth: month).isEmpty)
        #expect(leases.unitsHeld == 7)
        #expect(
            leases.takeIdle(idleNanoseconds: 0, currentMonth: month) == [QuotaLeases.Key(orderID: 1, month: month): 7])
        #expect(leases.unitsHeld == 0)
        #expect(leases.take(orderID: 1, month: month, cost: 1, limit: 100) == .needsLease)
    }
}

/// The `--postgres` URL and the schema name.
@Suite struct ClusterConfigurationTests {
    @Test func aURLGivesHostPortUserDatabaseAndTLS() throws {
        let configuration = try ClusterConfiguration(
            url: "postgres://app:secret@db.example:6543/keys?sslmode=disable", schema: "tenant_1", nodeName: "a")
        #expect(configuration.postgres.host == "db.example")
        #expect(configuration.postgres.port == 6543)
        #expect(configuration.postgres.username == "app")
        #expect(configuration.postgres.password == "secret")
        #expect(configuration.postgres.database == "keys")
        #expect(configuration.schema == "tenant_1")
        #expect(configuration.nodeName == "a")
        let defaults = try ClusterConfiguration(url: "postgresql://app@localhost")
        #expect(defaults.postgres.port == 5432)
        #expect(defaults.postgres.database == "app")
        #expect(defaults.schema == "apikeyd")
        #expect(try ClusterConfiguration(url: "postgres://app@db", schema: "user").schema == "user")
        #expect(
            try ClusterConfiguration(url: "postgres://app@db", schema: String(repeating: "a", count: 55)).schema.count
                == 55)
    }

    @Test(arguments: [
        ("mysql://app@db/keys", "no postgres:// URL"),
        ("postgres://db/keys", "names no user"),
        ("postgres://app@db/keys?sslmode=verify-full", "sslmode 'verify-full'"),
        ("postgres://app@db/keys?timeout=3", "parameter 'timeout'"),
    ])
    func aBadURLIsRefusedWithWhy(url: String, why: String) {
        #expect {
            try ClusterConfiguration(url: url)
        } throws: { error in
            (error as? ClusterConfigurationError)?.description.contains(why) == true
        }
    }

    @Test(arguments: ["", "Upper", "1st", "a-b", "a;drop", "pg_keys", "a\"b", String(repeating: "a", count: 56)])
    func aSchemaNameThatIsNoPlainIdentifierIsRefused(name: String) {
        #expect(throws: ClusterConfigurationError.self) {
            try ClusterConfiguration(url: "postgres://app@db/keys", schema: name)
        }
    }
}

import TestSupport
import Testing

@testable import APIKeyEngine

/// Memory under churn: a fixed set of keys updated and reset again and again with configs of
/// every size up to the maximum. Before compaction, freed records were reused only by records of
/// exactly their size, so such churn grew the arena without a bound.
@Suite(.serialized) struct ChurnSoakTests {
    @Test func updatesAndResetsAcrossEverySizeStayWithinTheBound() async throws {
        try await HeavyWork.run { try Self.churn() }
    }

    private static func churn() throws {
        let (engine, clock) = Engine.testing()
        let table = engine.tableForTesting
        let keys = 300
        for client in 1...keys { try engine.create(NewKey(clientID: Int64(client))) }
        let rounds = FuzzBudget.scaled(8)
        var residentAfterFirstRound = 0
        var largestResident = 0
        for round in 1...rounds {
            clock.advance(seconds: 1)
            for order in 1...keys {
                // Sizes sweep 0 to 16,300 characters, differently for every key and round.
                let blob = (round * 7_919 + order * 104_729) % 16_300
                if (order + round) % 3 == 0 {
                    try engine.reset(.orderID(Int64(order)))
                } else {
                    try engine.update(
                        KeyChanges(orderID: Int64(order), config: EngineModelTests.config(blobSize: blob, step: round)))
                }
            }
            KeyTableTests.expectArenaWithinBound(table, "round \(round)")
            let usage = table.memoryUsage
            let resident = usage.mappedBytes - usage.pooledBytes
            if round == 1 { residentAfterFirstRound = resident }
            largestResident = max(largestResident, resident)
        }
        #expect(table.structuralProblems() == [])
        #expect(engine.integrityProblems() == [])
        // Resident arena memory levels off: it never grows past a fixed multiple of the first round's.
        #expect(
            largestResident <= 3 * residentAfterFirstRound,
            "resident arena bytes: \(residentAfterFirstRound) after round 1, at most \(largestResident) over \(rounds)")
    }
}

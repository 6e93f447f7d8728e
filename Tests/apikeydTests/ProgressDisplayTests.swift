import APIKeyEngine
import Testing

@testable import apikeyd

/// What the progress display writes, for a bar on a terminal and for a plain line.
@Suite struct ProgressDisplayTests {
    @Test func aBarShowsCountRateAndTimeLeft() {
        let report = ProgressReport(phase: "writing snapshot", done: 250_000, total: 1_000_000)
        #expect(
            ProgressDisplay.describe(report, elapsed: 2, bar: true)
                == "writing snapshot [#######.......................] 25% 250000/1000000, 125000/s, 6 s left")
        #expect(
            ProgressDisplay.describe(report, elapsed: 2, bar: false)
                == "apikeyd: writing snapshot: 250000 of 1000000 (25%), 125000/s, 6 s left")
    }

    @Test func aFinishedPhaseAndOneWithoutATotal() {
        let finished = ProgressReport(phase: "exporting", done: 10, total: 10)
        #expect(
            ProgressDisplay.describe(finished, elapsed: 5, bar: false)
                == "apikeyd: exporting: 10 of 10 (100%), 2/s, done")
        let open = ProgressReport(phase: "replaying journal", done: 3000, total: nil)
        #expect(ProgressDisplay.describe(open, elapsed: 1.5, bar: true) == "apikeyd: replaying journal: 3000, 2000/s")
    }
}

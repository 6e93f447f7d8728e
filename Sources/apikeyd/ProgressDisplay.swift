import APIKeyEngine
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Shows how far a long command has come on standard error: on a terminal a bar redrawn in place
/// with the count, the rate and the time left; otherwise (a log, a pipe) a plain line every few
/// seconds. Nothing is shown for work that ends within the first half second.
final class ProgressDisplay: Sendable {
    private struct State {
        var phase = ""
        var phaseStart: Double = 0
        var lastShown: Double = 0
        var drawn = false
    }

    /// Seconds between plain lines when standard error is not a terminal.
    static let lineInterval = 5.0
    /// Seconds before anything is shown, and between redraws of the bar.
    static let firstDelay = 0.5
    static let redrawInterval = 0.1

    private let isTerminal: Bool
    private let state = Mutex(State())

    init(isTerminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.isTerminal = isTerminal
    }

    /// The handler to give the engine.
    var handler: ProgressHandler { { [self] report in self.show(report) } }

    /// Takes one report; shows it when it is time to.
    func show(_ report: ProgressReport) {
        let now = Self.seconds()
        let line: String? = state.withLock { state in
            if state.phase != report.phase {
                state.phase = report.phase
                state.phaseStart = now
                state.lastShown = now
            }
            let elapsed = now - state.phaseStart
            let finished = report.total.map { report.done >= $0 } ?? false
            let interval = isTerminal ? Self.redrawInterval : Self.lineInterval
            guard elapsed >= Self.firstDelay, now - state.lastShown >= interval || (finished && state.drawn) else {
                return nil
            }
            state.lastShown = now
            state.drawn = isTerminal && !finished
            return Self.describe(report, elapsed: elapsed, bar: isTerminal)
        }
        guard let line else { return }
        let text = isTerminal ? "\r\u{1B}[K" + line + (line.hasSuffix("done") ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Ends a bar left on the terminal's line.
    func finish() {
        let drawn = state.withLock { state in
            defer { state.drawn = false }
            return state.drawn
        }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// `phase [#####.....] 45% 450000/1000000, 120000/s, 4 s left` (without the bar and as
    /// `phase: 450000 of 1000000 (45%), ...` on a plain line).
    static func describe(_ report: ProgressReport, elapsed: Double, bar: Bool) -> String {
        let rate = elapsed > 0 ? Double(report.done) / elapsed : 0
        let rateText = "\(Int(rate.rounded()))/s"
        guard let total = report.total, total > 0 else {
            return "apikeyd: \(report.phase): \(report.done), \(rateText)"
        }
        let fraction = min(1, Double(report.done) / Double(total))
        let percent = Int((fraction * 100).rounded(.down))
        let finished = report.done >= total
        let left = rate > 0 ? Int((Double(total - min(total, report.done)) / rate).rounded(.up)) : nil
        let leftText = finished ? "done" : left.map { "\($0) s left" } ?? "time left unknown"
        if bar {
            let width = 30
            let filled = Int(fraction * Double(width))
            let drawing = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            return "\(report.phase) [\(drawing)] \(percent)% \(report.done)/\(total), \(rateText), \(leftText)"
        }
        return "apikeyd: \(report.phase): \(report.done) of \(total) (\(percent)%), \(rateText), \(leftText)"
    }

    private static func seconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

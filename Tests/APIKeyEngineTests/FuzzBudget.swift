import Foundation

/// How long the randomised tests run: short in `make test`, `FUZZ_SCALE` times longer in
/// `make fuzz` (which sets it).
enum FuzzBudget {
    static let scale: Int = {
        guard let text = ProcessInfo.processInfo.environment["FUZZ_SCALE"], let value = Int(text), value > 0
        else { return 1 }
        return value
    }()

    /// `count` runs, times the scale.
    static func scaled(_ count: Int) -> Int { count * scale }
}

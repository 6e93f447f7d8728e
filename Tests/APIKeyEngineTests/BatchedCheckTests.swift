import APIKeyEngine
import TestSupport
import Testing

/// `Engine.check(keys:)` answers every key as the rules say, in order, across group boundaries.
@Suite struct BatchedCheckTests {
    /// What a key should answer, known from how it was set up.
    enum Expected: Equatable {
        case valid
        case invalid
        case error(EngineError.Code)
    }

    /// An engine with keys in every state, and each key's expected answer.
    static func population(seed: UInt64) throws -> (Engine, [(key: String, expected: Expected)]) {
        let clock = ManualClock(seconds: 1_800_000_000)
        let engine = Engine(clock: clock)
        var generator = SplitMix64(seed: seed)
        var keys: [(String, Expected)] = []
        for order in Int64(1)...120 {
            let kind = Int.random(in: 0..<7, using: &generator)
            let expiry: Int64? =
                switch kind {
                case 3: 1_799_999_999
                case 4: 1_800_000_001
                default: nil
                }
            let record = try engine.create(NewKey(orderID: order, clientID: 1, expiresAt: expiry))
            switch kind {
            case 0, 4: keys.append((record.apiKey, .valid))
            case 1:
                try engine.suspend(orderID: order)
                keys.append((record.apiKey, .invalid))
            case 2:
                try engine.cancel(orderID: order)
                keys.append((record.apiKey, .invalid))
            case 3: keys.append((record.apiKey, .invalid))
            case 5:
                try engine.delete(orderID: order)
                keys.append((record.apiKey, .error(.keyNotFound)))
            default:
                // The old key answers for the order during its grace period, then the new one too.
                let reset = try engine.reset(.orderID(order), graceSeconds: 60)
                keys.append((record.apiKey, .valid))
                keys.append((reset.apiKey, .valid))
            }
        }
        keys.append(("NO-SUCH-KEY", .error(.keyNotFound)))
        keys.append(("", .error(.missingKey)))
        keys.shuffle(using: &generator)
        return (engine, keys)
    }

    static func answer(_ result: Result<Bool, EngineError>) -> Expected {
        switch result {
        case .success(let valid): valid ? .valid : .invalid
        case .failure(let error): .error(error.code)
        }
    }

    @Test(arguments: [0, 1, 15, 16, 17, 33, 200])
    func everyAnswerIsTheRulesAnswerInOrder(count: Int) throws {
        let (engine, population) = try Self.population(seed: UInt64(count) + 1)
        let chosen = (0..<count).map { population[$0 % population.count] }
        let answers = engine.check(keys: chosen.map(\.key))
        #expect(answers.count == count)
        for (index, answer) in answers.enumerated() {
            #expect(Self.answer(answer) == chosen[index].expected, "key \(index): \(chosen[index].key)")
        }
    }
}

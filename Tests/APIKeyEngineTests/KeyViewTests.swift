import APIKeyEngine
import TestSupport
import Testing

/// ``Engine/withKey(key:_:)`` and the custom-parameter accessors: what a route needs of a key
/// (its order, client, status and parameters) without a locked `get` or a JSON parse.
@Suite struct KeyViewTests {
    @Test func aKeysOrderClientAndReasonComeWithTheLookup() throws {
        let clock = ManualClock(seconds: 1_800_000_000)
        let engine = Engine(clock: clock)
        let active = try engine.create(
            NewKey(
                clientID: 7,
                config: .object([
                    JSONMember("custom_tier", .string("pro")), JSONMember("custom_monthlyLimit", .string("250")),
                    JSONMember("custom_beta", .bool(true)), JSONMember("plain", .string("not custom")),
                ])))
        let suspended = try engine.create(NewKey(clientID: 8, status: .suspended))
        let expiring = try engine.create(NewKey(clientID: 9, expiresAt: 1_800_000_010))
        engine.withKeyOrFail(active.apiKey) { view in
            #expect(view.code == .valid && view.isValid)
            #expect(view.orderID == active.orderID && view.clientID == 7)
            #expect(view.customParameters.string("tier") == "pro")
            #expect(view.customParameters.string("tier", equals: "pro"))
            #expect(!view.customParameters.string("tier", equals: "free"))
            #expect(view.customParameters.int64("monthlyLimit") == 250, "a numeric string reads as a number")
            #expect(view.customParameters.bool("beta") == true)
            #expect(!view.customParameters.contains("plain"), "only custom_ members are parameters")
            #expect(view.customParameters.string("monthlyLimit") == nil, "250 is a number, not text")
        }
        engine.withKeyOrFail(suspended.apiKey) { #expect($0.code == .suspended && !$0.isValid) }
        engine.withKeyOrFail(expiring.apiKey) { #expect($0.code == .valid && $0.expiresAt == 1_800_000_010) }
        clock.advance(seconds: 10)
        engine.withKeyOrFail(expiring.apiKey) { #expect($0.code == .expired) }
        #expect(throws: EngineError.keyNotFound) { try engine.withKey(key: "nope") { _ in () } }
        #expect(throws: EngineError.missingKey) { try engine.withKey(key: "") { _ in () } }
    }

    @Test func aKeyInItsGracePeriodAnswersAsItsOrdersCurrentKey() throws {
        let engine = Engine()
        let old = try engine.create(NewKey(clientID: 3, config: .object([JSONMember("custom_tier", .string("free"))])))
        try engine.reset(.orderID(old.orderID), graceSeconds: 60)
        engine.withKeyOrFail(old.apiKey) { view in
            #expect(view.orderID == old.orderID && view.clientID == 3 && view.isValid)
            #expect(view.customParameters.string("tier") == "free")
        }
    }

    /// Random parameters of every kind, read through the view, against the JSON parser's reading
    /// of the same `get_info` text.
    @Test func theAccessorsAgreeWithTheJSONParserOnRandomParameters() throws {
        var random = SplitMix64(seed: 15)
        let engine = Engine()
        let names = ["a", "tier", "quo\"te", "back\\slash", "new\nline", "é", "日本", "tab\t", "\u{1}"]
        for round in 0..<400 {
            var members: [JSONMember] = []
            for name in names.shuffled(using: &random).prefix(Int.random(in: 0...5, using: &random)) {
                members.append(JSONMember("custom_" + name, Self.randomValue(&random, depth: 0)))
            }
            let record = try engine.create(NewKey(clientID: Int64(round + 1), config: .object(members)))
            let parsed = try JSONValue.parse(Array(try engine.getInfo(key: record.apiKey).customParametersJSON))
            engine.withKeyOrFail(record.apiKey) { view in
                for name in names {
                    let value = parsed[name]
                    let parameters = view.customParameters
                    #expect(parameters.contains(name) == (value != nil), "\(name) in \(parsed)")
                    var expectedString: String?
                    var expectedBool: Bool?
                    var expectedInteger: Int64?
                    var expectedDouble: Double?
                    switch value {
                    case .string(let text): expectedString = text
                    case .bool(let flag): expectedBool = flag
                    case .number(let text):
                        expectedInteger = Int64(text)
                        expectedDouble = Double(text)
                    default: break
                    }
                    #expect(parameters.string(name) == expectedString, "\(name) in \(parsed)")
                    #expect(parameters.bool(name) == expectedBool, "\(name) in \(parsed)")
                    #expect(parameters.int64(name) == expectedInteger, "\(name) in \(parsed)")
                    #expect(parameters.double(name) == expectedDouble, "\(name) in \(parsed)")
                    if let expectedString { #expect(parameters.string(name, equals: expectedString)) }
                    let copied = CustomParameterValues(parameters)
                    #expect(copied.string(name) == expectedString && copied.int64(name) == expectedInteger)
                }
            }
        }
    }

    @Test func malformedTextAnswersNothingRatherThanTrapping() {
        for text in ["{\"a\": \"", "{\"a\": ", "{\"a\"", "{", "", "[1]", "{\"a\": \"x\\"] {
            let parameters = CustomParameterValues(json: Array(text.utf8))
            #expect(parameters.string("a") == nil || text.hasSuffix("\\"), "\(text)")
            #expect(!parameters.string("a", equals: "x"), "\(text)")
            _ = parameters.int64("a")
            _ = parameters.double("a")
        }
    }

    @Test func handBuiltConfigsThatAreNoJSONAreRefused() {
        let engine = Engine()
        for (config, problem) in [
            (JSONValue.object([JSONMember("custom_n", .number("1, \"custom_admin\": true"))]), "is not a JSON number"),
            (.object([JSONMember("custom_n", .number(""))]), "is not a JSON number"),
            (.object([JSONMember("custom_n", .number("abc"))]), "is not a JSON number"),
            (.object([JSONMember("a", .null), JSONMember("a", .null)]), "appears twice"),
            (
                .object([JSONMember("deep", (0..<70).reduce(JSONValue.null) { inner, _ in .array([inner]) })]),
                "nesting deeper"
            ),
        ] {
            #expect {
                try engine.create(NewKey(clientID: 1, config: config))
            } throws: { error in
                (error as? EngineError)?.code == .invalidArgument && "\(error)".contains(problem)
            }
        }
        #expect(engine.keyCount == 0)
        #expect(throws: Never.self) {
            try engine.create(NewKey(clientID: 1, config: .object([JSONMember("custom_n", .number("-0.5e+3"))])))
        }
    }

    private static func randomValue(_ random: inout SplitMix64, depth: Int) -> JSONValue {
        let texts = ["", "pro", "with \"quotes\"", "back\\slash", "line\nbreak", "ünï", "😀", "\u{7}", "x,y}", "[1]"]
        let numbers = [
            "0", "-1", "250", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "1.5", "-2.25e3",
            "1e400",
        ]
        switch Int.random(in: 0..<(depth < 2 ? 7 : 5), using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .number(numbers.randomElement(using: &random)!)
        case 3: return .string(texts.randomElement(using: &random)!)
        case 4: return .string(numbers.randomElement(using: &random)!)
        case 5:
            return .array(
                (0..<Int.random(in: 0...3, using: &random)).map { _ in randomValue(&random, depth: depth + 1) })
        default:
            return .object(
                (0..<Int.random(in: 0...3, using: &random)).map {
                    JSONMember("k\($0)", randomValue(&random, depth: depth + 1))
                })
        }
    }
}

extension Engine {
    /// Runs `body` on the key's view, recording an issue when the lookup throws.
    fileprivate func withKeyOrFail(
        _ key: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: (KeyView) -> Void
    ) {
        do {
            try withKey(key: key, body)
        } catch {
            Issue.record("withKey threw \(error)", sourceLocation: sourceLocation)
        }
    }
}

import TestSupport
import Testing

@testable import APIKeyEngine

/// The usage limits a config sets: every accepted spelling, every refusal, and the refusal on
/// `create` and `update` leaving nothing changed.
@Suite struct UsageLimitsTests {
    private func limits(_ json: String) throws -> UsageLimits {
        try UsageLimits(config: try JSONValue.parse(Array(json.utf8)))
    }

    @Test func readsTheThreeParameters() throws {
        #expect(try limits("{}") == UsageLimits(monthlyLimit: nil, rate: nil))
        #expect(try limits(#"{"custom_monthlyLimit": 250}"#).monthlyLimit == 250)
        #expect(try limits(#"{"custom_monthlyLimit": "250"}"#).monthlyLimit == 250)
        #expect(try limits(#"{"custom_monthlyLimit": "2.5e2"}"#).monthlyLimit == 250)
        #expect(try limits(#"{"custom_monthlyLimit": 0}"#).monthlyLimit == 0)
        #expect(try limits(#"{"custom_monthlyLimit": 9223372036854775807}"#).monthlyLimit == .max)
        // Whole numbers are read exactly from their digits, however they are written.
        #expect(try limits(#"{"custom_monthlyLimit": "1e16"}"#).monthlyLimit == 10_000_000_000_000_000)
        #expect(try limits(#"{"custom_monthlyLimit": 1e18}"#).monthlyLimit == 1_000_000_000_000_000_000)
        #expect(try limits(#"{"custom_monthlyLimit": "9007199254740993.0"}"#).monthlyLimit == 9_007_199_254_740_993)
        #expect(try limits(#"{"custom_monthlyLimit": "9223372036854775807.00"}"#).monthlyLimit == .max)
        #expect(try limits(#"{"custom_monthlyLimit": 92233720368547758.07e2}"#).monthlyLimit == .max)
        #expect(try limits(#"{"custom_monthlyLimit": "0e400"}"#).monthlyLimit == 0)
        #expect(try limits(#"{"custom_monthlyLimit": "-0"}"#).monthlyLimit == 0)
        #expect(try limits(#"{"custom_monthlyLimit": 250.0}"#).monthlyLimit == 250)
        #expect(try limits(#"{"custom_rateLimit": 2.5}"#).rate == .init(perSecond: 2.5, burst: 3))
        #expect(try limits(#"{"custom_rateLimit": "0.1"}"#).rate == .init(perSecond: 0.1, burst: 1))
        #expect(
            try limits(#"{"custom_rateLimit": 10, "custom_rateBurst": "50"}"#).rate == .init(perSecond: 10, burst: 50))
        #expect(try limits(#"{"custom_rateLimit": 1000000000}"#).rate?.burst == 1_000_000_000)
        // Names are matched exactly: these are ordinary custom parameters.
        #expect(try limits(#"{"custom_monthlylimit": "x", "monthlyLimit": -1}"#) == UsageLimits())
    }

    @Test(arguments: [
        (#"{"custom_monthlyLimit": -1}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": 2.5}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": 9223372036854775808}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": "1e19"}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": "1.5e0"}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": "1e-1"}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": "ten"}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": null}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": true}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": [1]}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": 1e30}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_monthlyLimit": "0x10"}"#, "custom_monthlyLimit must be a whole number of at least 0"),
        (#"{"custom_rateLimit": 0}"#, "custom_rateLimit must be a number above 0 and at most 1000000000"),
        (#"{"custom_rateLimit": -2}"#, "custom_rateLimit must be a number above 0 and at most 1000000000"),
        (#"{"custom_rateLimit": 1000000001}"#, "custom_rateLimit must be a number above 0 and at most 1000000000"),
        (#"{"custom_rateLimit": "fast"}"#, "custom_rateLimit must be a number above 0 and at most 1000000000"),
        (
            #"{"custom_rateLimit": 1, "custom_rateBurst": 0}"#,
            "custom_rateBurst must be a whole number from 1 to 1000000000"
        ),
        (
            #"{"custom_rateLimit": 1, "custom_rateBurst": 1.5}"#,
            "custom_rateBurst must be a whole number from 1 to 1000000000"
        ),
        (
            #"{"custom_rateLimit": 1, "custom_rateBurst": 1000000001}"#,
            "custom_rateBurst must be a whole number from 1 to 1000000000"
        ),
        (#"{"custom_rateBurst": 5}"#, "custom_rateBurst needs custom_rateLimit"),
    ])
    func refusesWhatIsNotALimit(_ json: String, _ message: String) {
        expectEngineError(.invalidArgument, message) { try limits(json) }
    }

    @Test func createAndUpdateRefuseABadLimitAndChangeNothing() throws {
        let (engine, _) = Engine.testing()
        let bad = JSONValue.object([JSONMember("custom_monthlyLimit", .string("-5"))])
        expectEngineError(.invalidArgument, "custom_monthlyLimit must be a whole number of at least 0") {
            try engine.create(NewKey(orderID: 1, clientID: 1, config: bad))
        }
        #expect(engine.keyCount == 0)
        let good = JSONValue.object([JSONMember("custom_monthlyLimit", .integer(100))])
        let record = try engine.create(NewKey(orderID: 1, clientID: 1, config: good))
        expectEngineError(.invalidArgument, "custom_monthlyLimit must be a whole number of at least 0") {
            try engine.update(KeyChanges(orderID: 1, config: bad))
        }
        #expect(try engine.get(.orderID(1)) == record)
    }

    /// A config stored before the rule (here: replayed as a journal would) is not checked again:
    /// `reset` works on it.
    @Test func resetDoesNotCheckAStoredConfigAgain() throws {
        let (engine, clock) = Engine.testing()
        let stored = KeyRecord(
            orderID: 3, clientID: 1, apiKey: "OLD-KEY",
            config: .object([JSONMember("custom_monthlyLimit", .string("lots"))]), status: .active, expiresAt: nil,
            createdAt: clock.nowSeconds(), updatedAt: clock.nowSeconds())
        engine.state.apply(.put(stored))
        let reset = try engine.reset(.orderID(3))
        #expect(reset.apiKey != "OLD-KEY" && reset.config == stored.config)
    }
}

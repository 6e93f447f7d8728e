import Testing

@testable import APIKeyEngine

/// The top-level scan of stored configs agrees with parsing them whole: nested members of the
/// same name, strings holding brackets, quotes and escapes, white space, and every usage-limit
/// parameter in every spelling.
@Suite struct StoredConfigScanTests {
    static let names = ["custom_monthlyLimit", "custom_rateLimit", "custom_rateBurst"]

    @Test(
        arguments: [
            #"{}"#,
            #"{"custom_monthlyLimit": 250}"#,
            #"{"custom_monthlyLimit": "250", "custom_tier": "pro"}"#,
            #"{"custom_tier": "a\"b}{,", "custom_monthlyLimit": 7, "custom_rateLimit": "0.5", "custom_rateBurst": 3}"#,
            #"{"custom_x": {"custom_monthlyLimit": 1, "y": [1, {"custom_rateLimit": 2}]}, "custom_rateLimit": 4}"#,
            #"{"length": 16, "custom_note": "custom_monthlyLimit\\", "custom_monthlyLimit": 0}"#,
            #"{"custom_monthlyLimit": "2\u0035"}"#,
            #"{ "custom_monthlyLimit" : 9 , "custom_rateLimit" :1e2 }"#,
            #"{"custom_monthlyLimit": [1], "custom_rateLimit": null}"#,
            #"{"custom_monthlyLimit": 1234567890123456789}"#,
            #"{"custom_monthlyLimit": 5e0}"#,
            #"{"custom_monthlyLimit": -5}"#,
        ])
    func agreesWithParsingTheWholeConfig(_ text: String) throws {
        let config = try JSONValue.parse(text)
        guard case .object(let members) = config else { return }
        let expected = members.filter { Self.names.contains($0.name) }
        let bytes = Array(text.utf8)
        var scanned: [JSONMember] = []
        let followed = StoredConfigScan.scan(bytes, named: Self.names.map { Array($0.utf8) }) { name, value in
            scanned.append(JSONMember(Self.names[name], try! JSONValue.parse(bytes[value])))
        }
        #expect(followed && scanned == expected)
        let record = KeyRecord(
            orderID: 1, clientID: 1, apiKey: "K", config: config, status: .active, expiresAt: nil, createdAt: 0,
            updatedAt: 0)
        let fromConfig = (try? UsageLimits(config: config)) ?? UsageLimits()
        #expect(UsageLimits(stored: record) == fromConfig)
        // The custom-parameter text a first verify reads gives the same limits.
        #expect(Array(record.customParametersJSON).withUnsafeBytes { UsageLimits(customParameters: $0) } == fromConfig)
    }

    @Test func textsItCannotFollowGiveNil() {
        for text in [#"[1]"#, #"{"a": "#, #"{"a" 1}"#, #"{"a": "b"#, ""] {
            #expect(
                !StoredConfigScan.scan(Array(text.utf8), named: Self.names.map { Array($0.utf8) }) { _, _ in },
                "\(text)")
        }
    }
}

import Testing

@testable import APIKeyEngine

@Suite struct CustomParametersTests {
    @Test(arguments: [
        ("250", "250"), ("1.50", "1.5"), ("-3", "-3"), ("1e3", "1000"), ("+7", "7"), ("007", "7"),
        ("0.1", "0.1"), ("-0.0", "0"), ("2.50e1", "25"), (".5", "0.5"), ("9223372036854775807", "9223372036854775807"),
        ("1e20", "1e+20"),
    ])
    func normalisesDecimalNumbers(_ text: String, _ expected: String) {
        #expect(CustomParameters.normalizedNumber(text) == expected)
    }

    @Test(arguments: ["", "abc", "1.2.3", "1e", "--1", " 5", "5 ", "0x10", "1e999", "Infinity", "NaN", "."])
    func leavesOtherTextAlone(_ text: String) {
        #expect(CustomParameters.normalizedNumber(text) == nil)
    }

    @Test func stripsThePrefixKeepsOrderAndIgnoresOtherOptions() throws {
        let config = try JSONValue.parse(
            #"{"length": 16, "custom_tier": "pro", "custom_monthlyLimit": "250", "custom_price": 1.50, "#
                + #""custom_flag": true, "custom_list": [1, "2"], "custom_note": "1 apple", "split": false}"#)
        let encoded = String(decoding: CustomParameters.encodedObject(of: config), as: UTF8.self)
        #expect(
            encoded
                == #"{"tier": "pro", "monthlyLimit": 250, "price": 1.5, "flag": true, "list": [1, "2"], "note": "1 apple"}"#
        )
    }

    @Test func noCustomParametersGiveAnEmptyObject() throws {
        let encoded = CustomParameters.encodedObject(of: try JSONValue.parse(#"{"length": 8}"#))
        #expect(String(decoding: encoded, as: UTF8.self) == "{}")
    }
}

import Testing

@testable import APIKeyEngine

@Suite struct JSONValueTests {
    @Test func parsesEveryKindAndKeepsMemberOrder() throws {
        let value = try JSONValue.parse(#" {"z": 1, "a": [true, false, null], "m": {"k": "v"}, "n": -1.5e3} "#)
        #expect(
            value
                == .object([
                    JSONMember("z", .number("1")),
                    JSONMember("a", .array([.bool(true), .bool(false), .null])),
                    JSONMember("m", .object([JSONMember("k", .string("v"))])),
                    JSONMember("n", .number("-1.5e3")),
                ]))
    }

    @Test func encodesWithTheDocumentedSpacing() throws {
        let value = try JSONValue.parse(#"{"result":true,"list":[1,2],"error":null}"#)
        #expect(String(decoding: value.encoded, as: UTF8.self) == #"{"result": true, "list": [1, 2], "error": null}"#)
    }

    @Test func duplicateNamesKeepFirstPositionAndLastValue() throws {
        let value = try JSONValue.parse(#"{"a": 1, "b": 2, "a": 3}"#)
        #expect(value == .object([JSONMember("a", .number("3")), JSONMember("b", .number("2"))]))
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let value = try JSONValue.parse(#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#)
        #expect(value == .string("a\"b\\c/d\n\té😀"))
    }

    @Test func escapesWhatJSONRequires() throws {
        let text = "quote\" backslash\\ newline\n bell\u{07} é"
        let encoded = JSONValue.string(text).encoded
        #expect(String(decoding: encoded, as: UTF8.self) == #""quote\" backslash\\ newline\n bell\u0007 é""#)
        #expect(try JSONValue.parse(encoded) == .string(text))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "1e", "tru", "\"abc", "\"\\x\"", "\"\\ud800\"",
        "{\"a\":1} x", "[1 2]", "\"tab\there\"", "{1: 2}", "nul",
    ])
    func rejectsMalformedText(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func rejectsInvalidUTF8InStrings() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
    }

    @Test func limitsNesting() throws {
        let deep =
            String(repeating: "[", count: JSONValue.maximumDepth + 1)
            + String(repeating: "]", count: JSONValue.maximumDepth + 1)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        let allowed =
            String(repeating: "[", count: JSONValue.maximumDepth)
            + String(repeating: "]", count: JSONValue.maximumDepth)
        _ = try JSONValue.parse(allowed)
    }

    @Test func reportsTheOffsetOfTheError() {
        do {
            _ = try JSONValue.parse(#"{"a": x}"#)
            Issue.record("parsing should have failed")
        } catch {
            #expect(error.offset == 6)
        }
    }
}

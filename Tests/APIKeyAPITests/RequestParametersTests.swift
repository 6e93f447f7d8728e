import APIKeyEngine
import APIKeyLimiter
import TestSupport
import Testing

@testable import APIKeyAPI

@Suite struct RequestParametersTests {
    private func form(_ text: String) throws -> JSONValue {
        try RequestParameters.decodeForm(Array(text.utf8)).object
    }

    @Test func decodesPHPBracketNames() throws {
        let value = try form("order_id=1&config[custom_tier]=pro&config[length]=16&ids[]=a&ids[]=b&a[b][c]=d")
        #expect(
            value
                == .object([
                    JSONMember("order_id", .string("1")),
                    JSONMember(
                        "config",
                        .object([JSONMember("custom_tier", .string("pro")), JSONMember("length", .string("16"))])),
                    JSONMember("ids", .array([.string("a"), .string("b")])),
                    JSONMember("a", .object([JSONMember("b", .object([JSONMember("c", .string("d"))]))])),
                ]))
    }

    @Test func percentAndPlusDecoding() throws {
        #expect(
            try form("k=a%2Bb+c%20d%C3%A9&e%5Bx%5D=1")
                == .object([
                    JSONMember("k", .string("a+b c dé")), JSONMember("e", .object([JSONMember("x", .string("1"))])),
                ]))
    }

    @Test func laterValuesWinAndEmptyPiecesAreSkipped() throws {
        #expect(try form("&a=1&&a=2&b&=x") == .object([JSONMember("a", .string("2")), JSONMember("b", .string(""))]))
    }

    @Test func unclosedBracketsAreLiteral() throws {
        #expect(try form("a[b=1") == .object([JSONMember("a[b", .string("1"))]))
    }

    @Test(arguments: ["a=%", "a=%4", "a=%G0", "a=%FF", "a[1][2][3][4][5][6][7][8][9]=x"])
    func malformedForms(_ text: String) {
        #expect(throws: MalformedRequest.self) { try form(text) }
    }

    @Test func tooManyParameters() {
        let text = (0...RequestParameters.maximumCount).map { "p\($0)=1" }.joined(separator: "&")
        #expect(throws: MalformedRequest.self) { try form(text) }
    }

    @Test func typedAccessors() throws {
        let parameters = try RequestParameters.decodeJSON(
            Array(
                #"{"i": "42", "n": 7, "neg": -1, "bad": "abc", "t": "true", "z": 0, "c": "{\"custom_x\": 1}", "s": "suspended", "when": "2030-01-01", "never": null, "unix": 100}"#
                    .utf8))
        #expect(try parameters.positiveInteger("i") == 42)
        #expect(try parameters.positiveInteger("n") == 7)
        #expect(try parameters.positiveInteger("missing") == nil)
        expectEngineError(.invalidArgument, "neg must be a positive integer") { try parameters.positiveInteger("neg") }
        expectEngineError(.invalidArgument, "bad must be an integer") { try parameters.integer("bad") }
        #expect(try parameters.boolean("t") == true)
        #expect(try parameters.boolean("z") == false)
        #expect(throws: EngineError.self) { try parameters.boolean("bad") }
        #expect(try parameters.config("c") == .object([JSONMember("custom_x", .number("1"))]))
        expectEngineError(.invalidArgument, "bad must be a JSON object") { try parameters.config("bad") }
        #expect(try parameters.status("s") == .suspended)
        #expect(throws: EngineError.self) { try parameters.status("bad") }
        #expect(try parameters.time("when") == .some(Timestamp.parse("2030-01-01")))
        #expect(try parameters.time("never") == .some(nil))
        #expect(try parameters.time("missing") == nil)
        #expect(try parameters.time("unix") == .some(100))
        #expect(throws: EngineError.self) { try parameters.time("bad") }
    }

    /// Integers as decimal text only: whole decimals (`16.0`, `1e3`) are taken, exactly (a double
    /// rounded `9007199254740993.0` to ...992), hexadecimal and the special floating-point words
    /// are not, nor decimal forms from 9e18 up.
    @Test(arguments: [
        ("16.0", 16), ("1e3", 1000), ("+7", 7), ("-2", -2), ("0x10", nil), ("inf", nil), ("nan", nil), ("1.5", nil),
        ("9007199254740993.0", 9_007_199_254_740_993), ("-9.007199254740993e15", -9_007_199_254_740_993),
        ("8.999999999999999999e18", 8_999_999_999_999_999_999), ("9e18", nil), ("9.0e18", nil),
    ])
    func integersAreDecimal(_ text: String, _ expected: Int64?) throws {
        let parameters = RequestParameters(.object([JSONMember("n", .string(text))]))
        if let expected {
            #expect(try parameters.integer("n") == expected)
        } else {
            expectEngineError(.invalidArgument, "n must be an integer") { try parameters.integer("n") }
        }
    }
}

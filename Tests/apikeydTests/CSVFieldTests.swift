import Testing

@testable import apikeyd

/// The export's hand-written CSV field encoding (RFC 4180).
@Suite struct CSVFieldTests {
    static func encoded(_ fields: [String]) -> String {
        var line: [UInt8] = []
        for (index, field) in fields.enumerated() {
            if index > 0 { line.append(UInt8(ascii: ",")) }
            Export.appendCSVField(field, to: &line)
        }
        return String(decoding: line, as: UTF8.self)
    }

    @Test func onlyFieldsThatNeedItAreQuoted() {
        #expect(Self.encoded(["1", "KEY-1", "", "Zürich"]) == "1,KEY-1,,Zürich")
        #expect(
            Self.encoded([#"{"custom_tier": "pro", "a": 1}"#, "a,b", "two\nlines", "cr\r"])
                == #""{""custom_tier"": ""pro"", ""a"": 1}","a,b","two"# + "\nlines\",\"cr\r\"")
    }
}

import PropertyBased
import TestSupport
import Testing

@testable import APIKeyEngine

@Suite struct KeyGeneratorTests {
    private let exampleBytes: [UInt8] = [
        0xBA, 0x90, 0x78, 0x63, 0x47, 0xC1, 0xA4, 0xF5, 0x3C, 0xB9, 0x14, 0xD3, 0xAC, 0x92, 0x7B, 0xDD,
    ]

    private func options(_ json: String) throws -> KeyGenerationOptions {
        try KeyGenerationOptions(config: try JSONValue.parse(json))
    }

    @Test func defaultsGiveThirtyTwoUpperCaseDigitsInGroupsOfEight() throws {
        let generator = KeyGenerator(random: ScriptedRandom(exampleBytes))
        #expect(generator.generate(try options("{}")) == "BA907863-47C1A4F5-3CB914D3-AC927BDD")
    }

    @Test func defaultShapeWithTheSystemSource() {
        let key = KeyGenerator().generate(KeyGenerationOptions())
        #expect(key.count == 35)
        let groups = key.split(separator: "-")
        #expect(groups.count == 4)
        #expect(groups.allSatisfy { $0.count == 8 && $0.allSatisfy { "0123456789ABCDEF".contains($0) } })
    }

    @Test func lengthAndIntervalAsInTheSpecExamples() throws {
        let generator = KeyGenerator(random: ScriptedRandom([0xFC, 0x67, 0xEE, 0xE3, 0xDC]))
        #expect(generator.generate(try options(#"{"length":10,"split_interval":4}"#)) == "FC67-EEE3-DC")
        let unsplit = KeyGenerator(random: ScriptedRandom([0xDE, 0x96, 0x42, 0x6F]))
        #expect(unsplit.generate(try options(#"{"length":7,"split":"0"}"#)) == "DE96426")
    }

    @Test func oddLengthsUseCeilingHalfBytesAndDropTheLastDigit() throws {
        let random = ScriptedRandom([0x12, 0x34, 0x56])
        #expect(KeyGenerator(random: random).generate(try options(#"{"length": 5}"#)) == "12345")
    }

    @Test(arguments: [#"false"#, #"0"#, #""0""#, #""""#])
    func splitOffValues(_ value: String) throws {
        #expect(try options(#"{"split": \#(value)}"#).split == false)
    }

    @Test(arguments: [#"true"#, #"1"#, #""1""#, #"null"#, #""yes""#])
    func splitOnValues(_ value: String) throws {
        #expect(try options(#"{"split": \#(value)}"#).split == true)
    }

    @Test func missingSplitMeansTrue() throws {
        #expect(try options("{}").split == true)
    }

    @Test(arguments: [#"16"#, #""16""#, #"16.0"#, #"" 16 ""#, #""1.6e1""#])
    func numericOptionsAcceptNumbersAndNumericStrings(_ value: String) throws {
        #expect(try options(#"{"length": \#(value)}"#).length == 16)
        #expect(try options(#"{"split_interval": \#(value)}"#).splitInterval == 16)
    }

    @Test func booleansCountAsOneAndZero() throws {
        #expect(try options(#"{"length": true}"#).length == 1)
        #expect(throws: EngineError.self) { try options(#"{"length": false}"#) }
    }

    @Test func emptyOrNullNumericOptionsTakeTheDefault() throws {
        #expect(try options(#"{"length": "", "split_interval": null, "case": ""}"#) == KeyGenerationOptions())
    }

    @Test(arguments: [
        (#"{"case": "lower"}"#, KeyLetterCase.lower), (#"{"case": "upper"}"#, .upper), (#"{"case": "mixed"}"#, .mixed),
        (#"{"case": "LOWER"}"#, .lower), (#"{"case": null}"#, .upper),
    ])
    func caseOption(_ json: String, _ expected: KeyLetterCase) throws {
        #expect(try options(json).letterCase == expected)
    }

    @Test func lowerCaseKeepsDigitsLower() throws {
        let generator = KeyGenerator(random: ScriptedRandom(exampleBytes))
        #expect(generator.generate(try options(#"{"case": "lower"}"#)) == "ba907863-47c1a4f5-3cb914d3-ac927bdd")
    }

    @Test func mixedCaseFlipsEachLetterByItsOwnCoin() throws {
        // Key bytes 0xAB 0xCD give "abcd"; the coin byte 0b0101 upper-cases letters 0 and 2.
        let generator = KeyGenerator(random: ScriptedRandom([0xAB, 0xCD, 0b0000_0101]))
        #expect(generator.generate(try options(#"{"length": 4, "case": "mixed"}"#)) == "AbCd")
    }

    @Test func mixedCaseProducesBothCasesOverManyKeys() throws {
        let generator = KeyGenerator()
        let options = try KeyGenerationOptions(length: 64, split: false, letterCase: .mixed)
        let keys = (0..<20).map { _ in generator.generate(options) }
        let joined = keys.joined()
        #expect(joined.contains(where: { "abcdef".contains($0) }))
        #expect(joined.contains(where: { "ABCDEF".contains($0) }))
    }

    @Test(arguments: [
        (#"{"case": "X"}"#, "Unknown uppercase option 'X'. API generator only accepts 'lower', 'upper', or 'mixed'."),
        (#"{"case": 5}"#, "Unknown uppercase option '5'. API generator only accepts 'lower', 'upper', or 'mixed'."),
        (#"{"length": 0}"#, "Invalid API key length '0'. The length must be an integer from 1 to 255."),
        (#"{"length": 256}"#, "Invalid API key length '256'. The length must be an integer from 1 to 255."),
        (#"{"length": "abc"}"#, "Invalid API key length 'abc'. The length must be an integer from 1 to 255."),
        (#"{"length": 12.5}"#, "Invalid API key length '12.5'. The length must be an integer from 1 to 255."),
        (#"{"length": [1]}"#, "Invalid API key length '[1]'. The length must be an integer from 1 to 255."),
        (#"{"split_interval": 0}"#, "Invalid split_interval '0'. The split interval must be an integer of at least 1."),
        (
            #"{"split_interval": "-2"}"#,
            "Invalid split_interval '-2'. The split interval must be an integer of at least 1."
        ),
        (
            #"{"split_interval": "x"}"#,
            "Invalid split_interval 'x'. The split interval must be an integer of at least 1."
        ),
    ])
    func badOptionsGiveClearErrors(_ json: String, _ message: String) {
        expectEngineError(.invalidArgument, message) { try options(json) }
    }

    @Test func givesUpAfterTenTakenKeys() {
        let generator = KeyGenerator(random: ScriptedRandom([0x11]))
        var attempts = 0
        #expect(throws: EngineError.generationExhausted) {
            try generator.generateUnique(KeyGenerationOptions()) { _ in
                attempts += 1
                return true
            }
        }
        #expect(attempts == KeyGenerator.maximumAttempts)
    }

    @Test func retriesUntilAFreeKeyAppears() throws {
        let generator = KeyGenerator()
        var attempts = 0
        let key = try generator.generateUnique(KeyGenerationOptions()) { _ in
            attempts += 1
            return attempts < 10
        }
        #expect(attempts == 10)
        #expect(key.count == 35)
    }

    @Test func everyValidOptionCombinationHasTheRightShape() async {
        let generator = KeyGenerator()
        await propertyCheck(
            count: 300, input: Gen.int(in: 1...255), Gen.int(in: 1...300), Gen.bool, Gen.int(in: 0...2)
        ) { length, interval, split, caseIndex in
            let letterCase = KeyLetterCase.allCases[caseIndex]
            let options = try! KeyGenerationOptions(
                length: length, split: split, splitInterval: interval, letterCase: letterCase)
            let key = generator.generate(options)
            let material = key.filter { $0 != "-" }
            #expect(material.count == length)
            #expect(material.allSatisfy { $0.isHexDigit })
            #expect(!key.hasPrefix("-") && !key.hasSuffix("-") && !key.contains("--"))
            let groups = key.split(separator: "-")
            if split {
                #expect(groups.count == (length + interval - 1) / interval)
                #expect(groups.dropLast().allSatisfy { $0.count == interval })
            } else {
                #expect(groups.count == 1)
            }
            switch letterCase {
            case .upper: #expect(!key.contains(where: { $0.isLowercase }))
            case .lower: #expect(!key.contains(where: { $0.isUppercase }))
            case .mixed: break
            }
        }
    }
}

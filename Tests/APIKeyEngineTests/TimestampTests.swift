import PropertyBased
import Testing

@testable import APIKeyEngine

@Suite struct TimestampTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01 00:00:00"),
        (951_782_400, "2000-02-29 00:00:00"),
        (1_700_000_000, "2023-11-14 22:13:20"),
        (-1, "1969-12-31 23:59:59"),
        (Timestamp.maximumSeconds, "9999-12-31 23:59:59"),
        (Timestamp.minimumSeconds, "0001-01-01 00:00:00"),
    ])
    func formatsKnownInstants(_ seconds: Int64, _ text: String) {
        #expect(Timestamp.format(seconds) == text)
        #expect(Timestamp.parse(text) == seconds)
    }

    @Test func acceptsDatesAndISOForms() {
        #expect(Timestamp.parse("2030-01-02") == Timestamp.parse("2030-01-02 00:00:00"))
        #expect(Timestamp.parse("2030-01-02T03:04:05Z") == Timestamp.parse("2030-01-02 03:04:05"))
        #expect(Timestamp.parse("2030-01-02T03:04:05+00:00") == Timestamp.parse("2030-01-02 03:04:05"))
    }

    @Test(arguments: [
        "2023-02-29 00:00:00", "2023-13-01", "2023-00-10", "2023-01-32", "2023-01-01 24:00:00",
        "2023-01-01 00:60:00", "2023-1-1", "tomorrow", "2023-01-01 00:00:00+02:00", "0000-01-01",
    ])
    func rejectsImpossibleOrUnknownForms(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func formatAndParseAreInverses() async {
        await propertyCheck(input: Gen.int64(in: Timestamp.minimumSeconds...Timestamp.maximumSeconds)) { seconds in
            #expect(Timestamp.parse(Timestamp.format(seconds)) == seconds)
        }
    }
}

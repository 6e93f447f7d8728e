import Testing

@testable import APIKeyEngine

/// Calendar months in UTC: every boundary a quota resets at.
@Suite struct UsageMonthTests {
    /// Seconds since the epoch of a UTC time, from the API's own parser.
    private func seconds(_ text: String) throws -> Int64 { try #require(Timestamp.parse(text)) }

    @Test(arguments: [
        // (last second of a month, the month, its reset)
        ("2026-01-31 23:59:59", "2026-01", "2026-02-01 00:00:00"),  // 31 days
        ("2026-04-30 23:59:59", "2026-04", "2026-05-01 00:00:00"),  // 30 days
        ("2026-02-28 23:59:59", "2026-02", "2026-03-01 00:00:00"),  // 28 days
        ("2028-02-29 23:59:59", "2028-02", "2028-03-01 00:00:00"),  // a leap year
        ("2100-02-28 23:59:59", "2100-02", "2100-03-01 00:00:00"),  // a century that is not leap
        ("2000-02-29 23:59:59", "2000-02", "2000-03-01 00:00:00"),  // one that is
        ("2026-12-31 23:59:59", "2026-12", "2027-01-01 00:00:00"),  // December to January
        ("1969-12-31 23:59:59", "1969-12", "1970-01-01 00:00:00"),  // before the epoch
    ])
    func theLastInstantBelongsToTheMonthAndTheNextToTheNext(_ last: String, _ month: String, _ reset: String) throws {
        let lastSecond = try seconds(last)
        let inside = UsageMonth(containingNanoseconds: lastSecond * 1_000_000_000 + 999_999_999)
        #expect(inside.description == month)
        #expect(inside.resetAt == reset)
        #expect(UsageMonth(containingSeconds: lastSecond) == inside)
        let following = UsageMonth(containingNanoseconds: (lastSecond + 1) * 1_000_000_000)
        #expect(following == inside.next)
        #expect(following.firstSecond == lastSecond + 1)
        #expect(Timestamp.format(following.firstSecond) == reset)
        #expect(following.ordinal == inside.ordinal + 1 && inside < following)
    }

    @Test func readsAndWritesYYYYMM() {
        #expect(UsageMonth("2026-07") == UsageMonth(year: 2026, month: 7))
        #expect(UsageMonth("0001-01")?.description == "0001-01")
        #expect(UsageMonth("9999-12")?.next == nil)
        #expect(UsageMonth("9999-12")?.resetAt == "10000-01-01 00:00:00")
        for bad in [
            "2026-13", "2026-00", "0000-05", "2026-7", "26-07", "2026/07", "2026-07-01", "２０２６-07", "", "+026-07",
        ] {
            #expect(UsageMonth(bad) == nil, "\(bad)")
        }
    }

    @Test func clampsToTheYearsTheAPITakes() {
        #expect(UsageMonth(containingSeconds: .min).description == "0001-01")
        #expect(UsageMonth(containingSeconds: .max).description == "9999-12")
        // 64-bit nanoseconds reach from 1677-09-21 to 2262-04-11.
        #expect(UsageMonth(containingNanoseconds: .min).description == "1677-09")
        #expect(UsageMonth(containingNanoseconds: .max).description == "2262-04")
    }
}

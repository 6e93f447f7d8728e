import TestSupport
import Testing

@testable import APIKeyEngine

/// A data directory written by the server as it was before the issue-11 restructuring
/// (`Fixtures/datadir-v1`): a snapshot at sequence 5 and the journal around it, left by a
/// `kill -9` under `--fsync always`. Every later build must open it and find exactly what was
/// written through the HTTP API:
///
/// 1. create order 1 (client 7, config with `custom`), 2 (client 7, `custom_parameters`,
///    non-ASCII text, expiring 2031-05-06), 3 (client 8, suspended), 4 (client 9);
/// 2. client 7's API token; `admin/storage/snapshot`;
/// 3. order 2 expires 2020-01-01; order 1 suspended and unsuspended; order 4 canceled; order 10
///    created (client 9, length 40); order 3 deleted; client 8's API token; `kill -9`.
@Suite struct DataDirectoryFixtureTests {
    static let fixture: String = {
        let file = #filePath
        return String(file[..<file.lastIndex(of: "/")!]) + "/Fixtures/datadir-v1"
    }()

    /// 2026-12-01 15:38:51 UTC, when every record was written.
    static let writtenAt: Int64 = 1_796_139_531

    /// A copy of the fixture, so that opening it (which may write a snapshot) leaves it as it is.
    static func copy() throws -> TemporaryDirectory {
        let directory = TemporaryDirectory()
        let files = PosixFileLayer()
        for name in try files.list(fixture) { directory.write(name, try files.read(fixture + "/" + name)) }
        return directory
    }

    @Test func opensWithEveryRecordAsWritten() throws {
        let directory = try Self.copy()
        defer { directory.remove() }
        var options = StorageOptions()
        options.strictRecovery = true
        let clock = ManualClock(seconds: 1_800_000_000)
        let engine = try Engine.open(directory: directory.path, options: options, clock: clock)
        let report = try #require(engine.recoveryReport)
        #expect(report.snapshot == "snapshot-00000000000000000005.snap")
        #expect(report.lastSequence == 12)
        #expect(report.corruption == nil && report.tornTail == nil)

        let page = try engine.list(perPage: 100)
        #expect(page.list.map(\.orderID) == [1, 2, 4, 10])
        let written = Self.writtenAt
        #expect(
            page.list == [
                KeyRecord(
                    orderID: 1, clientID: 7, apiKey: "F4064C1F-D1076AD4-D6B837C4",
                    config: try JSONValue.parse(
                        Array(#"{"length": 24, "prefix": "fx1-", "custom": {"plan": "gold", "quota": 1000}}"#.utf8)),
                    status: .active, expiresAt: nil, createdAt: written, updatedAt: written),
                KeyRecord(
                    orderID: 2, clientID: 7, apiKey: "399E7825-8BEAEE46-97EF3974-31955B30",
                    config: try JSONValue.parse(
                        Array(#"{"custom_parameters": {"plan": "free"}, "note": "ünïcödé ✓"}"#.utf8)),
                    status: .active, expiresAt: 1_577_836_800, createdAt: written, updatedAt: written),
                KeyRecord(
                    orderID: 4, clientID: 9, apiKey: "E2C7A1AC-0C28541D-F9438B6F-4ED32F42", config: .object([]),
                    status: .canceled, expiresAt: nil, createdAt: written, updatedAt: written),
                KeyRecord(
                    orderID: 10, clientID: 9, apiKey: "A971B49E-A2FA4A50-FA1A333B-24F3A4A0-F825473E",
                    config: try JSONValue.parse(Array(#"{"length": 40}"#.utf8)), status: .active, expiresAt: nil,
                    createdAt: written, updatedAt: written),
            ])
        #expect(try engine.check(key: "F4064C1F-D1076AD4-D6B837C4"))
        #expect(try !engine.check(key: "399E7825-8BEAEE46-97EF3974-31955B30"))
        #expect(try !engine.check(key: "E2C7A1AC-0C28541D-F9438B6F-4ED32F42"))
        #expect(throws: EngineError.keyNotFound) { try engine.check(key: "9937E0EE-5CBA160E-3E29E9C4-7D71AC57") }
        let info = try engine.getInfo(key: "399E7825-8BEAEE46-97EF3974-31955B30")
        #expect(String(decoding: info.customParametersJSON, as: UTF8.self) == #"{"parameters": {"plan": "free"}}"#)
        #expect(
            engine.authenticateClient(token: "b0e240ed5f603ae17cb063b4b0334b8234a1b515c83234cf2907569012cb2d1c") == 7)
        #expect(
            engine.authenticateClient(token: "9511cc22cf861a599c410a31da0961f61ed9aeb1bcf275aa79b351cb0d34609f") == 8)
        #expect(try engine.create(NewKey(clientID: 9)).orderID == 11)
        #expect(engine.integrityProblems().isEmpty)
        try engine.close()

        let verified = try Engine.verifyData(directory: directory.path)
        #expect(verified.integrityProblems.isEmpty)
    }
}

import CZlib
import TestSupport
import Testing

@testable import APIKeyEngine

/// Reading a snapshot's entries, which are inflated and decoded on a thread of their own and
/// applied on the caller's: every entry arrives once, in order, and a stream that checks out but
/// does not decode, or ends inside an entry, is refused.
@Suite struct SnapshotDecodingTests {
    private static func record(_ order: Int) -> KeyRecord {
        KeyRecord(
            orderID: Int64(order), clientID: Int64(order % 9 + 1), apiKey: "KEY-\(order)",
            config: .object([JSONMember("custom_n", .integer(Int64(order)))]), status: .active, expiresAt: nil,
            createdAt: 0, updatedAt: 0)
    }

    /// A snapshot file whose zlib stream inflates to `stream`, with a trailer that verifies.
    private static func snapshotFile(stream: [UInt8], entryCount: UInt64, at path: String) throws {
        var compressed = [UInt8](repeating: 0, count: Int(compressBound(UInt(stream.count))))
        var compressedCount = UInt(compressed.count)
        let status = compressed.withUnsafeMutableBufferPointer { output in
            stream.withUnsafeBufferPointer {
                compress(output.baseAddress, &compressedCount, $0.baseAddress, UInt($0.count))
            }
        }
        #expect(status == Z_OK)
        compressed.removeSubrange(Int(compressedCount)...)
        var trailer: [UInt8] = []
        for value in [UInt64(1), 100, entryCount, UInt64(stream.count), UInt64(compressed.count)] {
            trailer.appendLittleEndian(value)
        }
        trailer.appendLittleEndian(JournalFormat.hash(compressed[...]))
        trailer.appendLittleEndian(JournalFormat.hash(trailer[...]))
        let file = try PosixFileLayer().openForAppend(path)
        try file.write(SnapshotFile.magic + compressed + trailer)
    }

    private static func entry(_ mutation: KeyMutation) -> [UInt8] {
        var payload: [UInt8] = []
        MutationCodec.encodePayload(mutation, into: &payload)
        var bytes = [MutationCodec.type(of: mutation)]
        bytes.appendLittleEndian(UInt32(payload.count))
        return bytes + payload
    }

    @Test func everyEntryIsAppliedOnceInOrderAcrossManyBatches() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let count = SnapshotFile.decodedBatchSize * 3 + 17
        let mutations = (1...count).map { KeyMutation.put(Self.record($0)) }
        let path = directory.path + "/snapshot"
        try Self.snapshotFile(stream: mutations.flatMap(Self.entry), entryCount: UInt64(count), at: path)
        var applied: [KeyMutation] = []
        let header = try SnapshotFile.read(path, files: PosixFileLayer()) { applied.append($0) }
        #expect(header.entryCount == UInt64(count))
        #expect(applied == mutations)
    }

    @Test func anEntryThatDoesNotDecodeIsRefused() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/snapshot"
        let stream = Self.entry(.put(Self.record(1))) + [0xEE, 3, 0, 0, 0, 1, 2, 3] + Self.entry(.put(Self.record(2)))
        try Self.snapshotFile(stream: stream, entryCount: 3, at: path)
        #expect(throws: StorageError.self) { try SnapshotFile.read(path, files: PosixFileLayer()) { _ in } }
    }

    @Test func aStreamEndingInsideAnEntryIsRefused() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/snapshot"
        let whole = Self.entry(.put(Self.record(2)))
        let stream = Self.entry(.put(Self.record(1))) + whole.prefix(whole.count - 4)
        // The trailer counts only the whole entry, so the cut one is what is wrong.
        try Self.snapshotFile(stream: stream, entryCount: 1, at: path)
        var applied = 0
        #expect(throws: StorageError.self) {
            try SnapshotFile.read(path, files: PosixFileLayer()) { _ in applied += 1 }
        }
        #expect(applied == 1)
    }
}

import CXXHash

/// The on-disk form of journal segments and their records.
///
/// A segment is `journal-<first sequence, 20 digits>.log`: a 16-byte header (`AKJRNL01`, then the
/// first sequence number, u64) followed by records. A record is a 25-byte header and a payload:
///
/// | bytes | field |
/// |---|---|
/// | 4 | payload length (u32) |
/// | 8 | sequence number (u64), one more than the previous record's |
/// | 1 | type (``MutationCodec``) |
/// | 8 | XXH3-64 of the payload |
/// | 4 | low 32 bits of XXH3-64 of the 21 bytes above |
///
/// The header checksum lets a reader trust the length before it reads the payload, so a flipped
/// length can never send it past good data.
///
/// The live segment ends in zeros: space the journal reserves ahead of its records
/// (``Journal/reservationBytes``). In the last segment a run of zeros to the end of the file is
/// where the records end, not damage; no record header is all zeros, since its checksum would not
/// match. Every other segment was trimmed to its records (at rotation, at close, or by recovery
/// after a crash), so zeros at its end are damage.
enum JournalFormat {
    static let segmentMagic: [UInt8] = Array("AKJRNL01".utf8)
    static let segmentHeaderSize = 16
    static let recordHeaderSize = 25
    /// The largest payload a record may have; configs are at most a few KiB.
    static let maximumPayloadBytes = 16 << 20

    /// Segment files are named by the sequence number of their first record.
    static let segmentNames = SequenceFileNames(prefix: "journal-", suffix: ".log")

    static func segmentHeader(firstSequence: UInt64) -> [UInt8] {
        var bytes = segmentMagic
        bytes.appendLittleEndian(firstSequence)
        return bytes
    }

    /// The bytes of one record.
    static func record(sequence: UInt64, mutation: KeyMutation) -> [UInt8] {
        var payload: [UInt8] = []
        MutationCodec.encodePayload(mutation, into: &payload)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(recordHeaderSize + payload.count)
        bytes.appendLittleEndian(UInt32(payload.count))
        bytes.appendLittleEndian(sequence)
        bytes.append(MutationCodec.type(of: mutation))
        bytes.appendLittleEndian(hash(payload[...]))
        bytes.appendLittleEndian(UInt32(truncatingIfNeeded: hash(bytes[0..<21])))
        bytes.append(contentsOf: payload)
        return bytes
    }

    static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.withUnsafeBytes { XXH3_64bits($0.baseAddress, $0.count) }
    }

    /// What reading a segment found.
    struct Scan {
        /// The sequence number and mutation of every intact record, in order.
        var records: [(sequence: UInt64, mutation: KeyMutation)] = []
        /// The offset just past the last intact record (the segment header counts).
        var validLength = 0
        /// Why reading stopped before the end; nil when every byte was read.
        var damage: Damage?
    }

    /// Where and why a segment stops being readable.
    struct Damage: Hashable, Sendable {
        var offset: Int
        var reason: String
        /// True when nothing intact follows the damage: a write that a crash cut short.
        var isTornTail: Bool
    }

    /// Reads a segment's records. `expectedSequence` is the sequence the first record must have
    /// (nil accepts the header's). With `endsInReservedSpace` (the last segment, the only one
    /// that may still hold the journal's reserved zeros) a run of zeros to the end is where the
    /// records end; without it (a finished segment, trimmed to its records) it is damage. Never
    /// throws and never reads out of bounds: damage ends the scan.
    static func scan(_ bytes: [UInt8], expectedSequence: UInt64?, endsInReservedSpace: Bool = true) -> Scan {
        var scan = Scan()
        guard bytes.count >= segmentHeaderSize else {
            scan.damage = Damage(offset: 0, reason: "segment header cut short", isTornTail: true)
            return scan
        }
        guard Array(bytes[0..<8]) == segmentMagic else {
            scan.damage = Damage(offset: 0, reason: "not a journal segment (bad magic)", isTornTail: false)
            return scan
        }
        var headerReader = ByteReader(bytes[8..<16])
        let first = headerReader.uint64()!
        var next = expectedSequence ?? first
        if let expectedSequence, first != expectedSequence {
            scan.damage = Damage(
                offset: 8, reason: "segment starts at sequence \(first), expected \(expectedSequence)",
                isTornTail: false)
            return scan
        }
        var offset = segmentHeaderSize
        scan.validLength = offset
        while offset < bytes.count {
            switch decodeRecord(bytes, at: offset, expectedSequence: next) {
            case .success(let record):
                scan.records.append((next, record.mutation))
                next += 1
                offset = record.end
                scan.validLength = offset
            case .failure(let reason):
                if endsInReservedSpace, bytes[offset...].allSatisfy({ $0 == 0 }) { return scan }
                let torn = !containsIntactRecord(bytes, after: offset)
                scan.damage = Damage(offset: offset, reason: reason.text, isTornTail: torn)
                return scan
            }
        }
        return scan
    }

    private struct DecodeFailure: Error { var text: String }

    private static func decodeRecord(
        _ bytes: [UInt8], at offset: Int, expectedSequence: UInt64?
    )
        -> Result<(mutation: KeyMutation, end: Int), DecodeFailure>
    {
        guard bytes.count - offset >= recordHeaderSize else {
            return .failure(DecodeFailure(text: "record header cut short"))
        }
        var reader = ByteReader(bytes[offset..<(offset + recordHeaderSize)])
        let length = Int(reader.uint32()!)
        let sequence = reader.uint64()!
        let type = reader.uint8()!
        let payloadChecksum = reader.uint64()!
        let headerChecksum = reader.uint32()!
        guard headerChecksum == UInt32(truncatingIfNeeded: hash(bytes[offset..<(offset + 21)])) else {
            return .failure(DecodeFailure(text: "record header checksum mismatch"))
        }
        guard length <= maximumPayloadBytes else {
            return .failure(DecodeFailure(text: "record length \(length) too large"))
        }
        if let expectedSequence, sequence != expectedSequence {
            return .failure(DecodeFailure(text: "sequence \(sequence) where \(expectedSequence) was expected"))
        }
        let payloadStart = offset + recordHeaderSize
        guard bytes.count - payloadStart >= length else {
            return .failure(DecodeFailure(text: "record payload cut short"))
        }
        let payload = bytes[payloadStart..<(payloadStart + length)]
        guard hash(payload) == payloadChecksum else {
            return .failure(DecodeFailure(text: "record payload checksum mismatch"))
        }
        guard let mutation = MutationCodec.decode(type: type, payload: payload) else {
            return .failure(DecodeFailure(text: "record payload does not decode"))
        }
        return .success((mutation, payloadStart + length))
    }

    /// Whether an intact record (of any sequence) starts anywhere after `offset`.
    private static func containsIntactRecord(_ bytes: [UInt8], after offset: Int) -> Bool {
        var candidate = offset + 1
        while candidate + recordHeaderSize <= bytes.count {
            if case .success = decodeRecord(bytes, at: candidate, expectedSequence: nil) { return true }
            candidate += 1
        }
        return false
    }
}

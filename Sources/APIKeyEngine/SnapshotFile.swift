import CXXHash
import CZlib
import Dispatch

/// The on-disk form of a snapshot: the whole state at one journal sequence number, compressed.
///
/// `snapshot-<last sequence, 20 digits>.snap` holds the magic `AKSNAP01`, a zlib stream of
/// entries (type u8, payload length u32, payload: the ``MutationCodec`` form of the puts, client
/// tokens, usage counts, remembered verify answers and retired keys that rebuild the state) and a 56-byte trailer: last sequence, next order ID,
/// entry count, uncompressed bytes, compressed bytes, XXH3-64 of the compressed bytes, and XXH3-64
/// of the trailer's first 48 bytes. Nothing is applied before both checksums pass.
enum SnapshotFile {
    static let magic: [UInt8] = Array("AKSNAP01".utf8)
    static let trailerSize = 56

    /// Snapshot files are named by the last journal sequence number they cover.
    static let names = SequenceFileNames(prefix: "snapshot-", suffix: ".snap")

    /// What a snapshot holds besides its entries.
    struct Header: Hashable, Sendable {
        var lastSequence: UInt64
        var nextOrderID: Int64
        var entryCount: UInt64
        var uncompressedBytes: UInt64
        var compressedBytes: UInt64
    }

    /// The state to write: copies taken under the engine's locks, encoded off-lock.
    struct Contents: Sendable {
        var lastSequence: UInt64
        var nextOrderID: Int64
        var records: KeyTableCopy
        var clientTokens: [(clientID: Int64, token: String)]
        /// The usage table's shards, as copied.
        var usage: [UsageTable.Copy] = []
        var remembered: [RememberedVerification] = []
        /// Keys in their grace period after a reset.
        var retired: [RetiredKey] = []
        /// The cluster change log's position the state holds (multi-node mode only).
        var changePosition: ChangePosition?
        /// How many entries the records and the rest make, roughly (for progress reports).
        var recordCount: UInt64?
    }

    /// Hooks inside the write protocol, where tests simulate a crash.
    enum Step: Sendable {
        case temporaryWritten, temporarySynced, renamed
    }

    /// Writes `contents` to a temporary file, fsyncs it, renames it into place and fsyncs the
    /// directory. Returns the final path and header. A snapshot that fails before the rename
    /// removes its temporary file, so a failure (a full disk) costs no space.
    static func write(
        _ contents: Contents, directory: String, files: any FileLayer, compressionLevel: Int32 = 1,
        progress: ProgressHandler? = nil,
        afterStep: (Step) throws(StorageError) -> Void = { _ throws(StorageError) in }
    ) throws(StorageError) -> (path: String, header: Header) {
        let finalPath = directory + "/" + names.name(contents.lastSequence)
        let temporaryPath = finalPath + ".tmp"
        let header: Header
        do {
            header = try writeTemporary(
                contents, to: temporaryPath, files: files, compressionLevel: compressionLevel, progress: progress,
                afterStep: afterStep)
            try files.rename(temporaryPath, to: finalPath)
        } catch {
            do {
                try files.remove(temporaryPath)
            } catch let removal {
                throw StorageError("\(error.message); and removing \(temporaryPath) failed: \(removal.message)")
            }
            throw error
        }
        try files.syncDirectory(directory)
        try afterStep(.renamed)
        return (finalPath, header)
    }

    /// Writes and fsyncs the temporary file of a snapshot and returns its header.
    private static func writeTemporary(
        _ contents: Contents, to temporaryPath: String, files: any FileLayer, compressionLevel: Int32,
        progress: ProgressHandler?, afterStep: (Step) throws(StorageError) -> Void
    ) throws(StorageError) -> Header {
        try files.remove(temporaryPath)
        let file = try files.openForAppend(temporaryPath)
        try file.write(magic)

        let compressor = try Compressor(level: compressionLevel)
        var entries: UInt64 = 0
        var uncompressed: UInt64 = 0
        var batch: [UInt8] = []
        batch.reserveCapacity(1 << 20)
        var counter = ProgressCounter(progress, phase: ProgressReport.writingSnapshot, total: contents.recordCount)
        func add(type: UInt8, _ encodePayload: (inout [UInt8]) -> Void) throws(StorageError) {
            let start = batch.count
            batch.append(type)
            batch.appendLittleEndian(UInt32(0))
            encodePayload(&batch)
            let length = UInt32(batch.count - start - 5)
            Swift.withUnsafeBytes(of: length.littleEndian) { lengthBytes in
                for index in 0..<4 { batch[start + 1 + index] = lengthBytes[index] }
            }
            entries += 1
            counter.advance()
            if batch.count >= 1 << 20 {
                uncompressed += UInt64(batch.count)
                try compressor.compress(batch, finish: false, into: file)
                batch.removeAll(keepingCapacity: true)
            }
        }
        // First, so that what follows is read as a cluster node's (remembered answers add no uses).
        if let position = contents.changePosition {
            try add(type: MutationCodec.changePositionType) {
                MutationCodec.encodePayload(.changePosition(position), into: &$0)
            }
        }
        try contents.records.forEach { (record) throws(StorageError) in
            try add(type: MutationCodec.putType) { MutationCodec.encodePut(record, into: &$0) }
        }
        func add(_ mutation: KeyMutation) throws(StorageError) {
            try add(type: MutationCodec.type(of: mutation)) { MutationCodec.encodePayload(mutation, into: &$0) }
        }
        for (clientID, token) in contents.clientTokens {
            try add(.setClientToken(clientID: clientID, token: token))
        }
        for shard in contents.usage {
            for (orderID, counts) in shard.counts { try add(.setUsage(orderID: orderID, counts: counts)) }
        }
        for answer in contents.remembered { try add(.remember(answer)) }
        for key in contents.retired { try add(.retire(key)) }
        uncompressed += UInt64(batch.count)
        try compressor.compress(batch, finish: true, into: file)
        counter.finish()

        let header = Header(
            lastSequence: contents.lastSequence, nextOrderID: contents.nextOrderID, entryCount: entries,
            uncompressedBytes: uncompressed, compressedBytes: compressor.outputBytes)
        var trailer: [UInt8] = []
        trailer.appendLittleEndian(header.lastSequence)
        trailer.appendLittleEndian(header.nextOrderID)
        trailer.appendLittleEndian(header.entryCount)
        trailer.appendLittleEndian(header.uncompressedBytes)
        trailer.appendLittleEndian(header.compressedBytes)
        trailer.appendLittleEndian(compressor.outputChecksum)
        trailer.appendLittleEndian(JournalFormat.hash(trailer[...]))
        try file.write(trailer)
        try afterStep(.temporaryWritten)
        try file.sync()
        try afterStep(.temporarySynced)
        return header
    }

    /// Verifies a snapshot, tells `verified` its header, then hands every entry to `apply`;
    /// throws, applying nothing, when any check fails before decompression.
    static func read(
        _ path: String, files: any FileLayer, verified: (Header) -> Void = { _ in }, apply: (KeyMutation) -> Void
    ) throws(StorageError) -> Header {
        let bytes = try files.read(path)
        guard bytes.count >= magic.count + trailerSize, Array(bytes[0..<magic.count]) == magic else {
            throw StorageError("\(path): not a snapshot (bad magic or too short)")
        }
        let trailerStart = bytes.count - trailerSize
        var reader = ByteReader(bytes[trailerStart...])
        let header = Header(
            lastSequence: reader.uint64()!, nextOrderID: reader.int64()!, entryCount: reader.uint64()!,
            uncompressedBytes: reader.uint64()!, compressedBytes: reader.uint64()!)
        let payloadChecksum = reader.uint64()!
        let trailerChecksum = reader.uint64()!
        guard JournalFormat.hash(bytes[trailerStart..<(trailerStart + 48)]) == trailerChecksum else {
            throw StorageError("\(path): trailer checksum mismatch")
        }
        let compressed = bytes[magic.count..<trailerStart]
        guard UInt64(compressed.count) == header.compressedBytes else {
            throw StorageError("\(path): \(compressed.count) compressed bytes, trailer says \(header.compressedBytes)")
        }
        guard JournalFormat.hash(compressed) == payloadChecksum else {
            throw StorageError("\(path): payload checksum mismatch")
        }
        verified(header)

        // Inflating and decoding run on a thread of their own, a batch ahead of the caller's
        // thread, which applies: on two cores a start-up waits for the longer of the two halves
        // instead of their sum.
        // A queue of its own, not a global one: a global queue runs as many blocks as there are
        // cores, so callers blocked here on global-queue threads could leave the decoding no
        // thread to run on. A private queue always gets one.
        let pipe = DecodedEntryPipe()
        DispatchQueue(label: "APIKeyEngine.snapshot-decoder").async { decodeEntries(compressed, into: pipe) }
        while let batch = pipe.take() {
            for mutation in batch { apply(mutation) }
        }
        let decoded = try pipe.outcome.get()
        let (entries, total) = (decoded.entries, decoded.bytes)
        if let failure = decoded.failure { throw StorageError("\(path): \(failure)") }
        guard decoded.leftoverBytes == 0, entries == header.entryCount, total == header.uncompressedBytes else {
            throw StorageError(
                "\(path): \(entries) entries and \(total) bytes, trailer says \(header.entryCount) and \(header.uncompressedBytes)"
            )
        }
        return header
    }
}

extension SnapshotFile {
    /// Entries handed to the applying thread at a time.
    static let decodedBatchSize = 4096

    /// Inflates `compressed` and decodes its entries into `pipe`, a batch at a time, then tells
    /// the pipe how it went (``DecodedEntries``), or the inflation's error.
    fileprivate static func decodeEntries(_ compressed: ArraySlice<UInt8>, into pipe: DecodedEntryPipe) {
        var pending: [UInt8] = []
        var entries: UInt64 = 0
        var total: UInt64 = 0
        var decodeFailure: String?
        var batch: [KeyMutation] = []
        batch.reserveCapacity(decodedBatchSize)
        do throws(StorageError) {
            try Decompressor.inflate(compressed) { chunk in
                total += UInt64(chunk.count)
                // Decode from an immutable copy: slicing a captured, mutable array costs a
                // uniqueness check per access, which dominated loading.
                let bytes = pending.isEmpty ? chunk : pending + chunk
                var offset = 0
                while decodeFailure == nil, bytes.count - offset >= 5 {
                    var entryReader = ByteReader(bytes[(offset + 1)..<(offset + 5)])
                    let length = Int(entryReader.uint32()!)
                    guard bytes.count - offset - 5 >= length else { break }
                    if let mutation = MutationCodec.decode(
                        type: bytes[offset], payload: bytes[(offset + 5)..<(offset + 5 + length)])
                    {
                        batch.append(mutation)
                        entries += 1
                        if batch.count == decodedBatchSize {
                            pipe.put(batch)
                            batch.removeAll(keepingCapacity: true)
                        }
                    } else {
                        decodeFailure = "entry \(entries) does not decode"
                    }
                    offset += 5 + length
                }
                pending = Array(bytes[offset...])
            }
        } catch {
            pipe.put(batch)
            pipe.finish(.failure(error))
            return
        }
        pipe.put(batch)
        pipe.finish(
            .success(
                DecodedEntries(entries: entries, bytes: total, leftoverBytes: pending.count, failure: decodeFailure)))
    }
}

/// What decoding a snapshot's stream came to.
private struct DecodedEntries {
    /// Entries decoded.
    var entries: UInt64
    /// Bytes the stream inflated to.
    var bytes: UInt64
    /// Bytes at the end that make no whole entry (a stream cut short).
    var leftoverBytes: Int
    /// The first entry that failed to decode (nothing after it was decoded).
    var failure: String?
}

/// Batches of decoded snapshot entries, from the thread that inflates and decodes to the thread
/// that applies them, at most ``capacity`` batches ahead; then how the decoding went.
private final class DecodedEntryPipe: @unchecked Sendable {
    static let capacity = 4
    private let monitor = Monitor()
    private var batches: [[KeyMutation]] = []
    private var finished: Result<DecodedEntries, StorageError>?

    /// Adds a batch, waiting while the pipe is full.
    func put(_ batch: [KeyMutation]) {
        guard !batch.isEmpty else { return }
        monitor.withLock {
            while batches.count >= Self.capacity { monitor.wait() }
            batches.append(batch)
            monitor.broadcast()
        }
    }

    /// Says the decoding is over; no batch follows.
    func finish(_ outcome: Result<DecodedEntries, StorageError>) {
        monitor.withLock {
            finished = outcome
            monitor.broadcast()
        }
    }

    /// The next batch, waiting for it; nil once the decoding is over and every batch taken.
    func take() -> [KeyMutation]? {
        monitor.withLock {
            while batches.isEmpty && finished == nil { monitor.wait() }
            guard !batches.isEmpty else { return nil }
            monitor.broadcast()
            return batches.removeFirst()
        }
    }

    /// How the decoding went; only once ``take()`` has returned nil.
    var outcome: Result<DecodedEntries, StorageError> {
        monitor.withLock { finished! }
    }
}

/// A zlib deflate stream writing to a file, with an XXH3-64 of everything it writes.
private final class Compressor {
    private var stream = z_stream()
    private let checksumState: OpaquePointer
    private var output = [UInt8](repeating: 0, count: 1 << 18)
    private(set) var outputBytes: UInt64 = 0

    init(level: Int32) throws(StorageError) {
        guard let state = XXH3_createState() else { throw StorageError("cannot allocate a checksum state") }
        checksumState = state
        XXH3_64bits_reset(checksumState)
        let status = deflateInit_(&stream, level, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            XXH3_freeState(checksumState)
            throw StorageError("zlib deflateInit failed: \(status)")
        }
    }

    deinit {
        deflateEnd(&stream)
        XXH3_freeState(checksumState)
    }

    var outputChecksum: UInt64 { XXH3_64bits_digest(checksumState) }

    func compress(_ input: [UInt8], finish: Bool, into file: any AppendFile) throws(StorageError) {
        var input = input
        let outputCapacity = output.count
        var status: Int32 = Z_OK
        var produced: [UInt8] = []
        input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            repeat {
                output.withUnsafeMutableBufferPointer { outputBuffer in
                    stream.next_out = outputBuffer.baseAddress
                    stream.avail_out = UInt32(outputCapacity)
                    status = deflate(&stream, finish ? Z_FINISH : Z_NO_FLUSH)
                }
                let count = outputCapacity - Int(stream.avail_out)
                produced.append(contentsOf: output[0..<count])
            } while stream.avail_out == 0 || (finish && status == Z_OK)
            stream.next_in = nil
        }
        guard status == Z_OK || status == Z_BUF_ERROR || (finish && status == Z_STREAM_END) else {
            throw StorageError("zlib deflate failed: \(status)")
        }
        produced.withUnsafeBytes { _ = XXH3_64bits_update(checksumState, $0.baseAddress, $0.count) }
        outputBytes += UInt64(produced.count)
        try file.write(produced)
    }
}

/// Inflates a zlib stream, handing the output over in chunks.
private enum Decompressor {
    static func inflate(_ input: ArraySlice<UInt8>, _ consume: ([UInt8]) -> Void) throws(StorageError) {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw StorageError("zlib inflateInit failed")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: 1 << 20)
        let capacity = output.count
        var status: Int32 = Z_OK
        var input = Array(input)
        input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            while status == Z_OK {
                output.withUnsafeMutableBufferPointer { outputBuffer in
                    stream.next_out = outputBuffer.baseAddress
                    stream.avail_out = UInt32(capacity)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let count = capacity - Int(stream.avail_out)
                if count > 0 { consume(Array(output[0..<count])) }
                if status == Z_BUF_ERROR && stream.avail_in == 0 { break }
            }
        }
        guard status == Z_STREAM_END, stream.avail_in == 0 else {
            throw StorageError("zlib stream is damaged or cut short (status \(status))")
        }
    }
}

import Synchronization

@testable import APIKeyEngine

#if canImport(Glibc)
    import Glibc
#endif

/// A file layer over real files that holds every write back until its file is fsynced, as a
/// disk cache would, and can fail fsyncs and writes or simulate a power cut.
///
/// At a simulated crash each file's unsynced bytes are kept, dropped, cut at a random point or
/// garbled (a seeded choice, so a failing seed replays exactly); then every later call fails.
/// Directory operations (create, rename, remove) take effect at once, as on a filesystem that
/// journals its metadata in order.
public final class FaultyFileLayer: FileLayer, @unchecked Sendable {
    struct State {
        var files: [FaultyAppendFile] = []
        var crashed = false
        var failSyncs = false
        var syncDelayMicroseconds: UInt32 = 0
        var syncsHeld = false
        var failWrites = false
        /// Writes and fsyncs of files whose path ends so fail as on a full disk (ENOSPC).
        var noSpaceSuffix: String?
        /// Operations (writes and syncs) left before a crash; nil for never.
        var operationsBeforeCrash: Int?
        var syncCount = 0
        var generator: SplitMix64
    }

    public let real = PosixFileLayer()
    let state: Mutex<State>

    public init(seed: UInt64) {
        state = Mutex(State(generator: SplitMix64(seed: seed)))
    }

    public var syncCount: Int { state.withLock { $0.syncCount } }

    public func setFailSyncs(_ fail: Bool) { state.withLock { $0.failSyncs = fail } }
    public func setFailWrites(_ fail: Bool) { state.withLock { $0.failWrites = fail } }
    /// Makes every file sync take this long (a slow disk), for tests of what waits on one.
    public func setSyncDelay(microseconds: UInt32) { state.withLock { $0.syncDelayMicroseconds = microseconds } }
    /// Makes every file sync wait (polling every millisecond) until ``releaseSyncs()``: a disk that
    /// answers only when the test says so.
    public func holdSyncs() { state.withLock { $0.syncsHeld = true } }
    /// Lets held syncs, and every later one, go on.
    public func releaseSyncs() { state.withLock { $0.syncsHeld = false } }
    public func crash(afterOperations count: Int) { state.withLock { $0.operationsBeforeCrash = count } }
    public func setNoSpace(forPathsEnding suffix: String?) { state.withLock { $0.noSpaceSuffix = suffix } }

    /// Counts one write or sync of `path`; crashes when the countdown runs out.
    fileprivate func tick(_ kind: String, path: String = "") throws(StorageError) {
        let crashNow = state.withLock { state -> Bool in
            if state.crashed { return false }
            guard let left = state.operationsBeforeCrash else { return false }
            state.operationsBeforeCrash = left - 1
            return left <= 0
        }
        if crashNow { simulatePowerCut() }
        try checkAlive()
        let failure = state.withLock { state -> StorageError? in
            if kind == "sync" && state.failSyncs { return StorageError("injected fsync failure") }
            if kind == "write" && state.failWrites { return StorageError("injected write failure") }
            if let suffix = state.noSpaceSuffix, path.hasSuffix(suffix) {
                return .system("cannot write", path, errno: ENOSPC)
            }
            if kind == "sync" { state.syncCount += 1 }
            return nil
        }
        if let failure { throw failure }
        if kind == "sync" {
            let delay = state.withLock { $0.syncDelayMicroseconds }
            if delay > 0 { usleep(delay) }
            while state.withLock({ $0.syncsHeld }) { usleep(1000) }
        }
    }

    public func checkAlive() throws(StorageError) {
        if state.withLock({ $0.crashed }) { throw StorageError("simulated crash") }
    }

    /// The power cut: every file's unsynced bytes are kept, dropped, cut or garbled.
    public func simulatePowerCut() {
        let (files, generator) = state.withLock { state -> ([FaultyAppendFile], SplitMix64) in
            state.crashed = true
            return (state.files, state.generator)
        }
        var random = generator
        for file in files { file.applyCrash(&random) }
    }

    public func openForAppend(_ path: String) throws(StorageError) -> any AppendFile {
        try checkAlive()
        let file = FaultyAppendFile(layer: self, path: path, real: try real.openForAppend(path))
        state.withLock { $0.files.append(file) }
        return file
    }

    public func read(_ path: String) throws(StorageError) -> [UInt8] {
        try checkAlive()
        return try real.read(path)
    }

    public func truncate(_ path: String, to length: Int) throws(StorageError) {
        try checkAlive()
        try real.truncate(path, to: length)
    }

    public func rename(_ from: String, to: String) throws(StorageError) {
        try checkAlive()
        try real.rename(from, to: to)
    }

    public func remove(_ path: String) throws(StorageError) {
        try checkAlive()
        try real.remove(path)
    }

    public func list(_ directory: String) throws(StorageError) -> [String] {
        try checkAlive()
        return try real.list(directory)
    }

    public func syncDirectory(_ directory: String) throws(StorageError) {
        try tick("sync")
        try real.syncDirectory(directory)
    }
}

/// An append file whose writes wait in memory until `sync`.
public final class FaultyAppendFile: AppendFile, @unchecked Sendable {
    private unowned let layer: FaultyFileLayer
    private let path: String
    private let real: any AppendFile
    private let pending = Mutex<[UInt8]>([])

    public init(layer: FaultyFileLayer, path: String, real: any AppendFile) {
        self.layer = layer
        self.path = path
        self.real = real
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        try layer.tick("write", path: path)
        pending.withLock { $0.append(contentsOf: bytes) }
    }

    public func sync() throws(StorageError) {
        try layer.tick("sync", path: path)
        let bytes = pending.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
        try real.write(bytes)
        try real.sync()
    }

    /// Reserves at once, on the real file: the zeros stand for space the disk already holds.
    public func reserve(through end: Int) throws(StorageError) {
        try layer.tick("write", path: path)
        try real.reserve(through: end)
    }

    fileprivate func applyCrash(_ random: inout SplitMix64) {
        var bytes = pending.withLock { $0 }
        guard !bytes.isEmpty else { return }
        switch random.next() % 4 {
        case 0: break
        case 1: bytes = []
        case 2: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
        default:
            for _ in 0..<(1 + random.next() % 4) {
                bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(1 + random.next() % 255)
            }
        }
        try? real.write(bytes)
        try? real.sync()
    }
}

import Synchronization

@testable import APIKeyEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A random source that plays back fixed bytes, cycling; it makes generated keys predictable.
final class ScriptedRandom: RandomSource {
    private let script: [UInt8]
    private let position = Mutex(0)

    init(_ script: [UInt8]) {
        precondition(!script.isEmpty)
        self.script = script
    }

    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        position.withLock { position in
            for index in 0..<buffer.count {
                buffer[index] = script[position % script.count]
                position += 1
            }
        }
    }
}

/// A key hash that sends every key to the same shard and the same first slot with the same tag,
/// so lookups must tell keys apart by their verifiers (and, reading the record, their bytes).
struct ConstantHash: KeyHashFunction {
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { 0x1234_5678_0000_0000 }
    func verifier(_ key: UnsafeRawBufferPointer) -> KeyVerifier { testVerifier.code(key) }
}

/// A key hash with only 4 distinct values: long probe runs, many shared tags, wrap-around.
struct TinyHash: KeyHashFunction {
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        let sum = key.reduce(UInt64(0)) { $0 &+ UInt64($1) }
        return (sum % 4) << 32 | (sum % 4)
    }
    func verifier(_ key: UnsafeRawBufferPointer) -> KeyVerifier { testVerifier.code(key) }
}

/// A key hash with one tag for all, whose verifier is the same for every key that starts with
/// `twin`: as if SipHash had collided, so the table must mark those slots and compare the keys.
struct TwinVerifierHash: KeyHashFunction {
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { 0x0bad_cafe_0000_0000 }
    func verifier(_ key: UnsafeRawBufferPointer) -> KeyVerifier {
        key.starts(with: "twin".utf8) ? KeyVerifier(low: 1, high: 1) : testVerifier.code(key)
    }
}

/// The verifier the test doubles use: SipHash under a fixed secret.
private let testVerifier = SipHash128(key0: 1, key1: 2)

extension Engine {
    /// An engine on a manual clock at 2026-01-01 00:00:00 UTC.
    static func testing(
        configuration: EngineConfiguration = EngineConfiguration(), random: any RandomSource = SystemRandomSource()
    ) -> (Engine, ManualClock) {
        let clock = ManualClock(seconds: 1_767_225_600)
        return (Engine(configuration: configuration, clock: clock, random: random), clock)
    }
}

/// Collects what recovery hands over, to compare with what was written.
final class CollectingTarget: RecoveryTarget {
    var mutations: [KeyMutation] = []
    var nextOrderID: Int64 = 1

    func reset() {
        mutations = []
        nextOrderID = 1
    }

    func apply(_ mutation: KeyMutation) { mutations.append(mutation) }

    func beginSnapshot(entryCount: Int) {}

    func endSnapshot() {}

    func raiseNextOrderID(to orderID: Int64) { nextOrderID = max(nextOrderID, orderID) }
}

extension Engine {
    /// What a crash leaves: background work stopped, the directory lock dropped, nothing synced.
    func abandonForTesting() {
        storageForTesting?.abandon()
    }
}

/// The permission bits of `path`.
func fileMode(_ path: String) -> UInt32 {
    var status = stat()
    guard stat(path, &status) == 0 else { return 0 }
    return UInt32(status.st_mode) & 0o777
}

extension StorageOptions {
    /// What the model-based tests open their directories with: no fsync, and snapshots only when
    /// a test asks for one.
    static var forModelTests: StorageOptions {
        var options = StorageOptions()
        options.fsync = .no
        options.snapshotIntervalSeconds = 0
        options.snapshotAfterJournalBytes = 1 << 30
        return options
    }
}

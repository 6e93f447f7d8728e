import APIKeyCrypto
import Crypto
import TestSupport
import Testing

@testable import APIKeyEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Hashed key storage, with the real HMAC-SHA-256 and real files.
@Suite struct HashedKeyStorageTests {
    private static let secret = Array(repeating: UInt8(ascii: "k"), count: 32)

    private func hashed(_ secret: [UInt8] = Self.secret) -> EngineConfiguration {
        var configuration = EngineConfiguration()
        configuration.keyStorage = .hashed(HMACKeyHasher(secret: secret)!)
        return configuration
    }

    private func options() -> StorageOptions {
        var options = StorageOptions()
        options.fsync = .always
        return options
    }

    /// Every file of `directory` as one run of bytes.
    private func contents(_ directory: TemporaryDirectory) -> [UInt8] {
        directory.names().filter { $0 != "key-secret" }.flatMap { directory.read($0) }
    }

    private func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let needle = Array(needle.utf8)
        guard haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains {
            haystack[$0..<($0 + needle.count)].elementsEqual(needle)
        }
    }

    @Test func theHasherIsHMACSHA256AndTheStoredFormIsItsBase64URL() throws {
        // RFC 4231, test case 6.
        let hasher = try #require(HMACKeyHasher(secret: Array(repeating: 0xaa, count: 131)))
        var code = [UInt8](repeating: 0, count: 32)
        var data = Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
        data.withUnsafeMutableBytes { data in
            code.withUnsafeMutableBytes { hasher.authenticationCode(of: UnsafeRawBufferPointer(data), into: $0) }
        }
        let hex = code.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        #expect(hex == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        // Python's hmac and base64.urlsafe_b64encode of the same key and secret.
        let storage = KeyStorage.hashed(try #require(HMACKeyHasher(secret: Self.secret)))
        #expect(
            storage.stored("BA907863-47C1A4F5-3CB914D3-AC927BDD")
                == "hmac-sha256:9qIWaf5SxnxzQFe7DNF1xqLaOrqAK5AIKSb4R6FQLJE")
        #expect(KeyStorage.isStoredHash("hmac-sha256:9qIWaf5SxnxzQFe7DNF1xqLaOrqAK5AIKSb4R6FQLJE"))
        #expect(!KeyStorage.isStoredHash("hmac-sha256:9qIWaf5SxnxzQFe7DNF1xqLaOrqAK5AIKSb4R6FQLJ"))
        #expect(!KeyStorage.isStoredHash("hmac-sha256:9qIWaf5SxnxzQFe7DNF1xqLaOrqAK5AIKSb4R6FQLJ="))
        #expect(HMACKeyHasher(secret: Array(repeating: 1, count: 31)) == nil)
        #expect(storage != KeyStorage.plain)
        #expect(storage == KeyStorage.hashed(try #require(HMACKeyHasher(secret: Self.secret))))
        #expect(storage != KeyStorage.hashed(try #require(HMACKeyHasher(secret: Array(repeating: 2, count: 32)))))
    }

    /// The same codes as swift-crypto's own HMAC, for secrets shorter than, as long as and longer
    /// than the block, and messages across the one-block boundary.
    @Test func theHasherAgreesWithSwiftCryptosHMAC() throws {
        var generator = SplitMix64(seed: 4231)
        #expect(try #require(HMACKeyHasher(secret: Self.secret, accelerated: false)).isAccelerated == false)
        for (secretLength, accelerated) in [32, 63, 64, 65, 131].flatMap({ [($0, true), ($0, false)] }) {
            let secret = (0..<secretLength).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let hasher = try #require(HMACKeyHasher(secret: secret, accelerated: accelerated))
            for messageLength in [0, 1, 35, 55, 56, 63, 64, 65, 119, 120, 128, 200, 1024] {
                var message = (0..<messageLength).map { _ in UInt8.random(in: 0...255, using: &generator) }
                var code = [UInt8](repeating: 0, count: 32)
                message.withUnsafeMutableBytes { message in
                    code.withUnsafeMutableBytes {
                        hasher.authenticationCode(of: UnsafeRawBufferPointer(message), into: $0)
                    }
                }
                let expected = Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
                #expect(
                    code == expected,
                    "secret \(secretLength) bytes, message \(messageLength), accelerated \(hasher.isAccelerated)")
            }
        }
    }

    /// Keys and tokens work as in plain storage, but only create, reset and token reset show
    /// one, and no file of the data directory holds any.
    @Test func aHashedEngineAnswersAsAPlainOneAndItsFilesHoldNoKey() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var shown: [String] = []
        var engine: Engine? = try Engine.open(directory: directory.path, options: options(), configuration: hashed())
        let created = try engine!.create(NewKey(orderID: 1, clientID: 7, config: .object([])))
        shown.append(created.apiKey)
        #expect(!KeyStorage.isStoredHash(created.apiKey))
        #expect(try engine!.check(key: created.apiKey))
        let stored = try engine!.get(.orderID(1))
        #expect(stored.apiKey == engine!.configuration.keyStorage.stored(created.apiKey))
        #expect(try engine!.get(.key(created.apiKey)).orderID == 1)
        #expect(try engine!.withKey(key: created.apiKey) { $0.orderID } == 1)
        #expect(try engine!.getInfo(key: created.apiKey).valid)
        #expect(try engine!.usage(.key(created.apiKey)).orderID == 1)
        // The stored hash is not a key.
        #expect(throws: EngineError.keyNotFound) { try engine!.check(key: stored.apiKey) }
        for order in 2...20 { shown.append(try engine!.create(NewKey(orderID: Int64(order), clientID: 7)).apiKey) }
        try engine!.snapshot()
        // After the snapshot, a reset with grace and a token go to the journal.
        let reset = try engine!.reset(.orderID(2), graceSeconds: 3600)
        shown.append(reset.apiKey)
        #expect(try engine!.check(key: shown[1]), "the old key answers in its grace period")
        #expect(try engine!.check(key: reset.apiKey))
        let token = try engine!.resetClientToken(clientID: 7)
        shown.append(token)
        #expect(engine!.authenticateClient(token: token) == 7)
        #expect(engine!.clientTokens.map(\.token) == [engine!.configuration.keyStorage.stored(token)])
        // shown[n] is the key of order n + 1.
        try engine!.suspend(orderID: 3)
        #expect(try engine!.verify(key: shown[2]).code == .suspended)
        #expect(try engine!.verify(key: shown[3]).code == .valid)
        #expect(throws: EngineError.keyChangeRefused) {
            try engine!.update(KeyChanges(orderID: 5, apiKey: shown[4] + "x"))
        }
        try engine!.update(KeyChanges(orderID: 5, apiKey: shown[4]))
        #expect(engine!.integrityProblems() == [])
        let files = contents(directory)
        #expect(files.count > 0)
        for key in shown { #expect(!contains(files, key), "\(key) is in a file") }
        engine = nil

        // Reopened with the same secret (journal replay after the snapshot): all of it answers.
        let reopened = try Engine.open(directory: directory.path, options: options(), configuration: hashed())
        #expect(try reopened.check(key: created.apiKey))
        #expect(try reopened.check(key: reset.apiKey))
        #expect(try reopened.check(key: shown[1]))
        #expect(try !reopened.check(key: shown[2]))
        #expect(reopened.authenticateClient(token: token) == 7)
        #expect(reopened.integrityProblems() == [])
        try reopened.close()
        let closed = contents(directory)
        for key in shown { #expect(!contains(closed, key), "\(key) is in a file after close") }
    }

    @Test func aBatchedCheckHashesEveryKey() throws {
        let engine = Engine(configuration: hashed())
        var keys: [String] = []
        for order in Int64(1)...40 {
            keys.append(try engine.create(NewKey(orderID: order, clientID: 1)).apiKey)
            if order % 4 == 0 { try engine.suspend(orderID: order) }
        }
        let asked = keys + ["", "NO-SUCH-KEY", engine.configuration.keyStorage.stored(keys[0])]
        let answers = engine.check(keys: asked).map { try? $0.get() }
        #expect(answers == (1...40).map { $0 % 4 != 0 } + [nil, nil, nil])
        #expect(throws: EngineError.missingKey) { try engine.check(keys: [""])[0].get() }
    }

    @Test func aDirectoryOpensOnlyWithTheKeyStorageItWasWrittenWith() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try Engine.open(directory: directory.path, options: options(), configuration: hashed())
        let key = try engine.create(NewKey(orderID: 1, clientID: 1)).apiKey
        try engine.close()
        #expect(try Engine.holdsHashedKeys(directory: directory.path))
        #expect(throws: StorageError.self) { try Engine.open(directory: directory.path, options: options()) }
        let other = Array(repeating: UInt8(ascii: "z"), count: 40)
        #expect(throws: StorageError.self) {
            try Engine.open(directory: directory.path, options: options(), configuration: hashed(other))
        }
        // Refusals change nothing.
        let again = try Engine.open(directory: directory.path, options: options(), configuration: hashed())
        #expect(try again.check(key: key))
        try again.close()
        // Its file lost or edited, the directory still holds hashes: plain storage refuses it,
        // rather than take the hashes for keys.
        let marker = directory.read("key-storage")
        directory.write("key-storage", Array("plain\n".utf8))
        #expect(throws: StorageError.self) { try Engine.open(directory: directory.path, options: options()) }
        unlink(directory.path + "/key-storage")
        #expect(throws: StorageError.self) { try Engine.open(directory: directory.path, options: options()) }
        #expect(throws: StorageError.self) {
            try Engine.open(directory: directory.path, options: options(), configuration: hashed())
        }
        // Restored, without its line break, it opens again.
        directory.write("key-storage", Array(marker.dropLast()))
        let restored = try Engine.open(directory: directory.path, options: options(), configuration: hashed())
        #expect(try restored.check(key: key))
        try restored.close()

        let plainDirectory = TemporaryDirectory()
        defer { plainDirectory.remove() }
        let plain = try Engine.open(directory: plainDirectory.path, options: options())
        let plainKey = try plain.create(NewKey(orderID: 1, clientID: 1)).apiKey
        try plain.close()
        #expect(try !Engine.holdsHashedKeys(directory: plainDirectory.path))
        #expect(throws: StorageError.self) {
            try Engine.open(directory: plainDirectory.path, options: options(), configuration: hashed())
        }
        // A directory from before the marker file existed holds plain keys.
        unlink(plainDirectory.path + "/key-storage")
        #expect(throws: StorageError.self) {
            try Engine.open(directory: plainDirectory.path, options: options(), configuration: hashed())
        }
        let reopened = try Engine.open(directory: plainDirectory.path, options: options())
        #expect(try reopened.get(.orderID(1)).apiKey == plainKey)
        try reopened.close()
        #expect(plainDirectory.names().contains("key-storage"))

        // A directory that never held anything takes whatever it is opened with; one whose keys
        // were all deleted does not (its journal still holds them).
        let empty = TemporaryDirectory()
        defer { empty.remove() }
        try Engine.open(directory: empty.path, options: options()).close()
        try Engine.open(directory: empty.path, options: options(), configuration: hashed()).close()
        #expect(try Engine.holdsHashedKeys(directory: empty.path))
        let emptied = TemporaryDirectory()
        defer { emptied.remove() }
        let plainThenEmpty = try Engine.open(directory: emptied.path, options: options())
        try plainThenEmpty.create(NewKey(orderID: 1, clientID: 1))
        try plainThenEmpty.delete(orderID: 1)
        try plainThenEmpty.close()
        #expect(throws: StorageError.self) {
            try Engine.open(directory: emptied.path, options: options(), configuration: hashed())
        }
    }

    /// Import hashes plain keys and tokens on the way in and takes stored hashes (an export of an
    /// engine with the same secret) as they are; plain storage refuses a stored hash.
    @Test func importTakesPlainKeysAndStoredHashes() throws {
        let source = Engine(configuration: hashed())
        var batch = source.makeImport()
        let record = KeyRecord(
            orderID: 10, clientID: 3, apiKey: "legacy-key-10", config: .object([]), status: .active, expiresAt: nil,
            createdAt: 1_700_000_000, updatedAt: 1_700_000_000)
        try batch.add(record)
        try batch.addClientToken(clientID: 3, token: "legacy-token-3")
        try source.commit(batch)
        #expect(try source.check(key: "legacy-key-10"))
        #expect(source.authenticateClient(token: "legacy-token-3") == 3)
        let exported = try source.get(.orderID(10))
        #expect(KeyStorage.isStoredHash(exported.apiKey))

        let target = Engine(configuration: hashed())
        var restore = target.makeImport()
        try restore.add(exported)
        try restore.addClientToken(clientID: 3, token: source.clientTokens[0].token)
        try target.commit(restore)
        #expect(try target.check(key: "legacy-key-10"))
        #expect(target.authenticateClient(token: "legacy-token-3") == 3)
        #expect(try target.get(.orderID(10)).apiKey == exported.apiKey)

        // A damaged hash is refused, not hashed as if it were a key.
        let code = String(exported.apiKey.dropFirst(KeyStorage.hashPrefix.count))
        let cut = String(code.dropLast())
        let prefix = "hmac-sha256:"
        let damagedHashes: [String] = [
            prefix + cut, prefix + code + "=", "HMAC-SHA256:" + code, prefix, prefix + cut + "z",
            prefix + String(code.dropLast(2)) + "/" + String(code.suffix(1)),
        ]
        for damaged in damagedHashes {
            var batch = target.makeImport()
            var record = exported
            record.apiKey = damaged
            record.orderID = 99
            #expect(throws: EngineError.self, "\(damaged)") { try batch.add(record) }
        }

        var refused = Engine().makeImport()
        #expect(throws: EngineError.self) { try refused.add(exported) }
        #expect(throws: EngineError.self) {
            try refused.addClientToken(clientID: 3, token: source.clientTokens[0].token)
        }
    }

    /// A power cut under acknowledged writes in hashed storage loses none of them, and what is
    /// left on disk holds no key.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func aPowerCutLosesNoAcknowledgedWriteAndLeavesNoKey(seed: UInt64) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let files = FaultyFileLayer(seed: seed)
        let engine = try Engine.open(
            directory: directory.path, options: options(), configuration: hashed(), files: files)
        var keys: [Int64: String] = [:]
        for order in Int64(1)...40 {
            keys[order] = try engine.create(NewKey(orderID: order, clientID: 1 + order % 3)).apiKey
            if order % 10 == 0 { keys[order - 5] = try engine.reset(.orderID(order - 5)).apiKey }
        }
        files.simulatePowerCut()
        engine.storageForTesting?.abandon()
        let reopened = try Engine.open(directory: directory.path, options: options(), configuration: hashed())
        for (order, key) in keys {
            #expect(try reopened.check(key: key), "order \(order)")
        }
        #expect(reopened.keyCount == 40)
        #expect(reopened.integrityProblems() == [])
        let left = contents(directory)
        for key in keys.values { #expect(!contains(left, key)) }
        try reopened.close()
    }
}

import Foundation
import PropertyBased
import Synchronization
import TestSupport
import Testing

@testable import APIKeyEngine

/// A flag one task sets and others poll.
final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

@Suite struct KeyTableTests {
    private func record(_ key: String, order: Int64, client: Int64 = 1) -> KeyRecord {
        KeyRecord(
            orderID: order, clientID: client, apiKey: key, config: .object([]), status: .active, expiresAt: nil,
            createdAt: 0, updatedAt: 0)
    }

    @Test func findsOnlyTheExactKey() {
        let table = KeyTable(shardCountLog2: 2, hashFunction: SeededKeyHash(seed: 42, verifierKey: (42, ~42)))
        #expect(table.insert(record("AB-CD", order: 1)))
        #expect(table.record("AB-CD")?.orderID == 1)
        #expect(table.record("ab-cd")?.orderID == nil)
        #expect(table.record("ABCD")?.orderID == nil)
        #expect(table.record("AB-CD ")?.orderID == nil)
        #expect(table.record("")?.orderID == nil)
    }

    @Test func prefetchIsOnlyAHint() {
        let table = KeyTable(shardCountLog2: 2, hashFunction: SeededKeyHash(seed: 42, verifierKey: (42, ~42)))
        for order in 1...100 { #expect(table.insert(record("KEY-\(order)", order: Int64(order)))) }
        // Any bytes, known keys or not, empty, long: nothing read beyond the table, nothing changed.
        for bytes in [[UInt8](), Array("KEY-7".utf8), Array("nope".utf8), [UInt8](repeating: 0xFF, count: 4096)] {
            bytes.withUnsafeBytes { table.prefetch(hash: table.hash($0)) }
        }
        #expect(table.count == 100)
        #expect(table.record("KEY-7")?.orderID == 7)
        #expect(table.record("nope") == nil)
    }

    @Test func aSharedHashNeverMatchesAnotherKey() {
        let table = KeyTable(shardCountLog2: 0, hashFunction: ConstantHash())
        for index in 0..<100 { #expect(table.insert(record("key-\(index)", order: Int64(index + 1)))) }
        for index in 0..<100 { #expect(table.record("key-\(index)")?.orderID == Int64(index + 1)) }
        #expect(table.record("key-100")?.orderID == nil)
        #expect(!table.insert(record("key-7", order: 500)))
        #expect(table.count == 100)
    }

    /// Keys whose tag and verifier collide (SipHash never does in practice; the test double does
    /// for keys starting `twin`) each answer with their own status: their slots are marked, and
    /// a lookup that reaches a marked slot compares the record's key.
    @Test func keysSharingAVerifierAreToldApartByTheirRecords() {
        let table = KeyTable(shardCountLog2: 0, hashFunction: TwinVerifierHash())
        let statuses: [String: KeyStatus] = [
            "twin-a": .active, "twin-b": .suspended, "twin-c": .canceled, "solo": .suspended,
        ]
        for (order, key) in statuses.keys.sorted().enumerated() {
            #expect(
                table.insert(
                    KeyRecord(
                        orderID: Int64(order + 1), clientID: 1, apiKey: key, config: .object([]),
                        status: statuses[key]!, expiresAt: nil, createdAt: 0, updatedAt: 0)))
        }
        #expect(table.structuralProblems() == [])
        for (key, status) in statuses { #expect(table.validity(bytes(key))?.status == status) }
        #expect(table.validity(bytes("twin-d")) == nil)
        #expect(table.validity(bytes("other")) == nil)
        // A twin removed: the others still compare keys and still answer their own status.
        #expect(table.remove(orderID: 3, hash: table.hash("twin-b"))?.apiKey == "twin-b")
        #expect(table.validity(bytes("twin-a"))?.status == .active)
        #expect(table.validity(bytes("twin-b")) == nil)
        #expect(table.validity(bytes("twin-c"))?.status == .canceled)
        #expect(table.structuralProblems() == [])
    }

    @Test func removalKeepsEveryProbeRunReachable() {
        let table = KeyTable(shardCountLog2: 0, hashFunction: TinyHash())
        let keys = (0..<200).map { "k\($0)" }
        for (index, key) in keys.enumerated() { _ = table.insert(record(key, order: Int64(index + 1))) }
        for key in keys.enumerated() where key.offset % 3 == 0 {
            #expect(table.remove(orderID: Int64(key.offset + 1), hash: table.hash(key.element))?.apiKey == key.element)
        }
        for (index, key) in keys.enumerated() {
            #expect(table.contains(key) == (index % 3 != 0), "key \(key)")
        }
    }

    @Test func replaceSwapsTheStoredRecord() {
        let table = KeyTable(shardCountLog2: 1, hashFunction: SeededKeyHash(seed: 1, verifierKey: (1, ~1)))
        _ = table.insert(record("K", order: 1, client: 5))
        var changed = record("K", order: 1, client: 6)
        changed.status = .suspended
        changed.config = .object([JSONMember("custom_tier", .string("pro"))])
        let old = table.replace(changed)
        #expect(old?.clientID == 5 && old?.status == .active)
        #expect(table.record("K") == changed)
        #expect(table.validity(bytes("K")) == KeyValidity(status: .suspended, expiresAt: nil))
        #expect(table.replace(record("missing", order: 2)) == nil)
        #expect(table.count == 1)
    }

    @Test func lockFreeReadsSeeStatusExpiryAndCustomParameters() {
        let table = KeyTable(shardCountLog2: 2, hashFunction: SeededKeyHash(seed: 9, verifierKey: (9, ~9)))
        var stored = record("KEY-1", order: 3, client: 7)
        stored.expiresAt = 1_900_000_000
        stored.config = .object([JSONMember("custom_tier", .string("pro")), JSONMember("length", .integer(8))])
        _ = table.insert(stored)
        #expect(table.validity(bytes("KEY-1")) == KeyValidity(status: .active, expiresAt: 1_900_000_000))
        #expect(table.validity(bytes("KEY-2")) == nil)
        var custom: String?
        var owners: (Int64, Int64)?
        #expect(
            table.withInfo(bytes("KEY-1"), hash: table.hash(bytes("KEY-1"))) { _, found, text in
                custom = String(decoding: text, as: UTF8.self)
                owners = (found.orderID, found.clientID)
            })
        #expect(custom == #"{"tier": "pro"}"#)
        #expect(owners?.0 == stored.orderID && owners?.1 == stored.clientID)
        var called = false
        #expect(!table.withInfo(bytes("key-1"), hash: table.hash(bytes("key-1"))) { _, _, _ in called = true })
        #expect(!called)
    }

    /// Records too big to share an arena chunk get one of their own; after `removeAll` the arena is
    /// reused and the table works as new.
    @Test func bigRecordsAndRemoveAll() {
        let table = KeyTable(shardCountLog2: 0, hashFunction: SeededKeyHash(seed: 4, verifierKey: (4, ~4)))
        let big = String(repeating: "x", count: 200_000)
        var large = record("BIG", order: 1)
        large.config = .object([JSONMember("custom_blob", .string(big))])
        #expect(table.insert(large))
        for index in 0..<2_000 { _ = table.insert(record("small-\(index)", order: Int64(index + 2))) }
        #expect(table.record("BIG") == large)
        table.removeAll()
        #expect(table.count == 0)
        // Every chunk, shared or a big record's own, went back: the shard holds nothing.
        #expect(
            table.arenaUsage().allSatisfy { $0.liveBytes == 0 && $0.sharedChunkBytes == 0 && $0.ownChunkBytes == 0 })
        #expect(table.structuralProblems() == [])
        #expect(table.record("BIG") == nil)
        #expect(table.record("small-5") == nil)
        #expect(table.insert(large))
        for index in 0..<3_000 { #expect(table.insert(record("again-\(index)", order: Int64(index + 2)))) }
        #expect(table.record("BIG") == large)
        #expect((0..<3_000).allSatisfy { table.record("again-\($0)")?.orderID == Int64($0 + 2) })
        #expect(table.count == 3_001)
    }

    /// Readers without locks while a writer replaces, removes, re-inserts and grows: a reader
    /// must never see a status from one version of a record with the custom text of another, a
    /// key that is always present must always be found, and a key never inserted never is.
    @Test func readersNeverSeeATornRecord() async {
        let table = KeyTable(shardCountLog2: 1, hashFunction: SeededKeyHash(seed: 11, verifierKey: (11, ~11)))
        @Sendable func version(_ key: String, order: Int64, _ round: Int) -> KeyRecord {
            // Status and text length both follow the round, so a torn read shows as a mismatch.
            let letter = round % 2 == 0 ? "a" : "b"
            return KeyRecord(
                orderID: order, clientID: 1, apiKey: key,
                config: .object([JSONMember("custom_round", .string(String(repeating: letter, count: 10 + round % 7)))]
                ),
                status: round % 2 == 0 ? .active : .suspended, expiresAt: nil, createdAt: 0, updatedAt: 0)
        }
        let stable = (0..<64).map { "stable-\($0)" }
        for (index, key) in stable.enumerated() { _ = table.insert(version(key, order: Int64(index + 1), 0)) }
        let done = AtomicFlag()
        let failures = Atomic<Int>(0)
        // Threads of their own, not tasks: spinning tasks would starve the other tests' tasks.
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
            let running = Atomic<Int>(3)
            let finish: @Sendable () -> Void = {
                if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finished.resume() }
            }
            Thread.detachNewThread {
                for round in 1...3_000 {
                    for (index, key) in stable.enumerated() {
                        _ = table.replace(version(key, order: Int64(index + 1), round))
                    }
                    _ = table.insert(version("churn-\(round)", order: Int64(1000 + round), round))
                    if round % 3 == 0 {
                        table.remove(orderID: Int64(999 + round), hash: table.hash("churn-\(round - 1)"))
                    }
                }
                done.set()
                finish()
            }
            for reader in 0..<2 {
                Thread.detachNewThread {
                    var index = reader
                    while !done.isSet {
                        let key = stable[index % stable.count]
                        index += 1
                        var consistent = false
                        let found = Array(key.utf8).withUnsafeBytes { keyBytes in
                            table.withInfo(keyBytes, hash: table.hash(keyBytes)) { validity, _, custom in
                                // {"round": "<letters>"}: 13 bytes around the letters.
                                let letter = validity.status == .active ? "a" : "b"
                                let expected =
                                    #"{"round": ""# + String(repeating: letter, count: custom.count - 13) + #""}"#
                                consistent =
                                    String(decoding: custom, as: UTF8.self) == expected
                                    && (10..<17).contains(custom.count - 13)
                            }
                        }
                        if !found || !consistent { failures.add(1, ordering: .relaxed) }
                        // The slot alone answers this one: always found, never torn into no status.
                        let validity = Array(key.utf8).withUnsafeBytes { table.validity($0) }
                        if validity == nil || validity?.expiresAt != nil { failures.add(1, ordering: .relaxed) }
                        let absent = Array("never-\(index % 100)".utf8).withUnsafeBytes { table.validity($0) == nil }
                        if !absent { failures.add(1, ordering: .relaxed) }
                    }
                    finish()
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(table.count == 64 + 3_000 - 1_000)
    }

    /// `key` as bytes that live as long as the test process (a few bytes per call).
    private func bytes(_ key: String) -> UnsafeRawBufferPointer {
        let stored = UnsafeMutableRawBufferPointer.allocate(byteCount: key.utf8.count, alignment: 1)
        stored.copyBytes(from: key.utf8)
        return UnsafeRawBufferPointer(stored)
    }

    /// Random inserts, removals, updates and reads against a plain dictionary: after every step
    /// both agree on every key of the pool, through the lookups that read the record and through
    /// `validity`, which reads the slot alone (with ``ConstantHash`` every key shares one tag).
    @Test(arguments: [0, 1, 2])
    func behavesLikeADictionary(_ hashKind: Int) async {
        await propertyCheck(count: 150, input: Gen.int(in: 0...1_000_000).array(of: 1...300)) { operations in
            switch hashKind {
            case 0:
                Self.check(
                    operations, KeyTable(shardCountLog2: 2, hashFunction: SeededKeyHash(seed: 7, verifierKey: (7, ~7))))
            case 1: Self.check(operations, KeyTable(shardCountLog2: 0, hashFunction: TinyHash()))
            default: Self.check(operations, KeyTable(shardCountLog2: 0, hashFunction: ConstantHash()))
            }
        }
    }

    private static func check<Hash>(_ operations: [Int], _ table: KeyTable<Hash>) {
        var model: [String: Int64] = [:]
        var statuses: [String: KeyStatus] = [:]
        let pool = (0..<40).map { "key-\($0)" }
        for (step, operation) in operations.enumerated() {
            let key = pool[operation / 4 % pool.count]
            switch operation % 4 {
            case 0:
                let inserted = table.insert(
                    KeyRecord(
                        orderID: Int64(step + 1), clientID: 1, apiKey: key, config: .object([]), status: .active,
                        expiresAt: nil, createdAt: 0, updatedAt: 0))
                #expect(inserted == (model[key] == nil))
                if inserted {
                    model[key] = Int64(step + 1)
                    statuses[key] = .active
                }
            case 1:
                #expect(
                    table.remove(orderID: model[key] ?? 0, hash: table.hash(key))?.orderID
                        == model.removeValue(forKey: key))
                statuses[key] = nil
            case 2:
                let changed = table.replace(
                    KeyRecord(
                        orderID: model[key] ?? 0, clientID: Int64(step + 100), apiKey: key, config: .object([]),
                        status: .suspended, expiresAt: nil, createdAt: 0, updatedAt: 0))
                #expect((changed != nil) == (model[key] != nil))
                if changed != nil { statuses[key] = .suspended }
            default:
                #expect(table.record(key)?.orderID == model[key])
                #expect(Array(key.utf8).withUnsafeBytes { table.validity($0)?.status } == statuses[key])
            }
        }
        for key in pool {
            #expect(table.record(key)?.orderID == model[key])
            #expect(Array(key.utf8).withUnsafeBytes { table.validity($0)?.status } == statuses[key])
        }
        #expect(table.count == model.count)
        #expect(table.structuralProblems() == [])
    }

    /// Custom-parameter lengths that matter to the arena: empty, small, and those that put a
    /// record (about twice the length plus 140 bytes) on both sides of every chunk size, the
    /// largest record that shares a chunk (64 KiB) among them.
    static let interestingBlobSizes: [Int] = {
        var sizes = [0, 1, 7, 8, 100, 200, 1_000, 2_000, 3_000]
        for boundary in [4096, 8192, 16384, 32768, 65536, 131072] {
            sizes += [boundary / 2 - 90, boundary / 2 - 70, boundary / 2 - 50]
        }
        return sizes
    }()

    /// A record for `key` whose config holds a custom parameter of `blobSize` characters, so the
    /// record takes about twice that in the arena.
    static func record(_ key: String, order: Int64, client: Int64, blobSize: Int, round: Int) -> KeyRecord {
        let letter = String(UnicodeScalar(UInt8(97 + round % 26)))
        return KeyRecord(
            orderID: order, clientID: client, apiKey: key,
            config: .object([
                JSONMember("custom_blob", .string(String(repeating: letter, count: blobSize))),
                JSONMember("custom_round", .integer(Int64(round))),
            ]),
            status: KeyStatus.allCases[round % 3], expiresAt: round % 2 == 0 ? nil : Int64(round),
            createdAt: Int64(round), updatedAt: Int64(round) + 1)
    }

    /// Random inserts, replacements and removals of records of every size, against a dictionary
    /// of whole records: after every step every record reads back byte for byte (config and
    /// custom text included), the structure checks out, and every shard's arena stays within its
    /// bound; at the end a copy of the table (what a snapshot takes) rebuilds the same table.
    @Test(arguments: [0, 1])
    func matchesAModelAcrossEveryRecordSize(_ shardCountLog2: Int) async {
        let sizes = Self.interestingBlobSizes
        let runs = FuzzBudget.scaled(25)
        await HeavyWork.run {
            await propertyCheck(count: runs, input: Gen.uint64(in: 0...UInt64.max).array(of: 1...100)) { operations in
                let table = KeyTable(
                    shardCountLog2: shardCountLog2,
                    hashFunction: SeededKeyHash(seed: operations[0], verifierKey: (operations[0], 7)))
                var model: [String: KeyRecord] = [:]
                let pool = (0..<24).map { "key-\($0)" }
                for (step, operation) in operations.enumerated() {
                    let key = pool[Int(operation >> 8 % UInt64(pool.count)) % pool.count]
                    let blobSize = sizes[Int((operation >> 16) % UInt64(sizes.count))]
                    let candidate = Self.record(
                        key, order: model[key]?.orderID ?? Int64(step + 1), client: Int64(step % 5 + 1),
                        blobSize: blobSize, round: step)
                    switch operation % 8 {
                    case 0, 1, 2:
                        let inserted = table.insert(candidate)
                        #expect(inserted == (model[key] == nil))
                        if inserted { model[key] = candidate }
                    case 3, 4, 5:
                        let old = table.replace(candidate)
                        #expect(old?.clientID == model[key]?.clientID)
                        #expect(old?.status == model[key]?.status)
                        if old != nil { model[key] = candidate }
                    default:
                        let removed = table.remove(orderID: model[key]?.orderID ?? 0, hash: table.hash(key))
                        #expect(removed == model.removeValue(forKey: key))
                    }
                    for key in pool { #expect(table.record(key) == model[key], "step \(step), \(key)") }
                    #expect(table.structuralProblems() == [], "step \(step)")
                    Self.expectArenaWithinBound(table)
                }
                let copy = table.copyRecords()
                let rebuilt = KeyTable(shardCountLog2: 3, hashFunction: SeededKeyHash(seed: 5, verifierKey: (5, ~5)))
                copy.forEach { view in #expect(rebuilt.insert(view.record)) }
                for key in pool { #expect(rebuilt.record(key) == model[key]) }
                #expect(rebuilt.count == model.count)
                #expect(rebuilt.structuralProblems() == [])
            }
        }
    }

    /// The documented bound: a shard's shared chunks hold at most six times its live bytes or
    /// 24 KiB, whichever is more; a chunk of its own is at most twice its record.
    static func expectArenaWithinBound<Hash>(_ table: KeyTable<Hash>, _ comment: Comment? = nil) {
        for (shard, usage) in table.arenaUsage().enumerated() {
            #expect(
                usage.sharedChunkBytes <= 6 * max(usage.liveBytes, 4096),
                "shard \(shard): \(usage.sharedChunkBytes) bytes of chunks for \(usage.liveBytes) live \(comment ?? "")"
            )
        }
    }

    /// Records of 2 KiB to 64 KiB among small ones: each lands whole in a chunk at least its size
    /// (an arena that put them in a smaller chunk wrote past its end into other records).
    @Test func largeRecordsAmongSmallOnesStayExact() {
        let table = KeyTable(shardCountLog2: 0, hashFunction: SeededKeyHash(seed: 8, verifierKey: (8, ~8)))
        var expected: [KeyRecord] = []
        for index in 0..<600 {
            let blob = index % 25 == 0 ? 3_000 + index * 20 : 0
            let record = Self.record("mixed-\(index)", order: Int64(index + 1), client: 1, blobSize: blob, round: index)
            #expect(table.insert(record))
            expected.append(record)
        }
        #expect(expected.allSatisfy { table.record($0.apiKey) == $0 })
        #expect(table.structuralProblems() == [])
    }

    /// Churn that changes every record's size again and again: the arena compacts, so its memory
    /// stays within the bound instead of growing with every size ever written.
    @Test func churnAcrossSizesStaysBounded() async {
        await HeavyWork.run {
            let table = KeyTable(shardCountLog2: 2, hashFunction: SeededKeyHash(seed: 12, verifierKey: (12, ~12)))
            let keys = (0..<200).map { "churn-\($0)" }
            for (index, key) in keys.enumerated() {
                _ = table.insert(Self.record(key, order: Int64(index + 1), client: 1, blobSize: 100, round: 0))
            }
            for round in 1...FuzzBudget.scaled(60) {
                for (index, key) in keys.enumerated() {
                    let blob = (round * 37 + index * 11) % 16_000
                    _ = table.replace(
                        Self.record(key, order: Int64(index + 1), client: 1, blobSize: blob, round: round))
                }
                Self.expectArenaWithinBound(table, "round \(round)")
            }
            #expect(table.structuralProblems() == [])
            #expect(table.memoryUsage.pooledBytes > 0, "compaction handed chunks back")
        }
    }

    @Test func growsFarBeyondItsInitialCapacity() {
        let table = KeyTable(shardCountLog2: 1, hashFunction: SeededKeyHash(seed: 3, verifierKey: (3, ~3)))
        for index in 0..<20_000 { #expect(table.insert(record("grow-\(index)", order: Int64(index + 1)))) }
        #expect(table.count == 20_000)
        #expect((0..<20_000).allSatisfy { table.record("grow-\($0)")?.orderID == Int64($0 + 1) })
    }
}

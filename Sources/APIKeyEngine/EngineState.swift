import CXXHash
import Synchronization

/// What the engine knows: the key table (read without a lock) and, under the write lock, the
/// indexes and client tokens (``WriteState``). Applies ``KeyMutation``s deterministically, so
/// live writes, snapshot loading and journal replay all end in the same state; it is the target
/// recovery loads into and the source snapshots copy from. It never touches the disk.
final class EngineState: Sendable {
    let table: KeyTable<SeededKeyHash>
    /// Each order's usage meter and limits, beside the table (see ``UsageTable`` for the locks).
    let usage = UsageTable()
    /// Keys replaced by a reset with a grace period, still answering for their orders.
    let retired = RetiredKeys()
    /// Verify answers kept for their request IDs. Lock order: this, then a usage shard.
    let remembered: Mutex<RememberedAnswers>
    private let state: Mutex<WriteState>
    /// Seed of the keyed hash that indexes client tokens.
    private let tokenSeed: UInt64

    init(shardCountLog2: Int, random: any RandomSource, idempotencyEntries: Int = 0) {
        table = KeyTable(
            shardCountLog2: shardCountLog2,
            hashFunction: SeededKeyHash(seed: random.uint64(), verifierKey: (random.uint64(), random.uint64())))
        tokenSeed = random.uint64()
        state = Mutex(WriteState())
        remembered = Mutex(RememberedAnswers(capacity: idempotencyEntries))
    }

    /// Runs `body` with the write lock held.
    func withLock<R, E: Error>(_ body: (inout WriteState) throws(E) -> R) throws(E) -> R {
        try state.withLock { (state) throws(E) -> R in try body(&state) }
    }

    /// The whole state for a snapshot; call with the write lock held. Usage and remembered
    /// answers change without the write lock, so they are copied with their locks all held, and
    /// `lastSequence` (the journal's rotation) runs at that same moment: no use can fall between.
    func snapshotContents<E: Error>(
        _ state: borrowing WriteState, lastSequence: () throws(E) -> UInt64
    ) throws(E) -> SnapshotFile.Contents {
        let (sequence, usageShards, answers) = try remembered.withLock {
            (answers) throws(E) -> (UInt64, [UsageTable.Copy], [RememberedVerification]) in
            try usage.withEveryShard { (shards) throws(E) in (try lastSequence(), shards, answers.all) }
        }
        return SnapshotFile.Contents(
            lastSequence: sequence, nextOrderID: state.nextOrderID, records: table.copyRecords(),
            clientTokens: state.tokensByClientID,
            usage: usageShards, remembered: answers, retired: retired.all, changePosition: state.changePosition,
            recordCount: UInt64(state.orders.count + state.tokenByClient.count))
    }

    /// The record of order `orderID`; call with the write lock held.
    func record(orderID: Int64, _ state: borrowing WriteState) -> KeyRecord? {
        state.orders[orderID].flatMap { hash in table.record(orderID: orderID, hash: hash) }
    }

    /// The index key of a client token.
    func tokenDigest(_ token: String) -> TokenDigest {
        var token = token
        let hash = token.withUTF8 { XXH3_128bits_withSeed($0.baseAddress, $0.count, tokenSeed) }
        return TokenDigest(low: hash.low64, high: hash.high64)
    }

    // MARK: - Verify

    /// Decides a verify of the key with these bytes (whose hash is `hash`) at `now`, consuming
    /// `cost` when it passes, and calls `body` once with the answer and the key's custom-parameter
    /// text (`{}` for an unknown key) before returning what must become durable. `journal`
    /// appends a mutation to the journal; it runs with the order's usage shard held, so the
    /// journal has the order's uses in the order they were counted.
    ///
    /// With `requestDigest`, an answer remembered for it is given again and nothing is consumed;
    /// a new answer for a key that exists is remembered (and journaled) before it is given.
    func verify(
        keyBytes: UnsafeRawBufferPointer, hash: UInt64, cost: Int64, requestDigest: RequestDigest?,
        nowNanoseconds now: Int64, ledger: (any QuotaLedger)? = nil,
        journal: (KeyMutation) throws(EngineError) -> PendingDurability?,
        _ body: (Verification, UnsafeRawBufferPointer) -> Void
    ) throws(EngineError) -> PendingDurability? {
        guard let requestDigest else {
            // A use is its own record.
            return try decide(keyBytes, hash: hash, cost: cost, now: now, ledger: ledger, body) {
                (verification, use) throws(EngineError) in
                guard let use else { return nil }
                return try journal(.use(orderID: verification.orderID, month: use.month, count: use.used))
            }
        }
        return try remembered.withLock { (answers) throws(EngineError) -> PendingDurability? in
            if let (earlier, pending) = answers.answer(for: requestDigest, nowNanoseconds: now) {
                let found = table.withInfo(keyBytes, hash: hash) { _, _, custom in body(earlier.verification, custom) }
                if !found { Self.withEmptyObject { body(earlier.verification, $0) } }
                // Not acknowledged before the first answer is.
                return pending
            }
            // The use and the answer are one record: a crash keeps both or neither.
            return try decide(keyBytes, hash: hash, cost: cost, now: now, ledger: ledger, body) {
                (verification, use) throws(EngineError) in
                let answer = RememberedVerification(
                    digest: requestDigest, atNanoseconds: now, verification: verification, consumed: use)
                let pending = try journal(.remember(answer))
                answers.remember(answer, pending: pending, nowNanoseconds: now)
                return pending
            }
        }
    }

    /// Runs `body` on `{}`: the config of an unknown key.
    private static func withEmptyObject(_ body: (UnsafeRawBufferPointer) -> Void) {
        let text: StaticString = "{}"
        body(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// The verify itself, with the key's usage shard held while the key table is read, the rules
    /// run and the use is journaled and counted.
    /// `commit` journals what the verify decided (with the use it counts, nil for none) and
    /// returns what must become durable; it runs before the use is counted.
    private func decide(
        _ keyBytes: UnsafeRawBufferPointer, hash: UInt64, cost: Int64, now: Int64, followsRetired: Bool = true,
        ledger: (any QuotaLedger)?, _ body: (Verification, UnsafeRawBufferPointer) -> Void,
        commit: (Verification, UsageCount?) throws(EngineError) -> PendingDurability?
    ) throws(EngineError) -> PendingDurability? {
        var pending: PendingDurability?
        var failure: EngineError?
        let found = usage.withShard(keyHash: hash) { slots in
            table.withInfo(keyBytes, hash: hash) { validity, owners, custom in
                do throws(EngineError) {
                    let verification = try Self.applyRules(
                        validity, owners, custom: custom, keyHash: hash, cost: cost, now: now, slots: &slots,
                        ledger: ledger, commit: commit, pending: &pending)
                    body(verification, custom)
                } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        guard !found else { return pending }
        if followsRetired, let (_, currentKey) = retired.currentKey(of: keyBytes, nowNanoseconds: now) {
            // A key in its grace period verifies as its order's current key, on the same usage.
            var currentKey = currentKey
            let currentHash = table.hash(currentKey)
            return try currentKey.withUTF8 { bytes in
                Result { () throws(EngineError) -> PendingDurability? in
                    try decide(
                        UnsafeRawBufferPointer(bytes), hash: currentHash, cost: cost, now: now, followsRetired: false,
                        ledger: ledger, body, commit: commit)
                }
            }.get()
        }
        Self.withEmptyObject { body(.notFound, $0) }
        return pending
    }

    /// The rules for a key that exists: status, expiry, the key's bucket, the monthly quota; a
    /// use that passes is journaled, then counted.
    private static func applyRules(
        _ validity: KeyValidity, _ owners: KeyOwners, custom: UnsafeRawBufferPointer, keyHash: UInt64, cost: Int64,
        now: Int64, slots: inout UsageTable.Slots, ledger: (any QuotaLedger)?,
        commit: (Verification, UsageCount?) throws(EngineError) -> PendingDurability?,
        pending: inout PendingDurability?
    ) throws(EngineError) -> Verification {
        let orderID = owners.orderID
        var index = slots.find(keyHash: keyHash, orderID: orderID)
        let month = UsageMonth(containingNanoseconds: now)
        var limits = UsageLimits()
        var meter = UsageMeter()
        if index == nil {
            // The key's first verify: its limits, read once from the record, get a slot.
            limits = UsageLimits(customParameters: custom)
            if limits != UsageLimits() {
                index = slots.store(UsageTable.Entry(keyHash: keyHash, orderID: orderID, limits: limits, meter: meter))
            }
        } else if let index {
            let slot = slots[index]
            limits = slot.limits
            // Earlier months are read only when this use moves the current month among them.
            meter = slot.meter(earlier: [])
            if slot.hasHistory, meter.rollsOver(to: month) { meter = slot.meter(history: slots.history) }
        }
        let rollsOver = meter.rollsOver(to: month)
        var denial: Verification.Code?
        switch validity.status {
        case .suspended: denial = .suspended
        case .canceled: denial = .canceled
        case .active: if !validity.isValid(now: { now }) { denial = .expired }
        }
        let decision = meter.use(
            cost: denial == nil ? cost : 0, limits: limits, nowNanoseconds: now, counting: ledger == nil)
        var code: Verification.Code
        switch (denial, decision.outcome) {
        case (let denial?, _): code = denial
        case (nil, .valid): code = .valid
        case (nil, .rateLimited): code = .rateLimited
        case (nil, .usageExceeded): code = .usageExceeded
        }
        // A cluster node passes a limited use only from what the cluster leased it; the meter
        // (the counts every node flushed) has refused what is plainly over already.
        // A cost of 0 asks too: it answers as a cost of 1 would.
        if code == .valid, let ledger, let limit = decision.limit {
            switch ledger.take(orderID: orderID, month: decision.current.month, cost: cost, limit: limit) {
            case .taken: break
            case .exhausted: code = .usageExceeded
            case .needsLease:
                throw EngineError.quotaLeaseNeeded(
                    LeaseRequest(orderID: orderID, month: decision.current.month, cost: max(cost, 1), limit: limit))
            }
        }
        var verification = Verification(code: code, orderID: orderID, clientID: owners.clientID)
        if let limit = decision.limit, let remaining = decision.remaining {
            // On a cluster node the meter holds the flushed counts; this node's own uses since
            // the last flush count too.
            let unflushed = ledger?.unflushed(orderID: orderID, month: decision.current.month) ?? 0
            let (used, overflow) = decision.current.used.addingReportingOverflow(unflushed)
            let usedNow = overflow ? .max : used
            verification.usage = Verification.Usage(
                month: decision.current.month, limit: limit, used: usedNow,
                remaining: unflushed == 0 ? remaining : max(0, limit - usedNow))
        }
        if let burst = decision.rateBurst, let tokens = decision.rateRemaining,
            let wait = decision.nanosecondsUntilNextToken
        {
            verification.rateLimit = Verification.RateLimit(
                limit: burst, remaining: tokens, resetInMilliseconds: (wait + 999_999) / 1_000_000)
        }
        let consumes = code == .valid && cost > 0
        // A cluster node journals no use: the ledger counts it for the cluster.
        let journaled = consumes && ledger == nil
        pending = try commit(verification, journaled ? UsageCount(month: decision.current.month, used: cost) : nil)
        if consumes, let ledger {
            ledger.count(orderID: orderID, month: decision.current.month, cost: cost, leased: decision.limit != nil)
        }
        if consumes {
            if let index, !rollsOver {
                slots.storeCurrent(meter, at: index)
            } else {
                slots.store(UsageTable.Entry(keyHash: keyHash, orderID: orderID, limits: limits, meter: meter))
            }
        }
        return verification
    }

    /// The usage of order `orderID` (whose key hashes to `keyHash`) in `month`, with its limit.
    func usage(orderID: Int64, keyHash: UInt64, month: UsageMonth) -> (used: Int64, limit: Int64?) {
        usage.withShard(keyHash: keyHash) { slots in
            guard let entry = slots.entry(keyHash: keyHash, orderID: orderID) else {
                // Never verified: nothing counted, and the limit is the record's.
                let record = table.record(orderID: orderID, hash: keyHash)
                return (0, record.map { UsageLimits(stored: $0) }?.monthlyLimit)
            }
            return (entry.meter.used(in: month), entry.limits.monthlyLimit)
        }
    }

    // MARK: - Applying mutations

    /// Applies a mutation to the table and the indexes; deterministic. Call with the write lock
    /// held.
    func apply(_ mutation: KeyMutation, to state: inout WriteState) {
        switch mutation {
        case .put(let record):
            if KeyStorage.isStoredHash(record.apiKey) { state.holdsStoredHashes = true }
            let newHash = table.hash(record.apiKey)
            let oldHash = state.isBulkLoading ? nil : state.orders[record.orderID]
            usage.put(orderID: record.orderID, from: oldHash, to: newHash, limits: { UsageLimits(stored: record) }) {
                put(record, keyHash: newHash, oldHash: oldHash, to: &state)
            }
            retired.endGrace(orderID: record.orderID, unlessReplacedBy: record.apiKey)
            state.raiseNextOrderID(past: record.orderID)
        case .delete(let orderID):
            retired.endGrace(orderID: orderID)
            guard let hash = state.orders.remove(orderID) else { return }
            usage.delete(orderID: orderID, keyHash: hash) {
                if let old = table.remove(orderID: orderID, hash: hash) {
                    state.removeFromClient(old.clientID, orderID)
                    state.keysByStatus.remove(old.status)
                }
            }
        case .setClientToken(let clientID, let token):
            if KeyStorage.isStoredHash(token) { state.holdsStoredHashes = true }
            if let old = state.tokenByClient[clientID] {
                state.clientByTokenDigest.removeValue(forKey: tokenDigest(old))
            }
            state.tokenByClient[clientID] = token
            state.clientByTokenDigest[tokenDigest(token)] = clientID
        case .use(let orderID, _, _), .resetUsage(let orderID, _), .setUsage(let orderID, _):
            if state.isBulkLoading {
                // The order index is sorted only once the snapshot is loaded.
                state.usageLoaded.append(mutation)
                return
            }
            guard let hash = state.orders[orderID] else { return }
            usage.withShard(keyHash: hash) { slots in
                Self.applyUsage(
                    mutation, keyHash: hash, limits: { limits(orderID: orderID, keyHash: hash) }, to: &slots)
            }
        case .remember(let answer):
            // A cluster node's counts come from the change log, its own uses included.
            if let use = answer.consumed, state.changePosition == nil {
                apply(.use(orderID: answer.verification.orderID, month: use.month, count: use.used), to: &state)
            }
            remembered.withLock { $0.remember(answer, pending: nil, nowNanoseconds: answer.atNanoseconds) }
        case .retire(let key):
            retired.add(key)
        case .changePosition(let position):
            state.changePosition = position
        }
    }

    /// The key table's part of a put; call with the write lock and the order's usage shards held.
    private func put(_ record: KeyRecord, keyHash: UInt64, oldHash: UInt64?, to state: inout WriteState) {
        state.keysByStatus.add(record.status)
        if state.isBulkLoading {
            // A snapshot holds each order once: nothing to replace, indexes sorted at the end.
            _ = table.insert(record)
            state.orders.appendUnsorted(record.orderID, keyHash: keyHash)
            state.ordersByClient[record.clientID, default: []].append(record.orderID)
        } else if let oldHash {
            // Keys are unique, so a record with this key is this order's: swapped in one step,
            // checks of the key never miss it.
            if let (oldClient, oldStatus) = table.replace(record) {
                state.keysByStatus.remove(oldStatus)
                if oldClient != record.clientID {
                    state.removeFromClient(oldClient, record.orderID)
                    state.addToClient(record.clientID, record.orderID)
                }
            } else {
                // A new key: added before the old one goes, so the order never misses (a key in
                // its grace period answers through the new one).
                _ = table.insert(record)
                let old = table.remove(orderID: record.orderID, hash: oldHash, otherThan: record.apiKey)
                if let old { state.keysByStatus.remove(old.status) }
                if let old, old.clientID != record.clientID {
                    state.removeFromClient(old.clientID, record.orderID)
                    state.addToClient(record.clientID, record.orderID)
                }
                state.orders.set(record.orderID, keyHash: keyHash)
            }
        } else {
            _ = table.insert(record)
            state.orders.set(record.orderID, keyHash: keyHash)
            state.addToClient(record.clientID, record.orderID)
        }
    }

    /// The limits the record of order `orderID` (whose key hashes to `keyHash`) sets.
    func limits(orderID: Int64, keyHash: UInt64) -> UsageLimits {
        table.record(orderID: orderID, hash: keyHash).map { UsageLimits(stored: $0) } ?? UsageLimits()
    }

    /// Applies a usage mutation to its order's shard (held by the caller), whose key hashes to
    /// `keyHash`; `limits` gives the record's limits when the order has no slot yet.
    static func applyUsage(
        _ mutation: KeyMutation, keyHash: UInt64, limits: () -> UsageLimits, to slots: inout UsageTable.Slots
    ) {
        let orderID: Int64
        switch mutation {
        case .use(let id, _, _), .resetUsage(let id, _), .setUsage(let id, _): orderID = id
        default: preconditionFailure("\(mutation) is not a usage mutation")
        }
        var entry =
            slots.entry(keyHash: keyHash, orderID: orderID)
            ?? UsageTable.Entry(keyHash: keyHash, orderID: orderID, limits: limits(), meter: UsageMeter())
        switch mutation {
        case .use(_, let month, let count): entry.meter.add(count, in: month)
        case .resetUsage(_, let month): entry.meter.reset(month: month)
        case .setUsage(_, let counts): entry.meter.setCounts(counts)
        default: break
        }
        slots.store(entry)
    }

    /// Why the state does not hold exactly what `mutation` stores, as the journal stores it (its
    /// encoded form decoded again); nil when it does. Checked after every commit in debug builds.
    func appliedProblems(_ mutation: KeyMutation, _ state: borrowing WriteState) -> String? {
        var payload: [UInt8] = []
        MutationCodec.encodePayload(mutation, into: &payload)
        guard let journaled = MutationCodec.decode(type: MutationCodec.type(of: mutation), payload: payload[...]),
            journaled == mutation
        else { return "the journal's form of \(mutation) decodes to something else" }
        switch journaled {
        case .put(let record):
            let stored = self.record(orderID: record.orderID, state)
            guard stored == record, table.record(record.apiKey) == record else {
                return
                    "order \(record.orderID) was journaled as \(record) but the table holds \(String(describing: stored))"
            }
        case .delete(let orderID):
            guard state.orders[orderID] == nil else { return "order \(orderID) was deleted but is still indexed" }
        case .setClientToken(let clientID, let token):
            guard state.tokenByClient[clientID] == token else { return "client \(clientID) token not applied" }
        case .retire(let key):
            guard retired.contains(key.key) else { return "the retired key of order \(key.orderID) was not kept" }
        case .changePosition(let position):
            guard state.changePosition == position else { return "change position \(position) not applied" }
        case .use, .resetUsage, .setUsage, .remember:
            break
        }
        return nil
    }

    // MARK: - Integrity

    /// What is wrong with the state; empty when all is well. Checks the key table's structure,
    /// and that the order index, the key index, the index by client and every record's bytes
    /// agree: each indexed order's record is found by its key, its config text is a JSON object
    /// as the encoder writes it, and its custom-parameter text is the one that config gives.
    /// Takes the write lock; reads every record.
    func integrityProblems(limit: Int) -> [String] {
        var problems = table.structuralProblems()
        state.withLock { state in
            if state.orders.count != table.count {
                problems.append("the order index holds \(state.orders.count) orders, the key table \(table.count) keys")
            }
            var recounted = KeyCounts()
            for entry in state.orders.entries where problems.count < limit {
                let orderID = entry.orderID
                guard let record = table.record(orderID: orderID, hash: entry.keyHash) else {
                    problems.append("order \(orderID) is indexed but its record is not in the key table")
                    continue
                }
                recounted.add(record.status)
                if let problem = recordProblem(record, state) { problems.append(problem) }
            }
            if problems.isEmpty, recounted != state.keysByStatus {
                problems.append("the counts by status are \(state.keysByStatus), the records say \(recounted)")
            }
            let clientIndexed = state.ordersByClient.values.reduce(0) { $0 + $1.count }
            if clientIndexed != state.orders.count {
                problems.append(
                    "the index by client holds \(clientIndexed) orders, the order index \(state.orders.count)")
            }
            let highestOrder = state.orders.entries.last?.orderID ?? 0
            if highestOrder != .max, state.nextOrderID <= highestOrder {
                problems.append("the next order ID \(state.nextOrderID) is not above the highest, \(highestOrder)")
            }
            for (clientID, token) in state.tokenByClient where state.clientByTokenDigest[tokenDigest(token)] != clientID
            {
                problems.append("client \(clientID)'s token is not indexed")
            }
        }
        return Array(problems.prefix(limit))
    }

    /// What is wrong with one indexed record; nil when nothing is.
    private func recordProblem(_ record: KeyRecord, _ state: borrowing WriteState) -> String? {
        let orderID = record.orderID
        if table.record(record.apiKey) != record { return "order \(orderID): a lookup by its key finds another record" }
        if state.ordersByClient[record.clientID]?.contains(orderID) != true {
            return "order \(orderID) is missing from client \(record.clientID)'s index"
        }
        guard orderID > 0, record.clientID > 0, !record.apiKey.isEmpty else {
            return "order \(orderID): order, client or key out of range"
        }
        guard let config = try? JSONValue.parse(record.configJSON), case .object = config,
            config.encoded[...] == record.configJSON
        else { return "order \(orderID): the config text is not a JSON object as written" }
        if CustomParameters.encodedObject(of: config)[...] != record.customParametersJSON {
            return "order \(orderID): the custom parameters do not match the config"
        }
        if let expiresAt = record.expiresAt, !(Timestamp.minimumSeconds...Timestamp.maximumSeconds).contains(expiresAt)
        {
            return "order \(orderID): expires_at \(expiresAt) is out of range"
        }
        return nil
    }
}

extension EngineState {
    /// Recovers `directory` into this (empty) state, reporting progress, and drops the retired
    /// keys whose grace period ended while nothing ran.
    func recover(
        directory: String, files: any FileLayer, clock: any EngineClock, progress: ProgressHandler?
    ) throws(StorageError) -> RecoveryReport {
        let target = ProgressRecoveryTarget(self, handler: progress)
        let report = try Recovery.recover(directory: directory, files: files, into: target)
        target.finish()
        retired.removeEnded(nowNanoseconds: clock.nowNanoseconds())
        return report
    }
}

extension EngineState: RecoveryTarget {
    func reset() {
        table.removeAll()
        usage.removeAll()
        retired.removeAll()
        remembered.withLock { $0 = RememberedAnswers(capacity: $0.capacity) }
        state.withLock { $0 = WriteState() }
    }

    func beginSnapshot(entryCount: Int) {
        table.reserveCapacity(entryCount)
        state.withLock { state in
            state.isBulkLoading = true
            state.orders.reserveCapacity(entryCount)
        }
    }

    func endSnapshot() {
        state.withLock { state in
            state.endBulkLoad()
            for mutation in state.usageLoaded { apply(mutation, to: &state) }
            state.usageLoaded = []
        }
    }

    func apply(_ mutation: KeyMutation) {
        state.withLock { apply(mutation, to: &$0) }
    }

    func raiseNextOrderID(to orderID: Int64) {
        state.withLock { state in state.nextOrderID = max(state.nextOrderID, orderID) }
    }
}

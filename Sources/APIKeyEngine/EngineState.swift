import CXXHash
import Synchronization

/// What the engine knows: the key table (read without a lock) and, under the write lock, the
/// indexes and client tokens (``WriteState``). Applies ``KeyMutation``s deterministically, so
/// live writes, snapshot loading and journal replay all end in the same state; it is the target
/// recovery loads into and the source snapshots copy from. It never touches the disk.
final class EngineState: Sendable {
    let table: KeyTable<SeededXXH3>
    private let state: Mutex<WriteState>
    /// Seed of the keyed hash that indexes client tokens.
    private let tokenSeed: UInt64

    init(shardCountLog2: Int, random: any RandomSource) {
        table = KeyTable(shardCountLog2: shardCountLog2, hashFunction: SeededXXH3(seed: random.uint64()))
        tokenSeed = random.uint64()
        state = Mutex(WriteState())
    }

    /// Runs `body` with the write lock held.
    func withLock<R, E: Error>(_ body: (inout WriteState) throws(E) -> R) throws(E) -> R {
        try state.withLock { (state) throws(E) -> R in try body(&state) }
    }

    /// The whole state for a snapshot; call with the write lock held.
    func snapshotContents(lastSequence: UInt64, _ state: borrowing WriteState) -> SnapshotFile.Contents {
        SnapshotFile.Contents(
            lastSequence: lastSequence, nextOrderID: state.nextOrderID, records: table.copyRecords(),
            clientTokens: state.tokenByClient.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
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

    // MARK: - Applying mutations

    /// Applies a mutation to the table and the indexes; deterministic. Call with the write lock
    /// held.
    func apply(_ mutation: KeyMutation, to state: inout WriteState) {
        switch mutation {
        case .put(let record):
            if state.isBulkLoading {
                // A snapshot holds each order once: nothing to replace, indexes sorted at the end.
                _ = table.insert(record)
                state.orders.appendUnsorted(record.orderID, keyHash: table.hash(record.apiKey))
                state.ordersByClient[record.clientID, default: []].append(record.orderID)
            } else if let oldHash = state.orders[record.orderID] {
                // Keys are unique, so a record with this key is this order's: swapped in one step,
                // checks of the key never miss it.
                if let oldClient = table.replace(record) {
                    if oldClient != record.clientID {
                        state.removeFromClient(oldClient, record.orderID)
                        state.addToClient(record.clientID, record.orderID)
                    }
                } else {
                    let old = table.remove(orderID: record.orderID, hash: oldHash)
                    _ = table.insert(record)
                    if let old, old.clientID != record.clientID {
                        state.removeFromClient(old.clientID, record.orderID)
                        state.addToClient(record.clientID, record.orderID)
                    }
                    state.orders.set(record.orderID, keyHash: table.hash(record.apiKey))
                }
            } else {
                _ = table.insert(record)
                state.orders.set(record.orderID, keyHash: table.hash(record.apiKey))
                state.addToClient(record.clientID, record.orderID)
            }
            state.raiseNextOrderID(past: record.orderID)
        case .delete(let orderID):
            guard let hash = state.orders.remove(orderID) else { return }
            if let old = table.remove(orderID: orderID, hash: hash) { state.removeFromClient(old.clientID, orderID) }
        case .setClientToken(let clientID, let token):
            if let old = state.tokenByClient[clientID] {
                state.clientByTokenDigest.removeValue(forKey: tokenDigest(old))
            }
            state.tokenByClient[clientID] = token
            state.clientByTokenDigest[tokenDigest(token)] = clientID
        }
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
            for entry in state.orders.entries where problems.count < limit {
                let orderID = entry.orderID
                guard let record = table.record(orderID: orderID, hash: entry.keyHash) else {
                    problems.append("order \(orderID) is indexed but its record is not in the key table")
                    continue
                }
                if let problem = recordProblem(record, state) { problems.append(problem) }
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

extension EngineState: RecoveryTarget {
    func reset() {
        table.removeAll()
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
        state.withLock { $0.endBulkLoad() }
    }

    func apply(_ mutation: KeyMutation) {
        state.withLock { apply(mutation, to: &$0) }
    }

    func raiseNextOrderID(to orderID: Int64) {
        state.withLock { state in state.nextOrderID = max(state.nextOrderID, orderID) }
    }
}

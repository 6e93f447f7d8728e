extension Engine {
    /// Keys a batched check loads ahead at once: enough waits to overlap, few enough that the
    /// lines loaded first are still in cache when they are read.
    static var checkGroupSize: Int { 16 }

    /// ``check(key:)`` of every key of `keys`, in order: each answer is what that returns (`true`,
    /// `false`) or throws (``EngineError/missingKey``, ``EngineError/keyNotFound``).
    ///
    /// Faster than one call per key once the table outgrows the caches: for each group of keys it
    /// first starts loading every key's slot (and computes its verifier meanwhile), and only then
    /// reads them, so the waits for memory overlap instead of following one another. With hashed
    /// key storage each key is hashed first.
    public func check(keys: [String]) -> [Result<Bool, EngineError>] {
        let storage = configuration.keyStorage
        let lookups = storage.isHashed ? keys.map { storage.stored($0) } : keys
        var answers: [Result<Bool, EngineError>] = []
        answers.reserveCapacity(keys.count)
        var places = [(hash: UInt64, verifier: KeyVerifier)](
            repeating: (0, KeyVerifier(low: 0, high: 0)), count: Self.checkGroupSize)
        let table = state.table
        var start = 0
        while start < keys.count {
            let group = start..<min(start + Self.checkGroupSize, keys.count)
            for index in group {
                places[index - start] = Self.withUTF8(lookups[index]) { bytes in
                    let hash = table.hash(bytes)
                    table.prefetch(hash: hash)
                    return (hash, table.verifier(bytes))
                }
            }
            for index in group {
                let place = places[index - start]
                if case .valid(let validity) = table.slotValidity(hash: place.hash, verifier: place.verifier) {
                    answers.append(.success(validity.isValid { clock.nowNanoseconds() }))
                    continue
                }
                guard !keys[index].isEmpty else {
                    answers.append(.failure(.missingKey))
                    continue
                }
                // Unknown, in a grace period, or sharing its verifier: the single check decides.
                answers.append(
                    Self.withUTF8(lookups[index]) { bytes in
                        Result { () throws(EngineError) in try check(stored: bytes, hash: place.hash) }
                    })
            }
            start = group.upperBound
        }
        return answers
    }

    /// Calls `body` with the UTF-8 bytes of `text`, copying them only when they are not stored
    /// contiguously.
    @inline(__always)
    private static func withUTF8<R>(_ text: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = text.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        var copy = text
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }
}

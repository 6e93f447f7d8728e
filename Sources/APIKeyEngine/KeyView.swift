/// What the engine holds for one key, borrowed for the length of ``Engine/withKey(key:_:)``: its
/// validity and the reason, its order and client, and its custom parameters read in place.
public struct KeyView {
    /// What a verify without metering would answer: ``Verification/Code/valid``, `suspended`,
    /// `canceled` or `expired` (never `notFound`: an unknown key throws instead).
    public let code: Verification.Code
    /// The key's order.
    public let orderID: Int64
    /// The client that owns the order.
    public let clientID: Int64
    /// When the key stops being valid, in seconds since the Unix epoch; nil for never.
    public let expiresAt: Int64?
    /// The custom parameters, valid only during the call.
    public let customParameters: CustomParameterView

    /// Whether the key is valid now.
    public var isValid: Bool { code == .valid }

    init(validity: KeyValidity, orderID: Int64, clientID: Int64, custom: UnsafeRawBufferPointer, now: () -> Int64) {
        switch validity.status {
        case .suspended: code = .suspended
        case .canceled: code = .canceled
        case .active: code = validity.isValid(now: now) ? .valid : .expired
        }
        self.orderID = orderID
        self.clientID = clientID
        self.expiresAt = validity.expiresAt
        self.customParameters = CustomParameterView(json: custom)
    }
}

extension Engine {
    /// Runs `body` on what the engine holds for `key` (see ``KeyView``): one lookup, no lock, no
    /// allocation (the record is copied on the stack), so per-order and per-tier logic needs no
    /// ``get(_:as:)``. Throws ``EngineError/missingKey`` for an empty key and
    /// ``EngineError/keyNotFound`` for an unknown one. A key in its grace period answers as its
    /// order's current key.
    @inlinable
    public func withKey<R>(key: String, _ body: (KeyView) -> R) throws(EngineError) -> R {
        var key = key
        return try key.withUTF8 { utf8 in
            Result { () throws(EngineError) in try withKey(keyBytes: UnsafeRawBufferPointer(utf8), body) }
        }.get()
    }

    /// ``withKey(key:_:)`` for the key with these UTF-8 bytes; `hash` is what
    /// ``prefetch(keyBytes:)`` returned for the same bytes, if it was called.
    @inlinable
    public func withKey<R>(
        keyBytes: UnsafeRawBufferPointer, hash: KeyHash? = nil, _ body: (KeyView) -> R
    )
        throws(EngineError) -> R
    {
        var answer: R?
        try visitKey(keyBytes: keyBytes, hash: hash) { answer = body($0) }
        return answer!
    }

    /// The non-generic body of ``withKey(keyBytes:hash:_:)``: calls `body` exactly once or throws.
    @usableFromInline
    func visitKey(keyBytes: UnsafeRawBufferPointer, hash: KeyHash?, _ body: (KeyView) -> Void) throws(EngineError) {
        guard keyBytes.count > 0 else { throw EngineError.missingKey }
        try withStoredKey(keyBytes, hash: hash) { (stored, hash) throws(EngineError) in
            let found = state.table.withInfo(stored, hash: hash) { validity, owners, custom in
                body(
                    KeyView(
                        validity: validity, orderID: owners.orderID, clientID: owners.clientID, custom: custom,
                        now: clock.nowNanoseconds))
            }
            guard !found else { return }
            guard let record = retiredRecord(stored) else { throw EngineError.keyNotFound }
            Array(record.customParametersJSON).withUnsafeBytes { custom in
                body(
                    KeyView(
                        validity: record.validity, orderID: record.orderID, clientID: record.clientID, custom: custom,
                        now: clock.nowNanoseconds))
            }
        }
    }
}

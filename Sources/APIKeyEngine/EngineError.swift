/// An error the engine reports to its caller: a message for people and a numeric code for programs.
///
/// Engine errors map one to one onto FOSSBilling's error envelope
/// (`{"result": null, "error": {"message": ..., "code": ...}}`). Module errors, the ones a caller
/// can fix by changing its input, carry ``EngineError/moduleErrorCode`` (9999).
public struct EngineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The code FOSSBilling gives every error raised by a service module.
    public static let moduleErrorCode = 9999

    /// The numeric code of the error envelope.
    public var code: Int
    /// The human-readable message of the error envelope.
    public var message: String

    /// Creates an error with a message and a code (9999 unless told otherwise).
    public init(_ message: String, code: Int = EngineError.moduleErrorCode) {
        self.message = message
        self.code = code
    }

    public var description: String { "\(message) (code \(code))" }
}

extension EngineError {
    /// `check`, `get_info` and friends were called without a key.
    public static let missingKey = EngineError("You must provide an API key to check it's validity.")
    /// No key with these bytes exists (or, for a client, none of theirs does).
    public static let keyNotFound = EngineError("API key does not exist")
    /// `update` was called without `order_id`.
    public static let missingOrderIDForUpdate = EngineError(
        "You must provide the API key order ID in order to update it.")
    /// No record carries the given `order_id`.
    public static let orderNotFound = EngineError("Order not found")
    /// `update` was given an `api_key` that differs from the stored one.
    public static let keyChangeRefused = EngineError(
        "To change the API key, please use the reset function rather than updating it.")
    /// `reset` was called with neither `order_id` nor `key`.
    public static let missingResetTarget = EngineError(
        "You must provide either the API key or API key order ID in order to reset it.")
    /// Ten freshly drawn keys all collided with existing ones.
    public static let generationExhausted = EngineError(
        "Maximum number of iterations reached while generating API key")
    /// A lifecycle or admin call that needs `order_id` was called without one.
    public static let missingOrderID = EngineError("You must provide the API key order ID.")
    /// `create` was called without `client_id`.
    public static let missingClientID = EngineError("You must provide the client ID that owns the API key.")

    /// The code of errors that mean the engine cannot take writes (HTTP 503).
    public static let unavailableCode = 503

    /// A write or fsync of the journal failed, or the engine is closed: nothing more is accepted.
    public static func writesStopped(_ failure: StorageError) -> EngineError {
        EngineError(
            "Writes are stopped: \(failure.message). This call is not acknowledged; reads go on. "
                + "Restart once the cause is fixed.",
            code: unavailableCode)
    }
}

/// An error the engine reports to its caller: a ``Code`` for programs, a message for people, and,
/// for a storage failure, the ``StorageError`` that caused it.
///
/// Two errors are equal when their codes are: the message explains, the code decides. How a
/// transport shows an error (FOSSBilling's envelope, an HTTP status) is the transport's business.
public struct EngineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is: `switch error.code { case .keyNotFound: ... }`.
    public enum Code: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// `check`, `get_info` and friends were called without a key.
        case missingKey
        /// No key with these bytes exists (or, for a client, none of theirs does).
        case keyNotFound
        /// A call that needs `order_id` was called without one.
        case missingOrderID
        /// No record carries the given `order_id`.
        case orderNotFound
        /// `create` was called without `client_id`.
        case missingClientID
        /// `reset` or `get` was called with neither `order_id` nor `key`.
        case missingReference
        /// `update` was given an `api_key` that differs from the stored one.
        case keyChangeRefused
        /// Ten freshly drawn keys all collided with existing ones.
        case generationExhausted
        /// A value is out of range or of the wrong kind (the message names it).
        case invalidArgument
        /// The order already has a key.
        case orderExists
        /// An imported key or client token is already another order's or client's.
        case keyExists
        /// The key's status does not allow this lifecycle step.
        case invalidTransition
        /// The engine holds as many keys as it may, or has no order ID left to assign.
        case capacityReached
        /// A journal write or fsync failed: writes are refused until the engine is opened again.
        case writesStopped
        /// The engine was closed: writes are refused, reads go on.
        case closed
        /// Writing a snapshot failed.
        case snapshotFailed
        /// A snapshot was asked for while one runs.
        case snapshotRunning
        /// A storage operation was asked of an engine that keeps its state in memory only.
        case noDataDirectory
        /// Multi-node mode: a verify waits for more of the key's monthly quota to be leased to
        /// this node; the server leases it and verifies again, so no client sees this code.
        case quotaLeaseNeeded

        /// The case's name, as `keyNotFound`.
        public var description: String { rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The human-readable message.
    public var message: String
    /// The storage failure behind ``Code/writesStopped`` and ``Code/snapshotFailed``.
    public var cause: StorageError?
    /// The lease a ``Code/quotaLeaseNeeded`` verify waits for.
    package var leaseRequest: LeaseRequest?

    /// An error with a code, a message and (for storage failures) the cause.
    public init(_ code: Code, _ message: String, cause: StorageError? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// A value out of range or of the wrong kind.
    static func invalid(_ message: String) -> EngineError { EngineError(.invalidArgument, message) }

    /// Whether two errors have the same code; their messages and causes are not compared.
    public static func == (left: EngineError, right: EngineError) -> Bool { left.code == right.code }

    /// Hashes the code alone, as `==` compares only the code.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The message followed by the code in parentheses.
    public var description: String { "\(message) (\(code))" }
}

extension EngineError {
    /// `check`, `get_info` and friends were called without a key.
    public static let missingKey = EngineError(.missingKey, "You must provide an API key to check it's validity.")
    /// No key with these bytes exists (or, for a client, none of theirs does).
    public static let keyNotFound = EngineError(.keyNotFound, "API key does not exist")
    /// `update` was called without `order_id`.
    public static let missingOrderIDForUpdate = EngineError(
        .missingOrderID, "You must provide the API key order ID in order to update it.")
    /// No record carries the given `order_id`.
    public static let orderNotFound = EngineError(.orderNotFound, "Order not found")
    /// `update` was given an `api_key` that differs from the stored one.
    public static let keyChangeRefused = EngineError(
        .keyChangeRefused, "To change the API key, please use the reset function rather than updating it.")
    /// `reset` was called with neither `order_id` nor `key`.
    public static let missingResetTarget = EngineError(
        .missingReference, "You must provide either the API key or API key order ID in order to reset it.")
    /// `get` was called with neither `order_id` nor `key`.
    public static let missingGetTarget = EngineError(
        .missingReference, "You must provide either the API key or API key order ID.")
    /// Ten freshly drawn keys all collided with existing ones.
    public static let generationExhausted = EngineError(
        .generationExhausted, "Maximum number of iterations reached while generating API key")
    /// A lifecycle or admin call that needs `order_id` was called without one.
    public static let missingOrderID = EngineError(.missingOrderID, "You must provide the API key order ID.")
    /// `create` was called without `client_id`.
    public static let missingClientID = EngineError(
        .missingClientID, "You must provide the client ID that owns the API key.")

    /// `usage` was called with none of `order_id`, `key` and `client_id`.
    public static let missingUsageTarget = EngineError(
        .missingReference, "You must provide the API key, its order ID or the client ID.")
    /// `verify` was given a cost that is not a whole number from 0 to 1,000,000,000.
    public static let invalidCost = EngineError(.invalidArgument, "cost must be a whole number from 0 to 1000000000")
    /// A reset's `grace_seconds` out of range or not a whole number.
    public static let invalidGrace = EngineError(
        .invalidArgument, "grace_seconds must be a whole number from 0 to \(DeferredWrites.maximumGraceSeconds)")
    /// `usage` was given a month that is not `YYYY-MM`.
    public static let invalidMonth = EngineError(
        .invalidArgument, "month must be a month written YYYY-MM, from 0001-01 to 9999-12")

    /// A write or fsync of the journal failed: nothing more is accepted.
    public static func writesStopped(_ failure: StorageError) -> EngineError {
        EngineError(
            .writesStopped,
            "Writes are stopped: \(failure.message). This call is not acknowledged; reads go on. "
                + "Restart once the cause is fixed.",
            cause: failure)
    }

    /// A write was asked of an engine after `Engine.close()`.
    public static let closed = EngineError(.closed, "The engine is closed: writes are refused, reads go on.")
}

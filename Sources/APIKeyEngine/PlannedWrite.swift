import Synchronization

/// The mutations a write comes to, collected instead of committed (``Engine/plan(_:)``).
final class PlannedMutations: Sendable {
    private let mutations = Mutex<[KeyMutation]>([])

    func add(_ mutation: KeyMutation) {
        mutations.withLock { $0.append(mutation) }
    }

    var all: [KeyMutation] { mutations.withLock { $0 } }
}

/// A write worked out against the engine's current state but not yet taken effect: its result
/// and the mutations that achieve it. Multi-node mode commits the mutations to the cluster's
/// system of record first, and applies them to the engine only once that commit succeeded.
package struct PlannedWrite<Value: Sendable>: Sendable {
    /// What the write answers (a created record, a new token, ...).
    package var value: Value
    /// What it changes, in order; empty when it changes nothing.
    package var mutations: [KeyMutation]
}

extension Engine {
    /// Runs `write` (one of ``deferred``'s methods) against the current state without changing
    /// anything: validation and generated keys as the write would have them, the mutations
    /// collected. The state must not change between this and ``applyReplicated(_:position:)``
    /// of the mutations (the caller serialises writes).
    package func plan<Value: Sendable>(
        _ write: (DeferredWrites) throws(EngineError) -> Written<Value>
    ) throws(EngineError) -> PlannedWrite<Value> {
        let planned = PlannedMutations()
        let written = try write(DeferredWrites(engine: self, planned: planned))
        return PlannedWrite(value: written.value, mutations: planned.all)
    }

    /// Journals and applies mutations that a cluster's change log holds, then records `position`
    /// (nil: more of the same change follows, as in a whole-table load in parts). Returns what
    /// must be durable before the node may say it holds them.
    package func applyReplicated(
        _ mutations: [KeyMutation], position: ChangePosition?
    ) throws(EngineError) -> PendingDurability? {
        try deferred.commitReplicated(mutations, position: position)
    }

    /// The cluster change log's position this state holds (multi-node mode); nil when none.
    package var changePosition: ChangePosition? {
        state.withLock { $0.changePosition }
    }

    /// Every order ID held, ascending (a whole-table load removes those the cluster lacks).
    package var orderIDs: [Int64] {
        state.withLock { writeState in writeState.orders.entries.map(\.orderID) }
    }
}

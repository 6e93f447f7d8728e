import APIKeyEngine
import CoreMetrics
import Synchronization

/// The cluster's metrics, through swift-metrics (the server exports them on `/metrics`).
struct ClusterMetrics: Sendable {
    private let up = Gauge(label: "apikeyd_postgres_up")
    private let reconnects = Counter(label: "apikeyd_postgres_reconnects_total")
    private let lagChanges = Gauge(label: "apikeyd_cluster_lag_changes")
    private let lagMilliseconds = Gauge(label: "apikeyd_cluster_lag_milliseconds")
    private let appliedChanges = Counter(label: "apikeyd_cluster_changes_applied_total")
    private let logPosition = Gauge(label: "apikeyd_cluster_log_position")
    private let writes = Counter(label: "apikeyd_cluster_writes_total", dimensions: [("result", "committed")])
    private let failedWrites = Counter(label: "apikeyd_cluster_writes_total", dimensions: [("result", "failed")])
    private let leases = Counter(label: "apikeyd_quota_leases_total")
    private let leasedUnits = Counter(label: "apikeyd_quota_leased_units_total")
    private let returnedUnits = Counter(label: "apikeyd_quota_returned_units_total")
    private let flushes = Counter(label: "apikeyd_usage_flushes_total")

    func postgresUp(_ isUp: Bool) { up.record(isUp ? 1 : 0) }
    func reconnect() { reconnects.increment() }
    func latestPosition(_ position: Int64) { logPosition.record(position) }
    func lag(changes: Int64) {
        lagChanges.record(changes)
        if changes == 0 { lagMilliseconds.record(0) }
    }

    /// A change applied; `committedAt` is its commit time in seconds since the epoch.
    func applied(committedAt: Double) {
        appliedChanges.increment()
        let now = Double(SystemClock().nowNanoseconds()) / 1e9
        lagMilliseconds.record(max(0, (now - committedAt) * 1000))
    }

    func write(succeeded: Bool) { (succeeded ? writes : failedWrites).increment() }
    func leased(_ units: Int64) {
        leases.increment()
        leasedUnits.increment(by: Int(units))
    }
    func returned(_ units: Int64) { returnedUnits.increment(by: Int(units)) }
    func flushed() { flushes.increment() }
}

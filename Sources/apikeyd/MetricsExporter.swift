import APIKeyAPI
import APIKeyEngine
import APIKeyServer
import Metrics
import Prometheus
import Synchronization

/// The `/metrics` text: swift-metrics bootstrapped onto a swift-prometheus registry (what the
/// engine and the router record: fsync durations, rate-limit refusals), figures read from the
/// engine and the server at scrape time (keys, verifications, connections, journal, snapshots),
/// and the server's per-event-loop request counters, summed and written by
/// ``RequestStatisticsSet`` (swift-prometheus's counters and histograms are one shared atomic
/// or lock per update, which the request path must not pay).
final class MetricsExporter: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let attached = Mutex<(engine: Engine, server: APIServer)?>(nil)
    /// Verifications already added to the counters, by code.
    private let exportedVerifications = Mutex<[Verification.Code: Int]>([:])

    private let keys: [(KeyStatus, Prometheus.Gauge)]
    private let verifications: [(Verification.Code, Prometheus.Counter)]
    private let connections: Prometheus.Gauge
    private let journalBytes: Prometheus.Gauge
    private let lastSnapshot: Prometheus.Gauge
    private let writesStopped: Prometheus.Gauge

    /// Bootstraps swift-metrics onto this exporter's registry; once per process, before the
    /// engine and the router are made (their metrics are created then).
    init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["apikeyd_journal_fsync_duration_seconds"] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        MetricsSystem.bootstrap(factory)
        keys = KeyStatus.allCases.map { status in
            (
                status,
                registry.makeGauge(
                    descriptor: Self.name("keys", help: "Keys held, by status."), labels: [("status", status.rawValue)])
            )
        }
        verifications = Verification.Code.allCases.map { code in
            (
                code,
                registry.makeCounter(
                    descriptor: Self.name("verifications", unit: "total", help: "Verify answers, by code."),
                    labels: [("code", "\(code.name)")])
            )
        }
        connections = registry.makeGauge(descriptor: Self.name("connections", help: "Connections open."))
        journalBytes = registry.makeGauge(
            descriptor: Self.name(
                "journal", unit: "bytes", help: "Journal bytes written since the newest snapshot began."))
        lastSnapshot = registry.makeGauge(
            descriptor: Self.name(
                "snapshot_last_success_timestamp", unit: "seconds",
                help: "When this process last wrote a snapshot (0: not yet)."))
        writesStopped = registry.makeGauge(
            descriptor: Self.name("writes_stopped", help: "1 when the journal failed and writes are refused."))
    }

    /// `apikeyd_<name>_<unit>` with its help text.
    private static func name(_ name: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "apikeyd", metricName: name, unitName: unit, helpText: help)
    }

    /// Starts reading figures from `engine` and `server`.
    func attach(engine: Engine, server: APIServer) {
        attached.withLock { $0 = (engine, server) }
    }

    /// The whole text for one scrape.
    func render() -> [UInt8] {
        if let (engine, server) = attached.withLock({ $0 }) {
            let statistics = engine.statistics
            for (status, gauge) in keys { gauge.set(to: Double(statistics.keysByStatus[status])) }
            connections.set(to: Double(server.openConnections))
            journalBytes.set(to: Double(statistics.journalBytes))
            lastSnapshot.set(to: Double(statistics.lastSnapshotSeconds ?? 0))
            writesStopped.set(to: statistics.writesStopped ? 1 : 0)
            let counts = engine.verificationCounts
            exportedVerifications.withLock { exported in
                for (code, counter) in verifications {
                    let total = counts[code] ?? 0
                    let delta = total - (exported[code] ?? 0)
                    if delta > 0 { counter.increment(by: Int64(delta)) }
                    exported[code] = total
                }
            }
        }
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        if let statistics = attached.withLock({ $0?.server.statistics }) {
            var text = ""
            statistics.render(into: &text)
            bytes += Array(text.utf8)
        }
        return bytes
    }
}

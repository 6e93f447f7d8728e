import APIKeyAPI
import Atomics

/// Request counts by endpoint and status, and latency histograms by endpoint, of one event
/// loop: only that loop's thread writes them (a relaxed load and store, no read-modify-write, no
/// lock), and a scrape sums every loop's (``RequestStatisticsSet``). A shared counter would put
/// one contended cache line on every request of every thread.
final class RequestStatistics: @unchecked Sendable {
    /// The statuses counted apart; any other is counted as the last, `other`.
    static let statuses: [Int] = [200, 400, 401, 403, 404, 405, 408, 413, 414, 429, 431, 500, 501, 503]
    /// Upper bounds of the latency buckets, in nanoseconds (the `+Inf` bucket is implicit).
    static let bucketBounds: [Int64] = [
        50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000,
    ]

    /// Per endpoint: a count per status (and other), a count per bucket (and `+Inf`), the sum
    /// of nanoseconds.
    static let cellsPerEndpoint = statuses.count + 1 + bucketBounds.count + 1 + 1
    private static let bucketsOffset = statuses.count + 1
    private static let sumOffset = bucketsOffset + bucketBounds.count + 1

    private let cells: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
    private let cellCount = EndpointLabel.names.count * cellsPerEndpoint

    init() {
        cells = .allocate(capacity: cellCount)
        cells.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: cellCount)
    }

    deinit {
        cells.deinitialize(count: cellCount)
        cells.deallocate()
    }

    /// Counts one answered request; call on the owning event loop only.
    func record(endpoint: Int, status: Int, nanoseconds: Int64) {
        let base = endpoint * Self.cellsPerEndpoint
        bump(base + Self.statusIndex(status), by: 1)
        bump(base + Self.bucketsOffset + Self.bucketIndex(nanoseconds), by: 1)
        bump(base + Self.sumOffset, by: UInt64(max(0, nanoseconds)))
    }

    private func bump(_ cell: Int, by amount: UInt64) {
        let atomic = UnsafeAtomic<UInt64>(at: cells + cell)
        atomic.store(atomic.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    /// Cell `cell` as the last relaxed store left it; any thread.
    func value(_ cell: Int) -> UInt64 {
        UnsafeAtomic<UInt64>(at: cells + cell).load(ordering: .relaxed)
    }

    static func statusIndex(_ status: Int) -> Int {
        switch status {
        case 200: 0
        case 400: 1
        case 401: 2
        case 403: 3
        case 404: 4
        case 405: 5
        case 408: 6
        case 413: 7
        case 414: 8
        case 429: 9
        case 431: 10
        case 500: 11
        case 501: 12
        case 503: 13
        default: statuses.count
        }
    }

    static func bucketIndex(_ nanoseconds: Int64) -> Int {
        var index = 0
        while index < bucketBounds.count, nanoseconds > bucketBounds[index] { index += 1 }
        return index
    }

    static func cell(endpoint: Int, statusIndex: Int) -> Int { endpoint * cellsPerEndpoint + statusIndex }
    static func cell(endpoint: Int, bucket: Int) -> Int { endpoint * cellsPerEndpoint + bucketsOffset + bucket }
    static func sumCell(endpoint: Int) -> Int { endpoint * cellsPerEndpoint + sumOffset }
}

/// Every event loop's ``RequestStatistics``, summed and written in the Prometheus text format
/// at scrape time.
public final class RequestStatisticsSet: Sendable {
    let loops: [RequestStatistics]

    init(count: Int) {
        loops = (0..<count).map { _ in RequestStatistics() }
    }

    /// `apikeyd_http_requests_total{endpoint,code}` and the histogram
    /// `apikeyd_http_request_duration_seconds{endpoint}`, for the endpoints that had requests.
    public func render(into text: inout String) {
        func sum(_ cell: Int) -> UInt64 { loops.reduce(0) { $0 &+ $1.value(cell) } }
        let endpoints = EndpointLabel.names
        text += "# HELP apikeyd_http_requests_total HTTP requests answered, by endpoint and status code.\n"
        text += "# TYPE apikeyd_http_requests_total counter\n"
        var histogram = "# HELP apikeyd_http_request_duration_seconds Time from a request's arrival to its answer.\n"
        histogram += "# TYPE apikeyd_http_request_duration_seconds histogram\n"
        for (endpoint, name) in endpoints.enumerated() {
            var total: UInt64 = 0
            for statusIndex in 0...RequestStatistics.statuses.count {
                let count = sum(RequestStatistics.cell(endpoint: endpoint, statusIndex: statusIndex))
                guard count > 0 else { continue }
                total &+= count
                let code =
                    statusIndex < RequestStatistics.statuses.count
                    ? String(RequestStatistics.statuses[statusIndex]) : "other"
                text += "apikeyd_http_requests_total{endpoint=\"\(name)\",code=\"\(code)\"} \(count)\n"
            }
            guard total > 0 else { continue }
            var cumulative: UInt64 = 0
            for (bucket, bound) in RequestStatistics.bucketBounds.enumerated() {
                cumulative &+= sum(RequestStatistics.cell(endpoint: endpoint, bucket: bucket))
                histogram +=
                    "apikeyd_http_request_duration_seconds_bucket{endpoint=\"\(name)\",le=\"\(Self.seconds(bound))\"} \(cumulative)\n"
            }
            cumulative &+= sum(RequestStatistics.cell(endpoint: endpoint, bucket: RequestStatistics.bucketBounds.count))
            histogram +=
                "apikeyd_http_request_duration_seconds_bucket{endpoint=\"\(name)\",le=\"+Inf\"} \(cumulative)\n"
            let seconds = Double(sum(RequestStatistics.sumCell(endpoint: endpoint))) / 1e9
            histogram += "apikeyd_http_request_duration_seconds_sum{endpoint=\"\(name)\"} \(seconds)\n"
            histogram += "apikeyd_http_request_duration_seconds_count{endpoint=\"\(name)\"} \(cumulative)\n"
        }
        text += histogram
    }

    /// A bucket bound in seconds as Prometheus clients write it (`0.00005`, `2.5`, `10`).
    static func seconds(_ nanoseconds: Int64) -> String {
        var text = String(nanoseconds / 1_000_000_000)
        var fraction = nanoseconds % 1_000_000_000
        guard fraction > 0 else { return text }
        var digits = ""
        for _ in 0..<9 {
            fraction *= 10
            digits.append(Character(String(fraction / 1_000_000_000)))
            fraction %= 1_000_000_000
        }
        while digits.last == "0" { digits.removeLast() }
        text += "." + digits
        return text
    }
}

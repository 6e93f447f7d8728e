import APIKeyAPI
import APIKeyEngine
import TestSupport
import Testing

@testable import APIKeyServer

/// The per-event-loop request counters: buckets, the summing of loops at scrape time, and the
/// Prometheus text they come to.
@Suite struct RequestStatisticsTests {
    @Test func latenciesFallInTheBucketOfTheirUpperBound() {
        let bounds = RequestStatistics.bucketBounds
        #expect(bounds == bounds.sorted())
        #expect(RequestStatistics.bucketIndex(0) == 0)
        #expect(RequestStatistics.bucketIndex(-5) == 0)
        for (index, bound) in bounds.enumerated() {
            #expect(RequestStatistics.bucketIndex(bound) == index)
            #expect(RequestStatistics.bucketIndex(bound + 1) == index + 1)
        }
        #expect(RequestStatistics.bucketIndex(.max) == bounds.count)
    }

    @Test func boundsAreWrittenAsPrometheusClientsWriteThem() {
        #expect(RequestStatisticsSet.seconds(50_000) == "0.00005")
        #expect(RequestStatisticsSet.seconds(2_500_000) == "0.0025")
        #expect(RequestStatisticsSet.seconds(1_000_000_000) == "1")
        #expect(RequestStatisticsSet.seconds(2_500_000_000) == "2.5")
        #expect(RequestStatisticsSet.seconds(10_000_000_000) == "10")
    }

    @Test func everyLoopIsSummedAndOnlyEndpointsWithRequestsAreWritten() {
        let set = RequestStatisticsSet(count: 3)
        let check = EndpointLabel.number(of: .check)
        let other = EndpointLabel.other
        for loop in set.loops.indices {
            for _ in 0..<10 { set.loops[loop].record(endpoint: check, status: 200, nanoseconds: 80_000) }
        }
        set.loops[1].record(endpoint: check, status: 429, nanoseconds: 3_000_000_000)
        set.loops[2].record(endpoint: other, status: 404, nanoseconds: 1_000)
        set.loops[2].record(endpoint: other, status: 418, nanoseconds: 1_000)
        var text = ""
        set.render(into: &text)
        let lines = Set(text.split(separator: "\n").map(String.init))
        let endpoint = #"endpoint="guest/serviceapikey/check""#
        #expect(lines.contains(#"apikeyd_http_requests_total{\#(endpoint),code="200"} 30"#))
        #expect(lines.contains(#"apikeyd_http_requests_total{\#(endpoint),code="429"} 1"#))
        #expect(lines.contains(#"apikeyd_http_requests_total{endpoint="other",code="404"} 1"#))
        #expect(lines.contains(#"apikeyd_http_requests_total{endpoint="other",code="other"} 1"#))
        #expect(lines.contains(#"apikeyd_http_request_duration_seconds_bucket{\#(endpoint),le="0.00005"} 0"#))
        #expect(lines.contains(#"apikeyd_http_request_duration_seconds_bucket{\#(endpoint),le="0.0001"} 30"#))
        #expect(lines.contains(#"apikeyd_http_request_duration_seconds_bucket{\#(endpoint),le="2.5"} 30"#))
        #expect(lines.contains(#"apikeyd_http_request_duration_seconds_bucket{\#(endpoint),le="5"} 31"#))
        #expect(lines.contains(#"apikeyd_http_request_duration_seconds_bucket{\#(endpoint),le="+Inf"} 31"#))
        #expect(lines.contains(#"apikeyd_http_request_duration_seconds_count{\#(endpoint)} 31"#))
        #expect(lines.contains(#"apikeyd_http_request_duration_seconds_sum{\#(endpoint)} 3.0024"#))
        #expect(!text.contains("get_info"), "endpoints without requests are not written")
        #expect(text.contains("# TYPE apikeyd_http_requests_total counter"))
        #expect(text.contains("# TYPE apikeyd_http_request_duration_seconds histogram"))
    }
}

import APIKeyEngine
import APIKeyLimiter
import CoreMetrics
import Logging
import Synchronization

/// The rate limits of SPEC section 6, as `apikeyd serve` options configure them.
public struct RateLimitConfiguration: Sendable {
    /// Every API request from an address takes a token from this bucket.
    public var general = TokenBucket.Rate(capacity: 20_000, refillPerSecond: 10_000)
    /// Failed key lookups and failed authentications take a token from this much stricter bucket;
    /// when it is empty, they are answered 429.
    public var failures = TokenBucket.Rate(capacity: 30, refillPerSecond: 30.0 / 60)
    /// Addresses never limited.
    public var allowList: [CIDRRange] = []
    /// Peers whose `X-Forwarded-For` is believed.
    public var trustedProxies: [CIDRRange] = []
    /// Entries per limiter table (each of the two buckets has its own table).
    public var tableCapacity = 100_000
    /// Whether limiting is on at all.
    public var isEnabled = true

    /// The defaults: 10,000 requests a second with bursts of 20,000 per address; 30 failures, one
    /// more every 2 seconds; no exempt address; no trusted proxy.
    public init() {}
}

/// Applies the two per-address buckets to API requests.
final class RequestLimiter: Sendable {
    let configuration: RateLimitConfiguration
    private let general: AddressLimiter
    private let failures: AddressLimiter
    private let clock: any EngineClock
    private let logger: Logger
    private let refusals: RefusalLog
    private let generalRefused = Counter(label: "apikeyd_rate_limited_total", dimensions: [("bucket", "general")])
    private let failedRefused = Counter(label: "apikeyd_rate_limited_total", dimensions: [("bucket", "failed")])
    /// Whether the warning about `X-Forwarded-For` from an untrusted peer was logged: once.
    private let untrustedForwardingLogged = Atomic(false)

    init(configuration: RateLimitConfiguration, clock: any EngineClock, logger: Logger) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        self.refusals = RefusalLog(logger: logger)
        general = AddressLimiter(rate: configuration.general, capacity: configuration.tableCapacity)
        failures = AddressLimiter(rate: configuration.failures, capacity: configuration.tableCapacity)
    }

    /// The address a request is charged to: the peer, or, when the peer is a trusted proxy, the
    /// rightmost `X-Forwarded-For` address that is not a trusted proxy (the leftmost when all
    /// are). An unreadable entry stops the walk at the address to its right.
    func clientAddress(peer: IPAddress, forwardedFor: [String]) -> IPAddress {
        guard !forwardedFor.isEmpty else { return peer }
        guard isTrustedProxy(peer) else {
            warnOfUntrustedForwarding(peer)
            return peer
        }
        var client = peer
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }
        for hop in hops.reversed() {
            var text = hop.trimmingCharacters(in: " \t")
            if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
                text = text[text.index(after: text.startIndex)..<close]
            }
            guard let address = IPAddress(text) else { break }
            client = address
            if !isTrustedProxy(address) { break }
        }
        return client
    }

    /// Behind a proxy that is not trusted, every client shares the proxy's address and its
    /// buckets: a few failed lookups from one lock out all. Said once per process.
    private func warnOfUntrustedForwarding(_ peer: IPAddress) {
        guard configuration.isEnabled,
            untrustedForwardingLogged.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        else { return }
        logger.warning(
            "requests carry X-Forwarded-For from a peer that is not a trusted proxy: they are rate limited by the peer's address, so all clients behind it share one limit; if it is your proxy, start with --trusted-proxy (logged once)",
            metadata: ["peer": "\(peer)"])
    }

    private func isTrustedProxy(_ address: IPAddress) -> Bool {
        configuration.trustedProxies.contains { $0.contains(address) }
    }

    /// The address to charge a request from `client` to: nil (never limited) for none, or when
    /// limiting is off or the address is allow-listed.
    func charged(_ client: IPAddress?) -> IPAddress? {
        guard let client, configuration.isEnabled, !configuration.allowList.contains(where: { $0.contains(client) })
        else { return nil }
        return client
    }

    /// Takes the general token of `address` for a request about to run, with one clock reading
    /// and one table lookup; a 429 answer (nothing taken) when the bucket is empty. Follow a
    /// request that failed a key lookup or an authentication with ``chargeFailure(_:)``.
    func admit(_ address: IPAddress) -> APIResponse? {
        let now = clock.nowNanoseconds()
        if case .refused(let wait) = general.take(address.limiterKey, nowNanoseconds: now) {
            generalRefused.increment()
            refusals.refused(address, bucket: "general", nowNanoseconds: now)
            return Self.tooManyRequests(wait)
        }
        return nil
    }

    /// Charges a failed request after ``admit(_:)``: one failure token, or, when the failure
    /// bucket is already empty, a 429 answer to send instead and the general token given back.
    func chargeFailure(_ address: IPAddress) -> APIResponse? {
        let key = address.limiterKey
        let now = clock.nowNanoseconds()
        if case .refused(let wait) = failures.take(key, nowNanoseconds: now) {
            general.giveBack(key)
            failedRefused.increment()
            refusals.refused(address, bucket: "failed", nowNanoseconds: now)
            return Self.tooManyRequests(wait)
        }
        return nil
    }

    static func tooManyRequests(_ waitNanoseconds: Int64?) -> APIResponse {
        let seconds = max(1, ((waitNanoseconds ?? 3_600_000_000_000) + 999_999_999) / 1_000_000_000)
        return .failure(
            status: 429, code: 429, "Rate limit exceeded. Please try again later.",
            headers: [("Retry-After", String(seconds))])
    }
}

import NIOCore
import Synchronization

/// Counts open connections against a cap.
final class ConnectionCounter: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    /// Counts one more connection; false (and nothing counted) when the cap is reached.
    func admit() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() { open.subtract(1, ordering: .relaxed) }

    /// Connections open now.
    var count: Int { open.load(ordering: .relaxed) }
}

/// The first handler of every connection, on raw bytes: closes a connection whose request does
/// not arrive in full within `requestTimeout` (a header sent a byte at a time, a half-open
/// client), and one that sends nothing for `idleTimeout` between requests.
///
/// A request's time runs from its first byte until the server starts writing the answer; idle
/// time runs while no request is under way. One repeating check per connection, every half of
/// the shorter timeout (the period), counts how many checks in a row have found the same request
/// under way, or the connection idle since the same moment; requests themselves only flip a flag,
/// with no clock reading and no timer (a timer scheduled and cancelled per request, or two clock
/// readings, cost measurably more: docs/ARCHITECTURE.md, "Performance history"). A
/// connection is closed once its state has lasted at least the limit: between the limit and the
/// limit plus one period when the limit is a whole number of periods (the defaults, 10 s and 60 s,
/// are), else plus two.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Checks in a row that must find the same state before the connection is closed.
    private let requestChecks: Int
    private let idleChecks: Int
    private let period: TimeAmount
    /// A request has begun arriving and its answer has not started.
    private var requestUnderWay = false
    /// The state (request under way or idle) changed since the last check.
    private var changed = true
    /// Checks in a row that found the state unchanged.
    private var unchangedChecks = 0
    private var check: RepeatedTask?

    init(requestTimeout: TimeAmount, idleTimeout: TimeAmount) {
        period = max(.milliseconds(100), .nanoseconds(min(requestTimeout, idleTimeout).nanoseconds / 2))
        // The state has lasted more than (checks - 1) periods when `checks` in a row found it.
        requestChecks = Self.checks(requestTimeout, period: period)
        idleChecks = Self.checks(idleTimeout, period: period)
    }

    private static func checks(_ limit: TimeAmount, period: TimeAmount) -> Int {
        Int((limit.nanoseconds + period.nanoseconds - 1) / period.nanoseconds) + 1
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startChecking(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startChecking(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !requestUnderWay {
            requestUnderWay = true
            changed = true
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if requestUnderWay {
            requestUnderWay = false
            changed = true
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
    }

    private func startChecking(context: ChannelHandlerContext) {
        guard check == nil else { return }
        changed = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            let (handler, context) = loopBound.value
            handler.closeIfOverdue(context: context)
        }
    }

    private func closeIfOverdue(context: ChannelHandlerContext) {
        if changed {
            changed = false
            unchangedChecks = 1
        } else {
            unchangedChecks += 1
        }
        if unchangedChecks >= (requestUnderWay ? requestChecks : idleChecks) {
            check?.cancel()
            check = nil
            context.close(promise: nil)
        }
    }
}

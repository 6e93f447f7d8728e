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
}

/// The first handler of every connection, on raw bytes: closes a connection whose request does
/// not arrive in full within `requestTimeout` (a header sent a byte at a time, a half-open
/// client), and one that sends nothing for `idleTimeout` between requests.
///
/// A request's time runs from its first byte until the server starts writing the answer; idle
/// time runs while no request is under way. Requests only record timestamps; one repeating check
/// per connection, every half of the shorter timeout, closes it when a limit has passed (so a
/// limit is enforced within 1 to 1.5 times its length). Scheduling and cancelling a timer per
/// request cost more than a quarter of the server's time under load.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let requestTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    /// When the request under way started; nil between requests.
    private var requestStarted: NIODeadline?
    /// When the connection last became idle.
    private var idleSince = NIODeadline.now()
    private var check: RepeatedTask?

    init(requestTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startChecking(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startChecking(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if requestStarted == nil { requestStarted = .now() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if requestStarted != nil {
            requestStarted = nil
            idleSince = .now()
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
        idleSince = .now()
        let period = max(.milliseconds(100), TimeAmount.nanoseconds(min(requestTimeout, idleTimeout).nanoseconds / 2))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            let (handler, context) = loopBound.value
            handler.closeIfOverdue(context: context)
        }
    }

    private func closeIfOverdue(context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        let overdue =
            if let requestStarted { now - requestStarted >= requestTimeout } else { now - idleSince >= idleTimeout }
        if overdue {
            check?.cancel()
            check = nil
            context.close(promise: nil)
        }
    }
}

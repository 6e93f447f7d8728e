import APIKeyAPI
import APIKeyLimiter
import NIOCore
import NIOEmbedded
import TestSupport
import Testing

@testable import APIKeyServer

/// ``ConnectionGuard`` on an embedded event loop whose clock the test moves: a limit is enforced
/// after at least its length and at most one check period more (the defaults are whole periods).
@Suite struct ConnectionGuardTests {
    /// A connected channel with only the guard: 10 s for a request, 60 s idle (5 s period).
    private func guardedChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ConnectionGuard(requestTimeout: .seconds(10), idleTimeout: .seconds(60)))
        _ = try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private func receive(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(channel.allocator.buffer(string: text))
        _ = try channel.readInbound(as: ByteBuffer.self)
    }

    private func answer(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(IOData.byteBuffer(channel.allocator.buffer(string: "HTTP/1.1 200 OK\r\n\r\n")))
        _ = try channel.readOutbound(as: IOData.self)
    }

    @Test func aRequestThatNeverEndsIsClosedBetween10And15Seconds() throws {
        let channel = try guardedChannel()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(2_500))
        try receive(channel, "GET / HTTP/1.1\r\n")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(9_900))
        #expect(channel.isActive, "open 9.9 s after the first byte")
        try receive(channel, "Host: x\r\n")  // more of the same request: no reprieve
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(5_100))
        #expect(!channel.isActive, "closed 15 s after the first byte")
    }

    @Test func aBusyConnectionStaysOpenAndIsClosedOnceIdleFor60To65Seconds() throws {
        let channel = try guardedChannel()
        // Three minutes of requests, each answered within a second of its first byte.
        for _ in 0..<90 {
            try receive(channel, "GET / HTTP/1.1\r\n\r\n")
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(700))
            try answer(channel)
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(1_300))
        }
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(58_600))
        #expect(channel.isActive, "open 59.9 s after the last answer")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(5_100))
        #expect(!channel.isActive, "closed 65 s after the last answer")
    }

    @Test func idleTimeRunsFromTheAnswerNotFromTheRequest() throws {
        let channel = try guardedChannel()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(2_500))
        try receive(channel, "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(6_500))  // a slow body, within 10 s
        try answer(channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(59_900))
        #expect(channel.isActive, "open 59.9 s after the answer")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(5_100))
        #expect(!channel.isActive)
    }

    @Test func aSilentConnectionIsClosedBetween60And65Seconds() throws {
        let channel = try guardedChannel()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(59_900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(5_100))
        #expect(!channel.isActive)
    }
}

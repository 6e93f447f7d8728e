import Testing

@testable import APIKeyServer

/// The request assembler as a value: bytes in, requests out, however the bytes arrive.
@Suite struct RequestAssemblerTests {
    private let limits = RequestAssembler.Limits(
        maximumBodyBytes: 64, maximumTargetBytes: 256, maximumHeaderBytes: 1024, maximumHeaderCount: 20)

    /// Four requests: one with a length, one chunked, one without a body, and one that asks for
    /// `100 Continue`.
    private let stream = Array(
        ("POST /a?x=1 HTTP/1.1\r\nContent-Type: text/plain\r\nAuthorization: Basic eDp5\r\nContent-Length: 5\r\n\r\nhello"
            + "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
            + "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            + "GET /c HTTP/1.0\r\n\r\n"
            + "POST /d HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok").utf8)

    /// What an assembler makes of `stream` fed in pieces of `size` bytes, as the handler feeds it:
    /// the bytes not consumed stay and the next piece is added to them.
    private func assemble(_ stream: [UInt8], pieces size: Int) -> [String] {
        var assembler = RequestAssembler(limits: limits)
        var pending: [UInt8] = []
        var seen: [String] = []
        var offset = 0
        while offset < stream.count || !pending.isEmpty {
            let end = min(stream.count, offset + size)
            pending += stream[offset..<end]
            offset = end
            while !pending.isEmpty {
                let (step, consumed) = pending.withUnsafeBytes { bytes in
                    let (step, consumed) = assembler.step(bytes)
                    return (describe(step, bytes), consumed)
                }
                pending.removeFirst(consumed)
                if let step { seen.append(step) }
                if consumed == 0 { break }
            }
            if offset == stream.count, !pending.isEmpty {
                seen.append("left over: \(pending.count) bytes")
                break
            }
        }
        return seen
    }

    /// A step as text; nil for `needMore`.
    private func describe(_ step: RequestAssembler.Step, _ bytes: UnsafeRawBufferPointer) -> String? {
        switch step {
        case .needMore:
            return nil
        case .inPlace(let head, let body):
            return describe(RequestAssembler.request(head, bytes, body: Array(bytes[body])))
        case .assembled(let request):
            return describe(request)
        case .sendContinue:
            return "100 Continue"
        case .failed(let failure):
            return "failed \(failure.status)"
        }
    }

    private func describe(_ assembled: RequestAssembler.Request) -> String {
        let request = assembled.request
        return
            "\(request.method) \(request.target) auth=\(request.authorization ?? "-") type=\(request.contentType ?? "-") "
            + "body=\(String(decoding: request.body, as: UTF8.self)) keepAlive=\(assembled.keepAlive) "
            + "http11=\(assembled.isHTTP11) forwarded=\(assembled.forwardedFor)"
    }

    @Test func assemblesTheSameRequestsHoweverTheBytesArrive() {
        let expected = [
            "POST /a?x=1 auth=Basic eDp5 type=text/plain body=hello keepAlive=true http11=true forwarded=[]",
            "POST /b auth=- type=- body=abcde keepAlive=true http11=true forwarded=[\"10.0.0.1\"]",
            "GET /c auth=- type=- body= keepAlive=false http11=false forwarded=[]",
            "POST /d auth=- type=- body=ok keepAlive=true http11=true forwarded=[]",
        ]
        for size in [stream.count, 1, 2, 3, 7, 16, 64] {
            // `100 Continue` comes only when the body is not there yet with the head.
            let requests = assemble(stream, pieces: size).filter { $0 != "100 Continue" }
            #expect(requests == expected, "pieces of \(size) bytes")
        }
        #expect(assemble(stream, pieces: stream.count - 2).suffix(2) == ["100 Continue", expected[3]])
        #expect(!assemble(stream, pieces: stream.count).contains("100 Continue"))
    }

    @Test func refusesABodyOverTheLimitBeforeReadingIt() {
        let request = Array("POST /a HTTP/1.1\r\nContent-Length: 65\r\n\r\n".utf8)
        #expect(assemble(request, pieces: request.count) == ["failed 413", "left over: \(request.count) bytes"])
        let chunked = Array("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n".utf8)
        #expect(assemble(chunked, pieces: 5).first == "failed 413")
    }

    @Test func aFailedChunkForgetsTheRequestUnderWay() {
        var assembler = RequestAssembler(limits: limits)
        let head = Array("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        let (step, consumed) = head.withUnsafeBytes { assembler.step($0) }
        #expect(step == .needMore && consumed == head.count && assembler.isInBody)
        let (failed, _) = Array("zz\r\n".utf8).withUnsafeBytes { assembler.step($0) }
        #expect(failed == .failed(HTTPParseFailure.malformed("bad chunk size")))
        #expect(!assembler.isInBody)
    }
}

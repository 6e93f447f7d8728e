import APIKeyEngine
import APIKeyLimiter
import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import TestSupport
import Testing

@testable import APIKeyAPI
@testable import APIKeyServer

@Suite struct HTTPRequestParserTests {
    private func parser(targetBytes: Int = 8192, headerBytes: Int = 16384, headerCount: Int = 100) -> HTTPHeadParser {
        HTTPHeadParser(
            maximumTargetBytes: targetBytes, maximumHeaderBytes: headerBytes, maximumHeaderCount: headerCount)
    }

    /// Parses `text` in one piece; the head, or the failure.
    private func parse(_ text: String, _ parser: HTTPHeadParser? = nil) -> Result<HTTPRequestHead?, HTTPParseFailure> {
        var parser = parser ?? self.parser()
        return Array(text.utf8).withUnsafeBytes { bytes in
            Result { () throws(HTTPParseFailure) in try parser.parse(bytes) }
        }
    }

    private func text(_ text: String, _ range: Range<Int>?) -> String? {
        range.map { String(decoding: Array(text.utf8)[$0], as: UTF8.self) }
    }

    @Test func parsesARequestHead() throws {
        let request =
            "POST /api/admin/serviceapikey/create?x=1 HTTP/1.1\r\nHost: a\r\nauthorization:  Basic eA== \r\n"
            + "Content-Type: application/json\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8, 9.9.9.9\r\n"
            + "Content-Length: 12\r\n\r\n{\"a\": 1}"
        let head = try #require(try parse(request).get())
        #expect(text(request, head.method) == "POST")
        #expect(text(request, head.target) == "/api/admin/serviceapikey/create?x=1")
        #expect(text(request, head.authorization) == "Basic eA==")
        #expect(text(request, head.contentType) == "application/json")
        #expect(head.forwardedFor.map { text(request, $0) } == ["1.2.3.4", "5.6.7.8, 9.9.9.9"])
        #expect(head.framing == .length(12))
        #expect(head.keepAlive && head.isHTTP11 && !head.expectsContinue)
        #expect(head.length == request.utf8.count - 8)
    }

    @Test func anAbsoluteFormTargetIsCutToItsPathAndQuery() throws {
        for (target, expected) in [
            ("http://127.0.0.1:8080/health", "/health"),
            ("HTTPS://keys.example/api/guest/serviceapikey/check?key=K", "/api/guest/serviceapikey/check?key=K"),
            ("http://keys.example", "http://keys.example"),
            ("/openapi.yaml", "/openapi.yaml"),
            ("ftp://host/x", "ftp://host/x"),
        ] {
            let request = "GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n"
            let head = try #require(try parse(request).get())
            #expect(text(request, head.target) == expected, "\(target)")
        }
    }

    @Test func connectionPersistenceFollowsVersionAndHeader() throws {
        #expect(try parse("GET / HTTP/1.1\r\n\r\n").get()?.keepAlive == true)
        #expect(try parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").get()?.keepAlive == false)
        #expect(try parse("GET / HTTP/1.0\r\n\r\n").get()?.keepAlive == false)
        #expect(try parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").get()?.keepAlive == true)
        #expect(try parse("GET / HTTP/1.1\nExpect: 100-continue\n\n").get()?.expectsContinue == true)
    }

    @Test func findsTheEndOfAHeadArrivingAByteAtATime() throws {
        let request = Array("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /next".utf8)
        var parser = parser()
        var found: HTTPRequestHead?
        for end in 1...request.count {
            let head = try Array(request[..<end]).withUnsafeBytes { bytes in
                Result { () throws(HTTPParseFailure) in try parser.parse(bytes) }
            }.get()
            if let head {
                found = head
                #expect(end == 33)
                break
            }
        }
        #expect(found?.length == 33)
    }

    @Test(arguments: [
        ("GARBAGE\r\n\r\n", 400), ("GET /x HTTP/9.9\r\n\r\n", 400), ("GET /x HTTP/1.1 \r\n\r\n", 400),
        ("GET  /x HTTP/1.1\r\n\r\n", 400), ("G(T /x HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400), ("GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n", 400), ("GET /a\u{7F}b HTTP/1.1\r\n\r\n", 400),
    ])
    func refusesWhatItCannotTrust(_ request: String, _ status: Int) {
        guard case .failure(let failure) = parse(request) else {
            Issue.record("accepted \(request.debugDescription)")
            return
        }
        #expect(failure.status == status, "\(request.debugDescription): \(failure.message)")
    }

    @Test func sameContentLengthTwiceIsFine() throws {
        #expect(
            try parse("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n").get()?.framing == .length(2))
    }

    @Test func enforcesItsLimits() {
        let longTarget = "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\n\r\n"
        #expect(parse(longTarget, parser(targetBytes: 50)).failure?.status == 414)
        // Before the end of the line has even arrived.
        #expect(parse("GET /" + String(repeating: "a", count: 200), parser(targetBytes: 50)).failure?.status == 414)
        let manyHeaders = "GET / HTTP/1.1\r\n" + (0..<11).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(parse(manyHeaders, parser(headerCount: 10)).failure?.status == 431)
        let bigHeader = "GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 300) + "\r\n\r\n"
        #expect(parse(bigHeader, parser(headerBytes: 200)).failure?.status == 431)
        #expect(
            parse("GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 500), parser(headerBytes: 200)).failure?
                .status == 431)
        #expect(parse(bigHeader, parser(headerBytes: 400)).failure == nil)
    }

    /// Decodes `stream` fed in pieces of `step` bytes; the body, or the failure.
    private func dechunk(_ stream: String, step: Int, limit: Int = 1000) -> Result<[UInt8], HTTPParseFailure> {
        var decoder = ChunkedBodyDecoder(maximumBodyBytes: limit, maximumLineBytes: 100)
        var body: [UInt8] = []
        var pending: [UInt8] = []
        let bytes = Array(stream.utf8)
        var position = 0
        do throws(HTTPParseFailure) {
            while !decoder.isDone, position < bytes.count {
                pending += bytes[position..<min(position + step, bytes.count)]
                position += step
                let used = pending.withUnsafeBytes { input in
                    Result { () throws(HTTPParseFailure) in try decoder.decode(input, into: &body) }
                }
                pending.removeFirst(try used.get())
            }
        } catch {
            return .failure(error)
        }
        return decoder.isDone ? .success(body) : .failure(.malformed("incomplete"))
    }

    @Test func decodesChunkedBodiesHoweverTheyAreSplit() throws {
        let stream = "5;name=value\r\nhello\r\n7\r\n, world\r\nA\n0123456789\n0\r\nTrailer: x\r\n\r\n"
        for step in 1...stream.utf8.count {
            #expect(try dechunk(stream, step: step).get() == Array("hello, world0123456789".utf8), "step \(step)")
        }
    }

    @Test func refusesBadOrOversizedChunks() {
        #expect(dechunk("zz\r\n", step: 100).failure?.status == 400)
        #expect(dechunk("5\r\nhelloX\r\n0\r\n\r\n", step: 100).failure?.status == 400)
        #expect(dechunk("123456789\r\n", step: 100).failure?.status == 400)
        #expect(dechunk("3e8\r\n", step: 100, limit: 999).failure?.status == 413)
        #expect(dechunk(String(repeating: "1", count: 200), step: 7).failure?.status == 400)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}

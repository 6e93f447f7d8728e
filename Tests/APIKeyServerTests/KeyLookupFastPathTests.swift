import APIKeyAPI
import APIKeyEngine
import Testing

@testable import APIKeyServer

/// Which requests the fast path takes: the spellings of ``KeyLookup`` and nothing else. (That
/// its answers equal the general path's is `HTTPConnectionHandlerTests`' business.)
@Suite struct KeyLookupFastPathTests {
    /// Whether the fast path answers `request`, and what it answered.
    private func takes(_ request: String, _ fastPath: KeyLookupFastPath) throws -> (Bool, String?) {
        var parser = HTTPHeadParser(maximumTargetBytes: 8192, maximumHeaderBytes: 16384, maximumHeaderCount: 100)
        return try Array(request.utf8).withUnsafeBytes { bytes in
            let head = try #require(try parser.parse(bytes))
            guard case .length(let length) = head.framing else { return (false, nil) }
            var answered: String?
            let outcome = fastPath.answer(head, bytes, body: head.length..<(head.length + length), client: nil) {
                answered = String(decoding: $0.response.body, as: UTF8.self)
            }
            guard case .answered = outcome else { return (false, answered) }
            return (true, answered)
        }
    }

    @Test func takesTheThreeSpellingsOfALookup() throws {
        let engine = Engine()
        let fastPath = KeyLookupFastPath(router: APIRouter(engine: engine, adminToken: "t"))
        let key = try engine.create(NewKey(clientID: 1)).apiKey
        let json = #"{"key": "\#(key)"}"#
        let taken = [
            "GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\n\r\n",
            "POST /api/guest/serviceapikey/check HTTP/1.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(json.utf8.count)\r\n\r\n\(json)",
            "POST /api/guest/serviceapikey/check HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                + "Content-Length: \(key.utf8.count + 4)\r\n\r\nkey=\(key)",
            "POST /api/guest/serviceapikey/check HTTP/1.1\r\nContent-Length: \(key.utf8.count + 4)\r\n\r\nkey=\(key)",
        ]
        for request in taken {
            let (wasTaken, answer) = try takes(request, fastPath)
            #expect(wasTaken && answer == #"{"result": true, "error": null}"#, "\(request)")
        }
        let left = [
            "GET /api/guest/serviceapikey/check?key=\(key)&x=1 HTTP/1.1\r\n\r\n",
            "GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
            "HEAD /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\n\r\n",
            "GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            "POST /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\n\r\n",
            "POST /api/guest/serviceapikey/check?x=1 HTTP/1.1\r\nContent-Length: \(key.utf8.count + 4)\r\n\r\nkey=\(key)",
            "PUT /api/guest/serviceapikey/check HTTP/1.1\r\nContent-Length: \(key.utf8.count + 4)\r\n\r\nkey=\(key)",
            "POST /api/admin/serviceapikey/check HTTP/1.1\r\nContent-Length: \(key.utf8.count + 4)\r\n\r\nkey=\(key)",
        ]
        for request in left {
            #expect(try takes(request, fastPath) == (false, nil), "\(request)")
        }
    }

    /// The prefetch finds the key the lookup will use and hands its hash over: the lookup uses it
    /// (a wrong hash for the same place misses), and ignores one found elsewhere.
    @Test func theLookupUsesThePrefetchedHash() throws {
        let engine = Engine()
        let fastPath = KeyLookupFastPath(router: APIRouter(engine: engine, adminToken: "t"))
        let key = try engine.create(NewKey(clientID: 1)).apiKey
        let request = Array("GET /api/guest/serviceapikey/check?key=\(key) HTTP/1.1\r\n\r\n".utf8)
        var parser = HTTPHeadParser(maximumTargetBytes: 8192, maximumHeaderBytes: 16384, maximumHeaderCount: 100)
        try request.withUnsafeBytes { bytes in
            let prefetched = try #require(fastPath.prefetch(bytes))
            #expect(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[prefetched.key]), as: UTF8.self) == key)
            let expected = Array(key.utf8).withUnsafeBytes { engine.prefetch(keyBytes: $0) }
            #expect(prefetched.hash == expected)
            let head = try #require(try parser.parse(bytes))
            let wrongHash = Array("another key".utf8).withUnsafeBytes { engine.prefetch(keyBytes: $0) }
            func answer(_ prefetched: KeyLookupFastPath.Prefetched) -> String {
                var text = ""
                _ = fastPath.answer(head, bytes, body: head.length..<head.length, client: nil, prefetched: prefetched) {
                    text = String(decoding: $0.response.body, as: UTF8.self)
                }
                return text
            }
            #expect(answer(prefetched) == #"{"result": true, "error": null}"#)
            #expect(answer(.init(key: prefetched.key, hash: wrongHash)).contains("API key does not exist"))
            let elsewhere = prefetched.key.lowerBound..<(prefetched.key.upperBound - 1)
            #expect(answer(.init(key: elsewhere, hash: wrongHash)) == #"{"result": true, "error": null}"#)
        }
        let post = Array("POST /api/guest/serviceapikey/check HTTP/1.1\r\nContent-Length: 2\r\n\r\nab".utf8)
        #expect(post.withUnsafeBytes { fastPath.prefetch($0) } == nil)
    }
}

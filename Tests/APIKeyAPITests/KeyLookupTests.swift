import Testing

@testable import APIKeyAPI

/// How requests name the key on the fast path, tested on bytes alone.
@Suite struct KeyLookupTests {
    /// Only RFC 3986 unreserved bytes make a plain key: every byte value, alone and after a run of
    /// good ones; the empty key is never plain.
    @Test func onlyUnreservedBytesMakeAPlainKey() {
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
        for value in 0...255 {
            let byte = UInt8(value)
            for bytes in [[byte], Array("Ab9-._~".utf8) + [byte], [byte] + Array("xyz".utf8)] {
                let accepted = bytes.withUnsafeBytes { KeyLookup.isPlainKey($0) }
                #expect(accepted == unreserved.contains(byte), "byte \(value)")
            }
        }
        #expect(![UInt8]().withUnsafeBytes { KeyLookup.isPlainKey($0) })
    }

    private func key(_ body: String, _ contentType: String?) -> String? {
        Array(body.utf8).withUnsafeBytes { body in
            let found: Range<Int>?
            if let contentType {
                found = Array(contentType.utf8).withUnsafeBytes { KeyLookup.key(inBody: body, contentType: $0) }
            } else {
                found = KeyLookup.key(inBody: body, contentType: nil)
            }
            return found.map { String(decoding: UnsafeRawBufferPointer(rebasing: body[$0]), as: UTF8.self) }
        }
    }

    @Test(
        arguments: [
            (#"{"key": "K-1"}"#, "application/json", "K-1"),
            (" {\n\t\"key\"\r\n:  \"K-1\" } \n", "application/json", "K-1"),
            (#"{"key":"K-1"}"#, "application/json;charset=utf-8", "K-1"),
            (#"{"key":"K-1"}"#, "APPLICATION/Json", "K-1"),
            ("key=K-1", "application/x-www-form-urlencoded", "K-1"),
            ("key=K-1", "application/x-www-form-urlencoded; charset=utf-8", "K-1"),
            ("key=K-1", nil, "K-1"),
        ] as [(String, String?, String)])
    func findsTheKeyInBodiesThatNameOnlyIt(_ body: String, _ contentType: String?, _ expected: String) {
        #expect(key(body, contentType) == expected)
    }

    @Test(
        arguments: [
            (#"{"key": "K\u0031"}"#, "application/json"),
            (#"{"key": "K-1", "x": 1}"#, "application/json"),
            (#"{"key": "K-1"}}"#, "application/json"),
            (#"{"key": "K 1"}"#, "application/json"),
            (#"{"key": ""}"#, "application/json"),
            (#"{"Key": "K-1"}"#, "application/json"),
            (#"{"key": "K-1""#, "application/json"),
            (#"{"key": "K-1"}"#, "application/jsonx"),
            (#"{"key": "K-1"}"#, " application/json"),
            (#"{"key": "K-1"}"#, "application/x-www-form-urlencoded"),
            ("key=K-1", "application/json"),
            ("key=K-1&x=1", "application/x-www-form-urlencoded"),
            ("key=K%2D1", "application/x-www-form-urlencoded"),
            ("key=K+1", nil),
            ("key=", nil),
            ("KEY=K-1", nil),
            ("key=K-1", "text/plain"),
        ] as [(String, String?)])
    func leavesEveryOtherBodyToTheGeneralPath(_ body: String, _ contentType: String?) {
        #expect(key(body, contentType) == nil)
    }

    @Test func matchesOnlyTheExactPaths() {
        func path(_ text: String) -> KeyLookup? { Array(text.utf8).withUnsafeBytes { KeyLookup.matching(path: $0) } }
        func query(_ text: String) -> (KeyLookup, Int)? {
            Array(text.utf8).withUnsafeBytes { KeyLookup.matching(query: $0) }
        }
        #expect(path("/api/guest/serviceapikey/check") == .check)
        #expect(path("/api/guest/serviceapikey/get_info") == .getInfo)
        #expect(path("/api/guest/serviceapikey/check/") == nil)
        #expect(path("/api/guest/serviceapikey/chec") == nil)
        #expect(path("/api/guest/serviceapikey/check?key=a") == nil)
        #expect(query("/api/guest/serviceapikey/check?key=a").map { $0.1 } == 35)
        #expect(query("/api/guest/serviceapikey/get_info?key=a").map { $0.0 } == .getInfo)
        #expect(query("/api/guest/serviceapikey/check?keys=a") == nil)
        #expect(query("/api/guest/serviceapikey/check") == nil)
        #expect(KeyLookup.check.endpointName == "guest/serviceapikey/check")
        #expect(KeyLookup.getInfo.endpointName == "guest/serviceapikey/get_info")
    }
}

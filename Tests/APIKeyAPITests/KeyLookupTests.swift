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

    /// What `lookup` finds in `body`: the key, the cost and the request ID.
    private func arguments(
        _ body: String, _ contentType: String?, _ lookup: KeyLookup = .check
    ) -> (key: String, cost: Int64?, requestID: String?)? {
        Array(body.utf8).withUnsafeBytes { body in
            let found: KeyLookup.Arguments?
            if let contentType {
                found = Array(contentType.utf8).withUnsafeBytes { lookup.arguments(inBody: body, contentType: $0) }
            } else {
                found = lookup.arguments(inBody: body, contentType: nil)
            }
            func text(_ range: Range<Int>) -> String {
                String(decoding: UnsafeRawBufferPointer(rebasing: body[range]), as: UTF8.self)
            }
            return found.map { (text($0.key), $0.cost, $0.requestID.map(text)) }
        }
    }

    private func key(_ body: String, _ contentType: String?) -> String? { arguments(body, contentType)?.key }

    @Test(
        arguments: [
            (#"{"key": "K-1", "cost": 5}"#, "application/json", "K-1", 5, nil),
            (#"{"cost": "0", "request_id": "r.1~", "key": "K-1"}"#, "application/json", "K-1", 0, "r.1~"),
            (" {\"request_id\" :\"R\",\n\"key\":\"K\" } ", "application/json", "K", nil, "R"),
            (#"{"key": "K-1", "cost": 1000000000}"#, "application/json", "K-1", 1_000_000_000, nil),
            (#"{"key": "K-1", "cost": 0}"#, "application/json", "K-1", 0, nil),
            (#"{"key": "K-1", "cost": "007"}"#, "application/json", "K-1", 7, nil),
            (#"{"key": "K-1", "cost": 9999999999}"#, "application/json", "K-1", 9_999_999_999, nil),
            ("key=K-1&cost=7&request_id=abc", nil, "K-1", 7, "abc"),
            ("request_id=abc&key=K-1", "application/x-www-form-urlencoded", "K-1", nil, "abc"),
            ("cost=007&key=K", nil, "K", 7, nil),
        ] as [(String, String?, String, Int64?, String?)])
    func verifyTakesCostAndRequestIDInAnyOrder(
        _ body: String, _ contentType: String?, _ key: String, _ cost: Int64?, _ requestID: String?
    ) {
        let found = arguments(body, contentType, .verify)
        #expect(found?.key == key && found?.cost == cost && found?.requestID == requestID)
    }

    @Test(
        arguments: [
            (#"{"key": "K-1", "cost": 1.0}"#, "application/json"),
            (#"{"key": "K-1", "cost": 007}"#, "application/json"),
            (#"{"key": "K-1", "cost": 00}"#, "application/json"),
            (#"{"key": "K-1", "cost": -1}"#, "application/json"),
            (#"{"key": "K-1", "cost": 1e3}"#, "application/json"),
            (#"{"key": "K-1", "cost": 12345678901}"#, "application/json"),
            (#"{"key": "K-1", "cost": ""}"#, "application/json"),
            (#"{"key": "K-1", "cost": null}"#, "application/json"),
            (#"{"key": "K-1", "request_id": 5}"#, "application/json"),
            (#"{"key": "K-1", "request_id": "a\"b"}"#, "application/json"),
            (#"{"key": "K-1", "request_id": "a b"}"#, "application/json"),
            (#"{"key": "K-1", "key": "K-2"}"#, "application/json"),
            (#"{"key": "K-1", "cost": 1, "cost": 2}"#, "application/json"),
            (#"{"key": "K-1",}"#, "application/json"),
            (#"{"cost": 1}"#, "application/json"),
            ("key=K-1&cost=1%30", nil),
            ("key=K-1&cost=", nil),
            ("key=K-1&request_id=", nil),
            ("key=K-1&cost=1&", nil),
            ("key=K-1&&cost=1", nil),
            ("key=K-1&other=1", nil),
        ] as [(String, String?)])
    func verifyLeavesOtherArgumentsToTheGeneralPath(_ body: String, _ contentType: String?) {
        #expect(arguments(body, contentType, .verify) == nil)
    }

    @Test func checkAndGetInfoTakeOnlyTheKey() {
        for lookup in [KeyLookup.check, .getInfo] {
            #expect(arguments("key=K&cost=1", nil, lookup) == nil)
            #expect(arguments(#"{"key": "K", "request_id": "r"}"#, "application/json", lookup) == nil)
            #expect(arguments("key=K", nil, lookup)?.key == "K")
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
        func query(_ text: String) -> (KeyLookup, KeyLookup.Arguments)? {
            Array(text.utf8).withUnsafeBytes { KeyLookup.matching(query: $0) }
        }
        #expect(path("/api/guest/serviceapikey/check") == .check)
        #expect(path("/api/guest/serviceapikey/get_info") == .getInfo)
        #expect(path("/api/guest/serviceapikey/check/") == nil)
        #expect(path("/api/guest/serviceapikey/chec") == nil)
        #expect(path("/api/guest/serviceapikey/check?key=a") == nil)
        #expect(query("/api/guest/serviceapikey/check?key=a").map { $0.1 } == .init(key: 35..<36))
        #expect(
            query("/api/guest/serviceapikey/verify?cost=2&key=a&request_id=b").map { $0.1 }
                == .init(key: 43..<44, cost: 2, requestID: 56..<57))
        #expect(query("/api/guest/serviceapikey/check?key=a&cost=2") == nil)
        #expect(path("/api/guest/serviceapikey/verify") == .verify)
        #expect(KeyLookup.verify.endpointName == "guest/serviceapikey/verify")
        #expect(query("/api/guest/serviceapikey/get_info?key=a").map { $0.0 } == .getInfo)
        #expect(query("/api/guest/serviceapikey/check?keys=a") == nil)
        #expect(query("/api/guest/serviceapikey/check") == nil)
        #expect(KeyLookup.check.endpointName == "guest/serviceapikey/check")
        #expect(KeyLookup.getInfo.endpointName == "guest/serviceapikey/get_info")
    }
}

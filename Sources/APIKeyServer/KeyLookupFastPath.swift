import APIKeyAPI
import APIKeyEngine
import APIKeyLimiter

/// Answers the ``KeyLookup`` requests straight from the read buffer, with no request built and
/// no copy of the key: `GET <path>?key=K`, and `POST <path>` whose body names only the key (JSON
/// or form). Anything else, or a request whose proxy headers name another client, is left to
/// the general path. Independent of NIO.
struct KeyLookupFastPath {
    let router: APIRouter

    /// A key ``prefetch(_:)`` found: where it lies in the bytes, and its hash.
    struct Prefetched {
        var key: Range<Int>
        var hash: KeyHash
    }

    /// Answers the request `head` (with its body at `body` in `bytes`) through `write` when it is
    /// one the fast path takes; false when it is not, and nothing was done. `prefetched` is what
    /// ``prefetch(_:)`` found in the same bytes.
    func answer(
        _ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, body: Range<Int>, client: IPAddress?,
        prefetched: Prefetched? = nil, _ write: (KeyLookupAnswer) -> Void
    ) -> Bool {
        guard head.forwardedFor.isEmpty else { return false }
        let target = UnsafeRawBufferPointer(rebasing: bytes[head.target])
        let lookup: KeyLookup
        let key: UnsafeRawBufferPointer
        if body.isEmpty, ASCII.equal(bytes, head.method, "GET") {
            guard let (found, keyStart) = KeyLookup.matching(query: target) else { return false }
            lookup = found
            key = UnsafeRawBufferPointer(rebasing: target[keyStart...])
            guard KeyLookup.isPlainKey(key) else { return false }
        } else if !body.isEmpty, ASCII.equal(bytes, head.method, "POST") {
            guard let found = KeyLookup.matching(path: target) else { return false }
            let bodyBytes = UnsafeRawBufferPointer(rebasing: bytes[body])
            let contentType = head.contentType.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
            guard let range = KeyLookup.key(inBody: bodyBytes, contentType: contentType) else { return false }
            lookup = found
            key = UnsafeRawBufferPointer(rebasing: bodyBytes[range])
        } else {
            return false
        }
        // The prefetch's hash is this key's when it hashed these very bytes.
        let start = key.baseAddress! - bytes.baseAddress!
        let hash = prefetched.flatMap { $0.key == start..<(start + key.count) ? $0.hash : nil }
        router.respondToKeyLookup(lookup, key: key, hash: hash, client: client, write)
        return true
    }

    /// When `bytes` start a `GET` of a key lookup with `?key=`, starts loading the key's slot so
    /// that parsing the rest of the head overlaps the wait for memory. Only a hint: the request
    /// is parsed and checked in full afterwards.
    func prefetch(_ bytes: UnsafeRawBufferPointer) -> Prefetched? {
        guard bytes.count > 4, ASCII.equal(bytes, 0..<4, "GET ") else { return nil }
        let target = UnsafeRawBufferPointer(rebasing: bytes[4..<min(bytes.count, 4 + Self.prefetchWindow)])
        guard let (_, start) = KeyLookup.matching(query: target) else { return nil }
        let rest = UnsafeRawBufferPointer(rebasing: target[start...])
        guard let space = rest.firstIndex(of: UInt8(ascii: " ")), space > 0 else { return nil }
        let keyStart = 4 + start
        let hash = router.prefetch(key: UnsafeRawBufferPointer(rebasing: bytes[keyStart..<(keyStart + space)]))
        return Prefetched(key: keyStart..<(keyStart + space), hash: hash)
    }

    /// How far into a request the prefetch looks for the end of the key.
    private static let prefetchWindow = 320
}

import APIKeyAPI
import APIKeyEngine
import APIKeyLimiter

/// Answers the ``KeyLookup`` requests straight from the read buffer, with no request built and
/// no copy of the key: the forms ``KeyLookup`` lists, in a `GET` query or a `POST` body (JSON or
/// form). Anything else, or a request whose proxy headers name another client, is left to the
/// general path. Independent of NIO.
struct KeyLookupFastPath {
    let router: APIRouter

    /// A key ``prefetch(_:)`` found: where it lies in the bytes, and its hash.
    struct Prefetched {
        var key: Range<Int>
        var hash: KeyHash
    }

    /// What the fast path did with a request.
    enum Outcome {
        /// Not one it takes: nothing was done.
        case notTaken
        /// This lookup, answered through `write`.
        case answered(KeyLookup)
        /// This lookup's answer, to be carried out by the caller (a verify waiting for its fsync).
        case later(APIAnswer, KeyLookup)
    }

    /// Answers the request `head` (with its body at `body` in `bytes`) through `write` when it is
    /// one the fast path takes. `prefetched` is what ``prefetch(_:)`` found in the same bytes.
    func answer(
        _ head: HTTPRequestHead, _ bytes: UnsafeRawBufferPointer, body: Range<Int>, client: IPAddress?,
        prefetched: Prefetched? = nil, _ write: (KeyLookupAnswer) -> Void
    ) -> Outcome {
        guard head.forwardedFor.isEmpty else { return .notTaken }
        let target = UnsafeRawBufferPointer(rebasing: bytes[head.target])
        let lookup: KeyLookup
        let arguments: KeyLookup.Arguments
        let base: UnsafeRawBufferPointer
        if body.isEmpty, ASCII.equal(bytes, head.method, "GET") {
            guard let (found, parsed) = KeyLookup.matching(query: target) else { return .notTaken }
            (lookup, arguments, base) = (found, parsed, target)
        } else if !body.isEmpty, ASCII.equal(bytes, head.method, "POST") {
            guard let found = KeyLookup.matching(path: target) else { return .notTaken }
            let bodyBytes = UnsafeRawBufferPointer(rebasing: bytes[body])
            let contentType = head.contentType.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
            guard let parsed = found.arguments(inBody: bodyBytes, contentType: contentType) else { return .notTaken }
            (lookup, arguments, base) = (found, parsed, bodyBytes)
        } else {
            return .notTaken
        }
        let key = UnsafeRawBufferPointer(rebasing: base[arguments.key])
        let requestID = arguments.requestID.map { UnsafeRawBufferPointer(rebasing: base[$0]) }
        // The prefetch's hash is this key's when it hashed these very bytes.
        let start = key.baseAddress! - bytes.baseAddress!
        let hash = prefetched.flatMap { $0.key == start..<(start + key.count) ? $0.hash : nil }
        if let later = router.respondToKeyLookup(
            lookup, key: key, cost: arguments.cost, requestID: requestID, hash: hash, client: client, write)
        {
            return .later(later, lookup)
        }
        return .answered(lookup)
    }

    /// When `bytes` start a `GET` of a key lookup with a query the fast path takes, starts loading
    /// the key's slot so that parsing the rest of the head overlaps the wait for memory. Only a
    /// hint: the request is parsed and checked in full afterwards.
    func prefetch(_ bytes: UnsafeRawBufferPointer) -> Prefetched? {
        guard bytes.count > 4, ASCII.equal(bytes, 0..<4, "GET ") else { return nil }
        let window = UnsafeRawBufferPointer(rebasing: bytes[4..<min(bytes.count, 4 + Self.prefetchWindow)])
        guard let space = window.firstIndex(of: UInt8(ascii: " ")),
            let (_, arguments) = KeyLookup.matching(query: UnsafeRawBufferPointer(rebasing: window[..<space]))
        else { return nil }
        let key = (4 + arguments.key.lowerBound)..<(4 + arguments.key.upperBound)
        let hash = router.prefetch(key: UnsafeRawBufferPointer(rebasing: bytes[key]))
        return Prefetched(key: key, hash: hash)
    }

    /// How far into a request the prefetch looks for the end of the key.
    private static let prefetchWindow = 320
}

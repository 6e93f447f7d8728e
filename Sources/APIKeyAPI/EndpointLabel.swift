/// The `endpoint` label of request metrics: the path after `/api/` for every endpoint the API
/// has (`guest/serviceapikey/check`), and `other` for any other path, so that a scanner trying
/// random paths cannot grow the label set. Labels are numbered for per-thread counter tables.
public enum EndpointLabel {
    /// Every label, by number: the endpoints sorted, then `other` last.
    public static let names: [String] = {
        let endpoints = Set(APIRouter.endpoints.keys).union(KeyLookup.allCases.map(\.endpointName))
        return endpoints.sorted() + ["other"]
    }()

    /// The number of `other`.
    public static var other: Int { names.count - 1 }

    private static let numbers: [String: Int] = Dictionary(
        uniqueKeysWithValues: names.dropLast().enumerated().map { ($1, $0) })
    private static let lookupNumbers: [Int] = KeyLookup.allCases.map { numbers[$0.endpointName]! }

    /// The label of a request for `target` (path and query).
    public static func number(target: some StringProtocol) -> Int {
        let path = target.prefix { $0 != "?" }
        guard path.hasPrefix("/api/") else { return other }
        return numbers[String(path.dropFirst(5))] ?? other
    }

    /// The label of a key lookup.
    public static func number(of lookup: KeyLookup) -> Int {
        switch lookup {
        case .check: lookupNumbers[0]
        case .getInfo: lookupNumbers[1]
        case .verify: lookupNumbers[2]
        }
    }
}

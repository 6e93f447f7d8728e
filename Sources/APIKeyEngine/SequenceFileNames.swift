/// File names that carry a journal sequence number: `<prefix><20 digits><suffix>`, so they sort
/// by name in sequence order.
struct SequenceFileNames: Sendable {
    let prefix: String
    let suffix: String

    /// The name for `sequence`.
    func name(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return prefix + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// The sequence number `name` carries; nil when it is not one of these names.
    func sequence(of name: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.count == prefix.count + 20 + suffix.count else {
            return nil
        }
        return UInt64(name.dropFirst(prefix.count).dropLast(suffix.count))
    }

    /// The entries of a directory listing that are these names, by ascending sequence number.
    func files(in listing: [String]) -> [(name: String, sequence: UInt64)] {
        listing.compactMap { name in sequence(of: name).map { (name, $0) } }.sorted { $0.sequence < $1.sequence }
    }
}

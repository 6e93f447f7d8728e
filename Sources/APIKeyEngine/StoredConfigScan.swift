/// Finds members of a stored config's top-level object by name, scanning its text once without
/// building the rest of it: what loading needs to read the usage limits of a million records.
///
/// The text is a JSON object as the engine's encoder writes it. Values of other members are
/// skipped (strings with escapes, nested objects and arrays); a wanted member's value is handed
/// back as text. Nil when the text is not an object this scan can follow.
enum StoredConfigScan {
    /// The members named in `names`, in the order they appear: the index of the name, and the
    /// value's text (white space after it included).
    static func values(
        of text: ArraySlice<UInt8>, named names: [String]
    ) -> [(name: Int, value: ArraySlice<UInt8>)]? {
        var index = text.startIndex
        let end = text.endIndex
        func skipSpace() {
            while index < end, [0x20, 0x09, 0x0A, 0x0D].contains(text[index]) { index += 1 }
        }
        /// Past a string whose opening quote is at `index`; false when it does not end.
        func skipString() -> Bool {
            index += 1
            while index < end {
                switch text[index] {
                case UInt8(ascii: "\""):
                    index += 1
                    return true
                case UInt8(ascii: "\\"): index += 2
                default: index += 1
                }
            }
            return false
        }
        /// Past one value: a string, or anything up to the `,` or `}` that ends it at this depth.
        func skipValue() -> Bool {
            var depth = 0
            while index < end {
                switch text[index] {
                case UInt8(ascii: "\""):
                    guard skipString() else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 { return true }
                    depth -= 1
                case UInt8(ascii: ","):
                    if depth == 0 { return true }
                default: break
                }
                index += 1
            }
            return false
        }
        skipSpace()
        guard index < end, text[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        var found: [(name: Int, value: ArraySlice<UInt8>)] = []
        let shortest = names.map(\.utf8.count).min() ?? 0
        while true {
            skipSpace()
            guard index < end else { return nil }
            if text[index] == UInt8(ascii: "}") { return found }
            guard text[index] == UInt8(ascii: "\"") else { return nil }
            let nameStart = index + 1
            guard skipString() else { return nil }
            let name = text[nameStart..<(index - 1)]
            skipSpace()
            guard index < end, text[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace()
            let valueStart = index
            guard skipValue() else { return nil }
            if name.count >= shortest,
                let wanted = names.firstIndex(where: { $0.utf8.count == name.count && name.elementsEqual($0.utf8) })
            {
                found.append((wanted, text[valueStart..<index]))
            }
            if text[index] == UInt8(ascii: ",") { index += 1 }
        }
    }
}

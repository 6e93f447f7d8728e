/// Finds members of a stored JSON object by name, scanning its text once without building the
/// rest of it: how the usage limits are read from a record's config (on replay and updates) or
/// from its custom-parameter text (at a key's first verify), allocating nothing when none of the
/// names is there.
///
/// The text is a JSON object as the engine's encoder writes it. Values of other members are
/// skipped (strings with escapes, nested objects and arrays); a wanted member's value is handed
/// back as a range of the text. Nil when the text is not an object this scan can follow.
enum StoredConfigScan {
    /// Calls `found` for each member named in `names` (UTF-8), in the order they appear, with the
    /// index of the name and where the value's text lies (white space after it included); false
    /// when the text is not an object this scan can follow.
    static func scan<Text: RandomAccessCollection<UInt8>>(
        _ text: Text, named names: [[UInt8]], _ found: (_ name: Int, _ value: Range<Text.Index>) -> Void
    ) -> Bool {
        var index = text.startIndex
        let end = text.endIndex
        func skipSpace() {
            while index < end, JSONValue.isSpace(text[index]) { text.formIndex(after: &index) }
        }
        /// Past a string whose opening quote is at `index`; false when it does not end.
        func skipString() -> Bool {
            text.formIndex(after: &index)
            while index < end {
                switch text[index] {
                case UInt8(ascii: "\""):
                    text.formIndex(after: &index)
                    return true
                case UInt8(ascii: "\\"):
                    text.formIndex(after: &index)
                    guard index < end else { return false }
                    text.formIndex(after: &index)
                default: text.formIndex(after: &index)
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
                text.formIndex(after: &index)
            }
            return false
        }
        skipSpace()
        guard index < end, text[index] == UInt8(ascii: "{") else { return false }
        text.formIndex(after: &index)
        while true {
            skipSpace()
            guard index < end else { return false }
            if text[index] == UInt8(ascii: "}") { return true }
            guard text[index] == UInt8(ascii: "\"") else { return false }
            let nameStart = text.index(after: index)
            guard skipString() else { return false }
            let name = text[nameStart..<text.index(before: index)]
            skipSpace()
            guard index < end, text[index] == UInt8(ascii: ":") else { return false }
            text.formIndex(after: &index)
            skipSpace()
            let valueStart = index
            guard skipValue() else { return false }
            if let wanted = names.firstIndex(where: { $0.count == name.count && name.elementsEqual($0) }) {
                found(wanted, valueStart..<index)
            }
            if text[index] == UInt8(ascii: ",") { text.formIndex(after: &index) }
        }
    }
}

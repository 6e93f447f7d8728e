extension StringProtocol {
    /// The text without leading and trailing `characters`.
    package func trimmingCharacters(in characters: String) -> Substring {
        var text = Substring(self)
        while let first = text.first, characters.contains(first) { text.removeFirst() }
        while let last = text.last, characters.contains(last) { text.removeLast() }
        return text
    }
}

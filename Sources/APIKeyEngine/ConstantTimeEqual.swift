/// Compares two secrets in time that depends only on their lengths, not on where they differ.
package func constantTimeEqual(_ left: String, _ right: String) -> Bool {
    let leftBytes = Array(left.utf8)
    let rightBytes = Array(right.utf8)
    var difference = UInt8(leftBytes.count == rightBytes.count ? 0 : 1)
    for index in 0..<max(leftBytes.count, rightBytes.count) {
        let leftByte = index < leftBytes.count ? leftBytes[index] : 0
        let rightByte = index < rightBytes.count ? rightBytes[index] : 0
        difference |= leftByte ^ rightByte
    }
    return difference == 0
}

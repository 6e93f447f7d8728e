/// Binary search and ordered insertion for the engine's sorted arrays (the order index, the
/// orders of each client).
extension RandomAccessCollection {
    /// The index of the first element for which `isBelow` is false; the collection must hold every
    /// element for which it is true before every element for which it is false.
    func partitionIndex(_ isBelow: (Element) -> Bool) -> Index {
        var low = startIndex
        var count = self.count
        while count > 0 {
            let half = count / 2
            let middle = index(low, offsetBy: half)
            if isBelow(self[middle]) {
                low = index(after: middle)
                count -= half + 1
            } else {
                count = half
            }
        }
        return low
    }
}

extension Array where Element == Int64 {
    /// Inserts `value` in its place in this ascending array, unless it is there already.
    mutating func insertSorted(_ value: Int64) {
        if let last, last < value {
            append(value)
            return
        }
        let index = partitionIndex { $0 < value }
        if index == count || self[index] != value { insert(value, at: index) }
    }

    /// Removes `value` from this ascending array, if it is there.
    mutating func removeSorted(_ value: Int64) {
        let index = partitionIndex { $0 < value }
        if index < count, self[index] == value { remove(at: index) }
    }
}

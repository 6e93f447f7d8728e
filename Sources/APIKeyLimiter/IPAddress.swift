/// An IPv4 or IPv6 address, as 16 bytes (IPv4 as an IPv4-mapped IPv6 address, `::ffff:a.b.c.d`).
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// The high and low 64 bits of the 128-bit address.
    public var high: UInt64
    public var low: UInt64

    /// Whether this is an IPv4 address (IPv4-mapped).
    public var isIPv4: Bool { high == 0 && low >> 32 == 0xFFFF }

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An IPv4 address from its 32-bit value.
    public init(ipv4: UInt32) {
        self.init(high: 0, low: 0xFFFF << 32 | UInt64(ipv4))
    }

    /// Parses `a.b.c.d` or an IPv6 text (with `::`, an embedded IPv4 tail, and a `%zone` ignored);
    /// nil for anything else.
    public init?(_ text: some StringProtocol) {
        var text = Substring(text)
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        if let ipv4 = Self.parseIPv4(text) {
            self.init(ipv4: ipv4)
        } else if let (high, low) = Self.parseIPv6(text) {
            self.init(high: high, low: low)
        } else {
            return nil
        }
    }

    private static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCIIDigit), let octet = UInt32(part), octet <= 255
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    private static func parseIPv6(_ text: Substring) -> (UInt64, UInt64)? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        var groups: [UInt16] = []
        var tail: [UInt16] = []
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func parse(_ half: Substring, into result: inout [UInt16], allowIPv4: Bool) -> Bool {
            guard !half.isEmpty else { return true }
            let pieces = half.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if allowIPv4, index == pieces.count - 1, piece.contains("."), let ipv4 = parseIPv4(piece) {
                    result.append(UInt16(ipv4 >> 16))
                    result.append(UInt16(ipv4 & 0xFFFF))
                } else {
                    guard (1...4).contains(piece.count), let group = UInt16(piece, radix: 16) else { return false }
                    result.append(group)
                }
            }
            return true
        }
        if halves.count == 2 {
            guard parse(halves[0], into: &groups, allowIPv4: false), parse(halves[1], into: &tail, allowIPv4: true),
                groups.count + tail.count <= 7
            else { return nil }
            groups += Array(repeating: 0, count: 8 - groups.count - tail.count) + tail
        } else {
            guard parse(halves[0], into: &groups, allowIPv4: true), groups.count == 8 else { return nil }
        }
        let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }

    /// The address a rate limiter counts: IPv4 as itself, IPv6 by its /64 network.
    public var limiterKey: IPAddress { isIPv4 ? self : IPAddress(high: high, low: 0) }

    public var description: String {
        if isIPv4 {
            let value = UInt32(truncatingIfNeeded: low)
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        }
        var groups: [String] = []
        for word in [high, low] {
            for index in 0..<4 {
                let group: UInt64 = word >> UInt64(48 - 16 * index) & 0xFFFF
                groups.append(String(group, radix: 16))
            }
        }
        return groups.joined(separator: ":")
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension Substring {
    /// Splits at every occurrence of `separator` (a multi-character text).
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: separator) {
            parts.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}

/// An address range: `a.b.c.d/n`, `x:y::/n`, or a single address (all bits).
public struct CIDRRange: Hashable, Sendable, CustomStringConvertible {
    public var network: IPAddress
    /// Prefix length over the 128-bit form (an IPv4 /n is 96 + n).
    public var prefixLength: Int

    /// Parses a range; nil when the address or prefix is malformed.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let maximum = address.isIPv4 ? 32 : 128
        var length = maximum
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...maximum).contains(given) else { return nil }
            length = given
        }
        prefixLength = length + (address.isIPv4 ? 96 : 0)
        network = Self.masked(address, prefixLength)
    }

    private static func masked(_ address: IPAddress, _ length: Int) -> IPAddress {
        let highMask: UInt64 = length >= 64 ? .max : (length == 0 ? 0 : .max << UInt64(64 - length))
        let lowMask: UInt64 = length >= 128 ? .max : (length <= 64 ? 0 : .max << UInt64(128 - length))
        return IPAddress(high: address.high & highMask, low: address.low & lowMask)
    }

    /// Whether `address` lies in the range.
    public func contains(_ address: IPAddress) -> Bool {
        Self.masked(address, prefixLength) == network
    }

    public var description: String {
        "\(network)/\(network.isIPv4 ? prefixLength - 96 : prefixLength)"
    }
}

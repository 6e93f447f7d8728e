@testable import APIKeyEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A fresh directory under /tmp, removed (with its flat contents) by `remove()`.
public struct TemporaryDirectory {
    public let path: String

    public init() {
        path = "/tmp/apikeyd-test-\(UInt64.random(in: 0...UInt64.max))"
        try! createDirectory(path)
    }

    public func remove() {
        for name in (try? PosixFileLayer().list(path)) ?? [] { unlink(path + "/" + name) }
        rmdir(path)
    }

    public func write(_ name: String, _ bytes: [UInt8]) {
        let file = path + "/" + name
        unlink(file)
        let append = try! PosixFileLayer().openForAppend(file)
        try! append.write(bytes)
    }

    public func read(_ name: String) -> [UInt8] { try! PosixFileLayer().read(path + "/" + name) }

    public func names() -> [String] { ((try? PosixFileLayer().list(path)) ?? []).sorted() }
}

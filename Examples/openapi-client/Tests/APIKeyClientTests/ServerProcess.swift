import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real `apikeyd serve` on a free loopback port and a temporary data directory, stopped by
/// ``stop()``. The binary is `$APIKEYD_BINARY`, else the repository's debug build
/// (`swift build --product apikeyd` at the top, which `make examples` runs first).
final class ServerProcess {
    let url: URL
    let adminToken = "openapi-client-test-token"
    private let process = Process()
    private let directory: URL

    init() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary =
            ProcessInfo.processInfo.environment["APIKEYD_BINARY"]
            ?? repository.appendingPathComponent(".build/debug/apikeyd").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ServerError(
                "no apikeyd at \(binary): run `swift build --product apikeyd` at the top, or set APIKEYD_BINARY")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-client-\(UUID())")
        let port = try Self.freePort()
        url = URL(string: "http://127.0.0.1:\(port)")!
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "serve", "--host", "127.0.0.1", "--port", "\(port)", "--data-dir", directory.path, "--admin-token",
            adminToken,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Ends the server and removes its data.
    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// A port nothing listens on now: bound to port 0, read back, closed.
    private static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw ServerError("socket: \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0
            }
        }
        guard bound else { throw ServerError("bind: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct ServerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

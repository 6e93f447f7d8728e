import Foundation
import Synchronization
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A PostgreSQL server of the test's own: `initdb` into a temporary directory and `pg_ctl` on a
/// free loopback port, as the `postgres` user when the tests run as root (PostgreSQL refuses
/// root), with trust authentication; stopped and removed by ``destroy()``.
final class ThrowawayPostgres: Sendable {
    let directory: String
    private let chosenPort = Atomic(0)
    private let binaries: String

    /// The server's port.
    var port: Int { chosenPort.load(ordering: .relaxed) }

    /// The URL a node is given.
    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    /// Initialises and starts a new server; throws when PostgreSQL is not installed (`make deps`
    /// installs it).
    init() throws {
        guard let binaries = Self.binaries() else {
            throw KillNineTests.Failure(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run make deps")
        }
        self.binaries = binaries
        directory = TemporaryDirectory().path
        if getuid() == 0 { _ = try Self.run("/bin/chown", ["postgres", directory]) }
        try runAsOwner("initdb", ["-D", "\(directory)/data", "-A", "trust", "-U", "postgres", "--no-sync"])
        // A port found free may be taken before the server binds it (other tests listen on port
        // 0 meanwhile): a few tries, each on a new one.
        for attempt in 1...5 {
            chosenPort.store(try Self.freePort(), ordering: .relaxed)
            do {
                try start()
                return
            } catch  where attempt < 5 {
                continue
            }
        }
    }

    /// Starts the server (again).
    func start() throws {
        try runAsOwner(
            "pg_ctl",
            [
                "-D", "\(directory)/data", "-l", "\(directory)/log", "-w", "-t", "60", "-o",
                "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=on", "start",
            ])
    }

    /// Stops the server: `fast` rolls back open transactions and closes connections.
    func stop(mode: String = "fast") throws {
        try runAsOwner("pg_ctl", ["-D", "\(directory)/data", "-m", mode, "-w", "-t", "60", "stop"])
    }

    /// Runs SQL with psql and returns what it printed (unaligned, tuples only).
    func query(_ sql: String) throws -> String {
        try Self.run("\(binaries)/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-At", "-c", sql])
    }

    /// Stops the server and removes its directory.
    func destroy() {
        try? stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func runAsOwner(_ tool: String, _ arguments: [String]) throws {
        if getuid() == 0 {
            _ = try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", "\(binaries)/\(tool)"] + arguments)
        } else {
            _ = try Self.run("\(binaries)/\(tool)", arguments)
        }
    }

    private static func binaries() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted {
            (Int($0) ?? 0) > (Int($1) ?? 0)
        }
        return versions.map { "\(root)/\($0)/bin" }.first { FileManager.default.fileExists(atPath: "\($0)/initdb") }
    }

    /// Runs `executable` to its end and returns its output and errors; throws unless it exits 0.
    /// Spawned and reaped here with `posix_spawn` and `waitpid`: Foundation's `Process` was seen
    /// never to notice `runuser`'s exit (a zombie left unreaped and the test waiting forever).
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let outputPath = "/tmp/apikeyd-tool-\(UInt64.random(in: 0...UInt64.max)).out"
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw KillNineTests.Failure("\(executable) did not start: errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw KillNineTests.Failure("waitpid \(executable): errno \(errno)") }
        }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // Exited normally (no signal) with status 0.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw KillNineTests.Failure(
                "\(executable) \(arguments.joined(separator: " ")) failed (wait status \(status)): \(text)")
        }
        return text
    }

    /// A port no one listens on now.
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw KillNineTests.Failure("no free port") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

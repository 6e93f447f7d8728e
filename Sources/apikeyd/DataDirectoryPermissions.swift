import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The data directory holds every key and the admin token: readable by its owner only. An
/// existing one open to the group or others is tightened to 0700 (and said in the log), or, when
/// that is not allowed (another owner), refused.
enum DataDirectoryPermissions {
    static func secure(_ path: String, logger: Logger) throws {
        var status = stat()
        guard stat(path, &status) == 0 else { return }  // created 0700 by the engine
        guard (status.st_mode & S_IFMT) == S_IFDIR else {
            throw StartFailure(description: "the data directory \(path) is not a directory")
        }
        let mode = status.st_mode & 0o7777
        guard mode & 0o077 != 0 else { return }
        guard chmod(path, mode & 0o700) == 0 else {
            throw StartFailure(
                description:
                    "the data directory \(path) is open to other users (mode \(String(mode, radix: 8))) and cannot be tightened: \(String(cString: strerror(errno))); make it 0700"
            )
        }
        logger.warning(
            "tightened the data directory's permissions to owner only",
            metadata: [
                "path": "\(path)", "was": "\(String(mode, radix: 8))", "now": "\(String(mode & 0o700, radix: 8))",
            ])
    }
}

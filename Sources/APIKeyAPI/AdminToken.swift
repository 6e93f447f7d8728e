import APIKeyEngine

#if canImport(Glibc)
    import Glibc
    /// The system's `read` and `write`, by names nothing in scope hides.
    private let systemRead = Glibc.read
    private let systemWrite = Glibc.write
#elseif canImport(Darwin)
    import Darwin
    private let systemRead = Darwin.read
    private let systemWrite = Darwin.write
#endif

/// Where the admin token comes from when neither `--admin-token` nor `APIKEYD_ADMIN_TOKEN` gives
/// one: a file in the data directory, created on first start, readable by its owner only.
public enum AdminTokenFile {
    /// The file name inside the data directory.
    public static let fileName = "admin-token"

    /// The token stored in `directory`, creating the directory and a new random token when missing.
    /// Returns the token, the file's path and whether it was created now.
    public static func loadOrCreate(
        in directory: String
    ) throws(StorageError) -> (token: String, path: String, created: Bool) {
        try createDirectory(directory)
        let path = directory.hasSuffix("/") ? directory + fileName : directory + "/" + fileName
        return try SecretFile.loadOrCreate(path)
    }
}

/// A secret kept in a file of its own, readable by its owner only: its first word.
public enum SecretFile {
    /// The secret in `path`, creating the file with `generated` (a new random 64-hex-digit token
    /// when nil) when it is missing. Returns the secret, the path and whether it was created now.
    public static func loadOrCreate(
        _ path: String, generated: String? = nil
    ) throws(StorageError) -> (token: String, path: String, created: Bool) {
        if let token = try read(path) {
            guard !token.isEmpty else { throw StorageError("\(path) is empty; delete it to get a new one") }
            return (token, path, false)
        }
        let token = generated ?? SystemRandomSource().hexToken(byteCount: 32)
        // Written whole under another name and linked into place, so that a full disk or a crash
        // never leaves an empty or cut file under the name (and a file made meanwhile wins).
        let temporary = "\(path).tmp-\(getpid())"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            throw StorageError("cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        defer { unlink(temporary) }
        let bytes = Array((token + "\n").utf8)
        let written = bytes.withUnsafeBytes { systemWrite(descriptor, $0.baseAddress, $0.count) }
        let synced = written == bytes.count && fsync(descriptor) == 0
        let reason = String(cString: strerror(errno))
        close(descriptor)
        guard synced else { throw StorageError("cannot write \(temporary): \(reason)") }
        guard link(temporary, path) == 0 else {
            if errno == EEXIST, let token = try read(path), !token.isEmpty { return (token, path, false) }
            throw StorageError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        let directory = open(
            path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/").nonEmpty
                ?? ".", O_RDONLY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
        return (token, path, true)
    }

    /// The secret in `path`; nil when there is no such file.
    public static func read(_ path: String) throws(StorageError) -> String? {
        let descriptor = open(path, O_RDONLY)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw StorageError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = bytes.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw StorageError("cannot read \(path): \(String(cString: strerror(errno)))") }
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        return String(text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == " " }).first ?? "")
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}

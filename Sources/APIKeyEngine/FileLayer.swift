import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failure of the storage layer: what was being done, to which path, and the system's reason.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What failed, with the path and the reason.
    public var message: String

    /// A storage failure described by `message`.
    public init(_ message: String) { self.message = message }

    /// A failure from a system call that set `errno`.
    static func system(_ operation: String, _ path: String, errno code: Int32 = errno) -> StorageError {
        StorageError("\(operation) \(path): \(String(cString: strerror(code)))")
    }

    /// The failure's message, as it is.
    public var description: String { message }
}

/// A file open for appending; writes go to the end of what was written, which is the end of the
/// file unless space was reserved past it. Writes and reservations come one at a time (the caller
/// serialises them); a sync may run beside them.
public protocol AppendFile: AnyObject, Sendable {
    /// Writes all of `bytes` after the bytes written so far.
    func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError)
    /// Makes everything written so far durable (`fdatasync`: the data and the metadata needed to
    /// read it back, such as the size; not the modification time).
    func sync() throws(StorageError)
    /// Fills the file with zeros from its end through `end` (bytes from the start), without
    /// moving where the next write goes: the next sync makes the space and the size durable, and
    /// later syncs of writes inside it have only data to write, no size or block allocation.
    /// Nothing happens when the file already reaches `end`.
    func reserve(through end: Int) throws(StorageError)
}

/// The file operations the journal and snapshots need. The real one is ``PosixFileLayer``; tests
/// put a layer in between that injects failures and simulates crashes.
public protocol FileLayer: Sendable {
    /// Opens `path` for appending, creating it with mode 0600 when missing.
    func openForAppend(_ path: String) throws(StorageError) -> any AppendFile
    /// The whole content of `path`.
    func read(_ path: String) throws(StorageError) -> [UInt8]
    /// Cuts `path` to `length` bytes and makes that durable.
    func truncate(_ path: String, to length: Int) throws(StorageError)
    /// Renames `from` to `to`, replacing `to`.
    func rename(_ from: String, to: String) throws(StorageError)
    /// Removes `path`; no error when it does not exist.
    func remove(_ path: String) throws(StorageError)
    /// The names of the entries of `directory`.
    func list(_ directory: String) throws(StorageError) -> [String]
    /// Makes the directory's entries (creations, renames, removals) durable.
    func syncDirectory(_ directory: String) throws(StorageError)
}

/// The operating system's files, through POSIX calls.
public struct PosixFileLayer: FileLayer {
    /// The file layer over the operating system's own files.
    public init() {}

    public func openForAppend(_ path: String) throws(StorageError) -> any AppendFile {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .system("cannot open", path) }
        let size = lseek(descriptor, 0, SEEK_END)
        guard size >= 0 else {
            close(descriptor)
            throw .system("cannot seek", path)
        }
        return PosixAppendFile(descriptor: descriptor, path: path, size: Int(size))
    }

    public func read(_ path: String) throws(StorageError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system("cannot open", path) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .system("cannot stat", path) }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + offset, buffer.count - offset, off_t(offset))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system("cannot read", path)
            }
            if count == 0 { break }
            offset += count
        }
        return Array(bytes[0..<offset])
    }

    public func truncate(_ path: String, to length: Int) throws(StorageError) {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system("cannot open", path) }
        defer { close(descriptor) }
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw .system("cannot truncate", path) }
        guard fsync(descriptor) == 0 else { throw .system("cannot fsync", path) }
    }

    public func rename(_ from: String, to: String) throws(StorageError) {
        guard Glibc.rename(from, to) == 0 else { throw .system("cannot rename to \(to):", from) }
    }

    public func remove(_ path: String) throws(StorageError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .system("cannot remove", path) }
    }

    public func list(_ directory: String) throws(StorageError) -> [String] {
        guard let stream = opendir(directory) else { throw .system("cannot list", directory) }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func syncDirectory(_ directory: String) throws(StorageError) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system("cannot open", directory) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw .system("cannot fsync", directory) }
    }
}

/// An open POSIX file descriptor that appends at its own offset (not `O_APPEND`), so space
/// reserved past the written bytes is overwritten in place; closed when the last reference goes.
final class PosixAppendFile: AppendFile {
    private let descriptor: Int32
    private let path: String
    /// How many bytes were written, and how long the file is (longer once space is reserved).
    private let ends: Mutex<(written: Int, size: Int)>

    init(descriptor: Int32, path: String, size: Int) {
        self.descriptor = descriptor
        self.path = path
        self.ends = Mutex((size, size))
    }

    deinit { close(descriptor) }

    func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        let start = ends.withLock { $0.written }
        try writeFully(bytes, at: start)
        ends.withLock { ends in
            ends.written = start + bytes.count
            ends.size = max(ends.size, ends.written)
        }
    }

    func sync() throws(StorageError) {
        guard fdatasync(descriptor) == 0 else { throw .system("cannot fdatasync", path) }
    }

    func reserve(through end: Int) throws(StorageError) {
        var position = ends.withLock { $0.size }
        guard position < end else { return }
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        while position < end {
            let count = min(zeros.count, end - position)
            try writeFully(UnsafeRawBufferPointer(rebasing: zeros[0..<count]), at: position)
            position += count
            ends.withLock { $0.size = position }
        }
    }

    /// `pwrite`s all of `bytes` at `offset`, again after a short write or an interruption.
    private func writeFully(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(StorageError) {
        var done = 0
        while done < bytes.count {
            let count = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if count < 0 {
                if errno == EINTR { continue }
                throw .system("cannot write", path)
            }
            done += count
        }
    }
}

/// Creates `directory` and its missing parents with mode 0700.
package func createDirectory(_ directory: String) throws(StorageError) {
    var path = directory.hasPrefix("/") ? "/" : ""
    for component in directory.split(separator: "/") {
        path += (path.isEmpty || path.hasSuffix("/") ? "" : "/") + component
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .system("cannot create directory", path) }
    }
}

/// An exclusive `flock` on `<directory>/LOCK`, so two engines never share one data directory.
final class DirectoryLock: Sendable {
    private let descriptor: Mutex<Int32>

    init(directory: String) throws(StorageError) {
        let path = directory + "/LOCK"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .system("cannot open", path) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw StorageError("the data directory \(directory) is in use by another process (it holds \(path))")
        }
        self.descriptor = Mutex(descriptor)
    }

    /// Whether another process holds the lock of `directory`; creates nothing (a directory with
    /// no lock file is not in use).
    static func isHeld(directory: String) -> Bool {
        let descriptor = open(directory + "/LOCK", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else { return true }
        flock(descriptor, LOCK_UN)
        return false
    }

    /// Gives the directory up now rather than when the last reference goes. Unlocks before
    /// closing: a child process forked meanwhile (by an embedder, or by tests) holds a duplicate
    /// of the descriptor until it execs, and the lock belongs to the open file, so closing alone
    /// would leave the directory locked until then.
    func release() {
        descriptor.withLock { descriptor in
            if descriptor >= 0 {
                flock(descriptor, LOCK_UN)
                close(descriptor)
            }
            descriptor = -1
        }
    }

    deinit { release() }
}

extension AppendFile {
    /// Writes all of `bytes` at the end of the file.
    func write(_ bytes: [UInt8]) throws(StorageError) {
        let failure = bytes.withUnsafeBytes { buffer -> StorageError? in
            do throws(StorageError) {
                try write(buffer)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }
}

/// The file `key-storage` in a data directory: which ``KeyStorage`` its records were written with
/// (`plain`, or `hashed` and the secret's fingerprint), so that a directory is never opened with
/// another one, where every key would answer as unknown or a plain key be taken for a hash.
enum KeyStorageMarker {
    static let fileName = "key-storage"

    /// The line the file holds for `storage`.
    static func line(_ storage: KeyStorage) -> String {
        storage.fingerprint.map { "hashed \($0)\n" } ?? "plain\n"
    }

    /// Throws when `directory`'s records were written with another storage than `storage`;
    /// writes the file when it is missing (a new directory, or one made before the file existed,
    /// whose records are plain) and when the directory holds nothing to mismatch. `isEmpty`: it
    /// holds no key and no token.
    static func check(
        directory: String, storage: KeyStorage, isEmpty: Bool, files: any FileLayer
    ) throws(StorageError) {
        let path = directory + "/" + fileName
        let names = try files.list(directory)
        guard names.contains(fileName) else {
            if storage.isHashed, !isEmpty {
                throw StorageError(
                    "\(directory) holds plain keys and cannot be opened with hashed key storage; export it and import the export into a new data directory with hashed key storage"
                )
            }
            try write(line(storage), to: path, directory: directory, files: files)
            return
        }
        let found = String(decoding: try files.read(path), as: UTF8.self)
        guard found != line(storage) else { return }
        if isEmpty {
            try write(line(storage), to: path, directory: directory, files: files)
            return
        }
        let written = String(found.trimmingCharacters(in: "\n"))
        throw StorageError(
            "\(directory) was written with \(Self.describe(written)) key storage and cannot be opened with \(storage)")
    }

    private static func describe(_ written: String) -> String {
        let parts = written.split(separator: " ")
        if parts.count == 2, parts[0] == "hashed" { return "hashed (secret \(parts[1]))" }
        return written == "plain" ? "plain" : "unknown ('\(written)')"
    }

    private static func write(
        _ text: String, to path: String, directory: String, files: any FileLayer
    ) throws(StorageError) {
        let temporary = path + ".tmp"
        if try files.list(directory).contains(fileName + ".tmp") { try files.remove(temporary) }
        let file = try files.openForAppend(temporary)
        try file.write(Array(text.utf8))
        try file.sync()
        try files.rename(temporary, to: path)
        try files.syncDirectory(directory)
    }
}

extension Engine {
    /// Whether the data directory `directory` was written with hashed key storage (its
    /// `key-storage` file says so); false for plain storage, a new directory or a missing one.
    public static func holdsHashedKeys(
        directory: String, files: any FileLayer = PosixFileLayer()
    ) throws(StorageError)
        -> Bool
    {
        guard (try? files.list(directory))?.contains(KeyStorageMarker.fileName) == true else { return false }
        return String(decoding: try files.read(directory + "/" + KeyStorageMarker.fileName), as: UTF8.self)
            .hasPrefix("hashed ")
    }
}

/// The file `key-storage` in a data directory: which ``KeyStorage`` its records were written with
/// (`plain`, or `hashed` and the secret's fingerprint), so that a directory is never opened with
/// another one, where every key would answer as unknown or a plain key be taken for a hash.
enum KeyStorageMarker {
    static let fileName = "key-storage"

    /// The line the file holds for `storage`, without its line break.
    static func line(_ storage: KeyStorage) -> String {
        storage.fingerprint.map { "hashed \($0)" } ?? "plain"
    }

    /// The line in `directory`'s file, without surrounding blanks; nil when there is no file.
    static func written(in directory: String, files: any FileLayer) throws(StorageError) -> String? {
        guard try files.list(directory).contains(fileName) else { return nil }
        let text = String(decoding: try files.read(directory + "/" + fileName), as: UTF8.self)
        return String(text.trimmingCharacters(in: " \n\r\t"))
    }

    /// Throws when `directory`'s records were written with another storage than `storage`:
    /// its file says so, or it holds stored hashes (`holdsHashes`) and is opened with plain
    /// storage, whatever the file says. Writes the file when it is missing (a new directory, or
    /// one made before the file existed, whose records are plain) and rewrites it for a directory
    /// that never held anything (`isFresh`: no journal record and no snapshot entry).
    static func check(
        directory: String, storage: KeyStorage, isFresh: Bool, holdsHashes: Bool, files: any FileLayer
    ) throws(StorageError) {
        if !storage.isHashed, holdsHashes {
            throw StorageError(
                "\(directory) holds hashed keys (\(KeyStorage.hashPrefix)...) and cannot be opened with plain key storage; give hashed key storage and the secret they were written with"
            )
        }
        guard let written = try written(in: directory, files: files) else {
            if storage.isHashed, !isFresh {
                if holdsHashes {
                    throw StorageError(
                        "\(directory) holds hashed keys but its \(fileName) file is missing; if this is the secret they were written with, restore the file with the line '\(line(storage))'"
                    )
                }
                throw StorageError(
                    "\(directory) holds plain keys and cannot be opened with hashed key storage; export it and import the export into a new data directory with hashed key storage"
                )
            }
            try write(storage, in: directory, files: files)
            return
        }
        guard written != line(storage) else { return }
        if isFresh {
            try write(storage, in: directory, files: files)
            return
        }
        let hint =
            written == "plain" && storage.isHashed
            ? "; export it and import the export into a new data directory with hashed key storage" : ""
        throw StorageError(
            "\(directory) was written with \(Self.describe(written)) key storage and cannot be opened with \(storage)\(hint)"
        )
    }

    private static func describe(_ written: String) -> String {
        let parts = written.split(separator: " ")
        if parts.count == 2, parts[0] == "hashed" { return "hashed (secret \(parts[1]))" }
        return written == "plain" ? "plain" : "unknown ('\(written)')"
    }

    /// Writes the file for `storage`: whole under another name, then renamed into place.
    private static func write(_ storage: KeyStorage, in directory: String, files: any FileLayer) throws(StorageError) {
        let path = directory + "/" + fileName
        let temporary = path + ".tmp"
        if try files.list(directory).contains(fileName + ".tmp") { try files.remove(temporary) }
        let file = try files.openForAppend(temporary)
        try file.write(Array((line(storage) + "\n").utf8))
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
        // A directory that does not exist yet holds nothing.
        guard (try? files.list(directory)) != nil else { return false }
        return try KeyStorageMarker.written(in: directory, files: files)?.hasPrefix("hashed ") == true
    }
}

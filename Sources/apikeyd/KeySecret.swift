import APIKeyAPI
import APIKeyCrypto
import APIKeyEngine
import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

/// How keys and client tokens are held (`--key-storage`).
enum KeyStorageMode: String, CaseIterable, Sendable, ExpressibleByArgument {
    case plain
    case hashed
}

/// The secret of hashed key storage: `--key-secret-file`, else `<data-dir>/key-secret`, beside
/// the admin token, generated on first use.
enum KeySecret {
    static let fileName = "key-secret"

    /// The key storage for `mode`. Hashed storage reads its secret from `secretFile`, else from
    /// the data directory's file, which is made when missing if `mayCreate` and the directory does
    /// not hold hashed keys already (else that is an error); `created` is its path when it was made
    /// now, for the caller to remove if the directory then refuses to open.
    static func storage(
        _ mode: KeyStorageMode, secretFile: String?, dataDir: String, mayCreate: Bool
    ) throws(CommandFailure) -> (storage: KeyStorage, created: String?) {
        guard mode == .hashed else { return (.plain, nil) }
        let path = secretFile ?? dataDir + "/" + fileName
        let secret: String
        var created: String?
        do throws(StorageError) {
            // A directory of hashed keys needs the secret they were written with, never a new one.
            let holdsHashedKeys = try Engine.holdsHashedKeys(directory: dataDir)
            if secretFile != nil || !mayCreate || holdsHashedKeys {
                guard let read = try SecretFile.read(path) else {
                    throw StorageError(
                        secretFile == nil
                            ? "no key secret: \(path) is missing; give --key-secret-file"
                            : "the key secret file \(path) is missing")
                }
                guard !read.isEmpty else { throw StorageError("the key secret file \(path) is empty") }
                secret = read
            } else {
                try createDirectory(dataDir)
                let stored = try SecretFile.loadOrCreate(path)
                secret = stored.token
                if stored.created { created = path }
            }
        } catch {
            throw CommandFailure(error.message)
        }
        return (try hashed(secret, from: path), created)
    }

    /// Whether users other than the owner may read the file at `path`.
    static func isOpenToOthers(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && status.st_mode & 0o044 != 0
    }

    /// Hashed key storage under `secret`, read from `path`.
    static func hashed(_ secret: String, from path: String) throws(CommandFailure) -> KeyStorage {
        guard let hasher = HMACKeyHasher(secret: Array(secret.utf8)) else {
            throw CommandFailure(
                "the key secret in \(path) is \(secret.utf8.count) bytes; it must be at least \(HMACKeyHasher.minimumSecretBytes)"
            )
        }
        return .hashed(hasher)
    }

    /// The key storage `dataDir` was written with, for commands that rewrite a directory without
    /// serving it (snapshot): hashed storage's secret as ``storage(_:secretFile:dataDir:mayCreate:)``
    /// finds it, never made anew.
    static func written(in dataDir: String, secretFile: String?) throws(CommandFailure) -> KeyStorage {
        let hashed: Bool
        do throws(StorageError) {
            hashed = try Engine.holdsHashedKeys(directory: dataDir)
        } catch {
            throw CommandFailure(error.message)
        }
        return try storage(hashed ? .hashed : .plain, secretFile: secretFile, dataDir: dataDir, mayCreate: false)
            .storage
    }
}

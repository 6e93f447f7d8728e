import NIOSSL
import Synchronization

/// The certificate chain and private key the server answers TLS with (TLS 1.2 and 1.3), read
/// from PEM files and read again by ``reload()``: connections accepted afterwards get the new
/// ones, open ones keep theirs.
public final class TLSCertificates: Sendable {
    /// The PEM file of the certificate chain, the server's certificate first.
    public let certificatePath: String
    /// The PEM file of the private key.
    public let privateKeyPath: String
    private let context: Mutex<NIOSSLContext>

    /// Reads both files; throws with the file named when either cannot be read or they do not
    /// make a TLS context.
    public init(certificatePath: String, privateKeyPath: String) throws(TLSFileError) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        context = Mutex(try Self.makeContext(certificatePath: certificatePath, privateKeyPath: privateKeyPath))
    }

    /// Reads the files again; on failure the certificate in use stays and the error says why.
    public func reload() throws(TLSFileError) {
        let fresh = try Self.makeContext(certificatePath: certificatePath, privateKeyPath: privateKeyPath)
        context.withLock { $0 = fresh }
    }

    /// The context for a connection accepted now.
    var current: NIOSSLContext { context.withLock { $0 } }

    private static func makeContext(
        certificatePath: String, privateKeyPath: String
    ) throws(TLSFileError)
        -> NIOSSLContext
    {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw TLSFileError("cannot read the TLS certificate \(certificatePath): \(error)")
        }
        guard !chain.isEmpty else { throw TLSFileError("no PEM certificate in \(certificatePath)") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        } catch {
            throw TLSFileError("cannot read the TLS private key \(privateKeyPath): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv13
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError(
                "the TLS certificate \(certificatePath) and key \(privateKeyPath) do not make a TLS context (does the key match?): \(error)"
            )
        }
    }
}

/// Why the TLS files could not be used.
public struct TLSFileError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

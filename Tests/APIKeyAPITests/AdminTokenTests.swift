import APIKeyEngine
import APIKeyLimiter
import TestSupport
import Testing

@testable import APIKeyAPI

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct AdminTokenTests {
    @Test func createdOnceOwnerOnlyAndReadBack() throws {
        let root = "/tmp/apikeyd-test-\(UInt64.random(in: 0...UInt64.max))"
        let directory = root + "/nested/store"
        defer { _ = system("rm -rf '\(root)'") }
        let first = try AdminTokenFile.loadOrCreate(in: directory)
        #expect(first.created)
        #expect(first.token.count == 64)
        #expect(first.path == directory + "/admin-token")

        var fileStatus = stat()
        #expect(stat(first.path, &fileStatus) == 0)
        #expect(fileStatus.st_mode & 0o777 == 0o600)
        var directoryStatus = stat()
        #expect(stat(directory, &directoryStatus) == 0)
        #expect(directoryStatus.st_mode & 0o777 == 0o700)

        let second = try AdminTokenFile.loadOrCreate(in: directory)
        #expect(!second.created)
        #expect(second.token == first.token)
    }
}

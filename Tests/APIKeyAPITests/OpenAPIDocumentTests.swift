import APIKeyEngine
import Foundation
import Testing

@testable import APIKeyAPI

/// `docs/openapi.yaml` against what the server serves, the endpoints it routes and the README's
/// endpoint table, so that none of them can drift from the others.
@Suite struct OpenAPIDocumentTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let document = try! String(
        contentsOf: repository.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)

    /// The document's paths with their operations' methods: the keys two spaces in under `paths:`
    /// and the method keys four spaces in under each.
    static func documentedOperations() -> [String: Set<String>] {
        var operations: [String: Set<String>] = [:]
        var inPaths = false
        var path: String?
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") { inPaths = line == "paths:" }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
                operations[path!] = []
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "delete", "head", "patch"].contains(method) {
                    operations[path]!.insert(String(method))
                }
            }
        }
        return operations
    }

    @Test func theServerServesTheDocumentAsItIsInDocs() throws {
        #expect(OpenAPIDocument.yaml == Self.document, "run `make openapi` after editing docs/openapi.yaml")
        let router = APIRouter(engine: Engine(), adminToken: "token")
        for method in ["GET", "HEAD"] {
            guard case .now(let response) = router.respond(to: APIRequest(method: method, target: "/openapi.yaml"))
            else {
                Issue.record("the document is answered at once")
                continue
            }
            #expect(response.status == 200)
            #expect("\(response.contentType)" == "application/yaml; charset=utf-8")
            #expect(response.body == Array(Self.document.utf8))
        }
        for path in ["/openapi.yaml", "/health"] {
            guard case .now(let refused) = router.respond(to: APIRequest(method: "POST", target: path)) else {
                Issue.record("a refusal is answered at once")
                continue
            }
            #expect(refused.status == 405)
            #expect(refused.headers.contains { $0 == ("Allow", "GET, HEAD") }, "\(path): \(refused.headers)")
        }
    }

    @Test func theDocumentDescribesEveryRoutedEndpointWithGetAndPost() {
        let operations = Self.documentedOperations()
        let routed = Set(APIRouter.endpoints.keys).union(KeyLookup.byEndpointName.keys).map { "/api/" + $0 }
        let documented = operations.keys.filter { $0.hasPrefix("/api/") }
        #expect(Set(documented) == Set(routed))
        for path in documented { #expect(operations[path] == ["get", "post"], "\(path)") }
        for path in ["/health", "/metrics", "/openapi.yaml"] { #expect(operations[path] == ["get"], "\(path)") }
        #expect(operations.count == routed.count + 3)
    }

    @Test func theReadmeTableNamesTheDocumentsEndpoints() throws {
        let readme = try String(contentsOf: Self.repository.appendingPathComponent("README.md"), encoding: .utf8)
        let section = readme.components(separatedBy: "## The HTTP API")[1].components(separatedBy: "\n## ")[0]
        var listed: [String] = []
        for row in section.split(separator: "\n") where row.hasPrefix("| `") {
            let first = row.split(separator: "|")[0].trimmingCharacters(in: .whitespaces)
            // `admin/serviceapikey/suspend`, `unsuspend`: later names share the first's prefix.
            let names = first.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " `")) }
            guard let head = names.first else { continue }
            if head.hasPrefix("GET /") {
                listed.append(String(head.dropFirst(4)))
                continue
            }
            guard head.split(separator: "/").count == 3 else { continue }
            let prefix = head.split(separator: "/").dropLast().joined(separator: "/")
            listed.append("/api/" + head)
            for name in names.dropFirst() { listed.append("/api/\(prefix)/\(name)") }
        }
        #expect(Set(listed).count == listed.count, "listed twice: \(listed)")
        #expect(Set(listed) == Set(Self.documentedOperations().keys))
    }
}

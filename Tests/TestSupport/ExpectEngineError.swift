import APIKeyEngine
import Testing

/// Expects `body` to throw an ``EngineError`` with exactly this code and message (`#expect(throws:)`
/// alone compares codes only, as ``EngineError`` equality does).
public func expectEngineError<R>(
    _ code: EngineError.Code, _ message: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> R
) {
    #expect(sourceLocation: sourceLocation) {
        _ = try body()
    } throws: { error in
        guard let error = error as? EngineError else { return false }
        return error.code == code && error.message == message
    }
}

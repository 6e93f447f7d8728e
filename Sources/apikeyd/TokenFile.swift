import Foundation

/// Reads a token kept in a file: its first non-empty line, without surrounding blanks.
enum TokenFile {
    /// The token in `path`; throws a message naming the file when it cannot be read or is empty.
    static func read(_ path: String) throws(CommandFailure) -> String {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CommandFailure("cannot read the admin token file \(path): \(error.localizedDescription)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: " \t") }
        guard let line = lines.first(where: { !$0.isEmpty }) else {
            throw CommandFailure("the admin token file \(path) is empty")
        }
        return String(line)
    }
}

/// Writes `apikeyd: <message>` as a line on standard error (failures, warnings, summaries:
/// standard output carries the command's own output).
func printOnStandardError(_ message: String) {
    FileHandle.standardError.write(Data("apikeyd: \(message)\n".utf8))
}

/// Why a command failed, as the one line it prints on standard error, and the exit status:
/// 1 for a failure (the server refused, cannot be reached, a bad input file), 2 for bad options.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    var status: Int32

    init(_ description: String, status: Int32 = 1) {
        self.description = description
        self.status = status
    }

    /// A bad option or option value (exit status 2).
    static func usage(_ description: String) -> CommandFailure { CommandFailure(description, status: 2) }
}

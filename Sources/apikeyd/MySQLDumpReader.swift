/// Reads the rows of chosen tables out of a `mysqldump` file: `CREATE TABLE` gives each table's
/// column order; `INSERT` (and `INSERT IGNORE`, `REPLACE`) statements, extended or one row each,
/// with or without a column list, give the rows. Values are `NULL`, quoted strings with MySQL's
/// escapes (`\0 \' \" \b \n \r \t \Z \\`, and `''`), hexadecimal (`0x...`), charset-introduced
/// strings (`_binary '...'`) and bare numbers. Comments and every other statement are skipped.
///
/// Hand-written: no Swift library parses SQL dumps, and one pass over a buffer keeps a dump of a
/// million orders within seconds.
struct MySQLDumpReader {
    /// One value of a row; numbers keep their text.
    enum Value: Equatable {
        case null
        case text(String)

        var text: String? {
            if case .text(let text) = self { return text }
            return nil
        }
    }

    /// A row: the values of the columns asked for, in the order they were asked for (NULL for a
    /// column the table lacks), and the line it starts on.
    struct Row {
        var values: [Value]
        var line: Int
    }

    /// Why the dump could not be read, and where.
    struct Failure: Error {
        var line: Int
        var message: String
    }

    private let bytes: [UInt8]
    /// The tables to read, each with the columns to keep, in the order rows give them.
    private let wanted: [String: [String]]
    private var position = 0
    private var line = 1
    /// Column order of each table, from its `CREATE TABLE`.
    private var columns: [String: [String]] = [:]

    init(bytes: [UInt8], tables: [String: [String]]) {
        self.bytes = bytes
        self.wanted = tables
    }

    /// Reads the whole dump; calls `row` with each row of a wanted table and `progress` with the
    /// bytes read so far, now and then.
    mutating func read(row: (String, Row) throws -> Void, progress: (Int) -> Void) throws {
        var statements = 0
        while true {
            skipBlanksAndComments()
            guard position < bytes.count else { break }
            statements += 1
            if statements % 64 == 0 { progress(position) }
            if matchWords(["CREATE", "TABLE"]) {
                try readCreateTable()
            } else if matchWords(["INSERT", "IGNORE", "INTO"]) || matchWords(["INSERT", "INTO"])
                || matchWords(["REPLACE", "INTO"])
            {
                try readInsert(row)
            } else {
                try skipStatement()
            }
        }
        progress(bytes.count)
    }

    /// The columns a table's `CREATE TABLE` declared, in order; nil when it had none.
    func columnOrder(of table: String) -> [String]? { columns[table] }

    // MARK: - Statements

    private mutating func readCreateTable() throws {
        _ = matchWords(["IF", "NOT", "EXISTS"])
        skipBlanksAndComments()
        let table = try identifier()
        skipBlanksAndComments()
        try expect(UInt8(ascii: "("))
        var names: [String] = []
        var atDefinitionStart = true
        var depth = 1
        while depth > 0 {
            skipBlanksAndComments()
            guard position < bytes.count else { throw failure("the CREATE TABLE of \(table) does not end") }
            let byte = bytes[position]
            if atDefinitionStart {
                atDefinitionStart = false
                if byte == UInt8(ascii: "`") {
                    names.append(try identifier())
                    continue
                }
            }
            switch byte {
            case UInt8(ascii: "("): depth += 1
            case UInt8(ascii: ")"): depth -= 1
            case UInt8(ascii: ","): if depth == 1 { atDefinitionStart = true }
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                _ = try quoted()
                continue
            default: break
            }
            position += 1
        }
        columns[table] = names
        try skipStatement()
    }

    private mutating func readInsert(_ row: (String, Row) throws -> Void) throws {
        skipBlanksAndComments()
        let table = try identifier()
        guard let keep = wanted[table] else { return try skipStatement() }
        skipBlanksAndComments()
        var order: [String]
        if position < bytes.count, bytes[position] == UInt8(ascii: "(") {
            position += 1
            order = []
            while true {
                skipBlanksAndComments()
                order.append(try identifier())
                skipBlanksAndComments()
                if try next() == UInt8(ascii: ")") { break }
            }
        } else {
            guard let declared = columns[table] else {
                throw failure("an INSERT into \(table) has no column list and no CREATE TABLE before it")
            }
            order = declared
        }
        skipBlanksAndComments()
        guard matchWords(["VALUES"]) || matchWords(["VALUE"]) else { throw failure("expected VALUES") }
        // Where each column's value goes in a row, -1 for a column not kept.
        let slots = order.map { keep.firstIndex(of: $0) ?? -1 }
        let empty = [Value](repeating: .null, count: keep.count)
        while true {
            skipBlanksAndComments()
            let rowLine = line
            try expect(UInt8(ascii: "("))
            var values = empty
            var index = 0
            while true {
                skipBlanksAndComments()
                if index < slots.count, slots[index] >= 0 {
                    values[slots[index]] = try self.value()
                } else {
                    try skipValue()
                }
                index += 1
                skipBlanksAndComments()
                let separator = try next()
                if separator == UInt8(ascii: ")") { break }
                guard separator == UInt8(ascii: ",") else { throw failure("expected , or ) in a row of \(table)") }
            }
            guard index == order.count else {
                throw failure("a row of \(table) has \(index) values for \(order.count) columns")
            }
            try row(table, Row(values: values, line: rowLine))
            skipBlanksAndComments()
            let after = try next()
            if after == UInt8(ascii: ";") { return }
            guard after == UInt8(ascii: ",") else { throw failure("expected , or ; after a row of \(table)") }
        }
    }

    /// Skips to just past the `;` that ends the statement, stepping over quoted text.
    private mutating func skipStatement() throws {
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: ";"):
                position += 1
                return
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"):
                _ = try quoted()
            case UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "#"):
                if !skipComment() { position += 1 }
            default:
                if byte == UInt8(ascii: "\n") { line += 1 }
                position += 1
            }
        }
    }

    // MARK: - Values

    private mutating func value() throws -> Value {
        guard position < bytes.count else { throw failure("the dump ends inside a row") }
        let byte = bytes[position]
        if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") { return .text(try quoted()) }
        if byte == UInt8(ascii: "_") {
            // A charset introducer: `_binary 'text'`, `_utf8mb4'text'`.
            while position < bytes.count, bytes[position] != UInt8(ascii: "'") {
                guard Self.isWordByte(bytes[position]) || bytes[position] == UInt8(ascii: " ") else {
                    throw failure("unexpected text in a value")
                }
                position += 1
            }
            return .text(try quoted())
        }
        let start = position
        while position < bytes.count, bytes[position] != UInt8(ascii: ","), bytes[position] != UInt8(ascii: ")"),
            !Self.isBlank(bytes[position])
        {
            position += 1
        }
        let word = bytes[start..<position]
        guard !word.isEmpty else { throw failure("a value is missing") }
        if word.count == 4, String(decoding: word, as: UTF8.self).uppercased() == "NULL" { return .null }
        if word.count > 2, word.first == UInt8(ascii: "0"), word[word.startIndex + 1] | 0x20 == UInt8(ascii: "x") {
            return .text(try hexadecimal(word.dropFirst(2)))
        }
        return .text(String(decoding: word, as: UTF8.self))
    }

    /// Steps over a value that is not kept.
    private mutating func skipValue() throws {
        guard position < bytes.count else { throw failure("the dump ends inside a row") }
        let byte = bytes[position]
        if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "_") {
            _ = try value()
            return
        }
        let start = position
        while position < bytes.count, bytes[position] != UInt8(ascii: ","), bytes[position] != UInt8(ascii: ")"),
            !Self.isBlank(bytes[position])
        {
            position += 1
        }
        guard position > start else { throw failure("a value is missing") }
    }

    /// A quoted string or identifier starting at `position`, unescaped.
    private mutating func quoted() throws -> String {
        let quote = bytes[position]
        // Most texts hold no escape and no doubled quote: taken as they are.
        var end = position + 1
        while end < bytes.count, bytes[end] != quote, bytes[end] != UInt8(ascii: "\\"), bytes[end] != UInt8(ascii: "\n")
        {
            end += 1
        }
        if end < bytes.count, bytes[end] == quote, end + 1 >= bytes.count || bytes[end + 1] != quote {
            guard let text = String(validating: bytes[(position + 1)..<end], as: UTF8.self) else {
                throw failure("a text is not valid UTF-8")
            }
            position = end + 1
            return text
        }
        let startLine = line
        position += 1
        var text: [UInt8] = []
        var runStart = position
        while true {
            guard position < bytes.count else {
                line = startLine
                throw failure("a quoted text that starts here does not end")
            }
            let byte = bytes[position]
            if byte == quote {
                if position + 1 < bytes.count, bytes[position + 1] == quote {
                    text.append(contentsOf: bytes[runStart...position])
                    position += 2
                    runStart = position
                    continue
                }
                text.append(contentsOf: bytes[runStart..<position])
                position += 1
                break
            }
            if byte == UInt8(ascii: "\\"), quote != UInt8(ascii: "`") {
                text.append(contentsOf: bytes[runStart..<position])
                guard position + 1 < bytes.count else { throw failure("the dump ends inside an escape") }
                text.append(contentsOf: Self.unescape(bytes[position + 1]))
                position += 2
                runStart = position
                continue
            }
            if byte == UInt8(ascii: "\n") { line += 1 }
            position += 1
        }
        guard let string = String(validating: text, as: UTF8.self) else {
            line = startLine
            throw failure("a text is not valid UTF-8")
        }
        return string
    }

    /// What a backslash followed by `byte` stands for in a MySQL string.
    private static func unescape(_ byte: UInt8) -> [UInt8] {
        switch byte {
        case UInt8(ascii: "0"): [0]
        case UInt8(ascii: "b"): [8]
        case UInt8(ascii: "n"): [10]
        case UInt8(ascii: "r"): [13]
        case UInt8(ascii: "t"): [9]
        case UInt8(ascii: "Z"): [26]
        // MySQL keeps the backslash of \% and \_ (they matter in patterns only).
        case UInt8(ascii: "%"), UInt8(ascii: "_"): [UInt8(ascii: "\\"), byte]
        default: [byte]
        }
    }

    private func hexadecimal(_ digits: ArraySlice<UInt8>) throws -> String {
        guard digits.count % 2 == 0 else { throw failure("a hexadecimal value has an odd number of digits") }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            guard let high = Self.hexDigit(digits[index]), let low = Self.hexDigit(digits[index + 1]) else {
                throw failure("a hexadecimal value holds a non-digit")
            }
            decoded.append(high << 4 | low)
            index += 2
        }
        guard let text = String(validating: decoded, as: UTF8.self) else {
            throw failure("a hexadecimal value is not UTF-8 text")
        }
        return text
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    // MARK: - Lexing

    /// A table or column name, backticked or bare (`db`.`table` keeps the table).
    private mutating func identifier() throws -> String {
        guard position < bytes.count else { throw failure("a name is missing") }
        var name: String
        if bytes[position] == UInt8(ascii: "`") || bytes[position] == UInt8(ascii: "\"") {
            name = try quoted()
        } else {
            let start = position
            while position < bytes.count, Self.isWordByte(bytes[position]) { position += 1 }
            guard position > start else { throw failure("a name is missing") }
            name = String(decoding: bytes[start..<position], as: UTF8.self)
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            name = try identifier()
        }
        return name
    }

    /// Consumes `words` (case-insensitive, separated by blanks) when they come next.
    private mutating func matchWords(_ words: [String]) -> Bool {
        let (savedPosition, savedLine) = (position, line)
        for word in words {
            skipBlanksAndComments()
            let utf8 = Array(word.utf8)
            guard position + utf8.count <= bytes.count,
                zip(bytes[position..<position + utf8.count], utf8).allSatisfy({ $0 & 0xDF == $1 }),
                position + utf8.count == bytes.count || !Self.isWordByte(bytes[position + utf8.count])
            else {
                (position, line) = (savedPosition, savedLine)
                return false
            }
            position += utf8.count
        }
        return true
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard try next() == byte else { throw failure("expected \(Character(Unicode.Scalar(byte)))") }
    }

    private mutating func next() throws -> UInt8 {
        guard position < bytes.count else { throw failure("the dump ends in the middle of a statement") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func skipBlanksAndComments() {
        while position < bytes.count {
            let byte = bytes[position]
            if Self.isBlank(byte) {
                if byte == UInt8(ascii: "\n") { line += 1 }
                position += 1
            } else if !skipComment() {
                return
            }
        }
    }

    /// Skips a `-- `, `#` or `/* */` comment at `position`; false when none starts there.
    private mutating func skipComment() -> Bool {
        let byte = bytes[position]
        let following = position + 1 < bytes.count ? bytes[position + 1] : 0
        if byte == UInt8(ascii: "#") || (byte == UInt8(ascii: "-") && following == UInt8(ascii: "-")) {
            while position < bytes.count, bytes[position] != UInt8(ascii: "\n") { position += 1 }
            return true
        }
        if byte == UInt8(ascii: "/"), following == UInt8(ascii: "*") {
            position += 2
            while position + 1 < bytes.count,
                !(bytes[position] == UInt8(ascii: "*") && bytes[position + 1] == UInt8(ascii: "/"))
            {
                if bytes[position] == UInt8(ascii: "\n") { line += 1 }
                position += 1
            }
            position = min(bytes.count, position + 2)
            // `/*!40101 SET ... */;` leaves its `;` behind.
            return true
        }
        return false
    }

    private static func isBlank(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\t")
            || byte == UInt8(ascii: "\r")
    }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "$"):
            true
        default: false
        }
    }

    private func failure(_ message: String) -> Failure { Failure(line: line, message: message) }
}

import Testing

@testable import apikeyd

/// The dump reader on the forms `mysqldump` (MariaDB's and MySQL's) writes.
@Suite struct MySQLDumpReaderTests {
    typealias Value = MySQLDumpReader.Value

    static func rows(_ dump: String, _ tables: [String: [String]]) throws -> [(String, MySQLDumpReader.Row)] {
        var reader = MySQLDumpReader(bytes: Array(dump.utf8), tables: tables)
        var rows: [(String, MySQLDumpReader.Row)] = []
        try reader.read(row: { rows.append(($0, $1)) }, progress: { _ in })
        return rows
    }

    static let header = """
        /*M!999999\\- enable the sandbox mode */ 
        -- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
        /*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
        DROP TABLE IF EXISTS `t`;
        CREATE TABLE `t` (
          `id` bigint(20) NOT NULL AUTO_INCREMENT,
          `name` varchar(255) DEFAULT 'a,b (c)',
          `note` text COMMENT 'it''s; here',
          `skip` decimal(18,2) DEFAULT NULL,
          PRIMARY KEY (`id`),
          UNIQUE KEY `id` (`id`)
        ) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;

        """

    @Test func extendedInsertsWithEscapesAndNulls() throws {
        let dump =
            Self.header + """
                LOCK TABLES `t` WRITE;
                /*!40000 ALTER TABLE `t` DISABLE KEYS */;
                INSERT INTO `t` VALUES
                (1,'O\\'Brien \\"x\\" \\\\ back','line\\nbreak\\r\\0\\Z',12.50),
                (2,NULL,'{\\"url\\":\\"https:\\\\/\\\\/e.com\\\\/\\",\\"c\\":\\"Z\\\\u00fcrich\\"}',NULL),
                (3,'tab\there','it''s',-1);
                /*!40000 ALTER TABLE `t` ENABLE KEYS */;
                UNLOCK TABLES;
                """
        // Asked in another order than the table's, and one column the table lacks.
        let rows = try Self.rows(dump, ["t": ["note", "id", "name", "absent"]])
        #expect(rows.count == 3)
        #expect(
            rows[0].1.values == [
                .text("line\nbreak\r\u{0}\u{1A}"), .text("1"), .text(#"O'Brien "x" \ back"#), .null,
            ])
        #expect(rows[1].1.values[2] == .null)
        #expect(rows[1].1.values[0] == .text(#"{"url":"https:\/\/e.com\/","c":"Z\u00fcrich"}"#))
        #expect(rows[2].1.values == [.text("it's"), .text("3"), .text("tab\there"), .null])
        // Lines: the header's CREATE TABLE ends on line 12; rows start on 16, 17 and 18.
        #expect(rows.map(\.1.line) == [16, 17, 18])
    }

    @Test func oneRowEachWithAndWithoutAColumnList() throws {
        let dump =
            Self.header + """
                INSERT INTO `t` VALUES (1,'a','b',0);
                INSERT INTO `t` (`note`, `id`, `name`, `skip`) VALUES ('n',2,_binary 'bin',0x41);
                INSERT IGNORE INTO `other` VALUES (1,'ignored;still one statement');
                REPLACE INTO `t` VALUES (3,0x4869,'c',NULL);
                """
        let rows = try Self.rows(dump, ["t": ["id", "name", "note"]])
        #expect(
            rows.map(\.1.values) == [
                [.text("1"), .text("a"), .text("b")], [.text("2"), .text("bin"), .text("n")],
                [.text("3"), .text("Hi"), .text("c")],
            ])
    }

    @Test func brokenDumpsSayWhere() throws {
        let unterminated = Self.header + "INSERT INTO `t` VALUES (1,'never ends);\n\n"
        #expect {
            _ = try Self.rows(unterminated, ["t": ["id"]])
        } throws: { error in
            guard let failure = error as? MySQLDumpReader.Failure else { return false }
            return failure.line == 13 && failure.message == "a quoted text that starts here does not end"
        }
        let shortRow = Self.header + "\nINSERT INTO `t` VALUES (1,'a','b');\n"
        #expect {
            _ = try Self.rows(shortRow, ["t": ["id"]])
        } throws: { error in
            guard let failure = error as? MySQLDumpReader.Failure else { return false }
            return failure.line == 14 && failure.message == "a row of t has 3 values for 4 columns"
        }
        #expect(throws: MySQLDumpReader.Failure.self) {
            _ = try Self.rows("INSERT INTO `t` VALUES (1);", ["t": ["id"]])
        }
    }
}

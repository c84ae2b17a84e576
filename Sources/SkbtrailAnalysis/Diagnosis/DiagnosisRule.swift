import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle

/// One diagnosis rule: a SELECT over the analysis views, with the header of its file.
///
/// A rule file (rules/*.sql, or a user's `--rules DIR`) starts with comment lines `-- key: value`
/// (`id`, `title`, `level`, `needs`), then one SELECT returning `packet_id`, `event_id`, `level`, `code`,
/// `message`, `advice`, and optionally `confidence` ('certain' or 'inferred') and `inferred` (what was
/// inferred, from what). See docs/rules.md.
public struct DiagnosisRule: Sendable, Equatable {
    public var id: String
    public var title: String
    public var level: String
    /// Probe names (`kfree_skb`, `tcp_send_reset`, ...) or `netfilter` (any netfilter bracket).
    public var needs: [String]
    public var sql: String
    /// 'builtin:FILE.sql' for the embedded rules, else the file's path.
    public var source: String

    public var isBuiltin: Bool { source.hasPrefix("builtin:") }

    /// The columns a rule must return.
    public static let requiredColumns = ["packet_id", "event_id", "level", "code", "message", "advice"]

    /// Parses a rule file's text; `source` names it in messages. Throws a `RuleError` for a missing id.
    public static func parse(_ text: String, source: String) throws -> DiagnosisRule {
        var header: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard t.hasPrefix("--") else { break }
            let body = t.dropFirst(2).trimmingCharacters(in: .whitespaces)
            if let colon = body.firstIndex(of: ":") {
                let key = body[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                let value = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if ["id", "title", "level", "needs"].contains(key), header[key] == nil { header[key] = value }
            }
        }
        let fallbackID = ((source as NSString).lastPathComponent as NSString).deletingPathExtension
        let level = (header["level"] ?? "WARN").uppercased()
        guard ["INFO", "WARN", "ERROR"].contains(level) else {
            throw RuleError(source: source, line: 1, message: "level '\(level)' is not INFO, WARN or ERROR")
        }
        let needs = (header["needs"] ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && $0 != "-" }
        return DiagnosisRule(id: header["id"] ?? fallbackID, title: header["title"] ?? fallbackID, level: level,
                             needs: needs, sql: text, source: source)
    }

    /// The rules built into skbtrail (rules/**/*.sql), sorted by file.
    public static func builtin() -> [DiagnosisRule] {
        EmbeddedRules.files.sorted { $0.key < $1.key }.compactMap { key, text in
            // the embedded files are ours and tested; a bad header here is a build-time bug caught by tests
            try? parse(text, source: "builtin:\(key)")
        }
    }

    /// The rules in `directory` (every *.sql below it, sorted by path; or the one file it names), and the
    /// files that could not be read or parsed. A user rule with the id of a built-in one replaces it.
    public static func load(directory: String) throws -> (rules: [DiagnosisRule], errors: [RuleError]) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) else {
            throw AnalysisError.message("--rules \(directory): no such file or directory: give a directory of rule files (*.sql) or one rule file.")
        }
        var paths: [String] = []
        if isDir.boolValue {
            let walker = FileManager.default.enumerator(atPath: directory)
            while let rel = walker?.nextObject() as? String {
                if rel.hasSuffix(".sql") { paths.append((directory as NSString).appendingPathComponent(rel)) }
            }
        } else {
            paths = [directory]
        }
        var rules: [DiagnosisRule] = []
        var errors: [RuleError] = []
        for path in paths.sorted() {
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                rules.append(try parse(text, source: path))
            } catch let error as RuleError {
                errors.append(error)
            } catch {
                errors.append(RuleError(source: path, line: nil, message: "cannot read: \(error.localizedDescription)"))
            }
        }
        return (rules, errors)
    }

    /// The built-in rules plus those of `directory` (a user rule with a built-in id replaces it).
    public static func all(userDirectory: String?) throws -> (rules: [DiagnosisRule], errors: [RuleError]) {
        var rules = builtin()
        guard let userDirectory else { return (rules, []) }
        let (user, errors) = try load(directory: userDirectory)
        let userIDs = Set(user.map(\.id))
        rules.removeAll { userIDs.contains($0.id) }
        return (rules + user, errors)
    }
}

/// A rule that could not be loaded or run, with the file and line to fix.
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var source: String
    public var line: Int?
    public var message: String

    public init(source: String, line: Int?, message: String) {
        self.source = source
        self.line = line
        self.message = message
    }

    /// An error as diag_rule stores it: its description, which names file and line already.
    init(stored text: String) {
        self.init(source: "", line: nil, message: text)
    }

    public var description: String {
        if source.isEmpty { return message }
        let file = source.hasPrefix("builtin:") ? "rules/" + source.dropFirst("builtin:".count) : source
        return line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)"
    }
}

extension DiagnosisRule {
    /// The SELECT without the trailing semicolon and whitespace, so it can be wrapped in INSERT ... FROM (...).
    var body: String {
        var s = sql
        while let last = s.last, last.isWhitespace || last == ";" { s.removeLast() }
        return s
    }

    /// Compiles the rule alone to find syntax errors and missing columns, with the line of the error.
    func check(_ connection: OpaquePointer) -> RuleError? {
        let text = body
        var statement: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let rc = text.withCString { sqlite3_prepare_v2(connection, $0, -1, &statement, &tail) }
        defer { sqlite3_finalize(statement) }
        if rc != SQLITE_OK {
            let message = String(cString: sqlite3_errmsg(connection))
            let offset = Int(sqlite3_error_offset(connection))
            return RuleError(source: source, line: offset >= 0 ? DiagnosisRule.line(of: offset, in: text) : nil,
                             message: message)
        }
        guard let statement else {
            return RuleError(source: source, line: nil, message: "the file holds no statement")
        }
        if let tail, tail.pointee != 0,
           !String(cString: tail).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let consumed = text.utf8.count - strlen(tail)
            return RuleError(source: source, line: DiagnosisRule.line(of: consumed, in: text),
                             message: "a rule is one SELECT; more follows the first statement")
        }
        if sqlite3_stmt_readonly(statement) == 0 {
            return RuleError(source: source, line: 1, message: "a rule must be a SELECT; it may not change the database")
        }
        var columns: Set<String> = []
        for i in 0..<sqlite3_column_count(statement) {
            if let name = sqlite3_column_name(statement, i) { columns.insert(String(cString: name).lowercased()) }
        }
        let missing = DiagnosisRule.requiredColumns.filter { !columns.contains($0) }
        if !missing.isEmpty {
            return RuleError(source: source, line: DiagnosisRule.firstSelectLine(text),
                             message: "the SELECT must return the columns \(DiagnosisRule.requiredColumns.joined(separator: ", ")); missing: \(missing.joined(separator: ", "))")
        }
        return nil
    }

    /// 1-based line of a UTF-8 byte offset.
    static func line(of offset: Int, in text: String) -> Int {
        1 + text.utf8.prefix(offset).reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
    }

    static func firstSelectLine(_ text: String) -> Int {
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where line.trimmingCharacters(in: .whitespaces).uppercased().hasPrefix("SELECT")
            || line.trimmingCharacters(in: .whitespaces).uppercased().hasPrefix("WITH") {
            return i + 1
        }
        return 1
    }
}

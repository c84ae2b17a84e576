import Foundation
import GRDB

/// A JSON value that keeps object keys in the order they were given (for stable, readable output).
public indirect enum JSON: Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.text == b.text }

    /// From an SQLite value.
    public init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let v): self = .int(v)
        case .double(let v): self = .double(v)
        case .string(let v): self = .string(v)
        case .blob(let d): self = .string(d.base64EncodedString())
        }
    }

    public static func opt(_ s: String?) -> JSON { s.map { .string($0) } ?? .null }
    public static func opt(_ i: Int64?) -> JSON { i.map { .int($0) } ?? .null }

    /// Compact JSON text.
    public var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? String(d) : "null"
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (k, v)) in pairs.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        // most strings need no escape: appended whole
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            out += s
            out += "\""
            return
        }
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

/// Output format of the report commands. `json` is one JSON document for every command (a list is one
/// array, streamed, an item a line); `jsonl` is one JSON object per line (docs/json.md has each shape).
public enum OutputFormat: String, CaseIterable, Sendable {
    case text, json, jsonl, table, csv

    /// Either JSON form.
    public var isJSON: Bool { self == .json || self == .jsonl }
}

/// A list of JSON values written as they come: one array with an item per line (`json`), or one item
/// per line and nothing else (`jsonl`). Nothing is kept: memory does not grow with the list.
public final class JSONList {
    private let sink: TextSink
    private let lines: Bool
    private var count = 0
    private var ended = false

    public init(_ sink: TextSink, lines: Bool) {
        self.sink = sink
        self.lines = lines
        if !lines { sink.append("[") }
    }

    public func add(_ value: JSON) {
        let lines = self.lines, first = count == 0
        sink.append { out in
            if !lines { out += first ? "\n" : ",\n" }
            value.write(into: &out)
            if lines { out += "\n" }
        }
        count += 1
    }

    /// Closes the array (nothing for `jsonl`).
    public func end() {
        guard !ended else { return }
        ended = true
        if !lines { sink.append(count == 0 ? "]\n" : "\n]\n") }
    }
}

/// Text layouts shared by the commands.
public enum TextLayout {
    /// Rows as lines of columns, each cell padded to its column's widest plus two spaces, after
    /// `indent`; trailing spaces trimmed. Widths count characters (bytes for ASCII text, which the
    /// probe names, interfaces and details are: counting characters of every cell cost most of `paths`).
    public static func aligned(_ rows: [[String]], indent: String) -> [String] {
        guard let n = rows.map(\.count).max() else { return [] }
        var widths = [Int](repeating: 0, count: n)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], width(c)) } }
        let pad = String(repeating: " ", count: indent.count)
        return rows.map { r in
            var line = pad
            line.reserveCapacity(pad.utf8.count + widths.reduce(0, +) + 2 * n)
            for (i, c) in r.enumerated() {
                line += c
                if i < r.count - 1 { line += spaces(widths[i] - width(c) + 2) }
            }
            while line.utf8.last == 0x20 { line.removeLast() }
            return line
        }
    }

    /// Characters in `s`: its bytes when it is ASCII.
    @inline(__always) public static func width(_ s: String) -> Int {
        s.utf8.contains(where: { $0 >= 0x80 }) ? s.count : s.utf8.count
    }

    private static let blanks = String(repeating: " ", count: 256)

    /// `n` spaces.
    @inline(__always) static func spaces(_ n: Int) -> Substring {
        n <= 256 ? blanks.prefix(max(0, n)) : Substring(String(repeating: " ", count: n))
    }

    /// `aligned` as one text, a line each.
    public static func align(_ rows: [[String]], indent: String) -> String {
        aligned(rows, indent: indent).map { $0 + "\n" }.joined()
    }

    /// Columns padded to their widest cell, two spaces apart; `right` columns are right-aligned.
    public static func table(_ header: [String], _ rows: [[String]], right: Set<Int> = []) -> String {
        let widths = tableWidths(header, rows)
        var out = ""
        for cells in [header] + rows { tableLine(cells, widths: widths, right: right, into: &out) }
        return out
    }

    /// The width of each column: its widest cell.
    public static func tableWidths(_ header: [String], _ rows: [[String]]) -> [Int] {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        return widths
    }

    /// One line of a table, padded to `widths` (a longer cell pushes the rest of its line right).
    public static func tableLine(_ cells: [String], widths: [Int], right: Set<Int> = [], into out: inout String) {
        for (i, cell) in cells.enumerated() {
            if i > 0 { out += "  " }
            let pad = String(repeating: " ", count: max(0, (i < widths.count ? widths[i] : 0) - cell.count))
            if i == cells.count - 1 && !right.contains(i) {
                out += cell
            } else {
                out += right.contains(i) ? pad + cell : cell + pad
            }
        }
        out += "\n"
    }

    /// RFC 4180 CSV.
    public static func csv(_ header: [String], _ rows: [[String]]) -> String {
        var out = ""
        for cells in [header] + rows { csvLine(cells, into: &out) }
        return out
    }

    /// One CSV line, CRLF-terminated; a cell with a comma, quote or line break is quoted.
    public static func csvLine(_ cells: [String], into out: inout String) {
        for (i, s) in cells.enumerated() {
            if i > 0 { out += "," }
            if s.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) {
                out += "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            } else {
                out += s
            }
        }
        out += "\r\n"
    }

    /// 1536 -> "1.5 KiB".
    public static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    /// Seconds with microseconds: 0.000123. (Built by hand: String(format:) cost a fifth of `paths`.)
    public static func seconds(_ ns: Int64) -> String {
        let negative = ns < 0
        let a = ns.magnitude
        var out = negative ? "-" : ""
        out += String(a / 1_000_000_000)
        out += "."
        pad(Int((a % 1_000_000_000) / 1000), 6, into: &out)
        return out
    }

    /// `v` in decimal, zero-padded to `width` digits.
    @inline(__always) static func pad(_ v: Int, _ width: Int, into out: inout String) {
        let digits = String(v)
        if digits.count < width { out += String(repeating: "0", count: width - digits.count) }
        out += digits
    }

    /// Wall clock, UTC, with microseconds, in ISO 8601: 2025-11-25T12:43:01.123456Z.
    public static func wallClock(unixNs: Int64) -> String {
        let secs = unixNs / 1_000_000_000
        let micros = (unixNs % 1_000_000_000) / 1000
        var t = time_t(secs)
        var tm = tm()
        gmtime_r(&t, &tm)
        var out = ""
        pad(Int(tm.tm_year) + 1900, 4, into: &out); out += "-"
        pad(Int(tm.tm_mon) + 1, 2, into: &out); out += "-"
        pad(Int(tm.tm_mday), 2, into: &out); out += "T"
        pad(Int(tm.tm_hour), 2, into: &out); out += ":"
        pad(Int(tm.tm_min), 2, into: &out); out += ":"
        pad(Int(tm.tm_sec), 2, into: &out); out += "."
        pad(Int(micros), 6, into: &out); out += "Z"
        return out
    }

    /// A cell of `skbtrail sql` text output: NULL prints as empty.
    public static func cell(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return ""
        case .int64(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let s): return s
        case .blob(let d): return "x'" + d.map { String(format: "%02x", $0) }.joined() + "'"
        }
    }
}

/// Output written in pieces as it is produced, so a long result needs no memory of its own.
public final class TextSink {
    /// What was written and not yet passed on, as UTF-8.
    private var buffer: [UInt8] = []
    /// The text `append(_ body:)` writes into, kept between calls.
    private var scratch = ""
    private let write: (String) -> Void

    /// `write` receives pieces of about 64 KiB, and the rest at `flush()`.
    public init(_ write: @escaping (String) -> Void) {
        self.write = write
        buffer.reserveCapacity(1 << 17)
    }

    /// Standard output.
    public static func standardOutput() -> TextSink {
        TextSink { FileHandle.standardOutput.write(Data($0.utf8)) }
    }

    public func append(_ text: String) {
        buffer += text.utf8
        if buffer.count >= 1 << 16 { pass() }
    }

    /// Lets the sink write directly into a text of its own (then checks whether to pass it on).
    public func append(_ body: (inout String) -> Void) {
        scratch.removeAll(keepingCapacity: true)
        body(&scratch)
        buffer += scratch.utf8
        if buffer.count >= 1 << 16 { pass() }
    }

    /// Lets the sink's user write UTF-8 straight into its buffer (the reports that print millions of lines).
    func appendBytes(_ body: (inout [UInt8]) throws -> Void) rethrows {
        try body(&buffer)
        if buffer.count >= 1 << 16 { pass() }
    }

    /// What `body` writes into a sink, as one text (for tests and small outputs).
    public static func collect(_ body: (TextSink) throws -> Void) rethrows -> String {
        var text = ""
        let sink = TextSink { text += $0 }
        try body(sink)
        sink.flush()
        return text
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        write(String(decoding: buffer, as: UTF8.self))
        buffer.removeAll(keepingCapacity: true)
    }

    /// Passes on what was written up to its last line end (else its last whole character): a piece never
    /// ends inside a character.
    private func pass() {
        var cut = buffer.count
        if let newline = buffer.lastIndex(of: 0x0A) {
            cut = newline + 1
        } else {
            while cut > 0 && buffer[cut - 1] & 0xC0 == 0x80 { cut -= 1 }  // continuation bytes
            if cut > 0 && buffer[cut - 1] >= 0xC0 { cut -= 1 }  // the lead byte of the cut character
        }
        guard cut > 0 else { return }
        write(String(decoding: buffer[..<cut], as: UTF8.self))
        buffer.removeSubrange(..<cut)
    }
}

extension Row {
    /// Column `c` as an integer, whatever SQLite holds: a real (an overflowed sum of damaged times) is
    /// clamped, text or NULL is 0. Reports read their rows through these, never through a subscript
    /// that traps on an unexpected type.
    public func int(_ c: String) -> Int64 {
        switch (self[c] as DatabaseValue? ?? .null).storage {
        case .int64(let v): return v
        case .double(let d): return d.isNaN ? 0 : Int64(clamping: Int64(exactly: d.rounded()) ?? (d < 0 ? .min : .max))
        default: return 0
        }
    }

    /// Column `c` as an integer, nil for NULL or a value that is not a number.
    public func optInt(_ c: String) -> Int64? {
        switch (self[c] as DatabaseValue? ?? .null).storage {
        case .int64(let v): return v
        case .double(let d): return d.isNaN ? nil : (Int64(exactly: d.rounded()) ?? (d < 0 ? .min : .max))
        default: return nil
        }
    }

    /// Column `c` as text, "" for NULL; a number as its digits.
    public func text(_ c: String) -> String { optText(c) ?? "" }

    /// Column `c` as text, nil for NULL.
    public func optText(_ c: String) -> String? {
        switch (self[c] as DatabaseValue? ?? .null).storage {
        case .string(let s): return s
        case .int64(let v): return String(v)
        case .double(let d): return String(d)
        case .blob(let b): return String(decoding: b, as: UTF8.self)
        case .null: return nil
        }
    }

    /// Column `c` as a flag: a non-zero integer.
    public func flag(_ c: String) -> Bool { (optInt(c) ?? 0) != 0 }

    /// The column at index `i` (of the SELECT), as `optInt(_:)`, `optText(_:)` read a named one.
    public func optInt(_ i: Int) -> Int64? {
        guard i < count else { return nil }
        switch (self[i] as DatabaseValue? ?? .null).storage {
        case .int64(let v): return v
        case .double(let d): return d.isNaN ? nil : (Int64(exactly: d.rounded()) ?? (d < 0 ? .min : .max))
        default: return nil
        }
    }

    public func optText(_ i: Int) -> String? {
        guard i < count else { return nil }
        switch (self[i] as DatabaseValue? ?? .null).storage {
        case .string(let s): return s
        case .int64(let v): return String(v)
        case .double(let d): return String(d)
        case .blob(let b): return String(decoding: b, as: UTF8.self)
        case .null: return nil
        }
    }

    /// The column at index `i` as bytes: a blob's, or text's UTF-8; nil for NULL or a number.
    public func optBlob(_ i: Int) -> [UInt8]? {
        guard i < count else { return nil }
        switch (self[i] as DatabaseValue? ?? .null).storage {
        case .blob(let b): return [UInt8](b)
        case .string(let s): return Array(s.utf8)
        default: return nil
        }
    }
}

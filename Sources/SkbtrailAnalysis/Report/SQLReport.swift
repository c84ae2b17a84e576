import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle

extension AnalysisDatabase {
    /// Runs one read-only query and renders it as a table, CSV, a JSON array of objects or JSON lines.
    public func sqlReport(_ query: String, format: OutputFormat, limits: QueryLimits = .defaults) throws -> String {
        try TextSink.collect { try sqlReport(query, format: format, limits: limits, to: $0) }
    }

    /// Rows a table is laid out from before it streams: later rows keep these column widths.
    public static let tableLayoutRows = 10_000

    /// Runs one query, in a sandbox (it can only read; `limits` bound its time and memory), and writes it
    /// to `sink` as rows arrive: CSV and JSON stream; a table takes its column widths from the first
    /// `tableLayoutRows` rows.
    public func sqlReport(_ query: String, format: OutputFormat, limits: QueryLimits = .defaults, to sink: TextSink) throws {
        let (connection, sandbox) = try userConnection(limits: limits)
        let statement: RawStatement
        do {
            statement = try sandbox.preparing(.read) { try RawStatement(connection.handle, query) }
        } catch AnalysisError.query(let why) {
            if let refusal = sandbox.refusal {
                throw AnalysisError.query("\(refusal): skbtrail sql only reads (the analysis and the bundle cannot be changed)")
            }
            throw AnalysisError.query(why)
        }
        guard statement.tail.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(in: CharacterSet(charactersIn: ";")).isEmpty else {
            throw AnalysisError.query("the text holds more than one statement: give one query at a time")
        }
        let columns = (0..<statement.columnCount).map(statement.columnName)
        func value(_ i: Int32) -> DatabaseValue {
            switch statement.type(Int32(i)) {
            case SQLITE_INTEGER: return statement.int(i).databaseValue
            case SQLITE_FLOAT: return statement.double(i).databaseValue
            case SQLITE_TEXT: return (statement.text(i) ?? "").databaseValue
            case SQLITE_BLOB: return Data(statement.blob(i)).databaseValue
            default: return .null
            }
        }
        func cells() -> [String] { (0..<statement.columnCount).map { TextLayout.cell(value($0)) } }
        try sandbox.running("the query") {
            statement.run()
            switch format {
            case .json, .jsonl:
                let list = JSONList(sink, lines: format == .jsonl)
                while try statement.step() {
                    list.add(JSON.object(columns.enumerated().map { ($0.element, JSON(value(Int32($0.offset)))) }))
                }
                list.end()
            case .csv:
                sink.append { TextLayout.csvLine(columns, into: &$0) }
                while try statement.step() {
                    let row = cells()
                    sink.append { TextLayout.csvLine(row, into: &$0) }
                }
            case .table, .text:
                var head: [[String]] = []
                var more = false
                while try statement.step() {
                    head.append(cells())
                    if head.count == AnalysisDatabase.tableLayoutRows { more = true; break }
                }
                let widths = TextLayout.tableWidths(columns, head)
                for row in [columns] + head { sink.append { TextLayout.tableLine(row, widths: widths, into: &$0) } }
                head = []
                guard more else { return }
                while try statement.step() {
                    let row = cells()
                    sink.append { TextLayout.tableLine(row, widths: widths, into: &$0) }
                }
            }
        }
    }
}

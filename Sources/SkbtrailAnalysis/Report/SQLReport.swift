import Foundation
import GRDB
import SkbtrailBundle

extension AnalysisDatabase {
    /// Runs one read-only query and renders it as a table, CSV or a JSON array of objects.
    public func sqlReport(_ query: String, format: OutputFormat) throws -> String {
        var text = ""
        let sink = TextSink { text += $0 }
        try sqlReport(query, format: format, to: sink)
        sink.flush()
        return text
    }

    /// Rows a table is laid out from before it streams: later rows keep these column widths.
    public static let tableLayoutRows = 10_000

    /// Runs one read-only query and writes it to `sink` as rows arrive: CSV and JSON stream; a table
    /// takes its column widths from the first `tableLayoutRows` rows.
    public func sqlReport(_ query: String, format: OutputFormat, to sink: TextSink) throws {
        do {
            try reader.read { db in
                let statement = try db.makeStatement(sql: query)
                let columns = statement.columnNames
                let cursor = try Row.fetchCursor(statement)
                switch format {
                case .json:
                    sink.append("[")
                    var first = true
                    while let row = try cursor.next() {
                        let object = JSON.object(zip(columns, row.databaseValues).map { ($0, JSON($1)) })
                        sink.append { out in
                            if !first { out += "," }
                            object.write(into: &out)
                        }
                        first = false
                    }
                    sink.append("]\n")
                case .csv:
                    sink.append { TextLayout.csvLine(columns, into: &$0) }
                    while let row = try cursor.next() {
                        let cells = Array(row.databaseValues.map(TextLayout.cell))
                        sink.append { TextLayout.csvLine(cells, into: &$0) }
                    }
                case .table, .text:
                    var head: [[String]] = []
                    var more = false
                    while let row = try cursor.next() {
                        head.append(Array(row.databaseValues.map(TextLayout.cell)))
                        if head.count == AnalysisDatabase.tableLayoutRows { more = true; break }
                    }
                    let widths = TextLayout.tableWidths(columns, head)
                    for cells in [columns] + head { sink.append { TextLayout.tableLine(cells, widths: widths, into: &$0) } }
                    head = []
                    guard more else { return }
                    while let row = try cursor.next() {
                        let cells = Array(row.databaseValues.map(TextLayout.cell))
                        sink.append { TextLayout.tableLine(cells, widths: widths, into: &$0) }
                    }
                }
            }
        } catch let error as DatabaseError {
            var why = error.message ?? "\(error.resultCode)"
            if error.resultCode == .SQLITE_READONLY || why.contains("readonly") || why.contains("query_only") {
                why += " (skbtrail sql only reads: the analysis and the bundle cannot be changed)"
            }
            throw AnalysisError.query(why)
        }
    }
}

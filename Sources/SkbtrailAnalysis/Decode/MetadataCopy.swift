import GRDB
import SkbtrailBundle

/// Copies the bundle's metadata tables into the analysis database (as bundle_TABLE), column by column
/// where both sides have the column, so the analysis is self-contained and an older bundle, with fewer
/// columns, still copies.
enum MetadataCopy {
    static let tables = ["recording", "probe", "drop_reason", "rst_reason", "symbol", "netns", "interface", "address",
                         "snapshot", "sysctl", "lost"]

    static func copy(from reader: BundleReader, into db: Database) throws {
        for table in tables {
            let target = try db.columns(in: "bundle_\(table)").map(\.name)
            let rows: [Row] = try reader.db.read { src in
                guard try src.tableExists(table) else { return [] }
                let have = Set(try src.columns(in: table).map(\.name))
                let cols = target.filter { have.contains($0) }
                guard !cols.isEmpty else { return [] }
                return try Row.fetchAll(src, sql: "SELECT \(cols.joined(separator: ", ")) FROM \(table)")
            }
            guard let firstRow = rows.first else { continue }
            let cols = Array(firstRow.columnNames)
            let statement = try db.makeStatement(
                sql: "INSERT OR REPLACE INTO bundle_\(table) (\(cols.joined(separator: ", "))) VALUES (\(cols.map { _ in "?" }.joined(separator: ", ")))")
            for row in rows {
                try statement.execute(arguments: StatementArguments(cols.map { row[$0] as DatabaseValue }))
            }
        }
    }
}

import GRDB
import SkbtrailBundle

/// Copies the bundle's metadata tables into the analysis database (as bundle_TABLE), column by column
/// where both sides have the column, so the analysis is self-contained and an older bundle, with fewer
/// columns, still copies. Each value is checked against the column's type: one of another type (an
/// edited or damaged bundle) is copied as NULL, which the analysis reads as unknown, and said.
enum MetadataCopy {
    static let tables = ["recording", "probe", "drop_reason", "rst_reason", "symbol", "netns", "interface", "address",
                         "snapshot", "sysctl", "lost", "provenance", "stack"]

    /// Returns what was damaged, one sentence per column.
    static func copy(from reader: BundleReader, into db: Database) throws -> [String] {
        var damage: [String] = []
        for table in tables {
            let target = try Row.fetchAll(db, sql: "PRAGMA table_info(bundle_\(table))")
                .map { (name: $0["name"] as String, type: ($0["type"] as String? ?? "").uppercased()) }
            let rows: [Row] = try reader.readBundle { src in
                guard try src.tableExists(table) else { return [] }
                let have = Set(try src.columns(in: table).map(\.name))
                let cols = target.map(\.name).filter { have.contains($0) }
                guard !cols.isEmpty else { return [] }
                return try Row.fetchAll(src, sql: "SELECT \(cols.joined(separator: ", ")) FROM \(table)")
            }
            guard let firstRow = rows.first else { continue }
            let cols = Array(firstRow.columnNames)
            let types = cols.map { c in target.first { $0.name == c }?.type ?? "" }
            var wrong = [Int](repeating: 0, count: cols.count)
            let statement = try db.makeStatement(
                sql: "INSERT OR REPLACE INTO bundle_\(table) (\(cols.joined(separator: ", "))) VALUES (\(cols.map { _ in "?" }.joined(separator: ", ")))")
            for row in rows {
                let values: [DatabaseValue] = cols.indices.map { i in
                    let v = row[cols[i]] as DatabaseValue? ?? .null
                    switch (types[i], v.storage) {
                    case (_, .null), ("INTEGER", .int64), ("TEXT", .string), ("", _): return v
                    default:
                        wrong[i] += 1
                        return .null
                    }
                }
                do {
                    try statement.execute(arguments: StatementArguments(values))
                } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                    damage.append("\(reader.path): a \(table) row repeats another's key and is left out")
                }
            }
            for (i, n) in wrong.enumerated() where n > 0 {
                damage.append("\(reader.path): \(table).\(cols[i]) has \(n) value\(n == 1 ? "" : "s") that \(n == 1 ? "is" : "are") not \(types[i] == "INTEGER" ? "an integer" : "text"): read as unknown")
            }
        }
        return damage
    }
}

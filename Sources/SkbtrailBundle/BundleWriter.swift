import Foundation
import GRDB

/// Writes one bundle. Chunks go in one transaction each (WAL, synchronous=NORMAL), so a crash loses
/// at most the chunk being written; `finish` checkpoints and leaves a single self-contained file.
public final class BundleWriter {
    public let path: String
    private let db: DatabaseQueue
    private let compressor: ZstdCompressor?
    public private(set) var chunks = 0
    public private(set) var records = 0
    public private(set) var rawBytes = 0
    public private(set) var storedBytes = 0

    /// Creates `path` (it must not exist) with the schema of the current format version.
    public init(path: String, recording: Recording) throws {
        self.path = path
        if FileManager.default.fileExists(atPath: path) {
            throw BundleError.io("\(path) exists already. Choose another -o FILE or remove it first.")
        }
        do {
            db = try DatabaseQueue(path: path)
            try db.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            try db.write { db in
                guard let sql = BundleFormat.schemaSQL(version: recording.formatVersion) else {
                    throw BundleError.io("no schema for bundle format version \(recording.formatVersion)")
                }
                try db.execute(sql: sql)
                try db.execute(sql: "PRAGMA application_id = \(BundleFormat.applicationID)")
                try db.execute(sql: "PRAGMA user_version = \(recording.formatVersion)")
                try recording.insert(db)
            }
        } catch let error as BundleError {
            throw error
        } catch {
            throw BundleError.io("cannot create the bundle \(path): \(error.localizedDescription). Check that its directory exists and is writable.")
        }
        compressor = recording.codec.hasPrefix("zstd") ? ZstdCompressor(level: Int32(recording.codecLevel)) : nil
        split = recording.codec == SplitCodec.name
    }

    private let split: Bool

    /// Compresses and stores one batch of raw records (concatenated, each framed by its header).
    public func appendChunk(_ bytes: UnsafeRawBufferPointer, records count: Int, firstTs: UInt64, lastTs: UInt64) throws {
        var codec = compressor == nil ? "none" : "zstd"
        var data: Data
        if let compressor, split, let payload = SplitCodec.split(bytes, records: count, fixed: BundleFormat.eventSize) {
            data = try payload.withUnsafeBytes { try compressor.compress($0) }
            codec = SplitCodec.name
        } else {
            data = try compressor?.compress(bytes) ?? Data(bytes)
        }
        try db.write { db in
            try db.execute(
                sql: "INSERT INTO chunk (first_ts, last_ts, records, raw_size, codec, data) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [Int64(bitPattern: firstTs), max(Int64(bitPattern: lastTs), Int64(bitPattern: firstTs)), count, bytes.count, codec, data])
        }
        chunks += 1
        records += count
        rawBytes += bytes.count
        storedBytes += data.count
    }

    public func writeProbes(_ probes: [ProbeRow]) throws {
        try db.write { db in
            try db.execute(sql: "DELETE FROM probe")
            for var probe in probes { try probe.insert(db) }
        }
    }

    public func writeEnum(table: String, _ values: [EnumName]) throws {
        try db.write { db in
            for value in values {
                try db.execute(sql: "INSERT OR REPLACE INTO \(table) (value, name) VALUES (?, ?)",
                               arguments: [value.value, value.name])
            }
        }
    }

    /// Stores the kernel stacks of drops (--drop-stack): id -> frames, innermost first.
    public func writeStacks(_ stacks: [UInt32: [UInt64]]) throws {
        try db.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS stack (id INTEGER NOT NULL, depth INTEGER NOT NULL, address INTEGER NOT NULL, PRIMARY KEY (id, depth))")
            let insert = try db.makeStatement(sql: "INSERT OR REPLACE INTO stack (id, depth, address) VALUES (?, ?, ?)")
            for (id, frames) in stacks.sorted(by: { $0.key < $1.key }) {
                for (depth, address) in frames.enumerated() {
                    try insert.execute(arguments: [Int64(id), depth, Int64(bitPattern: address)])
                }
            }
        }
    }

    public func writeSymbols(_ symbols: [SymbolRow]) throws {
        try db.write { db in
            for symbol in symbols { try symbol.save(db) }
        }
    }

    /// Stores the machine snapshot; later rows for the same key replace earlier ones.
    public func writeSnapshot(_ snapshot: MachineSnapshot) throws {
        try db.write { db in
            for row in snapshot.netns {
                try db.execute(sql: """
                    INSERT INTO netns (inode, name, is_root) VALUES (?, ?, ?)
                    ON CONFLICT (inode) DO UPDATE SET name = coalesce(excluded.name, name), is_root = excluded.is_root
                    """, arguments: [row.inode, row.name, row.isRoot])
            }
            for row in snapshot.interfaces { try row.save(db) }
            for row in snapshot.addresses { try row.save(db) }
            for row in snapshot.sysctls { try row.save(db) }
            for var row in snapshot.snapshots {
                try db.execute(sql: "DELETE FROM snapshot WHERE netns = ? AND phase = ? AND source = ?",
                               arguments: [row.netns, row.phase, row.source])
                try row.insert(db)
            }
        }
    }

    public func writeLost(_ perCPU: [Int: UInt64]) throws {
        try db.write { db in
            for (cpu, n) in perCPU {
                try db.execute(sql: "INSERT OR REPLACE INTO lost (cpu, events) VALUES (?, ?)", arguments: [cpu, Int64(n)])
            }
        }
    }

    /// Marks the recording ended and makes the file self-contained (no -wal beside it).
    public func finish(endedNs: UInt64, reason: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE recording SET ended_ns = ?, stop_reason = ?",
                           arguments: [Int64(bitPattern: endedNs), reason])
        }
        try db.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
        }
        try db.close()
    }

    /// Copies every table but `chunk` and `recording` from the bundle at `source` (format 1 or later):
    /// the columns both have, row by row. For bundles made from another (`skbtrail slice`, `redact`).
    public func copyMetadata(from source: String) throws {
        try db.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS src", arguments: [source])
            defer { try? db.execute(sql: "DETACH DATABASE src") }
            try db.inTransaction {
                let tables = try String.fetchAll(db, sql: "SELECT name FROM src.sqlite_master WHERE type = 'table' AND name NOT IN ('chunk', 'recording') AND name NOT LIKE 'sqlite_%'")
                for table in tables {
                    let mine = try Set(Row.fetchAll(db, sql: "PRAGMA main.table_info(\"\(table)\")").compactMap { $0["name"] as String? })
                    guard !mine.isEmpty else { continue }
                    let theirs = try Row.fetchAll(db, sql: "PRAGMA src.table_info(\"\(table)\")").compactMap { $0["name"] as String? }
                    let columns = theirs.filter { mine.contains($0) }.map { "\"\($0)\"" }.joined(separator: ", ")
                    guard !columns.isEmpty else { continue }
                    try db.execute(sql: "INSERT OR IGNORE INTO main.\"\(table)\" (\(columns)) SELECT \(columns) FROM src.\"\(table)\"")
                }
                return .commit
            }
        }
    }

    /// Runs `body` on the bundle in one transaction (to rewrite the copied metadata).
    public func write(_ body: (Database) throws -> Void) throws {
        try db.write(body)
    }

    /// Makes the file self-contained (no -wal beside it) without touching the recording's end.
    public func close() throws {
        try db.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
        }
        try db.close()
    }
}

import Foundation
import GRDB

/// The chunk codecs: `zstd-split` (the records' fixed headers reshuffled into byte planes, then zstd),
/// `zstd`, `none` (docs/bundle-format.md).
public enum ChunkCodec {
    /// Decompresses a stored chunk into `buffer` (reused between calls, with `scratch`).
    public static func decompress(_ data: Data, codec: String, rawSize: Int, into buffer: inout [UInt8], scratch: inout [UInt8],
                                  chunk: Int64, path: String? = nil) throws {
        do {
            switch codec {
            case "zstd":
                try Zstd.decompress(data, expected: rawSize, into: &buffer)
            case SplitCodec.name:
                // the payload is the records plus an 8-byte prefix, reshuffled
                try Zstd.decompress(data, expected: rawSize + 8, into: &scratch)
                try SplitCodec.join(scratch, count: rawSize + 8, into: &buffer, fixed: BundleFormat.eventSize)
            case "none":
                guard data.count == rawSize else {
                    throw BundleError.corruptChunk("stored \(data.count) bytes, the chunk row says \(rawSize)")
                }
                buffer = [UInt8](data)
            default:
                throw BundleError.corruptChunk("unknown codec \(codec)")
            }
        } catch BundleError.corruptChunk(let why) {
            throw BundleError.corruptChunk(path.map { "\($0), chunk \(chunk): \(why)" } ?? "chunk \(chunk): \(why)")
        }
    }

    /// The decompressed records of a stored chunk, and their length.
    public static func decompress(_ data: Data, codec: String, rawSize: Int, chunk: Int64) throws -> ([UInt8], Int) {
        var buffer: [UInt8] = []
        var scratch: [UInt8] = []
        try decompress(data, codec: codec, rawSize: rawSize, into: &buffer, scratch: &scratch, chunk: chunk)
        return (buffer, rawSize)
    }
}

/// One row of a bundle's table, read with its types checked: a damaged value is a sentence naming the
/// table and column, never a trap.
struct CheckedRow {
    let row: Row
    let table: String
    let path: String

    private func value(_ column: String) -> DatabaseValue { row[column] as DatabaseValue? ?? .null }

    private func damaged(_ column: String, _ what: String) -> BundleError {
        let v = value(column)
        let shown: String
        switch v.storage {
        case .null: shown = "NULL"
        case .int64(let i): shown = String(i)
        case .double(let d): shown = String(d)
        case .string(let t): shown = "'" + BundleError.printable(t, limit: 40) + "'"
        case .blob(let d): shown = "a blob of \(d.count) bytes"
        }
        return BundleError.damaged(path, "\(table).\(column) is \(shown), not \(what)")
    }

    func int(_ column: String) throws -> Int64 {
        if case .int64(let i) = value(column).storage { return i }
        throw damaged(column, "an integer")
    }

    func optInt(_ column: String) throws -> Int64? {
        switch value(column).storage {
        case .null: return nil
        case .int64(let i): return i
        default: throw damaged(column, "an integer or NULL")
        }
    }

    func text(_ column: String) throws -> String {
        if case .string(let t) = value(column).storage { return t }
        throw damaged(column, "text")
    }

    func optText(_ column: String) throws -> String? {
        switch value(column).storage {
        case .null: return nil
        case .string(let t): return t
        default: throw damaged(column, "text or NULL")
        }
    }

    func blob(_ column: String) throws -> Data {
        if case .blob(let d) = value(column).storage { return d }
        throw damaged(column, "the chunk's bytes")
    }
}

/// Reads a bundle. Opens it read-only: analysis never writes into a recording. Every value is checked
/// before it is used: a damaged chunk is skipped and said in `damage`, a damaged essential value (the
/// recording row) is a `BundleError` that names the table and column.
public final class BundleReader {
    public let path: String
    public let db: DatabaseQueue
    public let recording: Recording
    /// What was found damaged and left out while reading, one sentence each.
    public var damage: [String] { noted }
    private var noted: [String] = []

    /// Notes `line` in `damage`, once.
    private func note(_ line: String) { if !noted.contains(line) { noted.append(line) } }

    public init(path: String) throws {
        self.path = path
        try BundleReader.checkFile(path)
        var config = Configuration()
        config.readonly = true
        do {
            db = try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw BundleReader.openError(path, error)
        }
        let header: (Int32, Int)
        do {
            header = try db.read { db in
                (try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                 try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0)
            }
        } catch {
            throw BundleReader.openError(path, error)
        }
        guard header.0 == BundleFormat.applicationID else {
            throw BundleError.notABundle(path, "its SQLite application_id is \(header.0), not skbtrail's")
        }
        if header.1 > BundleFormat.version {
            throw BundleError.tooNew(path, found: header.1, supported: BundleFormat.version)
        }
        let row: Row?
        do {
            row = try db.read { try Row.fetchOne($0, sql: "SELECT * FROM recording ORDER BY id LIMIT 1") }
        } catch {
            throw BundleReader.openError(path, error)
        }
        guard let row else { throw BundleError.notABundle(path, "it has no recording row") }
        recording = try BundleReader.recording(CheckedRow(row: row, table: "recording", path: path))
        if recording.formatVersion > BundleFormat.version {
            throw BundleError.tooNew(path, found: recording.formatVersion, supported: BundleFormat.version)
        }
        try BundleReader.checkLayout(recording, path: path)
    }

    /// What the file is before SQLite opens it: missing, a directory, empty, not SQLite, or a bundle with a
    /// rollback journal left beside it.
    static func checkFile(_ path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw BundleError.notFound(path) }
        guard !isDir.boolValue else { throw BundleError.isDirectory(path) }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw BundleError.notABundle(path, "it cannot be read (\(String(cString: strerror(errno))))")
        }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 16)) ?? Data()
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
        if size == 0 { throw BundleError.notABundle(path, "it is empty") }
        guard magic == Data("SQLite format 3\0".utf8) else { throw BundleError.notABundle(path, "it is not an SQLite file") }
        if size < 512 || size % 512 != 0 {
            throw BundleError.truncated(path, size: size)
        }
        if FileManager.default.fileExists(atPath: path + "-journal") {
            throw BundleError.leftoverJournal(path)
        }
    }

    /// The error of an open or first read that failed, said for what it means.
    static func openError(_ path: String, _ error: Error) -> BundleError {
        let why = reason(error)
        let code = (error as? DatabaseError)?.resultCode.primaryResultCode
        let wal = FileManager.default.fileExists(atPath: path + "-wal")
        if wal && (code == .SQLITE_CANTOPEN || code == .SQLITE_READONLY || why.contains("readonly") || why.contains("unable to open")) {
            return BundleError.walReadOnly(path)
        }
        if code == .SQLITE_CORRUPT || code == .SQLITE_NOTADB || why.contains("malformed") {
            return BundleError.damaged(path, "SQLite finds its pages damaged: \(why)")
        }
        return BundleError.notABundle(path, "SQLite cannot open it: \(why)")
    }

    static func recording(_ r: CheckedRow) throws -> Recording {
        Recording(formatVersion: Int(try r.int("format_version")), recorderVersion: try r.text("recorder_version"),
                  uuid: try r.text("uuid"), commandLine: try r.optText("command_line") ?? "[]", filters: try r.optText("filters") ?? "{}",
                  host: try r.optText("host") ?? "?", kernelRelease: try r.optText("kernel_release") ?? "?",
                  kernelVersion: try r.optText("kernel_version") ?? "?", machine: try r.optText("machine") ?? "?",
                  byteOrder: try r.text("byte_order"), bootToUnixNs: try r.int("boot_to_unix_ns"), codec: try r.text("codec"),
                  codecLevel: Int(try r.optInt("codec_level") ?? 0), snaplen: Int(try r.optInt("snaplen") ?? 0),
                  eventSize: Int(try r.int("event_size")), startedNs: try r.int("started_ns"), endedNs: try r.optInt("ended_ns"),
                  stopReason: try r.optText("stop_reason"))
    }

    /// Refuses a recording whose records this build cannot read: a format version it never wrote, records
    /// of another size than `struct st_event` of that version, or another byte order than this machine's.
    /// (A format 2 reader would upgrade format 1 here, step by step: docs/bundle-format.md.)
    static func checkLayout(_ r: Recording, path: String) throws {
        guard r.formatVersion >= 1 else {
            throw BundleError.damaged(path, "recording.format_version is \(r.formatVersion); skbtrail bundles start at version 1")
        }
        guard r.eventSize == BundleFormat.eventSize else {
            throw BundleError.damaged(path, "recording.event_size is \(r.eventSize) bytes; format \(r.formatVersion) records are \(BundleFormat.eventSize)")
        }
        guard r.byteOrder == BundleFormat.hostByteOrder else {
            throw BundleError.damaged(path, "its records are \(BundleError.printable(r.byteOrder, limit: 20))-endian (recording.byte_order) and this machine is \(BundleFormat.hostByteOrder)-endian; skbtrail does not convert them yet")
        }
        guard r.bootToUnixNs >= 0, r.bootToUnixNs < 1 << 62, r.startedNs >= 0, r.startedNs < 1 << 62 else {
            throw BundleError.damaged(path, "recording.boot_to_unix_ns (\(r.bootToUnixNs)) or started_ns (\(r.startedNs)) is not a clock value")
        }
    }

    static func reason(_ error: Error) -> String {
        if let error = error as? DatabaseError { return BundleError.printable(error.message ?? "\(error.resultCode)", limit: 160) }
        return BundleError.printable("\(error)", limit: 160)
    }

    /// Reads the bundle with `body`; an SQLite error becomes "the bundle is damaged", naming it.
    public func readBundle<T>(_ body: (Database) throws -> T) throws -> T { try read(body) }

    /// An error of the caller's code run inside a read (writing an analysis, a stop asked for): it is
    /// not the bundle's, and `read` passes it on as it is.
    private struct CallerError: Error { let error: Error }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try db.read(body)
        } catch let caller as CallerError {
            throw caller.error
        } catch let error as DatabaseError {
            let code = error.resultCode.primaryResultCode
            let pages = code == .SQLITE_CORRUPT || code == .SQLITE_NOTADB
            throw BundleError.damaged(path, (pages ? "SQLite finds its pages damaged: " : "") + Self.reason(error))
        }
    }

    /// Rows of `sql` from `table` with their types checked by `body`; a row `body` refuses is left out
    /// and said in `damage` (at most the first three of a table; then a count).
    func checkedRows<T>(_ table: String, _ sql: String, _ body: (CheckedRow) throws -> T) throws -> [T] {
        var out: [T] = []
        var refused = 0
        try read { db in
            guard try db.tableExists(table) else { return }
            let cursor = try Row.fetchCursor(db, sql: sql)
            while let row = try cursor.next() {
                do {
                    out.append(try body(CheckedRow(row: row, table: table, path: path)))
                } catch let error as BundleError {
                    refused += 1
                    if refused <= 3 { note(error.reasonText + ": the row is left out") }
                }
            }
        }
        if refused > 3 { note("\(path): \(refused - 3) more damaged \(table) rows are left out") }
        return out
    }

    /// The chunks whose rows are whole (damaged ones are left out and said in `damage`), in order.
    public func chunks() throws -> [ChunkInfo] {
        try checkedRows("chunk", "SELECT id, first_ts, last_ts, records, raw_size, codec, length(data) AS stored, typeof(data) AS type FROM chunk ORDER BY id") { r in
            let info = ChunkInfo(id: try r.int("id"), firstTs: try r.int("first_ts"), lastTs: try r.int("last_ts"),
                                 records: Int(try r.int("records")), rawSize: Int(try r.int("raw_size")), storedSize: Int(try r.int("stored")))
            try checkChunk(info, codec: try r.text("codec"), type: try r.text("type"))
            return info
        }
    }

    /// A chunk row's values that cannot be right: sizes out of range, an unknown codec, no bytes.
    private func checkChunk(_ c: ChunkInfo, codec: String, type: String) throws {
        func damaged(_ why: String) -> BundleError { BundleError.damaged(path, "chunk \(c.id) \(why)") }
        guard type == "blob", c.storedSize > 0 else { throw damaged("has no bytes (data is \(type))") }
        guard c.rawSize >= 0, c.rawSize <= Zstd.maxFrame else { throw damaged("says \(c.rawSize) bytes of records, more than a chunk can hold") }
        guard c.records >= 0, c.records <= c.rawSize / 8 else { throw damaged("says \(c.records) records in \(c.rawSize) bytes") }
        guard ["zstd", "none", SplitCodec.name].contains(codec) else { throw damaged("has the unknown codec '\(BundleError.printable(codec, limit: 20))'") }
    }

    /// Streams every chunk, decompressed, in order. `body` gets the chunk, a buffer and its used length;
    /// the buffer is reused between calls. A damaged chunk is skipped and said in `damage`.
    public func forEachChunk(_ body: (ChunkInfo, [UInt8], Int) throws -> Void) throws {
        try forEachChunk { info, buffer, count, _, _ in try body(info, buffer, count) }
    }

    /// `forEachChunk`, with each chunk also as the bundle stores it: its codec and its bytes.
    public func forEachChunk(_ body: (ChunkInfo, [UInt8], Int, String, Data) throws -> Void) throws {
        var buffer: [UInt8] = []
        var payload: [UInt8] = []
        let ids = try chunks().map(\.id)
        try read { db in
            let statement = try db.makeStatement(sql: "SELECT id, first_ts, last_ts, records, raw_size, codec, data FROM chunk WHERE id = ?")
            for id in ids {
                guard let row = try Row.fetchOne(statement, arguments: [id]) else { continue }
                let r = CheckedRow(row: row, table: "chunk", path: path)
                let data = try r.blob("data"), codec = try r.text("codec")
                let info = ChunkInfo(id: try r.int("id"), firstTs: try r.int("first_ts"), lastTs: try r.int("last_ts"),
                                     records: Int(try r.int("records")), rawSize: Int(try r.int("raw_size")), storedSize: data.count)
                do {
                    try ChunkCodec.decompress(data, codec: codec, rawSize: info.rawSize, into: &buffer, scratch: &payload, chunk: info.id)
                } catch BundleError.corruptChunk(let why) {
                    note("\(path), \(why): the chunk is skipped")
                    continue
                }
                do {
                    try body(info, buffer, info.rawSize, codec, data)
                } catch {
                    throw CallerError(error: error)
                }
            }
        }
    }

    public func probes() throws -> [ProbeRow] { try read { try ProbeRow.order(Column("id")).fetchAll($0) } }
    public func symbols() throws -> [SymbolRow] { try read { try SymbolRow.fetchAll($0) } }

    /// The kernel stacks of drops (--drop-stack): id -> frame addresses, innermost first. None in a
    /// bundle without the table.
    public func stacks() throws -> [UInt32: [UInt64]] {
        try read { db in
            guard try db.tableExists("stack") else { return [:] }
            var out: [UInt32: [UInt64]] = [:]
            // a damaged row (NULL, text, out of range) is left out, never trusted
            for row in try Row.fetchAll(db, sql: "SELECT id, address FROM stack ORDER BY id, depth") {
                guard let id = Int64.fromDatabaseValue(row[0] as DatabaseValue), let address = Int64.fromDatabaseValue(row[1] as DatabaseValue),
                      id > 0, id <= Int64(UInt32.max) else { continue }
                out[UInt32(id), default: []].append(UInt64(bitPattern: address))
            }
            return out
        }
    }
    public func netns() throws -> [NetnsRow] { try read { try NetnsRow.fetchAll($0) } }
    public func interfaces() throws -> [InterfaceRow] { try read { try InterfaceRow.fetchAll($0) } }
    public func addresses() throws -> [AddressRow] { try read { try AddressRow.fetchAll($0) } }
    public func snapshots() throws -> [SnapshotRow] { try read { try SnapshotRow.fetchAll($0) } }
    public func sysctls() throws -> [SysctlRow] { try read { try SysctlRow.fetchAll($0) } }

    /// Names of kernel enum values (drop_reason, rst_reason); damaged rows are left out.
    public func enumNames(table: String) throws -> [Int64: String] {
        var names: [Int64: String] = [:]
        for (v, n) in try checkedRows(table, "SELECT value, name FROM \(table)", { r in (try r.int("value"), try r.text("name")) }) {
            names[v] = n
        }
        return names
    }

    /// Events lost per CPU; damaged rows and negative counts are left out.
    public func lost() throws -> [Int: Int64] {
        var lost: [Int: Int64] = [:]
        let rows = try checkedRows("lost", "SELECT cpu, events FROM lost") { r -> (Int64, Int64) in
            let cpu = try r.int("cpu"), events = try r.int("events")
            guard cpu >= 0, cpu < 1 << 20, events >= 0 else {
                throw BundleError.damaged(path, "lost says \(events) events on CPU \(cpu)")
            }
            return (cpu, events)
        }
        for (cpu, events) in rows { lost[Int(cpu), default: 0] = lost[Int(cpu), default: 0].addingReportingOverflow(events).overflow ? .max : lost[Int(cpu), default: 0] + events }
        return lost
    }

    /// The metadata tables a content hash covers, besides `recording` and `chunk`.
    static let metadataTables = ["probe", "drop_reason", "rst_reason", "symbol", "netns", "interface", "address",
                                 "snapshot", "sysctl", "lost", "stack"]

    /// A hash of everything a decode reads: the recording row, every metadata table and every chunk (its
    /// row and its stored bytes). Two files with the same hash decode to the same analysis, so an edited
    /// copy is never taken for its original.
    public func contentHash() throws -> Hash64 {
        var h = Hash64(seed: UInt64(BundleFormat.version))
        try read { db in
            func add(_ value: DatabaseValue) {
                switch value.storage {
                case .null: h.add(UInt64(0x6e))
                case .int64(let v): h.add(UInt64(0x69)); h.add(UInt64(bitPattern: v))
                case .double(let v): h.add(UInt64(0x64)); h.add(v.bitPattern)
                case .string(let v): h.add(UInt64(0x73)); h.add(v)
                case .blob(let d):
                    h.add(UInt64(0x62)); h.add(UInt64(d.count))
                    d.withUnsafeBytes { h.add($0) }
                }
            }
            for table in ["recording"] + BundleReader.metadataTables + ["chunk"] {
                h.add(table)
                guard try db.tableExists(table) else { continue }
                let order = table == "chunk" ? " ORDER BY id" : ""
                let rows = try Row.fetchCursor(db, sql: "SELECT * FROM \(table)\(order)")
                while let row = try rows.next() {
                    for value in row.databaseValues { add(value) }
                }
            }
        }
        return h
    }

    /// Bytes of the bundle file on disk (and its -wal, when the recorder did not finish).
    public func fileSize() -> Int64 {
        let fm = FileManager.default
        let main = (try? fm.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
        let wal = (try? fm.attributesOfItem(atPath: path + "-wal")[.size] as? Int64) ?? 0
        return main + wal
    }
}

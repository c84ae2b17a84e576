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
                try SplitCodec.join(scratch, count: rawSize + 8, into: &buffer)
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

/// Reads a bundle. Opens it read-only: analysis never writes into a recording.
public final class BundleReader {
    public let path: String
    public let db: DatabaseQueue
    public let recording: Recording

    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            throw BundleError.notFound(path)
        }
        var config = Configuration()
        config.readonly = true
        do {
            db = try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw BundleError.notABundle(path, "SQLite cannot open it: \(Self.reason(error))")
        }
        let header: (Int32, Int)
        do {
            header = try db.read { db in
                (try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                 try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0)
            }
        } catch {
            throw BundleError.notABundle(path, Self.reason(error))
        }
        guard header.0 == BundleFormat.applicationID else {
            throw BundleError.notABundle(path, "its SQLite application_id is \(header.0), not skbtrail's")
        }
        if header.1 > BundleFormat.version {
            throw BundleError.tooNew(path, found: header.1, supported: BundleFormat.version)
        }
        do {
            guard let rec = try db.read({ try Recording.fetchOne($0) }) else {
                throw BundleError.notABundle(path, "it has no recording row")
            }
            recording = rec
        } catch let error as BundleError {
            throw error
        } catch {
            throw BundleError.damaged(path, Self.reason(error))
        }
        if recording.formatVersion > BundleFormat.version {
            throw BundleError.tooNew(path, found: recording.formatVersion, supported: BundleFormat.version)
        }
        try BundleReader.checkLayout(recording, path: path)
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
            throw BundleError.damaged(path, "its records are \(r.byteOrder)-endian (recording.byte_order) and this machine is \(BundleFormat.hostByteOrder)-endian; skbtrail does not convert them yet")
        }
    }

    static func reason(_ error: Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return "\(error)"
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try db.read(body)
        } catch let error as BundleError {
            throw error
        } catch {
            throw BundleError.damaged(path, Self.reason(error))
        }
    }

    public func chunks() throws -> [ChunkInfo] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT id, first_ts, last_ts, records, raw_size, length(data) AS stored FROM chunk ORDER BY id")
                .map { ChunkInfo(id: $0["id"], firstTs: $0["first_ts"], lastTs: $0["last_ts"], records: $0["records"],
                                 rawSize: $0["raw_size"], storedSize: $0["stored"]) }
        }
    }

    /// Streams every chunk, decompressed, in order. `body` gets the chunk, a buffer and its used length;
    /// the buffer is reused between calls.
    public func forEachChunk(_ body: (ChunkInfo, [UInt8], Int) throws -> Void) throws {
        try forEachChunk { info, buffer, count, _, _ in try body(info, buffer, count) }
    }

    /// `forEachChunk`, with each chunk also as the bundle stores it: its codec and its bytes.
    public func forEachChunk(_ body: (ChunkInfo, [UInt8], Int, String, Data) throws -> Void) throws {
        var buffer: [UInt8] = []
        var payload: [UInt8] = []
        try read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT id, first_ts, last_ts, records, raw_size, codec, data FROM chunk ORDER BY id")
            while let row = try rows.next() {
                let data: Data = row["data"]
                let info = ChunkInfo(id: row["id"], firstTs: row["first_ts"], lastTs: row["last_ts"], records: row["records"],
                                     rawSize: row["raw_size"], storedSize: data.count)
                let codec: String = row["codec"]
                try ChunkCodec.decompress(data, codec: codec, rawSize: info.rawSize, into: &buffer, scratch: &payload,
                                          chunk: info.id, path: path)
                try body(info, buffer, info.rawSize, codec, data)
            }
        }
    }

    public func probes() throws -> [ProbeRow] { try read { try ProbeRow.order(Column("id")).fetchAll($0) } }
    public func symbols() throws -> [SymbolRow] { try read { try SymbolRow.fetchAll($0) } }
    public func netns() throws -> [NetnsRow] { try read { try NetnsRow.fetchAll($0) } }
    public func interfaces() throws -> [InterfaceRow] { try read { try InterfaceRow.fetchAll($0) } }
    public func addresses() throws -> [AddressRow] { try read { try AddressRow.fetchAll($0) } }
    public func snapshots() throws -> [SnapshotRow] { try read { try SnapshotRow.fetchAll($0) } }
    public func sysctls() throws -> [SysctlRow] { try read { try SysctlRow.fetchAll($0) } }

    public func enumNames(table: String) throws -> [Int64: String] {
        try read { db in
            var names: [Int64: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT value, name FROM \(table)") { names[row["value"]] = row["name"] }
            return names
        }
    }

    public func lost() throws -> [Int: Int64] {
        try read { db in
            var lost: [Int: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT cpu, events FROM lost") { lost[row["cpu"]] = row["events"] }
            return lost
        }
    }

    /// The metadata tables a content hash covers, besides `recording` and `chunk`.
    static let metadataTables = ["probe", "drop_reason", "rst_reason", "symbol", "netns", "interface", "address",
                                 "snapshot", "sysctl", "lost"]

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

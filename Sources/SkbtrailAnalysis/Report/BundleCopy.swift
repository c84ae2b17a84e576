import Foundation
import GRDB
import GRDBSQLite
import SkbtrailBundle
import SkbtrailEvents

/// What `skbtrail slice` and `skbtrail redact` make.
public struct BundleCopyOptions: Sendable {
    /// "slice" or "redact": the provenance row's kind.
    public var kind: String
    /// How the packets were chosen, in words (the filter flags), for the provenance row.
    public var selection: String
    public var redactor: Redactor?
    public init(kind: String, selection: String, redactor: Redactor? = nil) {
        self.kind = kind
        self.selection = selection
        self.redactor = redactor
    }
}

public struct BundleCopySummary: Sendable {
    public var records = 0
    public var sourceRecords = 0
    public var packets = 0
}

extension AnalysisDatabase {
    /// Writes a bundle at `path` (which must not exist) with the records of the packets `filter`
    /// selects, their clones, and the socket events of their connections (all records when it selects
    /// everything), every metadata table, and a provenance row saying how it was made; redacted where
    /// `options.redactor` is set. Records are copied as recorded, except that each carries its own packet
    /// bytes (the record its bytes referred to may be left out).
    public func copyBundle(filter: PacketFilter, options: BundleCopyOptions, to path: String) throws -> BundleCopySummary {
        var summary = BundleCopySummary()
        let source = bundle.recording
        var recording = source
        recording.formatVersion = BundleFormat.version
        if let r = options.redactor {
            recording.host = "redacted"
            recording.commandLine = #"["skbtrail-record","(redacted)"]"#
            recording.filters = r.redactText(source.filters)
        }
        let (selected, sockets) = try reader.read { db -> (Set<Int64>?, Set<SocketKey>) in
            let selected = try selectedPackets(db, filter)
            var sockets = Set<SocketKey>()
            if let selected {
                let statement = try db.cachedStatement(sql: "SELECT DISTINCT saddr, daddr, sport, dport FROM ev WHERE packet_id = ? AND sport IS NOT NULL")
                for id in selected {
                    try Sandbox.checkInterrupt("the selection")
                    let rows = try Row.fetchCursor(statement, arguments: [id])
                    while let row = try rows.next() {
                        if let s = row.optText(0), let d = row.optText(1), let sp = row.optInt(2), let dp = row.optInt(3) {
                            sockets.insert(SocketKey(s, Int(sp), d, Int(dp)))
                        }
                    }
                }
            }
            return (selected, sockets)
        }
        summary.packets = try selected?.count ?? reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pkt") ?? 0 }

        let temporary = path + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: temporary)
        do {
            let writer = try BundleWriter(path: temporary, recording: recording)
            try writer.copyMetadata(from: bundle.path)
            if let r = options.redactor { try writer.write { try r.redactMetadata($0) } }
            var batch = RecordBatch()
            let redactor = options.redactor
            try reader.read { db in
                let chunks = try Row.fetchCursor(db, sql: "SELECT id, codec, raw_size, data, carry, packets FROM ev_chunk ORDER BY first_record")
                while let row = try chunks.next() {
                    try Sandbox.checkInterrupt("the copy")
                    guard let id = row.optInt(0), let codec = row.optText(1), let rawSize = row.optInt(2),
                          let data = row.optBlob(3), let carry = row.optBlob(4), let packetWords = row.optBlob(5) else { continue }
                    let packets = packetWords.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) } }
                    let (buffer, count) = try ChunkCodec.decompress(Data(data), codec: codec, rawSize: Int(rawSize), chunk: id)
                    var walker = RecordWalker(carry: carry)
                    var i = 0
                    do {
                        try walker.walk(buffer, count: count, chunk: id) { event, snap in
                            defer { i += 1 }
                            summary.sourceRecords += 1
                            if let selected {
                                let packet = i < packets.count ? Int64(packets[i]) : 0
                                if packet != 0 {
                                    guard selected.contains(packet) else { return }
                                } else {
                                    guard let key = SocketKey(event), sockets.contains(key) else { return }
                                }
                            }
                            var e = event
                            var bytes = Array(snap)
                            if let redactor {
                                redactor.redactEvent(&e)
                                if !bytes.isEmpty && e.l3_from != 0 {
                                    redactor.redactPacket(&bytes, ethertype: Redactor.ethertype(bytes, protocol: UInt16(bigEndian: e.protocol)))
                                }
                            }
                            batch.append(&e, bytes)
                            summary.records += 1
                            if batch.bytes.count >= 1 << 20 { try batch.flush(into: writer) }
                        }
                    } catch BundleError.corruptChunk {
                        // the decode kept the records before the damage; so does the copy
                    }
                }
            }
            try batch.flush(into: writer)
            try writer.write { db in
                try db.execute(sql: """
                    INSERT INTO provenance (kind, created_unix_ns, tool_version, source_uuid, source_records, records, detail)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [options.kind, Int64(Date().timeIntervalSince1970 * 1e9), SkbtrailAnalysisVersion.version,
                                     source.uuid, summary.sourceRecords, summary.records,
                                     options.redactor.map { $0.redactText(options.selection) } ?? options.selection])
            }
            try writer.close()
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: temporary + suffix) }
            throw error
        }
        return summary
    }
}

/// A connection's endpoints, either way round: socket events belong to the packets of their connection.
struct SocketKey: Hashable {
    let a: String, b: String

    init(_ saddr: String, _ sport: Int, _ daddr: String, _ dport: Int) {
        let x = "\(saddr)|\(sport)", y = "\(daddr)|\(dport)"
        (a, b) = x < y ? (x, y) : (y, x)
    }

    /// A socket event's endpoints; nil for a record of another kind.
    init?(_ e: st_event) {
        guard ProbeTable.info(Int(e.probe))?.args == .socket else { return nil }
        let s = e.args.sock
        guard s.family == 2 || s.family == 10 else { return nil }
        let v6 = s.family == 10
        self.init(IPAddress(kernelBytes: s.saddr, v6: v6).text, Int(s.sport), IPAddress(kernelBytes: s.daddr, v6: v6).text, Int(s.dport))
    }
}

/// Records re-framed for a chunk: each with its own packet bytes.
struct RecordBatch {
    private(set) var bytes: [UInt8] = []
    private var count = 0
    /// As the chunk table stores them: signed (a damaged record's time may be past Int64.max).
    private var firstTs = Int64.max, lastTs = Int64.min

    mutating func append(_ e: inout st_event, _ packet: [UInt8]) {
        let eventSize = BundleFormat.eventSize
        let padded = (packet.count + 7) / 8 * 8
        e.snap = UInt16(packet.count)
        e.size = UInt16(eventSize + padded)
        e.flags &= ~UInt8(ST_F_SAME_BYTES.rawValue)
        withUnsafeBytes(of: &e) { bytes += $0 }
        bytes += packet
        bytes += [UInt8](repeating: 0, count: padded - packet.count)
        count += 1
        firstTs = min(firstTs, Int64(bitPattern: e.ts))
        lastTs = max(lastTs, Int64(bitPattern: e.ts))
    }

    mutating func flush(into writer: BundleWriter) throws {
        guard count > 0 else { return }
        try bytes.withUnsafeBytes { try writer.appendChunk($0, records: count, firstTs: UInt64(bitPattern: firstTs), lastTs: UInt64(bitPattern: lastTs)) }
        bytes.removeAll(keepingCapacity: true)
        count = 0
        firstTs = .max
        lastTs = .min
    }
}

extension Redactor {
    /// A record's own fields: the process name scrubbed, the addresses of socket, route and conntrack
    /// arguments mapped, a neighbour's link-layer address mapped.
    func redactEvent(_ e: inout st_event) {
        let argsOffset = MemoryLayout<st_event>.offset(of: \st_event.args)!
        let commOffset = MemoryLayout<st_event>.offset(of: \st_event.comm)!
        let kind = ProbeTable.info(Int(e.probe))?.args ?? .none
        var raw = withUnsafeBytes(of: &e) { Array($0) }
        for i in commOffset..<(commOffset + 16) { raw[i] = 0 }
        func addresses(_ saddr: Int, _ daddr: Int, family: UInt16) {
            guard family == 2 || family == 10 else { return }
            mapAddress(&raw, at: argsOffset + saddr, v6: family == 10)
            mapAddress(&raw, at: argsOffset + daddr, v6: family == 10)
        }
        switch kind {
        case .socket:
            addresses(MemoryLayout<st_args_sock>.offset(of: \.saddr)!, MemoryLayout<st_args_sock>.offset(of: \.daddr)!, family: e.args.sock.family)
        case .route:
            addresses(MemoryLayout<st_args_route>.offset(of: \.saddr)!, MemoryLayout<st_args_route>.offset(of: \.daddr)!, family: e.args.route.family)
            mapMAC(&raw, at: argsOffset + MemoryLayout<st_args_route>.offset(of: \.lladdr)!)
        case .netfilter where e.flags & UInt8(ST_F_CT.rawValue) != 0:
            for tuple in [MemoryLayout<st_args_nf>.offset(of: \.ct_orig)!, MemoryLayout<st_args_nf>.offset(of: \.ct_reply)!] {
                let base = argsOffset + tuple
                let l3num = raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: base + MemoryLayout<st_ct_tuple>.offset(of: \.l3num)!, as: UInt16.self) }
                guard l3num == 2 || l3num == 10 else { continue }
                mapAddress(&raw, at: base + MemoryLayout<st_ct_tuple>.offset(of: \.src)!, v6: l3num == 10)
                mapAddress(&raw, at: base + MemoryLayout<st_ct_tuple>.offset(of: \.dst)!, v6: l3num == 10)
            }
        default:
            break
        }
        e = raw.withUnsafeBytes { $0.loadUnaligned(as: st_event.self) }
    }

    /// The copied metadata: addresses and MACs in the address and interface tables, in every snapshot
    /// and sysctl; the host name and command lines scrubbed. Runs inside the copy's transaction.
    func redactMetadata(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT rowid, address, family FROM address") {
            guard let id = row.optInt(0), let a = row.optText(1) else { continue }
            try db.execute(sql: "UPDATE address SET address = ? WHERE rowid = ?", arguments: [redactText(a), id])
        }
        for row in try Row.fetchAll(db, sql: "SELECT rowid, mac FROM interface WHERE mac IS NOT NULL") {
            guard let id = row.optInt(0), let m = row.optText(1) else { continue }
            try db.execute(sql: "UPDATE interface SET mac = ? WHERE rowid = ?", arguments: [redactText(m), id])
        }
        for row in try Row.fetchAll(db, sql: "SELECT id, content FROM snapshot") {
            guard let id = row.optInt(0), let c = row.optText(1) else { continue }
            try db.execute(sql: "UPDATE snapshot SET content = ? WHERE id = ?", arguments: [scrubProcesses(redactText(c)), id])
        }
        for row in try Row.fetchAll(db, sql: "SELECT rowid, name, value FROM sysctl") {
            guard let id = row.optInt(0), let name = row.optText(1), let v = row.optText(2) else { continue }
            let value = name.hasSuffix("hostname") || name.hasSuffix("domainname") ? "redacted" : redactText(v)
            try db.execute(sql: "UPDATE sysctl SET value = ? WHERE rowid = ?", arguments: [value, id])
        }
    }

    /// `ss -p`'s process names and ids: users:(("nginx",pid=12,fd=3)) becomes users:((redacted)).
    func scrubProcesses(_ text: String) -> String {
        text.replacingOccurrences(of: #"users:\(\([^\n]*?\)\)"#, with: "users:((redacted))", options: .regularExpression)
    }
}

import Foundation
import GRDB
import SkbtrailBundle

enum PacketSegmentColumn: Int32, TableColumns {
    static let table = "pkt_segment"
    case id = 1, packets, data
}

enum PacketIndexColumn: Int32, TableColumns {
    static let table = "pkt_index"
    case block = 1, entries
}

enum PacketValueColumn: Int32, TableColumns {
    static let table = "pkt_value"
    case col = 1, value, block, ids
}

enum PacketValueListedColumn: Int32, TableColumns {
    static let table = "pkt_value_col"
    case col = 1
}

/// The columns whose values `pkt_value` lists packets by: what rules select on (`fate = 'dropped'`, a
/// drop reason, a protocol), few values each, so a rule reads the packets it wants instead of all.
enum PacketValueIndex {
    static let columns: [PacketColumn] = [.fate, .drop_reason_name, .proto]
    /// Ids per `pkt_value` row.
    static let block = 65536
    /// The place of a column in `columns`, by raw value (-1: not listed).
    static let place: [Int] = (0...PacketColumn.allCases.count).map { raw in
        columns.firstIndex { $0.rawValue == Int32(raw) } ?? -1
    }
}

/// A segment of packets, packed: the layout shared by `PacketStore` (which writes it) and `PacketSource`
/// (which reads it). Uncompressed, a segment is
///
///     u32 packets, u32 columns, u32 string bytes, u32 record numbers
///     u32 × packets                 the packets' ids
///     i64 × packets × columns       each column of `PacketColumn` but `records`: an integer, a string's
///                                   index + 1 in the string area for text columns, `null` for NULL
///     (u32 length, bytes) …         the string area
///     u32 × (packets + 1)           offsets of each packet's record numbers
///     u32 × record numbers          the packets' records (ev_chunk numbering), in step order
///
/// and zstd-compressed in `pkt_segment.data`. `pkt_index` maps packet ids to (segment, slot).
enum PacketSegment {
    static let capacity = 4096
    static let null = Int64.min
    /// Every column but `records`, in order.
    static let columns: [PacketColumn] = PacketColumn.allCases.filter { $0 != .records }
    static let textColumns: Set<PacketColumn> = [.fate, .incomplete, .drop_reason_name, .drop_symbol, .nf_family, .nf_hook,
                                                  .nf_table, .l3, .proto, .saddr, .daddr, .tuple]
    /// Whether a column (by raw value) is text.
    static let isText: [Bool] = (0...PacketColumn.allCases.count).map { raw in PacketColumn(rawValue: Int32(raw)).map(textColumns.contains) ?? false }
    /// Index entries per `pkt_index` block.
    static let indexBlock = 65536

    /// The index entry of slot `slot` of segment `segment`: 0 means no packet.
    static func entry(segment: Int, slot: Int) -> UInt32 { UInt32(truncatingIfNeeded: segment * capacity + slot + 1) }
}

/// Writes the packets of a decode as they finish (in any id order) into packed, compressed segments of
/// `PacketSegment.capacity`, and at the end the index from packet id to segment and slot. A row costs
/// a few memory writes instead of an SQLite insert; the `pkt` virtual table reads them back.
final class PacketStore {
    private let segments: RowWriter<PacketSegmentColumn>
    private let index: RowWriter<PacketIndexColumn>
    private let values: RowWriter<PacketValueColumn>
    private let listed: RowWriter<PacketValueListedColumn>
    /// For each column of `PacketValueIndex`: its values so far (code - 1), each packet's code by id - 1
    /// (0: NULL or no packet), and the current row's.
    private var valueCodes: [[String: UInt16]] = PacketValueIndex.columns.map { _ in [:] }
    private var valueNames: [[String]] = PacketValueIndex.columns.map { _ in [] }
    private var codesByID: [[UInt16]] = PacketValueIndex.columns.map { _ in [] }
    private var rowCodes: [UInt16] = PacketValueIndex.columns.map { _ in 0 }
    private let compressor = ZstdCompressor(level: 1)
    private var segment = 0
    private var ids: [UInt32] = []
    private var slots: [Int64] = []
    private var strings: [UInt8] = []
    private var stringIndex: [String: Int64] = [:]
    private var stringCount: Int64 = 0
    private var offsets: [UInt32] = [0]
    private var numbers: [UInt32] = []
    /// Index entries by packet id - 1.
    private var entries: [UInt32] = []
    /// Where the current row starts in `slots`, and each column's place in a row (by raw value; -1: none).
    private var base = 0
    private let slotOf: [Int]
    private let width = PacketSegment.columns.count

    init(_ db: Database) throws {
        segments = try RowWriter(db)
        index = try RowWriter(db)
        values = try RowWriter(db)
        listed = try RowWriter(db)
        var slotOf = [Int](repeating: -1, count: PacketColumn.allCases.count + 1)
        for (i, c) in PacketSegment.columns.enumerated() { slotOf[Int(c.rawValue)] = i }
        self.slotOf = slotOf
        slots.reserveCapacity(PacketSegment.capacity * width)
        begin()
    }

    /// Starts the next row: every column NULL.
    private func begin() {
        base = slots.count
        slots.append(contentsOf: repeatElement(PacketSegment.null, count: width))
    }

    @inline(__always) private func set(_ c: PacketColumn, _ v: Int64) {
        let k = slotOf[Int(c.rawValue)]
        if k >= 0 { slots[base + k] = v }
    }

    // the row being built, by column
    @inline(__always) func int(_ c: PacketColumn, _ v: Int64) { set(c, v) }
    @inline(__always) func int(_ c: PacketColumn, _ v: Int) { set(c, Int64(v)) }
    @inline(__always) func int(_ c: PacketColumn, _ v: Int64?) { if let v { set(c, v) } }
    @inline(__always) func int(_ c: PacketColumn, _ v: UInt64) { set(c, Int64(bitPattern: v)) }
    @inline(__always) func text(_ c: PacketColumn, _ v: String?) {
        guard let v else { return }
        let place = PacketValueIndex.place[Int(c.rawValue)]
        if place >= 0 { rowCodes[place] = code(place, v) }
        if let k = stringIndex[v] {
            set(c, k)
            return
        }
        stringCount += 1
        stringIndex[v] = stringCount
        var length = UInt32(v.utf8.count)
        withUnsafeBytes(of: &length) { strings += $0 }
        strings += v.utf8
        set(c, stringCount)
    }

    /// The code of value `v` of listed column `place`: 1 and up, or 0 past 65535 values (then the
    /// column is not listed at all: see `finish`).
    private func code(_ place: Int, _ v: String) -> UInt16 {
        if let c = valueCodes[place][v] { return c }
        guard valueNames[place].count < Int(UInt16.max) else { return 0 }
        valueNames[place].append(v)
        let c = UInt16(valueNames[place].count)
        valueCodes[place][v] = c
        return c
    }

    /// Adds the row built since the last `add`, with the packet's record numbers.
    func add(id: Int, records: UnsafeBufferPointer<UInt32>) throws {
        ids.append(UInt32(truncatingIfNeeded: id))
        numbers += records
        offsets.append(UInt32(truncatingIfNeeded: numbers.count))
        if id > entries.count { entries += repeatElement(0, count: id - entries.count) }
        if id >= 1 { entries[id - 1] = PacketSegment.entry(segment: segment, slot: ids.count - 1) }
        for place in rowCodes.indices {
            if id >= 1 {
                if id > codesByID[place].count { codesByID[place] += repeatElement(0, count: id - codesByID[place].count) }
                codesByID[place][id - 1] = rowCodes[place]
            }
            rowCodes[place] = 0
        }
        if ids.count == PacketSegment.capacity { try flush() }
        begin()
    }

    private func flush() throws {
        guard !ids.isEmpty else { return }
        slots.removeLast(slots.count - ids.count * width)  // the row begun after the last one
        var header: [UInt32] = [UInt32(ids.count), UInt32(PacketSegment.columns.count), UInt32(strings.count), UInt32(numbers.count)]
        var out: [UInt8] = []
        out.reserveCapacity(16 + ids.count * 4 + slots.count * 8 + strings.count + offsets.count * 4 + numbers.count * 4)
        header.withUnsafeBytes { out += $0 }
        ids.withUnsafeBytes { out += $0 }
        slots.withUnsafeBytes { out += $0 }
        out += strings
        offsets.withUnsafeBytes { out += $0 }
        numbers.withUnsafeBytes { out += $0 }
        let data = try out.withUnsafeBytes { try compressor.compress($0) }
        segments.int(.id, segment); segments.int(.packets, ids.count)
        data.withUnsafeBytes { segments.blob(.data, $0) }
        try segments.run()
        segment += 1
        header = []
        ids.removeAll(keepingCapacity: true)
        slots.removeAll(keepingCapacity: true)
        strings.removeAll(keepingCapacity: true)
        stringIndex.removeAll(keepingCapacity: true)
        stringCount = 0
        offsets = [0]
        numbers.removeAll(keepingCapacity: true)
    }

    /// Writes the last segment and the index.
    func finish() throws {
        try flush()
        slots.removeAll()
        var block = 0
        while block * PacketSegment.indexBlock < entries.count {
            let part = entries[(block * PacketSegment.indexBlock)..<min(entries.count, (block + 1) * PacketSegment.indexBlock)]
            index.int(.block, block)
            part.withUnsafeBytes { index.blob(.entries, $0) }
            try index.run()
            block += 1
        }
        try writeValues()
    }

    /// `pkt_value`: for each listed column and each of its values, the ids of the packets with it,
    /// ascending, in blocks. A column with more values than codes is left out (the table then scans).
    private func writeValues() throws {
        for (place, column) in PacketValueIndex.columns.enumerated() where valueNames[place].count < Int(UInt16.max) {
            let names = valueNames[place]
            var lists = [[UInt32]](repeating: [], count: names.count + 1)
            var blocks = [Int](repeating: 0, count: names.count + 1)
            func write(_ code: Int) throws {
                values.text(.col, String(describing: column)); values.text(.value, names[code - 1]); values.int(.block, blocks[code])
                lists[code].withUnsafeBytes { values.blob(.ids, $0) }
                try values.run()
                blocks[code] += 1
                lists[code].removeAll(keepingCapacity: true)
            }
            for (i, code) in codesByID[place].enumerated() where code != 0 {
                lists[Int(code)].append(UInt32(truncatingIfNeeded: i + 1))
                if lists[Int(code)].count == PacketValueIndex.block { try write(Int(code)) }
            }
            for code in 1..<lists.count where !lists[code].isEmpty { try write(code) }
            codesByID[place] = []
            listed.text(.col, String(describing: column))
            try listed.run()
        }
    }
}

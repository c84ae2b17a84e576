import Foundation
import GRDB
import SkbtrailBundle

enum EventChunkColumn: Int32, TableColumns {
    static let table = "ev_chunk"
    case id = 1, first_record, records, codec, raw_size, data, carry, ids, packets, steps
}

enum EventIDColumn: Int32, TableColumns {
    static let table = "ev_id"
    case block = 1, records
}

enum EventNameColumn: Int32, TableColumns {
    static let table = "ev_name"
    case name = 1, block, ids
}

/// What the decode keeps of every record for the `ev` virtual table: each chunk as stored, with the id,
/// packet and step of each of its records (written once all of them were released), the record numbers
/// by id, and the ids by probe name. Memory holds the chunks whose records are not all released yet.
final class EventStore {
    static let block = 65536

    private final class Chunk {
        let id: Int64
        let firstRecord: Int
        let codec: String
        let rawSize: Int
        let data: Data
        let carry: [UInt8]
        var ids: [UInt32]
        var packets: [UInt32]
        var steps: [UInt32]
        var remaining: Int

        init(id: Int64, firstRecord: Int, records: Int, codec: String, rawSize: Int, data: Data, carry: [UInt8]) {
            self.id = id
            self.firstRecord = firstRecord
            self.codec = codec
            self.rawSize = rawSize
            self.data = data
            self.carry = carry
            ids = Array(repeating: 0, count: records)
            packets = Array(repeating: 0, count: records)
            steps = Array(repeating: 0, count: records)
            remaining = records
        }
    }

    private let chunks: RowWriter<EventChunkColumn>
    private let idBlocks: RowWriter<EventIDColumn>
    private let nameBlocks: RowWriter<EventNameColumn>
    /// Chunks with records still to release, oldest first.
    private var open: [Chunk] = []
    /// Record numbers of the ids of the current block.
    private var byID: [UInt32] = []
    private var idBlock = 0
    /// Per probe name: the ids of its current block, and the block number.
    private var byName: [(name: String, ids: [UInt32], block: Int)] = []
    /// The `byName` entry of each attach point (ProbeCounts index); attach points may share a name.
    private var entryOfAttach: [Int] = []
    private var entryOfName: [String: Int] = [:]
    private(set) var records = 0

    init(_ db: Database) throws {
        chunks = try RowWriter(db)
        idBlocks = try RowWriter(db)
        nameBlocks = try RowWriter(db)
        byID.reserveCapacity(EventStore.block)
    }

    /// A chunk walked: its event records are the next `count` record numbers.
    func add(chunk id: Int64, records count: Int, codec: String, rawSize: Int, data: Data, carry: [UInt8]) throws {
        let c = Chunk(id: id, firstRecord: records, records: count, codec: codec, rawSize: rawSize, data: data, carry: carry)
        records += count
        if count == 0 { try write(c) } else { open.append(c) }
    }

    /// Record `number` was released as event `id`, step `step` of `packet` (0: none), at attach point
    /// `attach` named `name`.
    func released(_ number: UInt32, id: Int, packet: Int, step: Int, attach: Int, name: @autoclosure () -> String) throws {
        let n = Int(number)
        guard let k = open.firstIndex(where: { n >= $0.firstRecord && n < $0.firstRecord + $0.ids.count }) else { return }
        let c = open[k]
        let i = n - c.firstRecord
        c.ids[i] = UInt32(truncatingIfNeeded: id)
        c.packets[i] = UInt32(truncatingIfNeeded: packet)
        c.steps[i] = UInt32(truncatingIfNeeded: step)
        c.remaining -= 1
        if c.remaining == 0 {
            open.remove(at: k)
            try write(c)
        }
        byID.append(number)
        if byID.count == EventStore.block { try flushIDs() }
        while attach >= entryOfAttach.count { entryOfAttach.append(-1) }
        if entryOfAttach[attach] < 0 {
            let text = name()
            if let known = entryOfName[text] {
                entryOfAttach[attach] = known
            } else {
                entryOfName[text] = byName.count
                entryOfAttach[attach] = byName.count
                byName.append((text, [], 0))
            }
        }
        let entry = entryOfAttach[attach]
        byName[entry].ids.append(UInt32(truncatingIfNeeded: id))
        if byName[entry].ids.count == EventStore.block { try flushName(entry) }
    }

    /// Writes what is left.
    func finish() throws {
        for c in open { try write(c) }
        open = []
        try flushIDs()
        for i in byName.indices { try flushName(i) }
    }

    private func write(_ c: Chunk) throws {
        let w = chunks
        w.int(.id, c.id); w.int(.first_record, c.firstRecord); w.int(.records, c.ids.count); w.text(.codec, c.codec)
        w.int(.raw_size, c.rawSize)
        c.data.withUnsafeBytes { w.blob(.data, $0) }
        c.carry.withUnsafeBytes { w.blob(.carry, $0) }
        c.ids.withUnsafeBytes { w.blob(.ids, $0) }
        c.packets.withUnsafeBytes { w.blob(.packets, $0) }
        c.steps.withUnsafeBytes { w.blob(.steps, $0) }
        try w.run()
    }

    private func flushIDs() throws {
        guard !byID.isEmpty else { return }
        idBlocks.int(.block, idBlock)
        byID.withUnsafeBytes { idBlocks.blob(.records, $0) }
        try idBlocks.run()
        idBlock += 1
        byID.removeAll(keepingCapacity: true)
    }

    private func flushName(_ i: Int) throws {
        guard !byName[i].ids.isEmpty else { return }
        nameBlocks.text(.name, byName[i].name); nameBlocks.int(.block, byName[i].block)
        byName[i].ids.withUnsafeBytes { nameBlocks.blob(.ids, $0) }
        try nameBlocks.run()
        byName[i].block += 1
        byName[i].ids.removeAll(keepingCapacity: true)
    }
}

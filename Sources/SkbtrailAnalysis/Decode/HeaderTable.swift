import SkbtrailBundle
import SkbtrailEvents

/// One record as the decode holds it: the raw event, the headers parsed from its packet bytes, and a
/// hash of its first bytes (the headers a rewrite changes; 0 when it has none).
struct DecodedRecord {
    var ev: st_event
    /// The parsed headers, shared with the records that carry the same bytes (a packet's records mostly
    /// do), so each distinct byte string is parsed once.
    var hdr: HeaderBox
    var bytesHash: UInt64
    /// Its number among the bundle's event records, in chunk order, from 0 (ev_chunk.first_record + its
    /// index in the chunk).
    var number: UInt32 = 0

    /// The role of its probe in a packet's life.
    var role: ProbeRole { ProbeTable.role(Int(ev.probe)) }
}

/// Parsed headers, shared by reference between the records that carry the same bytes.
final class HeaderBox {
    let value: PacketHeaders
    init(_ value: PacketHeaders) { self.value = value }
}

/// Interns parsed headers by a hash of their bytes. It remembers the latest 64 Ki byte strings (a
/// packet's records come close together), so it stays small however long the recording.
final class HeaderTable {
    static let none = HeaderBox(PacketHeaders())
    static let capacity = 1 << 16
    private var index: [UInt64: HeaderBox] = [:]

    /// The headers parsed from `raw`, parsing them unless these bytes were seen lately.
    func intern(_ raw: UnsafeRawBufferPointer, ethertype: UInt16) -> HeaderBox {
        let key = Hash64.of(raw, seed: UInt64(ethertype) ^ UInt64(raw.count) << 16)
        if let known = index[key] { return known }
        if index.count >= HeaderTable.capacity { index.removeAll(keepingCapacity: true) }
        let box = HeaderBox(PacketHeaders.parse(raw, ethertype: ethertype))
        index[key] = box
        return box
    }

    /// A hash of the first `limit` bytes (the headers a rewrite changes); never 0, which means no bytes.
    static func bytesHash(_ raw: UnsafeRawBufferPointer, limit: Int) -> UInt64 {
        let n = min(limit, raw.count)
        let h = Hash64.of(UnsafeRawBufferPointer(rebasing: raw[0..<n]), seed: UInt64(n))
        return h == 0 ? 1 : h
    }
}

extension st_event {
    /// The probe id as the C enum, for switches that name probes (`case ST_P_KFREE_SKB:`).
    var probeID: st_probe { st_probe(UInt32(probe)) }
    /// The role of the probe that wrote it.
    var role: ProbeRole { ProbeTable.role(Int(probe)) }
    func has(_ flag: st_event_flags) -> Bool { flags & UInt8(flag.rawValue) != 0 }
}

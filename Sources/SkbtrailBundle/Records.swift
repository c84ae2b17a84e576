import Foundation
import SkbtrailEvents

/// One raw record inside a decompressed chunk: the fixed event and its packet bytes.
public struct RawRecord {
    public var event: st_event
    /// Packet bytes from the network header (`event.snap` of them).
    public var packet: ArraySlice<UInt8>
}

/// Walks the records of a decompressed chunk. Unknown record types are skipped and counted;
/// a size that cannot be right is a corrupted chunk.
public struct RecordWalker {
    public private(set) var unknownRecords = 0
    /// Records marked ST_F_SAME_BYTES whose reference bytes were not found (they get none).
    public private(set) var unresolvedBytes = 0
    /// Per CPU (by index), the skb and packet bytes of its latest record that carried bytes in an
    /// earlier chunk: the recorder leaves the bytes out of a record (ST_F_SAME_BYTES) when they equal
    /// these. Within a chunk, `recent` points into the chunk instead of copying every record's bytes.
    private var carried: [(skb: UInt64, bytes: [UInt8])?] = []
    private var recent: [(skb: UInt64, start: Int, count: Int)?] = []
    /// CPUs above this are not tracked (no kernel has that many; a corrupted field must not allocate).
    private static let maxCPUs = 8192

    public init() {}

    /// What a walk carries from one chunk into the next: per CPU, the skb and packet bytes of its latest
    /// record with bytes. Stored beside a chunk, it lets that chunk be walked alone, later.
    public var carry: [UInt8] {
        var out: [UInt8] = []
        for (cpu, c) in carried.enumerated() {
            guard let c else { continue }
            var header = (UInt32(cpu), c.skb, UInt32(c.bytes.count))
            withUnsafeBytes(of: &header.0) { out += $0 }
            withUnsafeBytes(of: &header.1) { out += $0 }
            withUnsafeBytes(of: &header.2) { out += $0 }
            out += c.bytes
        }
        return out
    }

    /// A walker that goes on from the chunk whose `carry` this is (a damaged carry is ignored: records
    /// that needed it get no bytes, and are counted as unresolved).
    public init(carry: [UInt8]) {
        var i = 0
        while i + 16 <= carry.count {
            let cpu = carry.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: i, as: UInt32.self)) }
            let skb = carry.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i + 4, as: UInt64.self) }
            let n = carry.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: i + 12, as: UInt32.self)) }
            i += 16
            guard cpu < RecordWalker.maxCPUs, n <= carry.count - i else { break }
            if cpu >= carried.count {
                carried += Array(repeating: nil, count: cpu + 1 - carried.count)
                recent += Array(repeating: nil, count: cpu + 1 - recent.count)
            }
            carried[cpu] = (skb, Array(carry[i..<(i + n)]))
            i += n
        }
    }

    /// Calls `body` for every ST_REC_EVENT record in `bytes[0..<count]`, with its packet bytes: those
    /// stored after it, or for a record marked ST_F_SAME_BYTES the ones its CPU last stored for the skb.
    /// Walk a bundle's chunks in order with one walker.
    public mutating func walk(_ bytes: [UInt8], count: Int, chunk: Int64,
                              _ body: (st_event, ArraySlice<UInt8>) throws -> Void) throws {
        let eventSize = BundleFormat.eventSize
        var offset = 0
        for i in recent.indices { recent[i] = nil }
        defer {
            // what a later chunk may refer to: copied once per CPU, at the end of the chunk
            for (cpu, r) in recent.enumerated() {
                if let r { carried[cpu] = (r.skb, Array(bytes[r.start..<(r.start + r.count)])) }
            }
        }
        try bytes.withUnsafeBytes { raw in
            while offset < count {
                guard count - offset >= 4 else {
                    throw BundleError.corruptChunk("chunk \(chunk): \(count - offset) stray bytes at its end")
                }
                let type = raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
                let size = Int(raw.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
                guard size >= 8, size % 8 == 0, offset + size <= count else {
                    throw BundleError.corruptChunk("chunk \(chunk): record at byte \(offset) has impossible size \(size)")
                }
                if type == UInt16(ST_REC_EVENT.rawValue) {
                    guard size >= eventSize else {
                        throw BundleError.corruptChunk("chunk \(chunk): event record at byte \(offset) is \(size) bytes, shorter than \(eventSize)")
                    }
                    let event = raw.loadUnaligned(fromByteOffset: offset, as: st_event.self)
                    let snap = min(Int(event.snap), size - eventSize)
                    let start = offset + eventSize
                    let cpu = Int(event.cpu)
                    if snap > 0 {
                        if event.skb != 0 && cpu < RecordWalker.maxCPUs && event.flags & UInt8(ST_F_NESTED.rawValue) == 0 {
                            if cpu >= recent.count {
                                recent += Array(repeating: nil, count: cpu + 1 - recent.count)
                                carried += Array(repeating: nil, count: cpu + 1 - carried.count)
                            }
                            recent[cpu] = (event.skb, start, snap)
                        }
                        try body(event, bytes[start..<(start + snap)])
                    } else if event.flags & UInt8(ST_F_SAME_BYTES.rawValue) != 0 {
                        if cpu < recent.count, let r = recent[cpu] {
                            if r.skb == event.skb {
                                try body(event, bytes[r.start..<(r.start + r.count)])
                            } else {
                                unresolvedBytes += 1
                                try body(event, bytes[start..<start])
                            }
                        } else if cpu < carried.count, let c = carried[cpu], c.skb == event.skb {
                            try body(event, c.bytes[...])
                        } else {
                            unresolvedBytes += 1
                            try body(event, bytes[start..<start])
                        }
                    } else {
                        try body(event, bytes[start..<start])
                    }
                } else {
                    unknownRecords += 1
                }
                offset += size
            }
        }
    }
}

#if os(Linux)
import Dispatch
import Foundation
import SkbtrailBundle
import SkbtrailEvents

/// Collects records from the ring buffer into chunks and hands full chunks to a writer thread.
/// Never parses packets: it reads only the record header fields it needs for bookkeeping.
final class ChunkSink {
    private let writer: BundleWriter
    private let chunkBytes: Int
    private var buffer: UnsafeMutableRawPointer
    private var used = 0
    private var records = 0
    private var firstTs = UInt64.max
    private var lastTs: UInt64 = 0
    private let queue = DispatchQueue(label: "skbtrail.writer")
    private let inFlight = DispatchSemaphore(value: 8)
    private let lock = NSLock()
    private var writeError: Error?
    private var written = (chunks: 0, stored: 0)

    let maxEvents: Int?
    private(set) var events = 0
    private(set) var rawBytes = 0
    private(set) var lastFlush = Date()
    /// Kernel addresses in kfree_skb/consume_skb records: the bundle gets their symbols.
    private(set) var locations = Set<UInt64>()
    /// Namespaces records came from: the snapshot names the ones it can.
    private(set) var netnsSeen = Set<UInt32>()
    /// Records left out because their size field disagreed with the ring buffer's, per CPU.
    private(set) var malformed: [Int: UInt64] = [:]

    init(writer: BundleWriter, chunkBytes: Int, maxEvents: Int?) {
        self.writer = writer
        self.chunkBytes = chunkBytes
        self.maxEvents = maxEvents
        buffer = .allocate(byteCount: chunkBytes + 64 * 1024, alignment: 8)
    }

    deinit { buffer.deallocate() }

    var limitReached: Bool { maxEvents.map { events >= $0 } ?? false }

    private var lastNetns: UInt32 = 0
    private var lastLocation: UInt64 = 0
    private static let tsOffset = MemoryLayout<st_event>.offset(of: \st_event.ts)!
    private static let netnsOffset = MemoryLayout<st_event>.offset(of: \st_event.netns)!
    private static let locationOffset = MemoryLayout<st_event>.offset(of: \st_event.args)!
        + MemoryLayout<st_args_free>.offset(of: \st_args_free.location)!
    private static let freeProbes: (UInt16, UInt16) = (UInt16(ST_P_KFREE_SKB.rawValue), UInt16(ST_P_CONSUME_SKB.rawValue))

    /// Adds one record as the ring buffer delivered it. The hot path: reads four header fields, copies.
    func add(_ data: UnsafeRawPointer, _ size: Int) {
        guard size >= 4, !limitReached else { return }
        let recordSize = Int(data.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        guard recordSize == size else {
            // A record whose own size is not what the ring buffer delivered cannot be walked past:
            // left out, and counted as lost on its CPU so the analysis says events are missing.
            let cpuOffset = MemoryLayout<st_event>.offset(of: \st_event.cpu)!
            let cpu = size >= cpuOffset + 4 ? Int(data.loadUnaligned(fromByteOffset: cpuOffset, as: UInt32.self)) : 0
            malformed[cpu, default: 0] += 1
            return
        }
        let length = size
        if used + length > chunkBytes { flush() }
        (buffer + used).copyMemory(from: data, byteCount: length)
        used += length
        records += 1
        events += 1
        rawBytes += length
        guard length >= MemoryLayout<st_event>.size else { return }
        let ts = data.loadUnaligned(fromByteOffset: Self.tsOffset, as: UInt64.self)
        if ts < firstTs { firstTs = ts }
        if ts > lastTs { lastTs = ts }
        let netns = data.loadUnaligned(fromByteOffset: Self.netnsOffset, as: UInt32.self)
        if netns != lastNetns && netns != 0 {
            lastNetns = netns
            netnsSeen.insert(netns)
        }
        let probe = data.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        if probe == Self.freeProbes.0 || probe == Self.freeProbes.1 {
            let location = data.loadUnaligned(fromByteOffset: Self.locationOffset, as: UInt64.self)
            if location != lastLocation && location != 0 {
                lastLocation = location
                locations.insert(location)
            }
        }
    }

    /// Hands the current batch to the writer thread. Blocks when 8 chunks wait to be written.
    func flush() {
        lastFlush = Date()
        guard records > 0 else { return }
        let data = Data(bytes: buffer, count: used)
        let (count, first, last) = (records, firstTs, lastTs)
        used = 0
        records = 0
        firstTs = .max
        lastTs = 0
        inFlight.wait()
        queue.async { [self] in
            defer { inFlight.signal() }
            lock.lock()
            let failed = writeError != nil
            lock.unlock()
            if failed { return }
            do {
                try data.withUnsafeBytes { try writer.appendChunk($0, records: count, firstTs: first, lastTs: last) }
                lock.lock()
                written = (writer.chunks, writer.storedBytes)
                lock.unlock()
            } catch {
                lock.lock()
                writeError = error
                lock.unlock()
            }
        }
    }

    /// Waits until every handed-over chunk is in the bundle.
    func drain() { queue.sync {} }

    var error: Error? {
        lock.lock()
        defer { lock.unlock() }
        return writeError
    }

    /// Chunks and compressed bytes committed so far.
    var committed: (chunks: Int, stored: Int) {
        lock.lock()
        defer { lock.unlock() }
        return written
    }
}
#endif

import Foundation

/// With SKBTRAIL_TIMING set: where a decode's time goes, summed over the stream (for tuning and
/// bench/analyzer.sh). Without it, `now()` is 0 and nothing is measured.
final class DecodeTiming {
    static let enabled = ProcessInfo.processInfo.environment["SKBTRAIL_TIMING"] != nil
    let enabled = DecodeTiming.enabled
    /// Reading chunks: the SQLite blob, zstd, the split codec.
    var read: UInt64 = 0
    /// Walking records, parsing their headers.
    var walk: UInt64 = 0
    /// Putting records in time order.
    var order: UInt64 = 0
    /// Releasing records: all of packets, NAT and rows (the next three are parts of it).
    var released: UInt64 = 0
    /// Writing event and TCP rows.
    var rows: UInt64 = 0
    /// Rebuilding and writing finished packets (outcome, NAT, the packet row).
    var packets: UInt64 = 0
    var finish: UInt64 = 0
    var indexes: UInt64 = 0

    @inline(__always) func now() -> UInt64 { enabled ? DispatchTime.now().uptimeNanoseconds : 0 }
    @inline(__always) func add(_ total: inout UInt64, since t: inout UInt64) {
        guard enabled else { return }
        let n = DispatchTime.now().uptimeNanoseconds
        total &+= n &- t
        t = n
    }

    func report() {
        guard enabled else { return }
        let rebuild = released &- rows &- packets
        let lines = [("read", read), ("walk", walk), ("order", order), ("rebuild", rebuild), ("rows", rows),
                     ("packets", packets), ("finish", finish), ("indexes", indexes)]
        for (name, ns) in lines {
            DecodeTiming.note(String(format: "time %@: %.3f s", name, Double(ns) / 1e9))
        }
    }

    /// With SKBTRAIL_TIMING set, prints how long the work took up to `phase` (for tuning).
    static func phase(_ name: String, _ started: Date) {
        guard enabled else { return }
        note(String(format: "%@: %.3f s", name, Date().timeIntervalSince(started)))
    }

    /// With SKBTRAIL_TIMING set, prints `line` on stderr.
    static func note(_ line: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

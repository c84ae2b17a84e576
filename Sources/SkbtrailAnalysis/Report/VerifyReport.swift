import Foundation
import GRDB
import SkbtrailBundle

/// What `skbtrail verify` found in a bundle.
public struct Verification {
    public let file: String
    /// Each damaged part, one sentence each; empty when the bundle is whole.
    public var problems: [String] = []
    public var chunks = 0
    public var chunksWithChecksum = 0
    public var events = 0
    public var damaged: Bool { !problems.isEmpty }

    /// The problems, then one summary line.
    public var text: String {
        let checksums = chunksWithChecksum == chunks ? "every chunk has a zstd checksum"
            : chunksWithChecksum == 0 ? "no chunk has a zstd checksum (recorded before they were written): damage inside a chunk may go unseen"
            : "\(chunksWithChecksum) of \(chunks) chunks have a zstd checksum"
        return (problems + ["\(file): \(damaged ? "DAMAGED" : "ok"): \(chunks) chunks, \(events) events; \(checksums)"])
            .map { $0 + "\n" }.joined()
    }

    public var json: String {
        JSON.object([("file", .string(file)), ("damaged", .bool(damaged)), ("chunks", .int(Int64(chunks))),
                     ("chunks_with_checksum", .int(Int64(chunksWithChecksum))), ("events", .int(Int64(events))),
                     ("problems", .array(problems.map { .string($0) }))]).text + "\n"
    }
}

extension AnalysisDatabase {
    /// `skbtrail verify`: checks a whole bundle without trusting any of it: SQLite's own integrity check
    /// of every page, every chunk row, every chunk's zstd frame (with its checksum where the recorder
    /// wrote one), every record of every chunk, every metadata value's type. `damaged` when anything is.
    public static func verify(bundlePath: String) throws -> Verification {
        var v = Verification(file: bundlePath)
        let reader = try BundleReader(path: bundlePath)
        let integrity = try reader.readBundle { try String.fetchAll($0, sql: "PRAGMA integrity_check") }
        if integrity != ["ok"] {
            for line in integrity.prefix(5) { v.problems.append("\(bundlePath): SQLite integrity check: \(BundleError.printable(line, limit: 160))") }
        }
        // a full decode into a temporary directory walks every chunk and checks every metadata value
        let analysis = try AnalysisDatabase(bundlePath: bundlePath, cache: .none, progress: nil)
        try analysis.bundle.readBundle { db in
            v.chunks = try Int.fetchOne(db, sql: "SELECT count(*) FROM chunk") ?? 0
            let cursor = try Data.fetchCursor(db, sql: "SELECT data FROM chunk WHERE typeof(data) = 'blob'")
            while let data = try cursor.next() {
                if Zstd.hasChecksum(data) { v.chunksWithChecksum += 1 }
            }
        }
        v.problems += analysis.damage
        v.events = analysis.decodeStats?.events ?? 0
        return v
    }
}

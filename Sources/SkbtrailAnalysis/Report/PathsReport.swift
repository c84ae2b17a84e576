import Foundation
import GRDB

/// How `skbtrail paths` prints.
public struct PathsOptions: Sendable {
    public var json = false
    /// Wall-clock times instead of times relative to the packet's first step.
    public var date = false
    /// CPU, pid, comm and skb address on each step.
    public var detail = false
    public init(json: Bool = false, date: Bool = false, detail: Bool = false) {
        self.json = json
        self.date = date
        self.detail = detail
    }
}

extension AnalysisDatabase {
    /// `skbtrail paths`: one block per packet, its steps, its clones as a tree, NAT where it happened.
    public func pathsReport(filter: PacketFilter, options: PathsOptions, to sink: TextSink) throws {
        let (cond, args) = try filter.sql()
        try reader.read { db in
            let clones = try CloneTree(db)
            let renderer = try PathRenderer(db, clones: clones, startedNs: bundle.recording.startedNs,
                                            bootToUnixNs: bundle.recording.bootToUnixNs, date: options.date, detail: options.detail)
            var shown = 0
            try clones.forEachRoot(db, cond: cond, arguments: args) { id in
                shown += 1
                if options.json {
                    let object = try renderer.json(id)
                    sink.append { object.write(into: &$0); $0 += "\n" }
                } else {
                    var out = ""
                    try renderer.text(id, into: &out)
                    sink.append(out + "\n")
                }
            }
            if !options.json && shown == 0 { sink.append("no packets match\n") }
        }
    }

    /// `pathsReport` as one text.
    public func pathsReport(filter: PacketFilter, options: PathsOptions) throws -> String {
        try TextSink.collect { try pathsReport(filter: filter, options: options, to: $0) }
    }
}

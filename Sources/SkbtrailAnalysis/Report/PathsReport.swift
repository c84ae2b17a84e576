import Foundation
import GRDB

/// How `skbtrail paths` prints.
public struct PathsOptions: Sendable {
    public var json = false
    /// With `json`: one object per line instead of one array.
    public var jsonLines = false
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
        try reader.read { db in
            let (cond, args) = try filter.sql(db)
            let clones = try CloneTree(db)
            let renderer = try PathRenderer(db, clones: clones, startedNs: bundle.recording.startedNs,
                                            bootToUnixNs: bundle.recording.bootToUnixNs, date: options.date, detail: options.detail)
            var shown = 0
            let list = options.json ? JSONList(sink, lines: options.jsonLines) : nil
            try clones.forEachRoot(db, cond: cond, arguments: args, limit: filter.bound) { id in
                shown += 1
                if let list {
                    list.add(try renderer.json(id))
                } else {
                    if shown == 1 { sink.append(PathRenderer.header(date: options.date, detail: options.detail)) }
                    try sink.appendBytes { out in
                        try renderer.text(id, into: &out)
                        out.append(0x0A)
                    }
                }
                return true
            }
            list?.end()
            if !options.json && shown == 0 { sink.append("no packets match\n") }
        }
    }

    /// `pathsReport` as one text.
    public func pathsReport(filter: PacketFilter, options: PathsOptions) throws -> String {
        try TextSink.collect { try pathsReport(filter: filter, options: options, to: $0) }
    }
}

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
            let selected = try Int64.fetchAll(db, sql: "SELECT p.id FROM pkt p WHERE \(cond) ORDER BY p.id",
                                              arguments: StatementArguments(args))
            let clones = try CloneTree(db)
            let renderer = PathRenderer(db, clones: clones, bootToUnixNs: bundle.recording.bootToUnixNs,
                                        date: options.date, detail: options.detail)
            let roots = clones.roots(selected)
            for id in roots {
                if options.json {
                    let object = try renderer.json(id)
                    sink.append { object.write(into: &$0); $0 += "\n" }
                } else {
                    var out = ""
                    try renderer.text(id, into: &out)
                    sink.append(out + "\n")
                }
            }
            if !options.json && roots.isEmpty { sink.append("no packets match\n") }
        }
    }

    /// `pathsReport` as one text.
    public func pathsReport(filter: PacketFilter, options: PathsOptions) throws -> String {
        try TextSink.collect { try pathsReport(filter: filter, options: options, to: $0) }
    }
}

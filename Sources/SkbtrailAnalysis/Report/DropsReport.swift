import Foundation
import GRDB
import SkbtrailBundle

extension AnalysisDatabase {
    /// `skbtrail drops`: dropped packets grouped by reason, location, netfilter hook, interface, netns;
    /// of the packets `filter` selects, at most `filter.limit` groups.
    /// `stack`: grouped by the drop's kernel stack as well (recorded with --drop-stack), each group's
    /// frames under its row.
    public func dropsReport(filter: PacketFilter = PacketFilter(), json: Bool, jsonLines: Bool = false, stack: Bool = false) throws -> String {
        var frames: [Int64: [String]] = [:]
        let rows = try reader.read { db in
            let (cond, args) = try filter.sql(db)
            let selection = cond == "1" ? "" : "AND id IN (SELECT p.id FROM pkt p WHERE \(cond))"
            if stack { frames = try PacketReader.stackTexts(db) }
            // the stack of the free that dropped it (not always its last step: a late net_dev_xmit joins)
            let stackColumn = stack
                ? "(SELECT e.stack FROM ev e WHERE e.packet_id = packet.id AND e.stack IS NOT NULL ORDER BY e.step DESC LIMIT 1)" : "NULL"
            return try Row.fetchAll(db, sql: """
                SELECT drop_reason AS reason, drop_symbol AS location,
                       CASE WHEN nf_hook IS NULL THEN NULL ELSE nf_family || ' ' || nf_hook || ' ' || nf_table END AS netfilter,
                       coalesce(ifname, CASE WHEN ifindex IS NULL THEN NULL ELSE 'if' || ifindex END) AS ifname,
                       coalesce(netns_name, CAST(netns AS TEXT)) AS netns, \(stackColumn) AS stack,
                       count(*) AS count, min(last_ts) AS first_ts, max(last_ts) AS last_ts, min(id) AS first_packet
                FROM packet WHERE fate = 'dropped' \(selection)
                GROUP BY 1, 2, 3, 4, 5, 6
                ORDER BY count DESC, reason, location
                \(filter.bound.map { "LIMIT \($0)" } ?? "")
                """, arguments: StatementArguments(args))
        }
        let started = bundle.recording.startedNs
        if json {
            return TextSink.collect { sink in
                let list = JSONList(sink, lines: jsonLines)
                for r in rows {
                    let first = r.int("first_ts"), last = r.int("last_ts")
                    list.add(JSON.object([
                        ("reason", .opt(r.optText("reason"))), ("location", .opt(r.optText("location"))),
                        ("netfilter", .opt(r.optText("netfilter"))), ("ifname", .opt(r.optText("ifname"))),
                        ("netns", .opt(r.optText("netns"))), ("count", .int(r.int("count"))),
                        ("first_t_ns", .int(first &- started)), ("last_t_ns", .int(last &- started)),
                        ("first_unix_ns", .int(first &+ bundle.recording.bootToUnixNs)),
                        ("last_unix_ns", .int(last &+ bundle.recording.bootToUnixNs)),
                        ("first_packet", .int(r.int("first_packet"))),
                    ] + (stack ? [("stack", r.optInt("stack").map { JSON.array((frames[$0] ?? []).map(JSON.string)) } ?? .null)] : [])))
                }
                list.end()
            }
        }
        if rows.isEmpty { return filter.isEmpty ? "no drops recorded\n" : "no dropped packet matches\n" }
        let table = rows.map { r -> [String] in
            let first = r.int("first_ts"), last = r.int("last_ts")
            return [String(r.int("count")), (r.optText("reason") ?? "-"), (r.optText("location") ?? "-"), (r.optText("netfilter") ?? "-"),
                    (r.optText("ifname") ?? "-"), (r.optText("netns") ?? "-"),
                    TextLayout.seconds(first &- started) + "s", TextLayout.seconds(last &- started) + "s",
                    String(r.int("first_packet"))]
        }
        let header = ["COUNT", "REASON", "LOCATION", "NETFILTER", "IFACE", "NETNS", "FIRST", "LAST", "PACKET"]
        let note = "(FIRST and LAST: the first and last drop, in seconds since the recording's start)\n"
        guard stack else { return TextLayout.table(header, table, right: [0, 6, 7]) + note }
        // each group, then its stack
        let lines = TextLayout.table(header, table, right: [0, 6, 7]).split(separator: "\n", omittingEmptySubsequences: false)
        var out = (lines.first.map(String.init) ?? "") + "\n"
        for (i, r) in rows.enumerated() where i + 1 < lines.count {
            out += lines[i + 1] + "\n"
            if let id = r.optInt("stack"), let f = frames[id] {
                for frame in f { out += "    | \(frame)\n" }
            } else {
                out += "    (no stack recorded: skbtrail-record --drop-stack records them)\n"
            }
        }
        return out + note
    }
}

import Foundation
import GRDB
import SkbtrailBundle

extension AnalysisDatabase {
    /// `skbtrail drops`: dropped packets grouped by reason, location, netfilter hook, interface, netns;
    /// of the packets `filter` selects, at most `filter.limit` groups.
    public func dropsReport(filter: PacketFilter = PacketFilter(), json: Bool, jsonLines: Bool = false) throws -> String {
        let rows = try reader.read { db in
            let (cond, args) = try filter.sql(db)
            let selection = cond == "1" ? "" : "AND id IN (SELECT p.id FROM pkt p WHERE \(cond))"
            return try Row.fetchAll(db, sql: """
                SELECT drop_reason AS reason, drop_symbol AS location,
                       CASE WHEN nf_hook IS NULL THEN NULL ELSE nf_family || ' ' || nf_hook || ' ' || nf_table END AS netfilter,
                       coalesce(ifname, CASE WHEN ifindex IS NULL THEN NULL ELSE 'if' || ifindex END) AS ifname,
                       coalesce(netns_name, CAST(netns AS TEXT)) AS netns,
                       count(*) AS count, min(last_ts) AS first_ts, max(last_ts) AS last_ts, min(id) AS first_packet
                FROM packet WHERE fate = 'dropped' \(selection)
                GROUP BY 1, 2, 3, 4, 5
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
                    ]))
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
        return TextLayout.table(["COUNT", "REASON", "LOCATION", "NETFILTER", "IFACE", "NETNS", "FIRST", "LAST", "PACKET"],
                                table, right: [0, 6, 7])
            + "(FIRST and LAST: the first and last drop, in seconds since the recording's start)\n"
    }
}

import Foundation
import GRDB
import SkbtrailBundle

extension AnalysisDatabase {
    /// `skbtrail drops`: dropped packets grouped by reason, location, netfilter hook, interface, netns.
    public func dropsReport(json: Bool) throws -> String {
        let rows = try reader.read { db in
            try Row.fetchAll(db, sql: """
                SELECT drop_reason AS reason, drop_symbol AS location,
                       CASE WHEN nf_hook IS NULL THEN NULL ELSE nf_family || ' ' || nf_hook || ' ' || nf_table END AS netfilter,
                       coalesce(ifname, CASE WHEN ifindex IS NULL THEN NULL ELSE 'if' || ifindex END) AS ifname,
                       coalesce(netns_name, CAST(netns AS TEXT)) AS netns,
                       count(*) AS count, min(last_ts) AS first_ts, max(last_ts) AS last_ts, min(id) AS first_packet
                FROM packet WHERE fate = 'dropped'
                GROUP BY 1, 2, 3, 4, 5
                ORDER BY count DESC, reason, location
                """)
        }
        let started = bundle.recording.startedNs
        if json {
            var out = ""
            for r in rows {
                let first = r.int("first_ts"), last = r.int("last_ts")
                out += JSON.object([
                    ("reason", .opt(r.optText("reason"))), ("location", .opt(r.optText("location"))),
                    ("netfilter", .opt(r.optText("netfilter"))), ("ifname", .opt(r.optText("ifname"))),
                    ("netns", .opt(r.optText("netns"))), ("count", .int(r.int("count"))),
                    ("first_t_ns", .int(first &- started)), ("last_t_ns", .int(last &- started)),
                    ("first_unix_ns", .int(first &+ bundle.recording.bootToUnixNs)),
                    ("last_unix_ns", .int(last &+ bundle.recording.bootToUnixNs)),
                    ("first_packet", .int(r.int("first_packet"))),
                ]).text + "\n"
            }
            return out
        }
        if rows.isEmpty { return "no drops recorded\n" }
        let table = rows.map { r -> [String] in
            let first = r.int("first_ts"), last = r.int("last_ts")
            return [String(r.int("count")), (r.optText("reason") ?? "-"), (r.optText("location") ?? "-"), (r.optText("netfilter") ?? "-"),
                    (r.optText("ifname") ?? "-"), (r.optText("netns") ?? "-"), TextLayout.seconds(first &- started), TextLayout.seconds(last &- started),
                    String(r.int("first_packet"))]
        }
        return TextLayout.table(["COUNT", "REASON", "LOCATION", "NETFILTER", "IFACE", "NETNS", "FIRST", "LAST", "PACKET"],
                                table, right: [0, 6, 7])
    }
}


import Foundation
import GRDB
import SkbtrailBundle

/// Which connections `skbtrail tcp` shows and how.
public struct TCPOptions: Sendable {
    /// The filter every command takes. A connection has no direction: -s, -d and --addr each match either
    /// end's address (a network too), --sport, --dport and --port either end's port; --proto selects
    /// tcp, ipv4 or ipv6 (nothing else has a TCP connection); the time window keeps connections seen in it;
    /// --packet, --dropped, --ifname and --pid keep the connections that carried a packet they select.
    public var filter = PacketFilter()
    /// Only this connection id.
    public var connection: Int?
    /// Also list every sample (tcp_probe, retransmit, reset, state change).
    public var samples = false
    /// Include sockets that only listened (no peer).
    public var listeners = false
    public var json = false
    /// With `json`: one object per line instead of one array.
    public var jsonLines = false
    public init() {}
}

extension AnalysisDatabase {
    /// The condition on `tcp_connection` for the endpoint and time parts of `f`.
    static func connectionCondition(_ db: Database, _ f: PacketFilter) throws -> (conds: [String], args: [DatabaseValueConvertible?]) {
        if let bad = f.invalidValue() { throw AnalysisError.message(bad) }
        var conds: [String] = []
        var args: [DatabaseValueConvertible?] = []
        for text in [f.saddr, f.daddr, f.addr].compactMap({ $0 }) {
            guard let n = IPNetwork(text) else { continue }
            if n.isHost { conds.append("(laddr = ? OR raddr = ?)"); args += [n.text, n.text] }
            else { conds.append("(in_net(laddr, ?) OR in_net(raddr, ?))"); args += [n.description, n.description] }
        }
        for port in [f.sport, f.dport, f.port].compactMap({ $0 }) { conds.append("(lport = ? OR rport = ?)"); args += [port, port] }
        if let proto = f.proto {
            switch ProtocolNames.parse(proto) {
            case .ipProtocol(6)?: break
            case .ethertype(0x0800)?: conds.append("instr(laddr, ':') = 0")
            case .ethertype(0x86DD)?: conds.append("instr(laddr, ':') > 0")
            default: conds.append("0")
            }
        }
        if let netns = f.netns { conds.append("netns = ?"); args.append(try PacketFilter.netnsInode(db, netns)) }
        if let since = f.sinceNs { conds.append("t_ns + duration_ns >= ?"); args.append(since) }
        if let until = f.untilNs { conds.append("t_ns <= ?"); args.append(until) }
        return (conds, args)
    }

    /// `skbtrail tcp`: per connection, its state changes, RTT (min, median, max, histogram), cwnd,
    /// retransmissions, resets with their reasons, and segments seen, from the tcp_connection and
    /// tcp_sample views.
    public func tcpReport(options: TCPOptions) throws -> String {
        return try reader.read { db in
            var (conds, args) = try AnalysisDatabase.connectionCondition(db, options.filter)
            if let id = options.connection { conds.append("id = ?"); args.append(id) }
            if !options.listeners && options.connection == nil { conds.append("NOT (rport = 0 AND raddr IN ('0.0.0.0', '::'))") }
            let whereSQL = conds.isEmpty ? "" : "WHERE " + conds.joined(separator: " AND ")
            var conns = try Row.fetchAll(db, sql: "SELECT * FROM tcp_connection \(whereSQL) ORDER BY id", arguments: StatementArguments(args))
            // the packet-level parts: connections that carried a selected packet, by its 4-tuple either way
            var byPacket = PacketFilter()
            byPacket.packets = options.filter.packets; byPacket.droppedOnly = options.filter.droppedOnly
            byPacket.ifname = options.filter.ifname; byPacket.pid = options.filter.pid
            if !byPacket.isEmpty {
                let (cond, pargs) = try byPacket.sql(db)
                var tuples = Set<String>()
                for r in try Row.fetchAll(db, sql: "SELECT saddr, sport, daddr, dport FROM tcp_pkt WHERE packet_id IN (SELECT p.id FROM pkt p WHERE \(cond))",
                                          arguments: StatementArguments(pargs)) {
                    tuples.insert("\(r["saddr"] as String? ?? "") \(r["sport"] as Int64? ?? 0) \(r["daddr"] as String? ?? "") \(r["dport"] as Int64? ?? 0)")
                }
                conns = conns.filter { c in
                    let l = "\(c["laddr"] as String? ?? "") \(c["lport"] as Int64? ?? 0)", r = "\(c["raddr"] as String? ?? "") \(c["rport"] as Int64? ?? 0)"
                    return tuples.contains(l + " " + r) || tuples.contains(r + " " + l)
                }
            }
            if let limit = options.filter.bound { conns = Array(conns.prefix(limit)) }
            var out = ""
            if conns.isEmpty && !options.json {
                let probes = try Int.fetchOne(db, sql: "SELECT count(*) FROM probe_events WHERE probe BETWEEN 20 AND 26") ?? 0
                return probes == 0
                    ? "no TCP socket records in this recording (the tcp tracepoints saw nothing that matched the recorder's filters).\n"
                    : "no connection matches.\n"
            }
            var json = ""
            let sink = TextSink { json += $0 }
            let list = options.json ? JSONList(sink, lines: options.jsonLines) : nil
            for c in conns {
                let id = c.int("id")
                let samples = try Row.fetchAll(db, sql: "SELECT * FROM tcp_sample WHERE connection_id = ? ORDER BY event_id", arguments: [id])
                let rtts = samples.filter { $0.text("kind") == "probe" }.compactMap { $0.optInt("srtt_us") }.filter { $0 > 0 }
                let histogram = Log2Histogram(rtts.map { $0 * 1000 })
                let states = samples.filter { $0.text("kind") == "state" }
                let retrans = samples.filter { $0.text("kind") == "retransmit" }
                let resets = samples.filter { ["send_reset", "receive_reset"].contains($0.text("kind")) }
                if let list {
                    list.add(AnalysisDatabase.connectionJSON(c, states: states, retrans: retrans, resets: resets, histogram: histogram,
                                                             samples: options.samples ? samples : nil))
                    continue
                }
                out += AnalysisDatabase.connectionText(c, states: states, retrans: retrans, resets: resets, histogram: histogram)
                if options.samples {
                    let rows = samples.map { s -> [String] in
                        let t = s.int("t_ns")
                        var what = s.text("kind")
                        if let st = s.optText("state") { what += " " + ((s.optText("oldstate")).map { "\($0) -> " } ?? "") + st }
                        var fig = ""
                        if let srtt = s.optInt("srtt_us"), s.text("kind") != "state" {
                            fig = "srtt \(Duration.text(srtt * 1000)) cwnd \(s.optInt("cwnd") ?? 0) inflight \(s.optInt("packets_out") ?? 0) retrans \(s.optInt("total_retrans") ?? 0)"
                        }
                        if let r = s.optText("rst_reason") { fig = "reason \(r)" }
                        return ["    " + TextLayout.seconds(t) + "s", what, fig]
                    }
                    out += "  samples:\n" + TextLayout.table(["    t (s)", "sample", "figures"], rows)
                }
                out += "\n"
            }
            if let list {
                list.end()
                sink.flush()
                return json
            }
            return out
        }
    }

    static func connectionText(_ c: Row, states: [Row], retrans: [Row], resets: [Row], histogram: Log2Histogram) -> String {
        let id = c.int("id")
        var out = "connection \(id)  \(c.optText("tuple") ?? "?")  netns \(c.optText("netns_name") ?? String(c["netns"] as Int64))"
        if let sk = c.optText("sk") { out += "  sk \(sk)" }
        out += "\n"
        let t = c.int("t_ns"), d = c.int("duration_ns")
        out += "  seen     at \(TextLayout.seconds(t))s for \(Duration.text(d))"
        if let last = c.optText("last_state") { out += ", last state \(last)" }
        out += "\n"
        if !states.isEmpty {
            out += "  states   " + states.map { s in
                "\(TextLayout.seconds(s.int("t_ns")))s \(s.optText("oldstate") ?? "?") -> \(s.optText("state") ?? "?")"
            }.joined(separator: ", ") + "\n"
        }
        let n = c.int("rtt_samples")
        if n > 0 {
            out += "  srtt     min \(Duration.text(c.int("srtt_min_us") * 1000))  median \(Duration.text(c.int("srtt_median_us") * 1000))"
                + "  max \(Duration.text(c.int("srtt_max_us") * 1000))  last \(Duration.text((c.optInt("srtt_last_us") ?? 0) * 1000))  (\(n) tcp_probe samples)\n"
        } else {
            out += "  srtt     no tcp_probe samples with an RTT\n"
        }
        if let lo = c.optInt("cwnd_min") {
            out += "  cwnd     min \(lo)  max \(c.optInt("cwnd_max") ?? 0)  last \(c.optInt("cwnd_last") ?? 0) (packets)\n"
        }
        let segOut = c.int("segments_out"), segIn = c.int("segments_in"), dropped = c.int("segments_out_dropped")
        var seg = "  segments \(segOut) sent, \(segIn) received"
        if dropped > 0 { seg += ", \(dropped) sent were dropped" }
        if let acked = c.optInt("bytes_acked"), acked > 0 { seg += "; \(acked) bytes acknowledged" }
        out += seg + "\n"
        let rcount = c.int("retransmits")
        out += "  retrans  \(rcount)"
        if rcount > 0 {
            let times = retrans.prefix(10).map { TextLayout.seconds($0.int("t_ns")) + "s" }.joined(separator: ", ")
            out += " at \(times)\(retrans.count > 10 ? ", ..." : "")"
        }
        if let total = c.optInt("total_retrans"), total > 0 { out += " (kernel's total_retrans \(total))" }
        out += "\n"
        let sent = c.int("resets_sent"), received = c.int("resets_received")
        if sent + received > 0 {
            out += "  resets   " + resets.map { r in
                let kind = r.text("kind") == "send_reset" ? "sent" : "received"
                return "\(kind) at \(TextLayout.seconds(r.int("t_ns")))s" + ((r.optText("rst_reason")).map { " (\($0))" } ?? "")
            }.joined(separator: ", ") + "\n"
        }
        let zs = c.int("zero_window_sent"), zr = c.int("zero_window_received")
        if zs + zr > 0 { out += "  zero window: \(zs) advertised, \(zr) received from the peer\n" }
        let bad = c.int("bad_csum"), full = c.int("rcvqueue_full")
        if bad > 0 { out += "  bad checksums: \(bad)\n" }
        if full > 0 { out += "  receive queue full: \(full) times\n" }
        if !histogram.buckets.isEmpty { out += "  srtt histogram:\n" + histogram.text(indent: "    ") }
        return out
    }

    static func connectionJSON(_ c: Row, states: [Row], retrans: [Row], resets: [Row], histogram: Log2Histogram, samples: [Row]?) -> JSON {
        func us(_ key: String) -> JSON { (c[key] as Int64?).map { .int($0 * 1000) } ?? .null }
        var pairs: [(String, JSON)] = []
        for key in ["id", "netns", "netns_name", "sk", "family", "laddr", "lport", "raddr", "rport", "tuple", "t_ns", "duration_ns", "last_state"] {
            pairs.append((key == "id" ? "connection" : key, JSON(c[key] as DatabaseValue)))
        }
        pairs.append(("states", .array(states.map { s in
            .object([("t_ns", JSON(s["t_ns"] as DatabaseValue)), ("from", JSON(s["oldstate"] as DatabaseValue)), ("to", JSON(s["state"] as DatabaseValue))])
        })))
        pairs.append(("srtt", .object([("samples", JSON(c["rtt_samples"] as DatabaseValue)), ("min_ns", us("srtt_min_us")),
                                       ("median_ns", us("srtt_median_us")), ("max_ns", us("srtt_max_us")), ("last_ns", us("srtt_last_us")),
                                       ("histogram", histogram.json)])))
        pairs.append(("cwnd", .object([("min", JSON(c["cwnd_min"] as DatabaseValue)), ("max", JSON(c["cwnd_max"] as DatabaseValue)),
                                       ("last", JSON(c["cwnd_last"] as DatabaseValue))])))
        pairs.append(("retransmits", .object([("count", JSON(c["retransmits"] as DatabaseValue)),
                                              ("total_retrans", JSON(c["total_retrans"] as DatabaseValue)),
                                              ("t_ns", .array(retrans.map { JSON($0["t_ns"] as DatabaseValue) }))])))
        pairs.append(("resets", .array(resets.map { r in
            .object([("t_ns", JSON(r["t_ns"] as DatabaseValue)),
                     ("direction", .string(r.text("kind") == "send_reset" ? "sent" : "received")),
                     ("reason", JSON(r["rst_reason"] as DatabaseValue)), ("state", JSON(r["state"] as DatabaseValue))])
        })))
        for key in ["segments_out", "segments_in", "segments_out_dropped", "bytes_acked", "zero_window_sent", "zero_window_received",
                    "bad_csum", "rcvqueue_full"] {
            pairs.append((key, JSON(c[key] as DatabaseValue)))
        }
        if let samples {
            let keys = ["event_id", "t_ns", "kind", "state", "oldstate", "srtt_us", "cwnd", "snd_una", "snd_nxt", "packets_out",
                        "retrans_out", "total_retrans", "rst_reason", "packet_id", "window"]
            pairs.append(("samples", .array(samples.map { s in .object(keys.map { ($0, JSON(s[$0] as DatabaseValue)) }) })))
        }
        return .object(pairs)
    }
}

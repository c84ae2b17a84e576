import Foundation
import GRDB
import SkbtrailBundle
import SkbtrailEvents
import Testing
@testable import SkbtrailAnalysis

/// Bundles recorded under the kernel matrix's kernels (fixtures/record-kernels.sh): no netfilter links
/// there, so the hook, table and chain of a netfilter drop or a NAT come from the kernel-function probes
/// (tier 3): fexit with the modules' BTF on 6.1 and 6.12, kprobes without it on 5.10.
@Suite struct KernelFixtureTests {
    static let kernels = ["5.10", "6.1", "6.12"]

    /// Whether the kernel had BTF for its modules: the table and chain names.
    static func hasNames(_ kernel: String) -> Bool { kernel != "5.10" }

    @Test(arguments: kernels)
    func netfilterDropNamesHookTableAndChain(kernel: String) throws {
        let fixture = Fixture(name: "kernels/\(kernel)/netfilter-drop")
        let facts = try fixture.expect()
        let a = try fixture.open()
        let probe = try rows(a, "SELECT kind, attached, target FROM bundle_probe WHERE name = 'nft_do_chain'")
        #expect(probe.first?["attached"] as Int? == 1)
        #expect(probe.first?["kind"] as String? == (Self.hasNames(kernel) ? "fexit" : "kretprobe"))
        if kernel != "6.12" {
            #expect(try rows(a, "SELECT 1 FROM bundle_probe WHERE kind = 'netfilter' AND attached = 1").isEmpty,
                    "a kernel before 6.4 attached netfilter links")
        }

        // every dropped ping, and nothing else, is a netfilter drop at ipv4 INPUT, as the rule counted
        let drops = try rows(a, "SELECT * FROM packet WHERE fate = 'dropped' AND drop_reason = 'NETFILTER_DROP'")
        #expect(drops.count == Int(facts["drop_rule_packets"] ?? ""), "\(drops.count) drops, the rule counted \(facts["drop_rule_packets"] ?? "?")")
        for d in drops {
            #expect(d["proto"] as String? == "ICMP" && d["daddr"] as String? == facts["server_addr"])
            #expect(d["nf_family"] as String? == "ipv4")
            #expect(d["nf_hook"] as String? == "INPUT")
            #expect(d["nf_table"] as String? == (Self.hasNames(kernel) ? "filter" : nil))
            #expect(d["netns_name"] as String? == facts["server_ns"])
        }
        // each drop's path has the chain's step: a DROP verdict, or (6.7+) the free inside the chain
        let steps = try rows(a, """
            SELECT s.packet_id, group_concat(s.probe_name || ' ' || coalesce(s.detail, ''), ' | ') AS path FROM path_step s
            JOIN packet p ON p.id = s.packet_id WHERE p.fate = 'dropped' AND p.drop_reason = 'NETFILTER_DROP' GROUP BY s.packet_id
            """)
        for s in steps {
            let path = s["path"] as String
            let named = Self.hasNames(kernel) ? (path.contains("filter/INPUT prio 0 = DROP") || path.contains("ipv4 INPUT, filter/INPUT)"))
                : path.contains("nft_do_chain ipv4 INPUT = DROP")
                    && path.contains("NETFILTER_DROP (inferred: this kernel has no drop reasons) at nf_hook_slow")
            #expect(named, "packet \(s["packet_id"] as Int): \(path)")
        }
        // the diagnosis names the table and chain from the rule's counter, which proves it even where the
        // kernel says no reason (5.10: the free's step says NETFILTER_DROP is inferred from the verdict)
        _ = try a.diagnose()
        let found = try rows(a, "SELECT message, confidence, inferred FROM finding WHERE code = 'netfilter-drop'")
        #expect(found.count == drops.count)
        for f in found {
            let message = f["message"] as String
            #expect(message.contains("filter table, INPUT chain") && message.contains(facts["server_ns"] ?? "?"), "\(message)")
            #expect(f["confidence"] as String? == "certain", "\(f["inferred"] as String? ?? "")")
        }
        // the UDP datagram and the TCP connection got through
        let udp = try rows(a, "SELECT fate FROM packet WHERE proto = 'UDP' AND dport = \(facts["udp_port"] ?? "0")")
        #expect(udp.map { $0["fate"] as String } == ["delivered"])
    }

    @Test(arguments: kernels)
    func natRewritesNameTheNatChains(kernel: String) throws {
        let fixture = Fixture(name: "kernels/\(kernel)/nat-router")
        let f = try fixture.expect()
        let a = try fixture.open()
        // a connection's first packet passes the nat chains; the binding they made is applied after
        // each returns, so the rewrite follows the chain's step and is named by it
        let dnat = try rows(a, """
            SELECT * FROM nat_rewrite WHERE kind = 'DNAT' AND before_daddr = '\(f["orig_daddr"] ?? "")' AND nf_hook IS NOT NULL
            """)
        #expect(Set(dnat.map { $0["proto"] as String }) == ["ICMP", "TCP"], "\(dnat.map { $0["proto"] as String })")
        for r in dnat {
            #expect(r["after_daddr"] as String? == f["dnat_daddr"])
            #expect(r["nf_hook"] as String? == "PREROUTING")
            #expect(r["nf_table"] as String? == (Self.hasNames(kernel) ? "nat" : nil))
            #expect(r["netns_name"] as String? == f["router_ns"])
        }
        let masq = try rows(a, "SELECT * FROM nat_rewrite WHERE kind = 'SNAT' AND before_saddr = '\(f["client_addr"] ?? "")' AND nf_hook IS NOT NULL")
        #expect(!masq.isEmpty)
        for r in masq {
            #expect(r["after_saddr"] as String? == f["snat_saddr"])
            #expect(r["nf_hook"] as String? == "POSTROUTING")
            #expect(r["nf_table"] as String? == (Self.hasNames(kernel) ? "nat" : nil))
        }
        // every request was rewritten, as the router's rules counted one connection each
        let icmp = try rows(a, "SELECT count(DISTINCT packet_id) AS n FROM nat_rewrite WHERE kind = 'DNAT' AND proto = 'ICMP' AND before_daddr = '\(f["orig_daddr"] ?? "")'")
        #expect(icmp[0]["n"] as Int == Int(f["pings"] ?? ""))
        #expect(Int(f["dnat_icmp_rule_packets"] ?? "") == 1 && Int(f["masquerade_rule_packets"] ?? "") == 2)
        // paths shows the chains, with their verdicts, as nettrace's lifecycle view
        let first = try #require(dnat.first { $0["proto"] as String == "TCP" })
        let text = try a.pathsReport(filter: { var p = PacketFilter(); p.packet = first["packet_id"]; return p }(), options: PathsOptions())
        #expect(text.contains("nft_do_chain"))
        #expect(text.contains(Self.hasNames(kernel) ? "ipv4 PREROUTING nat/PREROUTING prio -100 = ACCEPT" : "ipv4 PREROUTING = ACCEPT"), "\(text)")
        #expect(text.contains("DNAT \(f["orig_daddr"] ?? ""):\(f["orig_dport"] ?? "") -> \(f["dnat_daddr"] ?? ""):\(f["dnat_dport"] ?? "")"))
    }

    /// nettrace's lifecycle view after the fact (nat-router-fn: recorded with --probes default,functions
    /// --drop-stack): each forwarded packet passes the router's functions in the kernel's order, ip_forward
    /// runs once per datagram the router's own counter forwarded, route input returns 0 (routed), NAT
    /// rewrites each once, skb_clone's return value names the clones it made, and every drop has its stack.
    @Test(arguments: kernels)
    func pathFunctionsShowEachPacketsWay(kernel: String) throws {
        let fixture = Fixture(name: "kernels/\(kernel)/nat-router-fn")
        let f = try fixture.expect()
        let a = try fixture.open()
        let probes = try rows(a, "SELECT name, kind, attached FROM bundle_probe WHERE probe >= 110")
        for name in ["ip_rcv", "ip_forward", "ip_forward_finish", "ip_output", "ip_route_input_noref", "skb_clone"] {
            let row = probes.first { $0["name"] as String == name }
            #expect(row?["attached"] as Int? == 1, "\(name): \(row.map { "\($0)" } ?? "no row")")
            #expect(["fentry", "fexit", "kprobe", "kretprobe"].contains(row?["kind"] as String? ?? ""), "\(name): \(row.map { "\($0)" } ?? "")")
        }
        let router = try #require(Int64(f["router_netns"] ?? ""))
        let forwarded = try rows(a, "SELECT count(*) AS n FROM ev WHERE probe_name = 'ip_forward' AND netns = \(router)")[0]["n"] as Int
        #expect(forwarded == Int(f["router_forwarded"] ?? ""), "ip_forward records \(forwarded), the router's ForwDatagrams \(f["router_forwarded"] ?? "?")")
        let routes = try rows(a, "SELECT count(*) AS n, count(*) FILTER (WHERE rc = 0) AS ok, count(*) FILTER (WHERE detail = '= 0') AS text FROM ev WHERE probe_name = 'ip_route_input_noref' AND netns = \(router)")[0]
        #expect(routes["n"] as Int >= forwarded && routes["ok"] as Int == routes["n"] as Int && routes["text"] as Int == routes["n"] as Int, "\(routes)")
        #expect(try rows(a, "SELECT 1 FROM ev WHERE probe_name = 'ip_forward' AND rc IS NOT NULL").isEmpty, "an entry record has a return value")

        // the kernel's order, in the router, for every forwarded packet
        let order = ["ip_route_input_noref", "ip_forward", "ip_forward_finish", "ip_output", "ip_finish_output2"]
        let steps = try rows(a, """
            SELECT packet_id, probe_name FROM ev WHERE netns = \(router) AND probe_name IN (\(order.map { "'\($0)'" }.joined(separator: ", ")))
            ORDER BY packet_id, step
            """)
        var byPacket: [Int64: [String]] = [:]
        for r in steps { byPacket[r["packet_id"], default: []].append(r["probe_name"]) }
        let through = byPacket.filter { $0.value.contains("ip_forward") }
        #expect(through.count == forwarded, "\(through.count) packets forwarded, \(forwarded) ip_forward records")
        for (id, names) in through {
            #expect(names == order, "packet \(id) in the router: \(names)")
        }

        // skb_clone named its clones: each such edge has the parent's skb_clone step returning the child's skb
        let known = try rows(a, "SELECT c.parent_id, c.child_id, p.skb FROM clone c JOIN packet p ON p.id = c.child_id WHERE c.inferred = 0")
        #expect(!known.isEmpty, "no clone named by skb_clone")
        for edge in known {
            let parent: Int64 = edge["parent_id"], skb: String = edge["skb"]
            #expect(try !rows(a, "SELECT 1 FROM ev WHERE packet_id = \(parent) AND probe_name = 'skb_clone' AND printf('%x', rc) = '\(skb)'").isEmpty, "\(edge)")
        }

        // NAT rewrote each forwarded packet twice (ct-fn): the router DNATs and masquerades, so a request
        // has its destination and then its source rewritten, a reply the reverse; each accepted
        let manips = try rows(a, "SELECT count(*) AS n, count(*) FILTER (WHERE detail = '= ACCEPT' AND rc = 1) AS ok FROM ev WHERE probe_name = 'nf_nat_manip_pkt' AND netns = \(router)")[0]
        #expect(manips["n"] as Int == 2 * forwarded && manips["ok"] as Int == 2 * forwarded, "nf_nat_manip_pkt in the router: \(manips), forwarded \(forwarded)")

        // --drop-stack: every drop has its kernel stack, holding the free's location below the free
        let drops = try rows(a, """
            SELECT p.id, p.drop_symbol, (SELECT e.stack FROM ev e WHERE e.packet_id = p.id AND e.probe_name = 'kfree_skb' ORDER BY e.step DESC LIMIT 1) AS stack
            FROM packet p WHERE p.fate = 'dropped'
            """)
        #expect(!drops.isEmpty)
        let stacks = try a.reader.read { try PacketReader.stackTexts($0) }
        for d in drops {
            let id: Int64 = d["id"], location: String = d["drop_symbol"]
            let stack = try #require(d["stack"] as Int64?, "packet \(id) dropped without a stack")
            let frames = stacks[stack] ?? []
            #expect(frames.contains(location), "packet \(id) dropped at \(location), its stack: \(frames)")
            #expect(!frames.contains { $0.hasPrefix("bpf_prog_") || $0.hasPrefix("bpf_trace_run") }, "tracing frames shown: \(frames)")
        }
        let grouped = try a.dropsReport(json: true, stack: true)
        let groups = try #require(try JSONSerialization.jsonObject(with: Data(grouped.utf8)) as? [[String: Any]])
        #expect(groups.reduce(0) { $0 + ($1["count"] as? Int ?? 0) } == drops.count)
        #expect(groups.allSatisfy { g in (g["stack"] as? [String])?.contains(g["location"] as? String ?? "?") == true }, "\(grouped)")
        let stackText = try a.dropsReport(json: false, stack: true)
        #expect(stackText.contains("    | \(drops[0]["drop_symbol"] as String)"), "\(stackText)")

        // paths: the steps, with the route's return value
        let first = try #require(through.keys.min())
        let text = try a.pathsReport(filter: { var p = PacketFilter(); p.packet = Int(first); return p }(), options: PathsOptions())
        for name in order { #expect(text.contains(name), "\(text)") }
        #expect(text.split(separator: "\n").contains { $0.contains("ip_route_input_noref") && $0.hasSuffix("= 0") }, "\(text)")
    }
}

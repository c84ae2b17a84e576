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
}

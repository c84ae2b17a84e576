#if os(Linux)
import Foundation
import SkbtrailBundle

/// A network namespace the recorder can see: the one it runs in, or a named one under /run/netns.
struct Netns: Hashable {
    var name: String?   // nil for the recorder's own namespace
    var inode: UInt32
    var path: String

    /// Command prefix that runs a tool inside this namespace.
    var exec: [String] { name.map { ["ip", "netns", "exec", $0] } ?? [] }

    static func own() -> Netns? {
        Kernel.inode(of: "/proc/self/ns/net").map { Netns(name: nil, inode: $0, path: "/proc/self/ns/net") }
    }

    static func named() -> [Netns] {
        let dir = "/run/netns"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.sorted().compactMap { name in
            Kernel.inode(of: "\(dir)/\(name)").map { Netns(name: name, inode: $0, path: "\(dir)/\(name)") }
        }
    }

    /// The recorder's namespace first, then every named one (a named one may be the same namespace).
    static func all() -> [Netns] {
        var seen = Set<UInt32>()
        var result: [Netns] = []
        for ns in [own()].compactMap({ $0 }) + named() where seen.insert(ns.inode).inserted {
            result.append(ns)
        }
        return result
    }
}

/// Takes the metadata snapshot that makes a bundle analyzable on another machine.
enum MachineSnapshotter {
    static let sysctlPattern =
        #"^net\.(ipv4\.(ip_forward|ip_default_ttl|conf\.[^.]+\.(rp_filter|forwarding|accept_local|log_martians)|tcp_(syncookies|max_syn_backlog|rmem|wmem|be_liberal))|ipv6\.conf\.[^.]+\.(forwarding|disable_ipv6)|core\.(netdev_max_backlog|rmem_max|rmem_default|wmem_max|somaxconn)|bridge\.bridge-nf-call-(iptables|ip6tables|arptables)|netfilter\.nf_conntrack_(max|count|tcp_be_liberal|tcp_loose))$"#

    static func take(phase: String, namespaces: [Netns], rootInode: UInt32?) -> MachineSnapshot {
        var snap = MachineSnapshot()
        for ns in namespaces {
            let inode = Int64(ns.inode)
            snap.netns.append(NetnsRow(inode: inode, name: ns.name, isRoot: ns.inode == rootInode))
            let ip = IPSnapshot.take(ns)
            if let json = ip.json {
                snap.interfaces += parseLinks(json, netns: inode)
                snap.addresses += parseAddresses(json, netns: inode)
            }
            for (source, text) in ip.texts.sorted(by: { $0.key < $1.key }) {
                snap.snapshots.append(SnapshotRow(netns: inode, phase: phase, source: source, content: text))
            }
            let texts: [(String, [String])] = [
                // IPv6 policy routing (a batch cannot say -6 per command, IPSnapshot's trick is for routes)
                ("ip6-rule", ["ip", "-6", "rule", "show"]),
                // with each rule's packet and byte counters: the end snapshot's minus the start's is what
                // each rule matched during the recording
                ("iptables-save", ["iptables-save", "-c"]),
                ("ip6tables-save", ["ip6tables-save", "-c"]),
                ("nft", ["nft", "list", "ruleset"]),
                ("tc-qdisc", ["tc", "qdisc", "show"]),
                ("sysctl", ["sysctl", "-e", "-a", "--pattern", sysctlPattern]),
                // the kernel's own counters (what nstat shows), read in the namespace: the evidence the
                // analyzer's findings cite as start-to-end deltas
                // (snmp6 is missing where IPv6 is disabled: the others are read all the same)
                ("proc-net-snmp", ["sh", "-c", "cat /proc/net/snmp /proc/net/netstat; cat /proc/net/snmp6 2>/dev/null; true"]),
                // TCP listeners with their accept queue (Recv-Q) and backlog (Send-Q)
                ("ss-listen", ["ss", "-ltnH"]),
            ]
            for (source, command) in texts {
                guard let text = runTool(ns.exec + command) else { continue }
                snap.snapshots.append(SnapshotRow(netns: inode, phase: phase, source: source, content: text))
                if source == "sysctl" {
                    for line in text.split(separator: "\n") {
                        let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                        if parts.count == 2 { snap.sysctls.append(SysctlRow(netns: inode, name: parts[0], value: parts[1])) }
                    }
                }
            }
        }
        return snap
    }

    static func parseLinks(_ json: String, netns: Int64) -> [InterfaceRow] {
        guard let links = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return [] }
        return links.compactMap { link in
            guard let index = link["ifindex"] as? Int, let name = link["ifname"] as? String else { return nil }
            let kind = (link["linkinfo"] as? [String: Any])?["info_kind"] as? String
            let flags = (link["flags"] as? [String]).flatMap { try? JSONSerialization.data(withJSONObject: $0) }
                .map { String(decoding: $0, as: UTF8.self) }
            return InterfaceRow(netns: netns, ifindex: index, name: name, kind: kind, mac: link["address"] as? String,
                                mtu: link["mtu"] as? Int, flags: flags, master: link["master"] as? String)
        }
    }

    static func parseAddresses(_ json: String, netns: Int64) -> [AddressRow] {
        guard let links = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return [] }
        var rows: [AddressRow] = []
        for link in links {
            guard let index = link["ifindex"] as? Int else { continue }
            for info in link["addr_info"] as? [[String: Any]] ?? [] {
                guard let family = info["family"] as? String, family == "inet" || family == "inet6",
                      let local = info["local"] as? String, let prefix = info["prefixlen"] as? Int else { continue }
                rows.append(AddressRow(netns: netns, ifindex: index, family: family, address: local, prefixlen: prefix))
            }
        }
        return rows
    }
}
#endif

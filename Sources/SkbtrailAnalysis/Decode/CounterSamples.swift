import Foundation
import GRDB

/// The kernel's counters in a bundle's snapshots, parsed into `counter_sample` and `listener` at decode:
/// the SNMP and netstat counters (`proc-net-snmp`: /proc/net/snmp, netstat and snmp6 as the recorder
/// read them in each namespace), the rule counters of `iptables-save -c` / `ip6tables-save -c` and of
/// nft rules with a counter statement, and the listening sockets of `ss -ltn`. A line that does not
/// parse is left out: these are texts of tools, and a bundle from a machine with other versions of them
/// still analyzes, with fewer counters.
enum CounterSamples {
    struct Sample {
        var kind: String
        var tbl: String?
        var chain: String?
        var seq: Int?
        var name: String
        /// nft: the hook of the rule's base chain ('input'); nil for a regular chain.
        var hook: String? = nil
        var value: Int64
        var bytes: Int64?
    }

    static func write(_ db: Database) throws {
        let insert = try db.makeStatement(sql: """
            INSERT INTO counter_sample (netns, phase, kind, tbl, chain, hook, seq, name, value, bytes)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let listen = try db.makeStatement(sql: """
            INSERT INTO listener (netns, phase, address, port, queued, backlog) VALUES (?, ?, ?, ?, ?, ?)
            """)
        let rows = try Row.fetchCursor(db, sql: """
            SELECT netns, phase, source, content FROM bundle_snapshot
            WHERE netns IS NOT NULL AND phase IN ('start', 'end') AND content IS NOT NULL
              AND source IN ('proc-net-snmp', 'iptables-save', 'ip6tables-save', 'nft', 'ss-listen')
            """)
        while let row = try rows.next() {
            guard let netns = row[0] as Int64?, let phase = row[1] as String?, let source = row[2] as String?,
                  let content = row[3] as String? else { continue }
            if source == "ss-listen" {
                for l in listeners(content) {
                    try listen.execute(arguments: [netns, phase, l.address, l.port, l.queued, l.backlog])
                }
                continue
            }
            let samples: [Sample]
            switch source {
            case "proc-net-snmp": samples = snmp(content)
            case "nft": samples = nft(content)
            default: samples = iptables(content, kind: source == "ip6tables-save" ? "ip6tables" : "iptables")
            }
            for s in samples {
                try insert.execute(arguments: [netns, phase, s.kind, s.tbl, s.chain, s.hook, s.seq, s.name, s.value, s.bytes])
            }
        }
    }

    /// /proc/net/snmp and /proc/net/netstat (a line of names, then a line of values, each led by
    /// "Prefix:") and /proc/net/snmp6 ("Name value" lines): nstat's names, prefix and field joined.
    static func snmp(_ text: String) -> [Sample] {
        var samples: [Sample] = []
        var header: (prefix: Substring, names: [Substring])?
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first else { continue }
            if first.hasSuffix(":") {
                let prefix = first.dropLast()
                if let h = header, h.prefix == prefix, h.names.count == words.count - 1 {
                    for (name, value) in zip(h.names, words.dropFirst()) {
                        if let v = Int64(value) { samples.append(Sample(kind: "snmp", name: "\(prefix)\(name)", value: v)) }
                    }
                    header = nil
                } else {
                    header = (prefix, Array(words.dropFirst()))
                }
            } else if words.count == 2, let v = Int64(words[1]) {
                samples.append(Sample(kind: "snmp", name: String(first), value: v))
            }
        }
        return samples
    }

    /// iptables-save -c: "*table", ":CHAIN POLICY [packets:bytes]", "[packets:bytes] -A CHAIN ...".
    static func iptables(_ text: String, kind: String) -> [Sample] {
        var samples: [Sample] = []
        var table: String?
        var seen: [String: Int] = [:]
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("*") { table = String(line.dropFirst()); continue }
            guard let table else { continue }
            if line.hasPrefix(":") {
                // a built-in chain's policy and its counters; a user chain has policy "-"
                let words = line.dropFirst().split(separator: " ")
                guard words.count == 3, words[1] != "-", let c = counters(words[2]) else { continue }
                samples.append(Sample(kind: kind, tbl: table, chain: String(words[0]), seq: 1,
                                      name: "policy \(words[1])", value: c.packets, bytes: c.bytes))
            } else if line.hasPrefix("["), let close = line.firstIndex(of: "]"),
                      let c = counters(line[...close]) {
                let rule = line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)
                let words = rule.split(separator: " ", maxSplits: 2)
                guard words.count >= 2, words[0] == "-A" else { continue }
                let chain = String(words[1])
                let key = "\(chain)\u{0}\(rule)"
                seen[key, default: 0] += 1
                samples.append(Sample(kind: kind, tbl: table, chain: chain, seq: seen[key], name: rule,
                                      value: c.packets, bytes: c.bytes))
            }
        }
        return samples
    }

    /// "[packets:bytes]"
    static func counters(_ word: Substring) -> (packets: Int64, bytes: Int64)? {
        guard word.hasPrefix("["), word.hasSuffix("]") else { return nil }
        let parts = word.dropFirst().dropLast().split(separator: ":")
        guard parts.count == 2, let p = Int64(parts[0]), let b = Int64(parts[1]) else { return nil }
        return (p, b)
    }

    /// nft list ruleset: the rules with "counter packets N bytes M", by table and chain.
    static func nft(_ text: String) -> [Sample] {
        var samples: [Sample] = []
        var table: String?
        var chain: String?
        var hook: String?
        var seen: [String: Int] = [:]
        /// "inet filter" of "table inet filter {" or of "table inet firewalld { # progname firewalld"
        func name(_ rest: Substring) -> String {
            let upTo = rest.range(of: " {").map { rest[..<$0.lowerBound] } ?? rest
            return upTo.trimmingCharacters(in: CharacterSet(charactersIn: " {"))
        }
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("table ") {
                table = name(line.dropFirst(6))
                chain = nil
                continue
            }
            if line.hasPrefix("chain ") {
                chain = name(line.dropFirst(6))
                hook = nil
                continue
            }
            if line.hasPrefix("type "), let h = line.range(of: " hook ") {
                hook = line[h.upperBound...].split(separator: " ").first.map(String.init)
                continue
            }
            guard let table, let chain, let range = line.range(of: "counter packets ") else { continue }
            let after = line[range.upperBound...].split(separator: " ", maxSplits: 3)
            guard after.count >= 3, after[1] == "bytes", let p = Int64(after[0]), let b = Int64(after[2]) else { continue }
            let rest = after.count > 3 ? " " + after[3] : ""
            let rule = (line[..<range.lowerBound] + "counter" + rest).trimmingCharacters(in: .whitespaces)
            let key = "\(table)\u{0}\(chain)\u{0}\(rule)"
            seen[key, default: 0] += 1
            samples.append(Sample(kind: "nft", tbl: table, chain: chain, seq: seen[key], name: rule, hook: hook, value: p, bytes: b))
        }
        return samples
    }

    /// ss -ltnH: "LISTEN Recv-Q Send-Q LOCAL:PORT PEER:PORT ...".
    static func listeners(_ text: String) -> [(address: String, port: Int64, queued: Int64?, backlog: Int64?)] {
        text.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard words.count >= 4, let colon = words[3].lastIndex(of: ":"),
                  let port = Int64(words[3][words[3].index(after: colon)...]) else { return nil }
            var address = String(words[3][..<colon])
            if let percent = address.firstIndex(of: "%") { address = String(address[..<percent]) }
            address = address.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            return (address, port, Int64(words[1]), Int64(words[2]))
        }
    }
}

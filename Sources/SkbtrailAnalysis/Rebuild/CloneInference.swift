/// Which packets are clones of which: inferred from shared data heads (no tracepoint fires on skb_clone),
/// or known where skb_clone's exit was recorded (tier 3, `--probes skb-fn`): its return value is the clone.
enum CloneInference {
    /// What the inference needs of a packet, kept for every packet until the end of the decode.
    struct Summary: Equatable {
        var firstTs: UInt64 = 0
        var lastTs: UInt64 = 0
        /// The first data head its records carry (0: none), and the last bytes hash seen with it.
        var head: UInt64 = 0
        var lastHash: UInt64 = 0
        /// The first bytes hash of any of its records with a head.
        var firstHash: UInt64 = 0
        /// The heads after the first, in order of appearance, each with its last bytes hash.
        var moreHeads: [(head: UInt64, lastHash: UInt64)] = []

        static func == (a: Summary, b: Summary) -> Bool {
            a.firstTs == b.firstTs && a.lastTs == b.lastTs && a.head == b.head && a.lastHash == b.lastHash
                && a.firstHash == b.firstHash && a.moreHeads.elementsEqual(b.moreHeads, by: { $0 == $1 })
        }
    }

    /// The summary of a packet with `records` (in order).
    static func summary(_ records: [DecodedRecord]) -> Summary {
        var s = Summary(firstTs: records.first?.ev.ts ?? 0, lastTs: records.last?.ev.ts ?? 0)
        var heads: [(head: UInt64, lastHash: UInt64)] = []
        records.withUnsafeBufferPointer { r in
            for i in r.indices where r[i].ev.head != 0 {
                let head = r[i].ev.head, hash = r[i].bytesHash
                if let k = heads.firstIndex(where: { $0.head == head }) {
                    if hash != 0 { heads[k].lastHash = hash }
                } else {
                    heads.append((head, hash))
                }
                if hash != 0 && s.firstHash == 0 { s.firstHash = hash }
            }
        }
        if let h = heads.first {
            s.head = h.head
            s.lastHash = h.lastHash
            s.moreHeads = Array(heads.dropFirst())
        }
        return s
    }

    /// Packets sharing a data head are clones when their lives overlap, or when one starts after the
    /// other ended with the same packet bytes (the head cannot be reused while a clone holds it, so a
    /// clone read later, e.g. by an AF_PACKET socket, still points at it). The earliest is the parent;
    /// a parent that is itself a clone gives its root, so trees are one level per inference.
    /// Returns the parent index of each packet (-1: none) and, for each clone, why.
    static func infer(_ packets: [Summary]) -> (parent: [Int32], why: [Int: String]) {
        struct Group { var root: Int; var maxLast: UInt64; var lastHash: UInt64 }
        var groups: [UInt64: Group] = [:]
        var parent = [Int32](repeating: -1, count: packets.count)
        var why: [Int: String] = [:]
        for p in 0..<packets.count {
            let s = packets[p]
            guard s.head != 0 else { continue }
            for (h, lastHash) in [(s.head, s.lastHash)] + s.moreHeads.map({ ($0.head, $0.lastHash) }) {
                if var g = groups[h] {
                    if g.root != p && parent[p] < 0 && h == s.head {
                        if s.firstTs <= g.maxLast {
                            parent[p] = Int32(g.root)
                            why[p] = "shares data head \(String(h, radix: 16)) while the parent lives"
                        } else if s.firstHash != 0 && s.firstHash == g.lastHash {
                            parent[p] = Int32(g.root)
                            why[p] = "shares data head \(String(h, radix: 16)) and its bytes after the parent was freed"
                        } else {
                            g.root = p  // the buffer was reused: a new group
                        }
                    }
                    g.maxLast = max(g.maxLast, s.lastTs)
                    if lastHash != 0 { g.lastHash = lastHash }
                    groups[h] = g
                } else {
                    groups[h] = Group(root: p, maxLast: s.lastTs, lastHash: lastHash)
                }
            }
        }
        flatten(&parent)
        return (parent, why)
    }

    /// Each packet's parent made its tree's root (a parent that is itself a clone gives its own). Every
    /// edge points at an earlier packet (an inference's parent is earlier; skb_clone's parent made the
    /// clone before its first record), so there are no cycles; the step bound and the self check keep a
    /// damaged input from looping.
    static func flatten(_ parent: inout [Int32]) {
        for p in 0..<parent.count {
            var root = Int(parent[p])
            var steps = 0
            while root >= 0, parent[root] >= 0, steps < 64 { root = Int(parent[root]); steps += 1 }
            if root >= 0 && root != p { parent[p] = Int32(root) } else if root == p { parent[p] = -1 }
        }
    }

    /// The trees of `infer` with the clones skb_clone named (`known`: child index -> parent index), which
    /// take precedence over an inference. Returns the parents, why, and which edges are inferred.
    static func merge(_ inferred: (parent: [Int32], why: [Int: String]), known: [Int: Int])
        -> (parent: [Int32], why: [Int: String], inferred: [Bool]) {
        var (parent, why) = inferred
        var isInferred = parent.map { $0 >= 0 }
        var named: [Int: Int] = [:]
        for (child, q) in known where child >= 0 && child < parent.count && q >= 0 && q < child {
            parent[child] = Int32(q)
            isInferred[child] = false
            named[child] = q
        }
        if !known.isEmpty { flatten(&parent) }
        // after flattening: the packet that called skb_clone, and its root where that is a clone
        for (child, q) in named {
            let root = Int(parent[child])
            why[child] = root == q || root < 0 ? "skb_clone of packet \(q + 1) returned it"
                : "skb_clone of packet \(q + 1), a clone of packet \(root + 1), returned it"
        }
        for i in parent.indices where parent[i] < 0 { isInferred[i] = false }
        return (parent, why, isInferred)
    }
}

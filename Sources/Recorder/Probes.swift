import SkbtrailBundle
import SkbtrailEvents

/// The tracepoints of the probe table (bpf/include/events.h): their BPF programs are `btf_<name>` and
/// `raw_<name>`.
let tracepointProbes = ProbeTable.tracepoints

/// The kernel functions of the probe table (tier 3): their programs are `fexit_<name>`, and the pair
/// `kprobe_<name>` and `kretprobe_<name>`.
let functionProbes = ProbeTable.functions

/// The words of --probes that name sets of groups.
enum ProbeSelectors {
    /// What is recorded without --probes: every probe but the functions of the packet's path.
    static let defaultSet = "default"
    /// Every function of the packet's path (ip-fn, ipv6-fn, ct-fn, route-fn, bridge-fn, tcp-fn, udp-fn, icmp-fn, skb-fn).
    static let functions = "functions"
}

/// What --probes and --exclude-probes accept: probe groups (net, skb, ..., netfilter, nf-fn, ip-fn, ...),
/// tracepoints, kernel functions, `default` and `functions`.
let probeSelectors = Set(ProbeTable.groups).union(tracepointProbes.map(\.name)).union(functionProbes.map(\.name))
    .union([ProbeSelectors.defaultSet, ProbeSelectors.functions])

let nfHookNames = ["prerouting", "input", "forward", "output", "postrouting"]
let nfFamilies: [(pf: UInt32, name: String)] = [(2, "ipv4"), (10, "ipv6")]

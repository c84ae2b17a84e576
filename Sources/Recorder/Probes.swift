import SkbtrailBundle
import SkbtrailEvents

/// The tracepoints of the probe table (bpf/include/events.h): their BPF programs are `btf_<name>` and
/// `raw_<name>`.
let tracepointProbes = ProbeTable.tracepoints

/// The kernel functions of the probe table (tier 3): their programs are `fexit_<name>`, and the pair
/// `kprobe_<name>` and `kretprobe_<name>`.
let functionProbes = ProbeTable.functions

/// What --probes and --exclude-probes accept: probe groups (net, skb, ..., netfilter, nf-fn), tracepoints
/// and kernel functions.
let probeSelectors = Set(ProbeTable.groups).union(tracepointProbes.map(\.name)).union(functionProbes.map(\.name))

let nfHookNames = ["prerouting", "input", "forward", "output", "postrouting"]
let nfFamilies: [(pf: UInt32, name: String)] = [(2, "ipv4"), (10, "ipv6")]

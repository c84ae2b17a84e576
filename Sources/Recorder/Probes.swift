import SkbtrailBundle
import SkbtrailEvents

/// The tracepoints of the probe table (bpf/include/events.h): their BPF programs are `btf_<name>` and
/// `raw_<name>`.
let tracepointProbes = ProbeTable.tracepoints

/// What --probes and --exclude-probes accept: probe groups (net, skb, ..., netfilter) and tracepoints.
let probeSelectors = Set(ProbeTable.groups).union(tracepointProbes.map(\.name))

let nfHookNames = ["prerouting", "input", "forward", "output", "postrouting"]
let nfFamilies: [(pf: UInt32, name: String)] = [(2, "ipv4"), (10, "ipv6")]

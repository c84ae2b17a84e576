#if os(Linux)
import CLibbpf
import Foundation
import SkbtrailBundle

/// How one kernel function (tier 3) can be probed on the running kernel: decided once, here, for the
/// recording and for `--check` alike. fexit where the function has BTF (vmlinux's, or its module's
/// under /sys/kernel/btf); a kprobe and kretprobe pair where the kernel has kprobes; neither, with why.
struct FunctionPlan {
    let probe: ProbeInfo
    /// The module the function is in, from /proc/kallsyms; nil when built in.
    let module: String?
    /// Why the function cannot be probed at all; nil when it is in this kernel.
    let absent: String?
    /// Why fexit cannot be tried; nil when it can.
    let noFexit: String?
    /// Why kprobes cannot be tried; nil when they can.
    let noKprobe: String?

    /// A netfilter function: fentry keeps the arguments for a free inside the function, fexit records
    /// its exit. A function of the packet's path: fentry records its entry, or fexit its exit.
    var fexitPrograms: [String] {
        guard let path = ProbeTable.path(probe.id) else { return ["fentry_\(probe.name)", "fexit_\(probe.name)"] }
        return [path.atExit ? "fexit_\(probe.name)" : "fentry_\(probe.name)"]
    }
    /// The kprobe programs, entry first: a kprobe alone for a path function recorded at its entry.
    var kprobePrograms: [String] {
        if let path = ProbeTable.path(probe.id), !path.atExit { return ["kprobe_\(probe.name)"] }
        return ["kprobe_\(probe.name)", "kretprobe_\(probe.name)"]
    }
    /// What the probe row says when each flavour attached.
    var kinds: (trampoline: String, kprobe: String) {
        if let path = ProbeTable.path(probe.id), !path.atExit { return ("fentry", "kprobe") }
        return ("fexit", "kretprobe")
    }

    /// Where the probe row says it attaches: the function, and its module.
    var target: String { module.map { "\(probe.name) [\($0)]" } ?? probe.name }

    /// The function whose entry tells the kprobe programs their hook (`kprobe_nf_hook_slow`).
    static let hookHelper = "nf_hook_slow"

    /// The module each function is in when the kernel builds it as one (Debian's do), to say what to load.
    static let expectedModule = ["ipt_do_table": "ip_tables", "ip6t_do_table": "ip6_tables", "nft_do_chain": "nf_tables",
                                 "br_handle_frame_finish": "bridge", "br_forward": "bridge", "br_pass_frame_up": "bridge",
                                 "br_dev_xmit": "bridge", "ip6_input": "ipv6", "ipv6_rcv": "ipv6", "ip6_rcv_finish": "ipv6",
                                 "ip6_forward": "ipv6", "ip6_output": "ipv6", "ip6_finish_output2": "ipv6",
                                 "ip6_route_input": "ipv6", "tcp_v6_rcv": "ipv6", "udpv6_rcv": "ipv6", "icmpv6_rcv": "ipv6",
                                 "nf_conntrack_in": "nf_conntrack", "nf_nat_manip_pkt": "nf_nat"]

    /// Why a path function's BTF prototype does not fit its row of ST_FN_PATH_TABLE (the skb in another
    /// argument, another argument count for a record at the exit), or nil. `btf` is vmlinux's or its
    /// module's.
    static func prototypeMismatch(_ probe: ProbeInfo, btf: OpaquePointer) -> String? {
        guard let path = ProbeTable.path(probe.id) else { return nil }
        var isSkb: Int32 = 0
        let n = Int(skbtrail_btf_func_params(btf, probe.name, Int32(path.skbArgument), &isSkb))
        if n < 0 { return "the kernel's BTF has no function \(probe.name)" }
        if isSkb == 0 { return "argument \(path.skbArgument) of \(probe.name) is not a struct sk_buff * in this kernel's BTF" }
        if path.atExit && n != path.arguments {
            return "\(probe.name) takes \(n) arguments in this kernel's BTF, skbtrail's fexit expects \(path.arguments)"
        }
        return nil
    }

    /// The plans of every function of the probe table on this kernel.
    static func all(vmlinux: OpaquePointer) -> [FunctionPlan] {
        let symbols = kallsyms(Set(functionProbes.map(\.name)))
        let kprobes = kprobesMissing()
        return functionProbes.map { f in
            guard let found = symbols[f.name] else {
                let module = expectedModule[f.name]
                let why = module.map { "function \(f.name) is not in this kernel: its module \($0) is not loaded (modprobe \($0), or add a rule, before recording)" }
                    ?? "function \(f.name) is not in this kernel (/proc/kallsyms)"
                return FunctionPlan(probe: f, module: nil, absent: why, noFexit: why, noKprobe: why)
            }
            let module = found.isEmpty ? nil : found
            var noFexit: String?
            var noKprobe = kprobes
            if let module {
                if !FileManager.default.fileExists(atPath: "/sys/kernel/btf/\(module)") {
                    noFexit = "module \(module) has no BTF (/sys/kernel/btf/\(module); kernel 5.11+ with CONFIG_DEBUG_INFO_BTF_MODULES)"
                } else if ProbeTable.path(f.id) != nil {
                    if let btf = btf__load_module_btf(module, vmlinux) {
                        noFexit = prototypeMismatch(f, btf: btf)
                        btf__free(btf)
                    } else {
                        noFexit = "cannot read /sys/kernel/btf/\(module)"
                    }
                }
            } else if skbtrail_btf_has_type(vmlinux, f.name) == 0 {
                noFexit = "the kernel's BTF has no function \(f.name)"
            } else {
                noFexit = prototypeMismatch(f, btf: vmlinux)
            }
            // the skb in another argument: a kprobe would read something else
            if let why = noFexit, why.hasPrefix("argument ") { noKprobe = why }
            return FunctionPlan(probe: f, module: module, absent: nil, noFexit: noFexit, noKprobe: noKprobe)
        }
    }

    /// The functions of `names` that /proc/kallsyms lists as text: their module ("" when built in).
    static func kallsyms(_ names: Set<String>) -> [String: String] {
        // /proc files report size 0: read to EOF
        guard let handle = FileHandle(forReadingAtPath: "/proc/kallsyms"), let data = try? handle.readToEnd() else { return [:] }
        try? handle.close()
        var found: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            // "ffffffffc0a1b2c0 t nft_do_chain\t[nf_tables]"
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 3, fields[1] == "t" || fields[1] == "T" else { continue }
            let name = String(fields[2])
            guard names.contains(name), found[name] == nil else { continue }
            found[name] = fields.count > 3 ? String(fields[3].dropFirst().dropLast()) : ""
        }
        return found
    }

    /// Why this kernel has no kprobes for BPF, or nil: the kprobe PMU (perf_event_open) or tracefs'
    /// kprobe_events (libbpf's legacy way) must exist.
    static func kprobesMissing() -> String? {
        let fm = FileManager.default
        if fm.fileExists(atPath: "/sys/bus/event_source/devices/kprobe") { return nil }
        if fm.fileExists(atPath: "/sys/kernel/tracing/kprobe_events") || fm.fileExists(atPath: "/sys/kernel/debug/tracing/kprobe_events") {
            return nil
        }
        return "this kernel has no kprobes (no kprobe PMU in /sys/bus/event_source/devices, no kprobe_events in tracefs)"
    }

    /// Whether `section` is a program of this function, and which flavour.
    enum Flavour { case fexit, kprobe }
    static func flavour(ofSection section: String) -> (Flavour, String)? {
        for (prefix, flavour) in [("fentry/", Flavour.fexit), ("fexit/", .fexit), ("kprobe/", .kprobe), ("kretprobe/", .kprobe)]
            where section.hasPrefix(prefix) {
            return (flavour, String(section.dropFirst(prefix.count)))
        }
        return nil
    }
}
#endif

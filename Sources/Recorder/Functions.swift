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

    /// fentry keeps the arguments for a free inside the function; fexit records its exit.
    var fexitPrograms: [String] { ["fentry_\(probe.name)", "fexit_\(probe.name)"] }
    var kprobePrograms: [String] { ["kprobe_\(probe.name)", "kretprobe_\(probe.name)"] }

    /// Where the probe row says it attaches: the function, and its module.
    var target: String { module.map { "\(probe.name) [\($0)]" } ?? probe.name }

    /// The function whose entry tells the kprobe programs their hook (`kprobe_nf_hook_slow`).
    static let hookHelper = "nf_hook_slow"

    /// The module each function is in when the kernel builds it as one (Debian's do), to say what to load.
    static let expectedModule = ["ipt_do_table": "ip_tables", "ip6t_do_table": "ip6_tables", "nft_do_chain": "nf_tables"]

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
            if let module {
                if !FileManager.default.fileExists(atPath: "/sys/kernel/btf/\(module)") {
                    noFexit = "module \(module) has no BTF (/sys/kernel/btf/\(module); kernel 5.11+ with CONFIG_DEBUG_INFO_BTF_MODULES)"
                }
            } else if skbtrail_btf_has_type(vmlinux, f.name) == 0 {
                noFexit = "the kernel's BTF has no function \(f.name)"
            }
            return FunctionPlan(probe: f, module: module, absent: nil, noFexit: noFexit, noKprobe: kprobes)
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

#if os(Linux)
import CLibbpf
import Foundation
import Glibc
import SkbtrailBundle
import SkbtrailEvents

/// libbpf's messages, collected so a failed load can name the program and the verifier's reason.
nonisolated(unsafe) var libbpfLog: [String] = []

@_cdecl("skbtrail_log_line")
func skbtrailLogLine(_ level: Int32, _ line: UnsafePointer<CChar>?) {
    guard let line, level < 2 /* LIBBPF_DEBUG */ else { return }
    libbpfLog.append(String(cString: line).trimmingCharacters(in: .newlines))
}

struct RecorderError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The loaded BPF object, its links and the ring buffer. Owns every kernel resource it creates and
/// releases them in `detach()`.
final class BPFSession {
    private let object: OpaquePointer
    private var links: [OpaquePointer] = []
    private var nfLinkFDs: [Int32] = []
    private(set) var probes: [ProbeRow] = []
    private var nfAttachedNetns = Set<UInt32>()
    private let nfTypes: (prog: UInt32, attach: UInt32)?
    let netfilterWanted: Bool
    private let objectBytes: [UInt8]

    /// Opens the embedded object, writes `config` into its .rodata, picks one flavour per tracepoint
    /// from the kernel's BTF, and loads. Programs the kernel rejects are disabled and recorded.
    static func load(config: st_config, ringBytes: UInt32, selected: (_ name: String, _ group: String) -> Bool,
                     pretendMissing: Set<String>) throws -> BPFSession {
        var rejected: [String: String] = [:]
        while true {
            do {
                return try BPFSession(config: config, ringBytes: ringBytes, selected: selected,
                                      pretendMissing: pretendMissing, rejected: rejected)
            } catch let retry as RetryLoad {
                rejected = retry.rejected
            }
        }
    }

    private let rejected: [String: String]

    private init(config: st_config, ringBytes: UInt32, selected: (_ name: String, _ group: String) -> Bool,
                 pretendMissing: Set<String>,
                 rejected: [String: String]) throws {
        self.rejected = rejected
        guard let bytes = Data(base64Encoded: EmbeddedBPF.base64) else {
            throw RecorderError("the embedded BPF object is damaged; rebuild skbtrail-record")
        }
        objectBytes = [UInt8](bytes)
        skbtrail_capture_libbpf_log()
        guard let vmlinux = btf__load_vmlinux_btf() else {
            throw RecorderError("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): skbtrail-record needs a kernel built with CONFIG_DEBUG_INFO_BTF")
        }
        defer { btf__free(vmlinux) }
        nfTypes = Self.netfilterTypes(vmlinux)
        netfilterWanted = selected("netfilter", "netfilter")

        self.object = try Self.openObject(objectBytes, config: config, ringBytes: ringBytes)

        // Choose programs: one flavour per wanted tracepoint, netfilter where the kernel has it.
        var plan: [String: (probe: ProbeInfo, kind: String)] = [:]
        var notAttempted: [ProbeRow] = []
        for tp in tracepointProbes {
            let chosen: String?
            if !selected(tp.name, tp.group) {
                chosen = nil
            } else if pretendMissing.contains(tp.name) {
                chosen = nil
                notAttempted.append(ProbeRow(probe: Int(tp.id), name: tp.name, tier: 1, kind: "tp_btf", target: tp.name,
                                             attached: false, error: "tracepoint not in this kernel (simulated by --pretend-missing)"))
            } else if skbtrail_btf_has_type(vmlinux, "btf_trace_\(tp.name)") != 0 {
                chosen = "tp_btf"
            } else if !Self.tracepointMayExist(tp.name) {
                chosen = nil
                notAttempted.append(ProbeRow(probe: Int(tp.id), name: tp.name, tier: 1, kind: "raw_tp", target: tp.name,
                                             attached: false, error: Self.missingTracepoint(tp.name)))
            } else {
                chosen = "raw_tp"
            }
            if let chosen { plan["\(chosen == "tp_btf" ? "btf" : "raw")_\(tp.name)"] = (tp, chosen) }
        }
        let functions = FunctionPlan.all(vmlinux: vmlinux).filter { selected($0.probe.name, $0.probe.group) }
        let functionByName = Dictionary(uniqueKeysWithValues: functions.map { ($0.probe.name, $0) })
        var program: OpaquePointer? = nil
        while let prog = bpf_object__next_program(object, program) {
            program = prog
            let name = String(cString: bpf_program__name(prog))
            let section = String(cString: bpf_program__section_name(prog))
            if section == "netfilter" {
                if let types = nfTypes, netfilterWanted {
                    bpf_program__set_type(prog, bpf_prog_type(rawValue: types.prog))
                    bpf_program__set_expected_attach_type(prog, bpf_attach_type(rawValue: types.attach))
                } else {
                    bpf_program__set_autoload(prog, false)
                }
            } else if let (flavour, function) = FunctionPlan.flavour(ofSection: section) {
                let f = functionByName[function]
                let helper = function == FunctionPlan.hookHelper
                    && functions.contains { $0.probe.role == .nfVerdict && $0.absent == nil && $0.noKprobe == nil }
                bpf_program__set_autoload(prog, helper || f.map { $0.absent == nil && (flavour == .fexit ? $0.noFexit : $0.noKprobe) == nil } ?? false)
            } else {
                bpf_program__set_autoload(prog, plan[name] != nil)
            }
            if rejected[name] != nil { bpf_program__set_autoload(prog, false) }
        }
        if netfilterWanted && nfTypes == nil {
            notAttempted.append(ProbeRow(probe: NetfilterBrackets.probeID(0), name: "netfilter", tier: 2, kind: "netfilter",
                                         target: "all hooks", attached: false,
                                         error: "\(Self.noNetfilterLinks) (BPF_PROG_TYPE_NETFILTER): drops in netfilter are attributed from kfree_skb alone"))
        }

        // Load; a program the verifier rejects is disabled and the object is opened again without it
        // (libbpf cannot retry a failed load on the same object).
        libbpfLog.removeAll()
        if bpf_object__load(object) != 0 {
            guard let bad = Self.failedProgram(libbpfLog), rejected[bad] == nil, rejected.count < 64 else {
                throw RecorderError("the kernel refused to load skbtrail's BPF programs: \(libbpfLog.suffix(4).joined(separator: " | "))")
            }
            throw RetryLoad(rejected: Self.rejecting(bad, Self.verifierReason(libbpfLog), in: rejected))
        }
        probes = notAttempted
        for (progName, entry) in plan.sorted(by: { $0.value.probe.id < $1.value.probe.id }) {
            var row = ProbeRow(probe: Int(entry.probe.id), name: entry.probe.name, tier: 1, kind: entry.kind,
                               target: "\(entry.probe.group):\(entry.probe.name)", attached: false)
            if let why = rejected[progName] {
                row.error = "the verifier rejected it: \(why)"
            } else if let prog = bpf_object__find_program_by_name(object, progName), let link = bpf_program__attach(prog) {
                links.append(link)
                row.attached = true
            } else {
                row.error = "attach failed: \(String(cString: strerror(errno)))"
            }
            probes.append(row)
        }
        var rows = functions.map(attachFunction)
        // the functions on kprobes know their hook from nf_hook_slow's entry (their arguments are untyped)
        if rows.contains(where: { $0.attached && $0.kind == "kretprobe" && ProbeTable.role($0.probe) == .nfVerdict }) {
            let program = "kprobe_\(FunctionPlan.hookHelper)"
            var why: String?
            if let reason = rejected[program] {
                why = "the verifier rejected \(program): \(reason)"
            } else if let prog = bpf_object__find_program_by_name(object, program), let link = bpf_program__attach(prog) {
                links.append(link)
            } else {
                why = "\(program): attach failed: \(String(cString: strerror(errno)))"
            }
            if let why {
                for i in rows.indices where rows[i].kind == "kretprobe" && rows[i].attached && ProbeTable.role(rows[i].probe) == .nfVerdict {
                    rows[i].error = "attached, but its hook is unknown: \(why)"
                }
            }
        }
        probes.append(contentsOf: rows)
        // without links, the tables' functions attribute netfilter drops, not kfree_skb alone
        if rows.contains(where: { $0.attached && ProbeTable.role($0.probe) == .nfVerdict }),
           let i = probes.firstIndex(where: { $0.kind == "netfilter" && !$0.attached && $0.netns == nil }) {
            probes[i].error = "\(Self.noNetfilterLinks) (BPF_PROG_TYPE_NETFILTER): drops in netfilter are attributed from the tables' functions (tier 3: "
                + rows.filter { $0.attached && ProbeTable.role($0.probe) == .nfVerdict }.map(\.name).joined(separator: ", ") + ")"
        }
    }

    /// Attaches a kernel function's probe: fexit, else the kprobe and kretprobe pair. The row says which,
    /// or why neither (each flavour's reason).
    private func attachFunction(_ f: FunctionPlan) -> ProbeRow {
        var row = ProbeRow(probe: f.probe.id, name: f.probe.name, tier: 3, kind: f.noFexit == nil ? f.kinds.trampoline : f.kinds.kprobe,
                           target: f.target, attached: false)
        if let why = f.absent {
            row.error = why
            return row
        }
        var failures: [String] = []
        func attach(_ program: String) -> OpaquePointer? {
            if let why = rejected[program] {
                failures.append(Self.isTracing(program) && Self.refusesTracing(why)
                                ? "fexit: \(Self.fexitRefused)" : "\(program): the verifier rejected it: \(why)")
                return nil
            }
            guard let prog = bpf_object__find_program_by_name(object, program), bpf_program__fd(prog) >= 0 else {
                failures.append("\(program): not loaded")
                return nil
            }
            guard let link = bpf_program__attach(prog) else {
                failures.append("\(program): attach failed: \(String(cString: strerror(errno)))")
                return nil
            }
            return link
        }
        // an entry program and an exit program, both or neither: fentry/fexit first, then the kprobes.
        // The exit first: an entry without its exit would leave its call in fn_running (fn_calls).
        for (missing, programs, flavour, kind) in [(f.noFexit, f.fexitPrograms, "fexit", f.kinds.trampoline),
                                                   (f.noKprobe, f.kprobePrograms, "kprobe", f.kinds.kprobe)] {
            if let why = missing {
                failures.append("\(flavour): \(why)")
                continue
            }
            var attached: [OpaquePointer] = []
            for program in programs.reversed() {
                guard let link = attach(program) else { break }
                attached.append(link)
            }
            if attached.count == programs.count {
                links.append(contentsOf: attached)
                row.kind = kind
                row.attached = true
                return row
            }
            attached.forEach { bpf_link__destroy($0) }
        }
        row.error = failures.joined(separator: "; ")
        return row
    }

    struct RetryLoad: Error { var rejected: [String: String] }

    /// Distinct drop stacks --drop-stack keeps; a drop with another stack after these has none.
    static let dropStackEntries: UInt32 = 16384

    /// Opens the embedded object and writes `config` into its .rodata (read by the programs as `cfg`).
    static func openObject(_ bytes: [UInt8], config: st_config, ringBytes: UInt32) throws -> OpaquePointer {
        var opened: OpaquePointer?
        bytes.withUnsafeBytes { raw in
            var opts = bpf_object_open_opts()
            opts.sz = MemoryLayout<bpf_object_open_opts>.size
            opened = "skbtrail".withCString { name in
                opts.object_name = name
                return bpf_object__open_mem(raw.baseAddress, raw.count, &opts)
            }
        }
        guard let object = opened else {
            throw RecorderError("libbpf cannot open the embedded BPF object: \(libbpfLog.suffix(3).joined(separator: "; "))")
        }
        // Settings go into .rodata before load: the verifier then prunes the unused filter code.
        let offset = skbtrail_rodata_offset(object, "cfg")
        var size = 0
        guard let rodata = bpf_object__find_map_by_name(object, ".rodata"), offset >= 0,
              let initial = bpf_map__initial_value(rodata, &size),
              offset + MemoryLayout<st_config>.size <= size else {
            bpf_object__close(object)
            throw RecorderError("the embedded BPF object has no `cfg` settings in .rodata: rebuild skbtrail-record")
        }
        var cfg = config
        memcpy(UnsafeMutableRawPointer(mutating: initial) + offset, &cfg, MemoryLayout<st_config>.size)
        // ipt_do_table(priv = table, skb, state) since 5.16, (skb, state, table) before
        let tableFirst = skbtrail_rodata_offset(object, "fn_ipt_table_first")
        if tableFirst >= 0 && tableFirst < size {
            let release = Kernel.uname().release.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
            let newer = release.count == 2 && (release[0], release[1]) >= (5, 16)
            (UnsafeMutableRawPointer(mutating: initial) + tableFirst).storeBytes(of: UInt8(newer ? 1 : 0), as: UInt8.self)
        }
        if let ring = bpf_object__find_map_by_name(object, "events") {
            bpf_map__set_max_entries(ring, ringBytes)
        }
        // --drop-stack: room for this many distinct stacks of drops (32 frames each: 4 MiB)
        if config.options & UInt8(ST_OPT_DROP_STACK.rawValue) != 0, let stacks = bpf_object__find_map_by_name(object, "stacks") {
            bpf_map__set_max_entries(stacks, dropStackEntries)
        }
        return object
    }

    /// What `--check` says of one program.
    enum Verdict: Equatable {
        case passed
        /// The verifier (or libbpf before it) refused it: the reason, from the end of the verifier's log.
        case rejected(String)
        /// Not attempted: this kernel cannot have it (a tracepoint it lacks, netfilter links before 6.4).
        case notForThisKernel(String)
    }

    /// Loads every program of the object, both tracepoint flavours and the netfilter programs, through
    /// the verifier without attaching anything, except those this kernel cannot have (said why).
    /// Returns each program and its verdict.
    static func verifyAll(config: st_config) throws -> [(program: String, verdict: Verdict)] {
        guard let bytes = Data(base64Encoded: EmbeddedBPF.base64) else {
            throw RecorderError("the embedded BPF object is damaged; rebuild skbtrail-record")
        }
        skbtrail_capture_libbpf_log()
        guard let vmlinux = btf__load_vmlinux_btf() else {
            throw RecorderError("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): skbtrail-record needs a kernel built with CONFIG_DEBUG_INFO_BTF")
        }
        let nf = netfilterTypes(vmlinux)
        // Per program: why this kernel cannot have it
        var unavailable: [String: String] = [:]
        for tp in tracepointProbes {
            if skbtrail_btf_has_type(vmlinux, "btf_trace_\(tp.name)") != 0 { continue }
            if tracepointMayExist(tp.name) {
                unavailable["btf_\(tp.name)"] = "the kernel's BTF has no btf_trace_\(tp.name): raw_\(tp.name) is used instead"
            } else {
                unavailable["btf_\(tp.name)"] = missingTracepoint(tp.name)
                unavailable["raw_\(tp.name)"] = missingTracepoint(tp.name)
            }
        }
        let plans = FunctionPlan.all(vmlinux: vmlinux)
        if let why = FunctionPlan.kprobesMissing()
            ?? (plans.contains { $0.probe.role == .nfVerdict && $0.absent == nil } ? nil : "no netfilter function is in this kernel: nothing needs it") {
            unavailable["kprobe_\(FunctionPlan.hookHelper)"] = why
        }
        for f in plans {
            let instead = f.kprobePrograms.count == 1 ? "the kprobe is used instead" : "the kprobe pair is used instead"
            let fexit = f.absent ?? f.noFexit.map { "\($0): " + (f.noKprobe == nil ? instead : "and kprobes neither") }
            let kprobe = f.absent ?? f.noKprobe
            if let fexit { for p in f.fexitPrograms { unavailable[p] = fexit } }
            if let kprobe { for p in f.kprobePrograms { unavailable[p] = kprobe } }
        }
        btf__free(vmlinux)
        var rejected: [String: String] = [:]
        while true {
            let object = try openObject([UInt8](bytes), config: config, ringBytes: 1 << 20)
            defer { bpf_object__close(object) }
            var names: [String] = []
            var program: OpaquePointer? = nil
            while let prog = bpf_object__next_program(object, program) {
                program = prog
                let name = String(cString: bpf_program__name(prog))
                names.append(name)
                if String(cString: bpf_program__section_name(prog)) == "netfilter" {
                    if let nf {
                        bpf_program__set_type(prog, bpf_prog_type(rawValue: nf.prog))
                        bpf_program__set_expected_attach_type(prog, bpf_attach_type(rawValue: nf.attach))
                    } else {
                        unavailable[name] = noNetfilterLinks
                    }
                }
                bpf_program__set_autoload(prog, rejected[name] == nil && unavailable[name] == nil)
            }
            libbpfLog.removeAll()
            if bpf_object__load(object) == 0 {
                return names.map { name in
                    if let why = unavailable[name] { return (name, .notForThisKernel(why)) }
                    if let why = rejected[name], isTracing(name), refusesTracing(why) {
                        return (name, .notForThisKernel(fexitRefused))
                    }
                    if let why = rejected[name] { return (name, .rejected(why)) }
                    return (name, .passed)
                }
            }
            guard let bad = failedProgram(libbpfLog), rejected[bad] == nil else {
                throw RecorderError("the kernel refused the BPF object: \(libbpfLog.suffix(4).joined(separator: " | "))")
            }
            rejected = rejecting(bad, verifierReason(libbpfLog), in: rejected)
        }
    }

    /// A tracing program (fexit) refused with EPERM and no verifier log: the kernel does not permit BPF
    /// trampolines here (a lockdown or a sandbox), whatever the program does.
    static func refusesTracing(_ reason: String) -> Bool {
        // libbpf's "prog 'x': failed to load: -1" (1.1; "-EPERM" in newer ones), with no verifier log:
        // exactly -1, not -13 (EACCES, the verifier's refusal) or -14
        guard !reason.contains("BEGIN PROG LOAD LOG"), let range = reason.range(of: "failed to load: ") else { return false }
        let code = reason[range.upperBound...].prefix { $0 == "-" || $0.isNumber || $0.isLetter }
        return code == "-1" || code == "-EPERM"
    }

    /// The rejections after `program` was refused for `reason`: when the kernel refuses tracing programs,
    /// every fexit program at once, rather than one load attempt each.
    static func rejecting(_ program: String, _ reason: String, in rejected: [String: String]) -> [String: String] {
        var more = rejected
        more[program] = reason
        if isTracing(program) && refusesTracing(reason) {
            for f in functionProbes {
                for p in ["fentry_\(f.name)", "fexit_\(f.name)"] where more[p] == nil { more[p] = reason }
            }
        }
        return more
    }

    /// A tracing program of a kernel function: fentry or fexit (BPF trampolines).
    static func isTracing(_ program: String) -> Bool { program.hasPrefix("fentry_") || program.hasPrefix("fexit_") }

    static let fexitRefused = "this kernel refuses fentry and fexit programs (EPERM at load, no verifier log: BPF trampolines are not permitted here)"

    /// Why the netfilter brackets are not attempted on a kernel without BPF_PROG_TYPE_NETFILTER.
    static let noNetfilterLinks = "needs BPF netfilter links, kernel 6.4+"

    static func missingTracepoint(_ name: String) -> String { "tracepoint \(name) is not in this kernel" }

    /// Whether tracefs lists the tracepoint `name` under some group (a module's tracepoints have no
    /// vmlinux BTF). True when tracefs cannot be read: then the attach says.
    static func tracepointMayExist(_ name: String) -> Bool {
        for root in ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"] {
            guard let groups = try? FileManager.default.contentsOfDirectory(atPath: root), !groups.isEmpty else { continue }
            return groups.contains { FileManager.default.fileExists(atPath: "\(root)/\($0)/\(name)") }
        }
        return true
    }

    /// The verifier's reason for a refused program, from libbpf's messages of the failed load: the last
    /// lines of the verifier's log (its verdict; the first lines are the program's instructions) and
    /// libbpf's error number; libbpf's last messages when there is no log (a BTF or relocation failure).
    static func verifierReason(_ log: [String]) -> String {
        let messages = log.filter { !$0.isEmpty }
        guard let logEntry = messages.last(where: { $0.contains("-- BEGIN PROG LOAD LOG --") }) else {
            return messages.suffix(2).joined(separator: " | ")
        }
        let lines = logEntry.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let body = lines.drop { !$0.contains("-- BEGIN PROG LOAD LOG --") }.dropFirst()
            .prefix { !$0.hasPrefix("-- END PROG LOAD LOG --") }
            .filter { !$0.isEmpty && !$0.hasPrefix("processed ") && !$0.hasPrefix("verification time") && !$0.hasPrefix("stack depth") }
        var reason = body.suffix(2).joined(separator: " | ")
        if let failed = messages.last(where: { $0.contains("failed to load: ") }),
           let range = failed.range(of: "failed to load: ") {
            reason += " (\(failed[range.upperBound...]))"
        }
        return reason
    }

    static func failedProgram(_ log: [String]) -> String? {
        for line in log.reversed() {
            guard let start = line.range(of: "prog '") else { continue }
            let rest = line[start.upperBound...]
            if let end = rest.firstIndex(of: "'") { return String(rest[..<end]) }
        }
        return nil
    }

    static func netfilterTypes(_ btf: OpaquePointer) -> (prog: UInt32, attach: UInt32)? {
        func value(_ enumName: String, _ valueName: String) -> UInt32? {
            let n = skbtrail_btf_enum_count(btf, enumName)
            guard n > 0 else { return nil }
            for i in 0..<n {
                var name: UnsafePointer<CChar>?
                var v: Int64 = 0
                if skbtrail_btf_enum_at(btf, enumName, i, &name, &v) == 0, let name, String(cString: name) == valueName {
                    return UInt32(v)
                }
            }
            return nil
        }
        guard let prog = value("bpf_prog_type", "BPF_PROG_TYPE_NETFILTER"),
              let attach = value("bpf_attach_type", "BPF_NETFILTER") else { return nil }
        return (prog, attach)
    }

    /// Attaches the netfilter brackets inside `netns` (hooks are per namespace): every hook of IPv4
    /// and IPv6 at every bracket priority. Safe to call again for the same namespace.
    func attachNetfilter(in netns: Netns) {
        guard netfilterWanted, let types = nfTypes, !nfAttachedNetns.contains(netns.inode) else { return }
        nfAttachedNetns.insert(netns.inode)
        let own = open("/proc/self/ns/net", O_RDONLY)
        let target = open(netns.path, O_RDONLY)
        defer {
            if own >= 0 { skbtrail_enter_netns(own); close(own) }
            if target >= 0 { close(target) }
        }
        var enterError: String? = nil
        if target < 0 || skbtrail_enter_netns(target) != 0 {
            enterError = "cannot enter network namespace \(netns.name ?? String(netns.inode)): \(String(cString: strerror(errno)))"
        }
        for (index, priority) in NetfilterBrackets.priorities.enumerated() {
            let prog = bpf_object__find_program_by_name(object, "nf_bracket_\(index)")
            let fd = prog.map { bpf_program__fd($0) } ?? -1
            for family in nfFamilies {
                for (hook, hookName) in nfHookNames.enumerated() {
                    var row = ProbeRow(probe: NetfilterBrackets.probeID(index),
                                       name: "nf:\(family.name):\(hookName):\(priority)", tier: 2, kind: "netfilter",
                                       target: "\(family.name) \(hookName)", family: Int(family.pf), hook: hook,
                                       priority: Int(priority), netns: Int64(netns.inode), attached: false)
                    if let enterError {
                        row.error = enterError
                    } else if fd < 0 {
                        row.error = "the verifier rejected nf_bracket_\(index): \(rejected["nf_bracket_\(index)"] ?? "unknown reason")"
                    } else {
                        let link = skbtrail_nf_link_create(fd, types.attach, family.pf, UInt32(hook), priority)
                        if link >= 0 {
                            nfLinkFDs.append(link)
                            row.attached = true
                        } else {
                            row.error = "BPF_LINK_CREATE failed: \(String(cString: strerror(-link)))"
                        }
                    }
                    probes.append(row)
                }
            }
        }
    }

    func mapFD(_ name: String) -> Int32 {
        bpf_object__find_map_by_name(object, name).map { bpf_map__fd($0) } ?? -1
    }

    /// Drops whose stack the stack map did not take (--drop-stack), summed over CPUs.
    func dropStackMisses() -> UInt64 {
        let fd = mapFD("stack_misses")
        var values = [UInt64](repeating: 0, count: Kernel.possibleCPUs)
        var key: UInt32 = 0
        guard fd >= 0, bpf_map_lookup_elem(fd, &key, &values) == 0 else { return 0 }
        return values.reduce(0, &+)
    }

    /// Notes on kfree_skb's probe rows that `misses` drops have no stack.
    func noteDropStackMisses(_ misses: UInt64) {
        guard misses > 0 else { return }
        for i in probes.indices where probes[i].probe == Int(ST_P_KFREE_SKB.rawValue) && probes[i].attached {
            probes[i].error = "attached; \(misses) drops have no stack: the stack map (\(Self.dropStackEntries) entries) had another stack in their hash bucket, or was full"
        }
    }

    /// The kernel stacks of drops (--drop-stack), by the id kfree_skb's records carry (the map's id + 1):
    /// their frames, innermost first, up to the first zero.
    func dropStacks() -> [UInt32: [UInt64]] {
        let fd = mapFD("stacks")
        guard fd >= 0 else { return [:] }
        var result: [UInt32: [UInt64]] = [:]
        var frames = [UInt64](repeating: 0, count: Int(ST_STACK_DEPTH))
        var key: UInt32 = 0, next: UInt32 = 0
        var first = true
        while result.count < 1 << 20 {
            let rc = first ? bpf_map_get_next_key(fd, nil, &next) : bpf_map_get_next_key(fd, &key, &next)
            guard rc == 0 else { break }
            first = false
            key = next
            for i in frames.indices { frames[i] = 0 }
            if bpf_map_lookup_elem(fd, &key, &frames) == 0 {
                result[key + 1] = Array(frames.prefix { $0 != 0 })
            }
        }
        return result
    }

    /// Events the kernel side dropped because the ring buffer was full, per CPU.
    func lostPerCPU() -> [Int: UInt64] {
        let fd = mapFD("lost")
        let cpus = Kernel.possibleCPUs
        var values = [UInt64](repeating: 0, count: cpus)
        var key: UInt32 = 0
        guard fd >= 0, bpf_map_lookup_elem(fd, &key, &values) == 0 else { return [:] }
        var result: [Int: UInt64] = [:]
        for (cpu, n) in values.enumerated() where n > 0 { result[cpu] = n }
        return result
    }

    /// Stops every probe: tracepoint links and netfilter links.
    func detach() {
        for link in links { bpf_link__destroy(link) }
        links.removeAll()
        for fd in nfLinkFDs { close(fd) }
        nfLinkFDs.removeAll()
    }

    deinit {
        detach()
        bpf_object__close(object)
    }
}
#endif

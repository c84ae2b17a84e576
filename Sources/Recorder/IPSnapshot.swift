#if os(Linux)
import Foundation

/// The `ip` part of a namespace's snapshot in three `ip` processes: `ip -j -d addr show` (links and
/// addresses), `ip -d link show`, and one `ip -batch` for the other texts; before, each was an
/// `ip netns exec NS ip ...` pair of processes, eight pairs a namespace, and under an emulated CPU
/// (the kernel matrix's QEMU) each process costs about 0.1 s.
///
/// A batch prints its commands' outputs one after the other. Each command is followed by one that
/// fails on purpose, `nexthop get id 4294967295` (no such nexthop; a missing device would do too, but
/// the kernel then runs modprobe for "netdev-NAME", 0.3 s under QEMU): its complaint and "Command
/// failed -:LINE" on stderr, which goes into the same pipe as stdout (ip flushes stdout after each
/// command), end that command's output. When the output cannot be split so, the commands run one by
/// one as before.
enum IPSnapshot {
    /// The texts of the snapshot from `ip` without options: source, then command.
    static let batched: [(source: String, command: String)] = [
        ("ip-addr", "addr show"),
        ("ip-route", "route show table all"),
        ("ip6-route", "route show table all root ::/0"), // what `ip -6 route show table all` prints
        ("ip-rule", "rule show"),
        ("ip-neigh", "neigh show"),
    ]

    static let marker = "nexthop get id 4294967295"

    /// How the end mark's failure reads: the kernel's answer (with or without extended ack), or an ip
    /// that has no `nexthop` object.
    static func isMarkComplaint(_ line: Substring) -> Bool {
        line.hasPrefix("RTNETLINK answers: ") || line.hasPrefix("Error: ") || line.hasPrefix("Object \"nexthop\" is unknown")
    }

    /// `ip` in the namespace: `ip -n NAME` for a named one (ip enters it itself; no `ip netns exec`).
    static func ip(_ ns: Netns) -> [String] { ["ip"] + (ns.name.map { ["-n", $0] } ?? []) }

    /// The JSON of `ip -j -d addr show` (links with their details and addresses), and the texts by source.
    static func take(_ ns: Netns) -> (json: String?, texts: [String: String]) {
        let json = runTool(ip(ns) + ["-j", "-d", "addr", "show"])
        var texts: [String: String] = [:]
        texts["ip-link"] = runTool(ip(ns) + ["-d", "link", "show"])
        let script = batched.map { "\($0.command)\n\(marker)\n" }.joined()
        if let output = runBatch(ip(ns) + ["-force", "-batch", "-"], input: script),
           let outputs = split(output, commands: batched.count) {
            for (i, text) in outputs.enumerated() { texts[batched[i].source] = text }
        } else {
            for entry in batched {
                texts[entry.source] = runTool(ip(ns) + entry.command.split(separator: " ").map(String.init))
            }
        }
        return (json, texts)
    }

    /// The outputs of a batch's commands (nil: that command failed), or nil when the output does not
    /// have one end mark per command in order.
    static func split(_ output: String, commands: Int) -> [String?]? {
        var results: [String?] = []
        var current: [Substring] = []
        var failed = false
        for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Command failed -:"), let n = Int(line.dropFirst("Command failed -:".count)) {
                // line 2i+1 (1-based) is command i, line 2i+2 its end mark
                if n == 2 * results.count + 1 { failed = true; continue }
                guard n == 2 * results.count + 2 else { return nil }
                // the end mark's own complaint, one line or two, is the last of what came before it
                var complaints = 0
                while let last = current.last, isMarkComplaint(last), complaints < 2 {
                    current.removeLast()
                    complaints += 1
                }
                guard complaints > 0 else { return nil }
                results.append(failed ? nil : current.map { $0 + "\n" }.joined())
                current = []
                failed = false
            } else {
                current.append(line)
            }
        }
        guard results.count == commands, current.allSatisfy(\.isEmpty) else { return nil }
        return results
    }

    /// Runs `args` with `input` on its stdin; its stdout and stderr together, whatever its status.
    static func runBatch(_ args: [String], input: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        let out = Pipe(), stdin = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = stdin
        do { try process.run() } catch { return nil }
        // a few hundred bytes: the pipe takes them before ip reads
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
#endif

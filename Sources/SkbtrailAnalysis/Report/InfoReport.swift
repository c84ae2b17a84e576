import Foundation
import GRDB
import SkbtrailBundle

extension AnalysisDatabase {
    /// `skbtrail info`: what was recorded, how, and how completely.
    public func infoReport(json: Bool, filter: PacketFilter = PacketFilter()) throws -> String {
        let r = bundle.recording
        let chunks = try bundle.chunks()
        let raw = chunks.reduce(Int64(0)) { $0 &+ Int64($1.rawSize) }
        let stored = chunks.reduce(Int64(0)) { $0 &+ Int64($1.storedSize) }
        let fileSize = bundle.fileSize()
        let lost = try bundle.lost().sorted { $0.key < $1.key }
        let lostTotal = lost.reduce(Int64(0)) { $0.addingReportingOverflow($1.value).overflow ? .max : $0 + $1.value }
        let probes = try reader.read { db in
            try Row.fetchAll(db, sql: "SELECT probe, name, tier, kind, target, family, hook, priority, attached, error, events FROM probe ORDER BY probe, family, hook")
        }
        let counts = try reader.read { db in
            try Row.fetchAll(db, sql: "SELECT probe, family, hook, name, events FROM probe_events ORDER BY probe, family, hook")
        }
        let events: Int64 = counts.reduce(0) { $0 &+ $1.int("events") }
        let provenance = try reader.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, created_unix_ns, tool_version, source_uuid, source_records, records, detail FROM provenance ORDER BY id")
        }
        let unknown = try reader.read { try Int64.fetchOne($0, sql: "SELECT unknown_records FROM recording") } ?? 0
        let packets = try reader.read { try Int64.fetchOne($0, sql: "SELECT packets FROM recording") } ?? 0
        let namespaces = try reader.read { db in
            try Row.fetchAll(db, sql: "SELECT inode, coalesce(name, CASE WHEN is_root THEN 'root' END) AS name FROM bundle_netns ORDER BY name IS NULL, name, inode")
        }
        // with a filter: what it selects (the packets, those dropped, their events)
        let selected: (packets: Int64, dropped: Int64, events: Int64)? = filter.isEmpty ? nil : try reader.read { db in
            let (cond, args) = try filter.sql(db)
            let row = try Row.fetchOne(db, sql: "SELECT count(*) AS n, total(p.fate = 'dropped') AS d, total(p.events) AS e FROM pkt p WHERE \(cond)",
                                       arguments: StatementArguments(args))
            return (row?["n"] ?? 0, Int64(row?["d"] as Double? ?? 0), Int64(row?["e"] as Double? ?? 0))
        }
        let startUnix = r.startedNs &+ r.bootToUnixNs
        let endNs = r.endedNs ?? chunks.map(\.lastTs).max()
        let duration = endNs.map { $0 &- r.startedNs }
        let commandLine: String = {
            guard let data = r.commandLine.data(using: .utf8),
                  let argv = try? JSONSerialization.jsonObject(with: data) as? [String] else { return r.commandLine }
            return argv.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " ")
        }()

        if json {
            let obj: JSON = .object([
                ("bundle", .string(bundle.path)),
                ("uuid", .string(r.uuid)),
                ("format_version", .int(Int64(r.formatVersion))),
                ("recorder_version", .string(r.recorderVersion)),
                ("host", .string(r.host)),
                ("kernel_release", .string(r.kernelRelease)),
                ("kernel_version", .string(r.kernelVersion)),
                ("machine", .string(r.machine)),
                ("command_line", .string(commandLine)),
                ("filters", .string(r.filters)),
                ("started_unix_ns", .int(startUnix)),
                ("ended_unix_ns", .opt(r.endedNs.map { $0 &+ r.bootToUnixNs })),
                ("duration_ns", .opt(duration)),
                ("ended_cleanly", .bool(r.endedNs != nil)),
                ("stop_reason", .opt(r.stopReason)),
                ("events", .int(events)),
                ("packets", .int(packets)),
                ("unknown_records", .int(unknown)),
                ("lost_events", .int(lostTotal)),
                ("selected", selected.map { .object([("packets", .int($0.packets)), ("dropped", .int($0.dropped)), ("events", .int($0.events))]) } ?? .null),
                ("namespaces", .array(namespaces.map { .object([("inode", .int($0.int("inode"))), ("name", .opt($0.optText("name")))]) })),
                ("damage", .array(damage.map { .string($0) })),
                ("provenance", .array(provenance.map { p in
                    .object([("kind", .string(p.text("kind"))), ("created_unix_ns", .opt(p.optInt("created_unix_ns"))),
                             ("tool_version", .string(p.text("tool_version"))), ("source_uuid", .string(p.text("source_uuid"))),
                             ("source_records", .opt(p.optInt("source_records"))), ("records", .opt(p.optInt("records"))),
                             ("detail", .string(p.text("detail")))])
                })),
                ("lost_per_cpu", .object(lost.map { ("\($0.key)", .int($0.value)) })),
                ("chunks", .int(Int64(chunks.count))),
                ("raw_bytes", .int(raw)),
                ("stored_bytes", .int(stored)),
                ("file_bytes", .int(fileSize)),
                ("compression_ratio", .double(stored > 0 ? (Double(raw) / Double(stored) * 100).rounded() / 100 : 0)),
                ("stored_bytes_per_event", .double(events > 0 ? (Double(stored) / Double(events) * 10).rounded() / 10 : 0)),
                ("probes", .array(probes.map { p in
                    .object([
                        ("probe", .int(p.int("probe"))), ("name", .string(p.text("name"))), ("tier", .int(p.int("tier"))),
                        ("kind", .string(p.text("kind"))), ("target", .string(p.text("target"))),
                        ("family", .opt(p.optInt("family"))), ("hook", .opt(p.optInt("hook"))),
                        ("priority", .opt(p.optInt("priority"))), ("attached", .bool(p.flag("attached"))),
                        ("error", .opt(p.optText("error"))), ("events", .int(p.int("events"))),
                    ])
                })),
                ("events_per_probe", .array(counts.map { c in
                    .object([("probe", .int(c.int("probe"))), ("name", .string(c.text("name"))), ("events", .int(c.int("events")))])
                })),
            ])
            return obj.text + "\n"
        }

        var out = ""
        func line(_ k: String, _ v: String) { out += k.padding(toLength: 12, withPad: " ", startingAt: 0) + v + "\n" }
        line("bundle", "\(bundle.path) (\(TextLayout.bytes(fileSize)))")
        line("recording", "\(r.uuid), format \(r.formatVersion), recorder \(r.recorderVersion)")
        line("host", "\(r.host), Linux \(r.kernelRelease) \(r.machine)")
        line("command", commandLine)
        if r.filters != "{}" && !r.filters.isEmpty { line("filters", r.filters) }
        line("started", TextLayout.wallClock(unixNs: startUnix))
        if let ended = r.endedNs {
            line("ended", "\(TextLayout.wallClock(unixNs: ended &+ r.bootToUnixNs)) (\(r.stopReason ?? "no reason given"))")
        } else {
            line("ended", "did not end cleanly (no stop recorded; the last chunk is the end of the data)")
        }
        if let duration { line("duration", TextLayout.seconds(duration) + "s") }
        line("events", "\(events) in \(chunks.count) chunks, \(packets) packets"
             + (unknown > 0 ? ", \(unknown) records of unknown type skipped" : ""))
        if let selected {
            line("selected", "\(selected.packets) packets (\(selected.dropped) dropped) with \(selected.events) events match the filters")
        }
        if !namespaces.isEmpty {
            line("namespaces", PacketFilter.listing(namespaces.map { n in n.optText("name").map { "\($0) (\(n.int("inode")))" } ?? String(n.int("inode")) }))
        }
        if lostTotal > 0 {
            line("lost", "\(lostTotal) events (" + lost.filter { $0.value > 0 }.map { "cpu \($0.key): \($0.value)" }.joined(separator: ", ")
                 + "): packets may miss steps")
        } else {
            line("lost", "none")
        }
        for d in damage { line("damaged", d) }
        for p in provenance {
            line(p.text("kind") == "redact" ? "redacted" : "sliced",
                 "from recording \(p.text("source_uuid")) by skbtrail \(p.text("tool_version")) at "
                 + TextLayout.wallClock(unixNs: p.optInt("created_unix_ns") ?? 0)
                 + ": \(p.optInt("records") ?? 0) of \(p.optInt("source_records") ?? 0) records; \(p.text("detail"))")
        }
        let ratio = stored > 0 ? String(format: "%.1fx", Double(raw) / Double(stored)) : "-"
        let perEvent = events > 0 ? String(format: "%.1f", Double(stored) / Double(events)) : "-"
        line("size", "raw \(TextLayout.bytes(raw)), stored \(TextLayout.bytes(stored)) (\(ratio)), \(perEvent) bytes/event")

        // events per probe: tracepoints one by one, netfilter per family and hook
        out += "\nevents per probe:\n"
        var rows: [[String]] = []
        var nfRows: [String: Int64] = [:]
        for c in counts {
            let probe = Int(c.int("probe"))
            if ProbeTable.isNetfilterBracket(probe) {
                let key = "nf:\(KernelNames.family(Int(c.int("family")))):\(KernelNames.hook(Int(c.int("hook"))).lowercased())"
                nfRows[key, default: 0] &+= c.int("events")
            } else {
                rows.append([c.text("name"), String(c.int("events"))])
            }
        }
        rows.sort { (Int64($0[1]) ?? 0, $1[0]) > (Int64($1[1]) ?? 0, $0[0]) }
        rows += nfRows.sorted { $0.key < $1.key }.map { [$0.key, String($0.value)] }
        if rows.isEmpty {
            out += "  (no events)\n"
        } else {
            out += TextLayout.table(["  PROBE", "EVENTS"], rows.map { ["  " + $0[0], $0[1]] }, right: [1])
        }

        let attached = probes.filter { $0.flag("attached") }
        let failed = probes.filter { !$0.flag("attached") }
        let nfAttached = attached.filter { $0.text("kind") == "netfilter" }.count
        let functionKinds = ["fexit", "kretprobe", "fentry", "kprobe"]
        let functions = attached.filter { functionKinds.contains($0.text("kind")) }
        var kinds = "\(attached.count - nfAttached - functions.count) tracepoints, \(nfAttached) netfilter brackets"
        if !functions.isEmpty {
            // by how they attached: "by fexit: nft_do_chain, ip_route_input_noref; by fentry: ip_rcv, ..."
            let byKind = functionKinds.compactMap { kind -> String? in
                let names = functions.filter { $0.text("kind") == kind }.map { $0.optText("name") ?? "?" }
                guard !names.isEmpty else { return nil }
                // many (the path's functions): how many, of which groups
                if names.count > 6 {
                    var groups: [String] = []
                    for n in names {
                        let g = ProbeTable.all.first { $0.name == n }?.group ?? "other"
                        if !groups.contains(g) { groups.append(g) }
                    }
                    return "by \(kind): \(names.count) of \(groups.joined(separator: ", "))"
                }
                return "by \(kind): " + names.joined(separator: ", ")
            }
            kinds += ", \(functions.count) kernel functions (" + byKind.joined(separator: "; ") + ")"
        }
        out += "\nprobes: \(attached.count) attached (\(kinds)), \(failed.count) not attached\n"
        if !failed.isEmpty {
            // the same error for many attach points is said once
            var byError: [(String, [String])] = []
            for f in failed {
                let why = f.optText("error") ?? "no reason recorded"
                if let i = byError.firstIndex(where: { $0.0 == why }) { byError[i].1.append((f.optText("name") ?? "?")) } else { byError.append((why, [(f.optText("name") ?? "?")])) }
            }
            for (why, names) in byError {
                let shown = names.count > 4 ? names.prefix(4).joined(separator: ", ") + " and \(names.count - 4) more" : names.joined(separator: ", ")
                out += "  not attached: \(shown): \(why)\n"
            }
        }
        return out
    }
}


import Foundation
import Testing

/// The command line as one tool: every analysis command with the same JSON forms, the same filter
/// flags and the same refusals, labelled times, and the conveniences (`-- comment` queries, rule
/// files, colour, versions). Runs the built `skbtrail` as a user does.
@Suite(.serialized, .enabled(if: StreamingCommandTests.binary != nil, "needs .build/debug/skbtrail: run swift build first"))
struct CommandLineTests {
    static var binary: String? { StreamingCommandTests.binary }
    static let drop = Fixture(name: "netfilter-drop").path
    static let noisy = Fixture(name: "faults/noisy-host").path
    /// One cache for the suite: each fixture is decoded once.
    static let cache = FileManager.default.temporaryDirectory.appendingPathComponent("skbtrail-cli-\(getpid())").path

    struct Result {
        var status: Int32
        var out: String
        var err: String
    }

    /// Runs skbtrail (or `tool`) with `args`; output through files, so a large one never blocks.
    static func run(_ args: [String], tool: String? = nil, env: [String: String] = [:]) throws -> Result {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try tool ?? #require(binary))
        p.arguments = args
        p.environment = ["SKBTRAIL_CACHE_DIR": cache, "PATH": "/usr/bin:/bin"].merging(env) { $1 }
        FileManager.default.createFile(atPath: dir + "/out", contents: nil)
        FileManager.default.createFile(atPath: dir + "/err", contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/out"))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/err"))
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, out: try String(contentsOfFile: dir + "/out", encoding: .utf8),
                      err: try String(contentsOfFile: dir + "/err", encoding: .utf8))
    }

    static func document(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) }

    /// The commands that read a bundle, each with what it takes besides the bundle.
    static func commands(_ bundle: String) -> [(name: String, args: [String])] {
        [("info", ["info", bundle]), ("paths", ["paths", bundle]), ("diag", ["diag", bundle]), ("drops", ["drops", bundle]),
         ("latency", ["latency", bundle]), ("tcp", ["tcp", bundle, "--listeners"]), ("rules", ["rules", bundle]),
         ("verify", ["verify", bundle]), ("sql", ["sql", bundle, "SELECT id, fate, saddr FROM packet ORDER BY id"])]
    }

    @Test(arguments: [drop, noisy])
    func everyCommandPrintsOneJSONDocumentAndJSONLines(bundle: String) throws {
        for (name, args) in CommandLineTests.commands(bundle) {
            let json = try CommandLineTests.run(args + ["--format", "json"])
            #expect(json.status == 0, "\(name) --format json: \(json.err)")
            let doc = CommandLineTests.document(json.out)
            #expect(doc != nil, "\(name) --format json is not one JSON document: \(json.out.prefix(300))")
            let lines = try CommandLineTests.run(args + ["--format", "jsonl"])
            #expect(lines.status == 0, "\(name) --format jsonl: \(lines.err)")
            let objects = lines.out.split(separator: "\n").map { CommandLineTests.document(String($0)) }
            #expect(objects.allSatisfy { $0 is [String: Any] || $0 is [Any] }, "\(name) --format jsonl: a line is not JSON")
            // a list is the same items either way
            switch name {
            case "paths", "drops", "tcp", "sql", "rules":
                let array = try #require(doc as? [Any], "\(name) --format json is not an array")
                #expect(array.count == objects.count, "\(name): \(array.count) items in json, \(objects.count) lines in jsonl")
                #expect(objects.allSatisfy { $0 is [String: Any] })
            case "diag":
                let d = try #require(doc as? [String: Any])
                let packets = try #require(d["packets"] as? [Any])
                #expect(objects.count == packets.count + 1, "diag jsonl: a line per packet, then the summary")
                #expect((objects.last as? [String: Any])?["summary"] != nil)
            default:
                #expect(objects.count == 1, "\(name) --format jsonl: one object on one line")
            }
        }
        // paths lists the root packets the packet view has, in order
        let paths = try #require(CommandLineTests.document(try CommandLineTests.run(["paths", bundle, "--format", "json"]).out) as? [[String: Any]])
        let roots = try #require(CommandLineTests.document(try CommandLineTests.run(["sql", bundle, "--format", "json",
            "SELECT id FROM packet p WHERE parent_id IS NULL AND id NOT IN (SELECT child_id FROM clone_edge) ORDER BY id"]).out) as? [[String: Any]])
        #expect(paths.map { $0["id"] as? Int } == roots.map { $0["id"] as? Int })
    }

    /// The same filter flags for every command that selects packets.
    static let filtering = ["info", "paths", "diag", "drops", "latency", "tcp", "pcap", "slice", "redact"]

    static func filtered(_ command: String, _ bundle: String, _ flags: [String], dir: String) -> [String] {
        switch command {
        case "pcap": return ["pcap", bundle, "-o", dir + "/out.pcapng", "--force"] + flags
        case "slice": return ["slice", bundle, "-o", dir + "/slice.skbt", "--force"] + flags
        case "redact": return ["redact", bundle, "-o", dir + "/redact.skbt", "--force", "--key", String(repeating: "5a", count: 32)] + flags
        default: return [command, bundle] + flags
        }
    }

    @Test(arguments: [
        ["--addr", "10.199.1.2"], ["--addr", "10.199.1.0/24"], ["-s", "10.199.1.1", "-d", "10.199.1.2"],
        ["--proto", "icmp"], ["-p", "icmp6"], ["-p", "ipv4"], ["--port", "80"], ["-S", "1", "-D", "2"],
        ["--netns", "st-b"], ["--netns", "/run/netns/st-b"], ["--ifname", "st-b0"], ["--pid", "1"],
        ["--packet", "1,2"], ["--packet", "1", "--packet", "3"], ["--dropped"], ["--since", "1s", "--until", "2.5s"],
        ["--since", "500ms"], ["--limit", "1"], ["--limit", "0"],
    ])
    func everyCommandTakesTheSameFilters(flags: [String]) throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for command in CommandLineTests.filtering {
            let r = try CommandLineTests.run(CommandLineTests.filtered(command, CommandLineTests.drop, flags, dir: dir))
            #expect(r.status == 0, "\(command) \(flags.joined(separator: " ")): exit \(r.status): \(r.err)")
        }
    }

    @Test(arguments: [
        (["--addr", "999.1.1.1"], "--addr 999.1.1.1"), (["--saddr", "10.199.1.2/33"], "--saddr 10.199.1.2/33"),
        (["--proto", "bogus"], "--proto bogus"), (["--netns", "nope"], "--netns nope"),
        (["--netns", "/run/netns/st-nope"], "--netns /run/netns/st-nope"), (["--ifname", "nope0"], "--ifname nope0"),
        (["--since", "5x"], "--since 5x"), (["--until", "soon"], "--until soon"), (["--port", "70000"], "--port 70000"),
        (["--packet", "x"], "--packet x"), (["--packet", "0"], "--packet 0"), (["--limit=-1"], "--limit -1"),
        (["--since", "3s", "--until", "1s"], "--since 3"),
    ])
    func everyCommandRefusesAnInvalidFilterInASentence(flags: [String], named: String) throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for command in CommandLineTests.filtering {
            let r = try CommandLineTests.run(CommandLineTests.filtered(command, CommandLineTests.drop, flags, dir: dir))
            #expect(r.status != 0, "\(command) \(flags.joined(separator: " ")) was taken")
            let first = r.err.split(separator: "\n").first.map(String.init) ?? ""
            #expect(first.contains(named) && (first.hasPrefix("error: ") || first.hasPrefix("Error: ")),
                    "\(command) \(flags.joined(separator: " ")): \(r.err)")
            #expect(!r.out.contains("no packets match"))
        }
    }

    @Test func filtersSelectWhatTheySay() throws {
        let b = CommandLineTests.drop
        func json(_ args: [String]) throws -> Any? {
            let r = try CommandLineTests.run(args + ["--format", "json"])
            #expect(r.status == 0, "\(args): \(r.err)")
            return CommandLineTests.document(r.out)
        }
        func ids(_ args: [String]) throws -> [Int] { (try json(["paths", b] + args) as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int } }
        // a network is its addresses; a host bit past the prefix names the same network
        let net = try ids(["--addr", "10.199.1.0/24"])
        #expect(!net.isEmpty)
        #expect(try ids(["--addr", "10.199.1.77/24"]) == net)
        let host = try ids(["--addr", "10.199.1.1"])
        #expect(net == host)
        #expect(try ids(["--addr", "192.0.2.0/24"]).isEmpty)
        // a namespace by name, by /run/netns path and by inode
        let inode = try #require((try json(["sql", b, "SELECT inode FROM bundle_netns WHERE name = 'st-b'"]) as? [[String: Any]])?.first?["inode"] as? Int)
        let byName = try ids(["--netns", "st-b"])
        #expect(!byName.isEmpty)
        #expect(try ids(["--netns", "/run/netns/st-b"]) == byName)
        #expect(try ids(["--netns", String(inode)]) == byName)
        // drops of a filter count what SQL counts
        let dropped = try #require((try json(["sql", b, "SELECT count(*) AS n FROM packet WHERE fate = 'dropped' AND id IN (SELECT packet_id FROM ev WHERE in_net(daddr, '10.199.1.0/24'))"]) as? [[String: Any]])?.first?["n"] as? Int)
        #expect(dropped > 0)
        let groups = try #require(try json(["drops", b, "--daddr", "10.199.1.0/24"]) as? [[String: Any]])
        #expect(groups.compactMap { $0["count"] as? Int }.reduce(0, +) == dropped)
        #expect((try json(["drops", b, "--addr", "192.0.2.1"]) as? [Any])?.isEmpty == true)
        // --limit: packets, with their clones; diag's jsonl then its summary line
        let all = try ids([])
        #expect(try ids(["--limit", "2"]) == Array(all.prefix(2)))
        let diag = try CommandLineTests.run(["diag", b, "--limit", "1", "--format", "jsonl"])
        #expect(diag.out.split(separator: "\n").count == 2)
        // with --quiet, the limit counts the packets shown: each with a WARN or ERROR
        let quiet = try CommandLineTests.run(["diag", b, "--quiet", "--limit", "2", "--format", "jsonl"]).out.split(separator: "\n")
        #expect(quiet.count == 3)
        #expect(quiet.dropLast().allSatisfy { ["WARN", "ERROR"].contains((CommandLineTests.document(String($0)) as? [String: Any])?["level"] as? String ?? "") })
        // info counts what a filter selects
        let info = try #require(try json(["info", b, "--dropped"]) as? [String: Any])
        let droppedIDs = try ids(["--dropped"])
        #expect((info["selected"] as? [String: Any])?["packets"] as? Int == droppedIDs.count)
        // icmp6 is the recorder's name too, and selects ICMPv6 only
        let v6 = try #require(try json(["paths", CommandLineTests.noisy, "-p", "icmp6"]) as? [[String: Any]])
        #expect(!v6.isEmpty && v6.allSatisfy { $0["proto"] as? String == "ICMPv6" })
    }

    @Test func timesCarryTheirUnits() throws {
        let b = CommandLineTests.drop
        let paths = try CommandLineTests.run(["paths", b, "--limit", "1"]).out
        let steps = paths.split(separator: "\n").filter { $0.hasPrefix("  +") }
        #expect(!steps.isEmpty)
        #expect(steps.allSatisfy { $0.range(of: #"^  \+\d+\.\d{6}s  "#, options: .regularExpression) != nil })
        #expect(paths.hasPrefix("# packet ID  TUPLE  FATE"), "paths names its columns")
        let dated = try CommandLineTests.run(["paths", b, "--limit", "1", "--date"]).out
        let stamps = dated.split(separator: "\n").filter { $0.hasPrefix("  2") }
        #expect(!stamps.isEmpty && stamps.allSatisfy { $0.range(of: #"^  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  "#, options: .regularExpression) != nil })
        let drops = try CommandLineTests.run(["drops", b]).out
        #expect(drops.range(of: #"\d+\.\d{6}s  \d+\.\d{6}s"#, options: .regularExpression) != nil)
        // the same time with and without its unit
        let bare = try CommandLineTests.run(["paths", b, "--since", "2", "--format", "json"]).out
        let unit = try CommandLineTests.run(["paths", b, "--since", "2000ms", "--format", "json"]).out
        #expect(bare == unit)
        let latency = try CommandLineTests.run(["latency", b, "--min", "0.00001"])
        let withUnit = try CommandLineTests.run(["latency", b, "--min", "10us"])
        #expect(latency.status == 0 && latency.out == withUnit.out)
    }

    @Test func conveniences() throws {
        let b = CommandLineTests.drop
        // a query that begins with a comment is a query
        let commented = try CommandLineTests.run(["sql", b, "-- the dropped ones\nSELECT count(*) AS n FROM packet WHERE fate = 'dropped'", "--format", "csv"])
        #expect(commented.status == 0, "\(commented.err)")
        #expect(commented.out.split(whereSeparator: \.isNewline).last.flatMap { Int($0) } ?? 0 > 0)
        // rules from one file, and a rule file that fails says why
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rule = dir + "/mine.sql"
        try """
            -- id: my-drops
            -- level: WARN
            -- title: every drop, again
            SELECT p.id AS packet_id, NULL AS event_id, 'my-drops' AS code, 'a drop' AS message, NULL AS advice FROM packet p WHERE p.fate = 'dropped'
            """.write(toFile: rule, atomically: true, encoding: .utf8)
        let listed = try CommandLineTests.run(["rules", "--rules", rule])
        #expect(listed.status == 0 && listed.out.contains("my-drops *"), "\(listed.out)\(listed.err)")
        let missing = try CommandLineTests.run(["rules", "--rules", dir + "/none"])
        #expect(missing.status != 0 && missing.err.contains("no such file or directory"))
        // colour: only when asked for or on a terminal; never in a pipe by default
        let plain = try CommandLineTests.run(["diag", b, "-q"])
        #expect(plain.out.contains("ERROR") && !plain.out.contains("\u{1B}["))
        let coloured = try CommandLineTests.run(["diag", b, "-q", "--color", "always"])
        #expect(coloured.out.contains("\u{1B}[1;31mERROR\u{1B}[0m"))
        #expect(try CommandLineTests.run(["diag", b, "-q", "--format", "json", "--color", "always"]).out.contains("\u{1B}") == false)
        // versions
        let recorder = URL(fileURLWithPath: try #require(CommandLineTests.binary)).deletingLastPathComponent().appendingPathComponent("skbtrail-record").path
        if FileManager.default.isExecutableFile(atPath: recorder) {
            let v = try CommandLineTests.run(["--version"], tool: recorder)
            #expect(v.status == 0 && v.out.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(v.out)\(v.err)")
        }
        let v = try CommandLineTests.run(["--version"])
        #expect(v.status == 0 && !v.out.isEmpty)
        // latency names what it can measure, even when it is nothing
        let none = try CommandLineTests.run(["latency", b, "--from", "nope", "--to", "kfree_skb"])
        #expect(none.status != 0 && none.err.contains("Probes with events: consume_skb"))
    }

    /// What an independent review of the command line found, each kept fixed.
    @Test func edgesOfTheCommandLine() throws {
        let b = CommandLineTests.noisy
        func count(_ args: [String]) throws -> Int {
            let r = try CommandLineTests.run(args + ["--format", "jsonl"])
            #expect(r.status == 0, "\(args): \(r.err)")
            return r.out.split(separator: "\n").count
        }
        // a namespace file is followed to its namespace (not the inode of the link itself); any other
        // file is refused in a sentence instead of selecting nothing
        var own = stat()
        if stat("/proc/self/ns/net", &own) == 0 {
            #expect(try count(["paths", b, "--netns", "/proc/self/ns/net"]) == count(["paths", b, "--netns", String(own.st_ino)]))
        }
        let notNamespace = try CommandLineTests.run(["paths", b, "--netns", "/etc/passwd"])
        #expect(notNamespace.status != 0 && notNamespace.err.contains("--netns /etc/passwd"))
        // an id past the last packet is no packet (it once counted up to Int64.max and trapped)
        let far = try CommandLineTests.run(["paths", b, "--packet", String(Int64.max)])
        #expect(far.status == 0 && far.out.contains("no packets match"), "\(far.out)\(far.err)")
        let farSQL = try CommandLineTests.run(["sql", b, "--format", "csv", "SELECT count(*) FROM pkt WHERE id = 9223372036854775807"])
        #expect(farSQL.status == 0 && farSQL.out.split(whereSeparator: \.isNewline).last == "0", "\(farSQL.out)\(farSQL.err)")
        // --limit as large as what --quiet shows is no cut
        let tcp = Fixture(name: "tcp/tcp-loss").path
        let severe = try count(["diag", tcp, "--quiet"]) - 1
        #expect(severe > 1)
        for (limit, cut) in [(severe, false), (severe - 1, true)] {
            let out = try CommandLineTests.run(["diag", tcp, "--quiet", "--limit", String(limit), "--format", "jsonl"]).out
            let summary = (CommandLineTests.document(String(out.split(separator: "\n").last ?? "")) as? [String: Any])?["summary"] as? [String: Any]
            #expect(summary?["limited"] as? Bool == cut, "--quiet --limit \(limit) of \(severe): \(summary ?? [:])")
        }
        // a pager that is not installed: the output goes to standard output, with a word why
        let script = "/usr/bin/script"
        if FileManager.default.isExecutableFile(atPath: script), let bin = CommandLineTests.binary {
            let r = try CommandLineTests.run(["-qec", "\(bin) paths \(b) --limit 1", "/dev/null"], tool: script,
                                             env: ["SKBTRAIL_PAGER": "no-such-pager-here"])
            #expect(r.out.contains("packet 1 ") && r.out.contains("no-such-pager-here"), "\(r.out)\(r.err)")
        }
    }
}

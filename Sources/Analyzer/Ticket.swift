import ArgumentParser
import Foundation
import SkbtrailAnalysis

/// Where a command that makes a file writes it: `-o FILE`, never over an existing file unless --force.
struct OutputFileOptions: ParsableArguments {
    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The file to write.", valueName: "FILE"))
    var output: String
    @Flag(help: "Replace the output file when it exists.") var force = false

    func check(input: String, allowStdout: Bool) throws {
        if output == "-" {
            guard allowStdout else { throw ValidationError("-o -: this command writes a bundle, which needs a file: give -o FILE.") }
            return
        }
        if URL(fileURLWithPath: output).standardizedFileURL.path == URL(fileURLWithPath: input).standardizedFileURL.path {
            throw ValidationError("-o \(output) is the bundle being read: write to another file.")
        }
        let parent = (output as NSString).deletingLastPathComponent.isEmpty ? "." : (output as NSString).deletingLastPathComponent
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("-o \(output): the directory \(parent) does not exist: create it first, or write elsewhere.")
        }
        guard access(parent, W_OK) == 0 else {
            throw ValidationError("-o \(output): the directory \(parent) is not writable by this user: write elsewhere.")
        }
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDir) {
            if isDir.boolValue { throw ValidationError("-o \(output) is a directory: give a file name inside it.") }
            if !force { throw ValidationError("-o \(output) exists already: choose another name, or add --force to replace it.") }
        }
    }
}

/// `--redact` and its key, for `pcap` (and the key alone for `redact`).
struct RedactKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The redaction key: 64 hex digits (32 bytes). The same key gives the same address mapping, so bundles redacted apart still match. Without it a key is made and printed on stderr; it is never stored in the output.", valueName: "HEX"))
    var key: String?
    @Option(name: .customLong("key-file"), help: ArgumentHelp("Read the key (64 hex digits) from this file.", valueName: "FILE"))
    var keyFile: String?

    func validate() throws {
        if key != nil && keyFile != nil { throw ValidationError("--key and --key-file both given: give one.") }
        if key != nil || keyFile != nil { _ = try redactor() }
    }

    func redactor() throws -> Redactor {
        if key != nil && keyFile != nil { throw ValidationError("--key and --key-file both given: give one.") }
        var text = key
        if let keyFile {
            guard let data = FileManager.default.contents(atPath: keyFile) else {
                throw ValidationError("--key-file \(keyFile) cannot be read: check the path and its permissions.")
            }
            text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let text {
            guard let r = Redactor(hexKey: text) else {
                throw ValidationError("the redaction key is not 64 hex digits: give 32 bytes in hex, e.g. from `openssl rand -hex 32`.")
            }
            return r
        }
        let r = Redactor.generated()
        FileHandle.standardError.write(Data("redaction key (keep it to redact more bundles the same way; it is not stored in the output): \(r.hexKey)\n".utf8))
        return r
    }
}

struct Pcap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the recorded packet bytes as pcapng, for Wireshark and tshark.",
        discussion: """
            One interface per network namespace and interface, named NETNS/IFNAME; one packet per recorded step \
            that carries bytes (--first-only: one per packet), at its recorded time (ns), from the network header \
            on (Linux cooked v2 link type), cut at the recording's snap length. Each packet's comment names the \
            skbtrail packet and step, the probe, the drop reason and location, the netfilter hook and the NAT \
            rewrite. In Wireshark: Edit > Preferences > Appearance > Columns, add "Packet comment"; in tshark: \
            -T fields -e frame.comment.
            Examples:
              skbtrail pcap trace.skbt -o trace.pcapng --dropped
              skbtrail pcap trace.skbt -o - --addr 10.0.0.2 | tshark -r -
            """)

    @OptionGroup var bundle: BundleOptions
    @OptionGroup var filters: FilterOptions
    @OptionGroup var out: OutputFileOptions
    @Flag(name: .customLong("first-only"), help: "Write each packet once, at its first step with bytes.") var firstOnly = false
    @Flag(help: "Rewrite addresses and zero the payload as `skbtrail redact` does (with --key or a new key).") var redact = false
    @OptionGroup var keys: RedactKeyOptions

    func validate() throws {
        try out.check(input: bundle.file, allowStdout: true)
        if !redact && (keys.key != nil || keys.keyFile != nil) { throw ValidationError("--key is for --redact: add --redact, or leave the key out.") }
    }

    func run() throws {
        let redactor = redact ? try keys.redactor() : nil
        try streaming { _ in
            let analysis = try bundle.open()
            let summary = try FileOutput.write(out.output) { write in
                try analysis.pcapReport(filter: filters.filter, options: PcapOptions(firstOnly: firstOnly, redactor: redactor), write: write)
            }
            if out.output != "-" {
                FileHandle.standardError.write(Data("wrote \(out.output): \(summary.blocks) packet records of \(summary.packets) packets on \(summary.interfaces) interfaces\n".utf8))
            }
            if summary.blocks == 0 { FileHandle.standardError.write(Data("warning: no recorded packet bytes match the filters\n".utf8)) }
        }
    }
}

/// Writes a file through a temporary name renamed into place when done (so an interrupted write leaves
/// nothing half made), or standard output for "-".
enum FileOutput {
    static func write<T>(_ path: String, _ body: (([UInt8]) throws -> Void) throws -> T) throws -> T {
        if path == "-" {
            return try body { FileHandle.standardOutput.write(Data($0)) }
        }
        let temporary = path + ".partial-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw ValidationError("-o \(path) cannot be created: check that its directory exists and is writable.")
        }
        do {
            let result = try body { bytes in try handle.write(contentsOf: Data(bytes)) }
            try handle.close()
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
            return result
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }
}

extension FilterOptions {
    /// The filter flags given, as they were typed (for a bundle's provenance).
    var described: String {
        var parts: [String] = []
        func add(_ flag: String, _ value: CustomStringConvertible?) { if let value { parts.append("\(flag) \(value)") } }
        add("--saddr", saddr); add("--daddr", daddr); add("--addr", addr)
        add("--sport", sport); add("--dport", dport); add("--port", port)
        add("--proto", proto); add("--netns", netns); add("--ifname", ifname); add("--pid", pid)
        if !packet.isEmpty { parts.append("--packet \(packet.joined(separator: ","))") }
        if dropped { parts.append("--dropped") }
        add("--since", since); add("--until", until); add("--limit", limit)
        return parts.joined(separator: " ")
    }
}

struct Slice: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a smaller bundle with only the selected packets: for a ticket, or to analyze a part.",
        discussion: """
            The slice keeps the records of the packets the filters select, of their clones, and the socket events \
            of their connections, with all the bundle's metadata (probes, snapshots, counters, symbols), and notes \
            how it was made (skbtrail info shows it). info, paths and diag on the slice show those packets as \
            the whole bundle does.
            Examples:
              skbtrail slice trace.skbt -o drops.skbt --dropped
              skbtrail slice trace.skbt -o flow.skbt --addr 10.0.0.2 --port 443 --since 10 --until 20
            """)

    @OptionGroup var bundle: BundleOptions
    @OptionGroup var filters: FilterOptions
    @OptionGroup var out: OutputFileOptions

    func validate() throws { try out.check(input: bundle.file, allowStdout: false) }

    func run() throws {
        try streaming { _ in
            let selection = filters.described
            let summary = try bundle.open().copyBundle(
                filter: filters.filter,
                options: BundleCopyOptions(kind: "slice", selection: selection.isEmpty ? "every packet" : "packets selected by \(selection), with their clones and socket events"),
                to: out.output)
            FileHandle.standardError.write(Data("wrote \(out.output): \(summary.records) of \(summary.sourceRecords) records, \(summary.packets) packets\n".utf8))
            if summary.packets == 0 { FileHandle.standardError.write(Data("warning: no packets match the filters: the slice holds only the metadata\n".utf8)) }
        }
    }
}

struct Redact: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a copy of a bundle that is safe to share: addresses mapped, payload replaced, names scrubbed.",
        discussion: """
            IPv4 and IPv6 addresses are mapped by a keyed prefix-preserving permutation, the same in packet bytes, \
            conntrack tuples, socket events, interface addresses, routes, rulesets and neighbour tables, so subnets, \
            routes and rules still match and the diagnosis is the same up to the mapping. Loopback, multicast, \
            broadcast and unspecified addresses are kept; private and link-local ones keep their range. MAC \
            addresses are replaced by keyed hashes, the payload after the transport header is replaced by keyed noise (equal payloads stay equal, as the clone inference needs), the host name, \
            process names and command lines are scrubbed. The key is given with --key or --key-file, or made and \
            printed on stderr; it is never stored in the copy. The same key maps several bundles alike. The filters \
            select packets as `skbtrail slice` does.
            Examples:
              skbtrail redact trace.skbt -o share.skbt
              skbtrail redact trace.skbt -o share.skbt --key-file team.key --dropped
            """)

    @OptionGroup var bundle: BundleOptions
    @OptionGroup var filters: FilterOptions
    @OptionGroup var out: OutputFileOptions
    @OptionGroup var keys: RedactKeyOptions

    func validate() throws { try out.check(input: bundle.file, allowStdout: false) }

    func run() throws {
        let redactor = try keys.redactor()
        try streaming { _ in
            let selection = filters.described
            let summary = try bundle.open().copyBundle(
                filter: filters.filter,
                options: BundleCopyOptions(kind: "redact",
                                           selection: "addresses mapped (prefix-preserving), MACs hashed, payload replaced by keyed noise, host, process names and command lines scrubbed"
                                               + (selection.isEmpty ? "" : "; packets selected by \(selection)"),
                                           redactor: redactor),
                to: out.output)
            FileHandle.standardError.write(Data("wrote \(out.output): \(summary.records) of \(summary.sourceRecords) records, \(summary.packets) packets, redacted\n".utf8))
        }
    }
}

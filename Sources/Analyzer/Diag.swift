import ArgumentParser
import Foundation
import SkbtrailAnalysis

/// `skbtrail diag`: nettrace's diagnosis mode after the fact.
struct Diag: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Diagnose: each packet's path annotated with findings (cause and fix), then a summary per fate and finding.",
        discussion: """
            Runs the rules (rules/*.sql built in, plus --rules DIR) on the bundle. Findings are INFO (normal: \
            hooks crossed, NAT, clones), WARN (possibly a problem) or ERROR (the packet failed); every ERROR \
            comes with a fix. They are kept in the analysis database: skbtrail sql FILE "SELECT * FROM finding".
            """)

    @OptionGroup var bundle: BundleOptions
    @OptionGroup(title: "Filters") var filters: FilterOptions
    @OptionGroup var limits: LimitOptions
    @Flag(name: [.customShort("q"), .long], help: "Only packets with a WARN or ERROR finding (nettrace's diag-quiet).") var quiet = false
    @Option(help: ArgumentHelp("Extra rules: a directory of rule files (*.sql) or one file (see docs/rules.md); a rule with a built-in id replaces it.", valueName: "PATH"))
    var rules: String?
    @Flag(help: "Wall-clock times (UTC, ISO 8601) instead of seconds since the packet's first step.") var date = false
    @Option(help: ArgumentHelp("Output format: text, json (one document: packets, findings, summary) or jsonl (an object per packet per line, then one with the findings and summary).", valueName: "FORMAT"))
    var format: OutputFormat = .text
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws { try format.require([.text, .json, .jsonl]) }

    func run() throws {
        TerminalOutput.options = terminal
        try streaming(text: format == .text) { sink in
            let analysis = try bundle.open()
            let diagnosis = try analysis.diagnose(userRules: rules, limits: try limits.limits())
            for e in diagnosis.errors where format.isJSON {
                FileHandle.standardError.write(Data("rule error: \(e.description)\n".utf8))
            }
            var o = DiagOptions(quiet: quiet, json: format.isJSON, date: date)
            o.jsonLines = format == .jsonl
            try analysis.diagReport(diagnosis, filter: filters.filter, options: o, to: sink)
        }
    }
}

/// `skbtrail rules`: the diagnosis rules, and with a bundle whether it has the probes each one needs.
struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the diagnosis rules (id, level, needs, title); with a FILE, whether its probes prove each rule and what it found.")

    @Argument(help: "A bundle (.skbt): check the rules against it.") var file: String?
    @Option(help: ArgumentHelp("Extra rules: a directory of rule files (*.sql) or one file; a broken one is reported by file and line, with the reason.", valueName: "PATH"))
    var rules: String?
    @Flag(name: .customLong("no-cache"), help: "Decode into a temporary file instead of the cache.") var noCache = false
    @OptionGroup var limits: LimitOptions
    @Option(help: ArgumentHelp("Output format: text, json (an array of rules) or jsonl (a rule per line).", valueName: "FORMAT"))
    var format: OutputFormat = .text
    @OptionGroup(title: "Terminal") var terminal: TerminalOptions

    func validate() throws { try format.require([.text, .json, .jsonl]) }

    func run() throws {
        TerminalOutput.options = terminal
        try reporting(text: format == .text) {
            let analysis = try file.map { try AnalysisDatabase(bundlePath: $0, cache: noCache ? .none : .auto) }
            return try Diagnosis.rulesReport(userDirectory: rules, analysis: analysis, json: format.isJSON, jsonLines: format == .jsonl, limits: try limits.limits())
        }
    }
}

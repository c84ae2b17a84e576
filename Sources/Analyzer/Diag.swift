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
    @OptionGroup var filters: FilterOptions
    @OptionGroup var limits: LimitOptions
    @Flag(name: [.customShort("q"), .long], help: "Only packets with a WARN or ERROR finding (nettrace's diag-quiet).") var quiet = false
    @Option(help: "A directory of extra rule files (*.sql, see docs/rules.md); a rule with a built-in id replaces it.") var rules: String?
    @Flag(help: "Wall-clock (UTC) times instead of times relative to the packet's first step.") var date = false
    @Option(help: "Output format: text, or json (one document).") var format: OutputFormat = .text

    func validate() throws { try format.require([.text, .json]) }

    func run() throws {
        try streaming { sink in
            let analysis = try bundle.open()
            let diagnosis = try analysis.diagnose(userRules: rules, limits: try limits.limits())
            for e in diagnosis.errors where format == .json {
                FileHandle.standardError.write(Data("rule error: \(e.description)\n".utf8))
            }
            try analysis.diagReport(diagnosis, filter: filters.filter,
                                    options: DiagOptions(quiet: quiet, json: format == .json, date: date), to: sink)
        }
    }
}

/// `skbtrail rules`: the diagnosis rules, and with a bundle whether it has the probes each one needs.
struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the diagnosis rules (id, level, needs, title); with a FILE, whether its probes prove each rule and what it found.")

    @Argument(help: "A bundle (.skbt): check the rules against it.") var file: String?
    @Option(help: "A directory of extra rule files (*.sql); broken ones are reported by file and line.") var rules: String?
    @Flag(name: .customLong("no-cache"), help: "Decode into a temporary file instead of the cache.") var noCache = false
    @OptionGroup var limits: LimitOptions
    @Option(help: "Output format: text or json.") var format: OutputFormat = .text

    func validate() throws { try format.require([.text, .json]) }

    func run() throws {
        try reporting {
            let analysis = try file.map { try AnalysisDatabase(bundlePath: $0, cache: noCache ? .none : .auto) }
            return try Diagnosis.rulesReport(userDirectory: rules, analysis: analysis, json: format == .json, limits: try limits.limits())
        }
    }
}

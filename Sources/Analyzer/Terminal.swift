import ArgumentParser
import Foundation
import SkbtrailAnalysis
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How text reaches a terminal: levels in colour and long output through a pager, as git does; neither
/// when the output is piped or redirected.
struct TerminalOptions: ParsableArguments {
    enum When: String, ExpressibleByArgument, CaseIterable { case auto, always, never }

    @Option(help: ArgumentHelp("Colour the levels (ERROR red, WARN yellow): auto (on a terminal, unless NO_COLOR is set), always or never.", valueName: "WHEN"))
    var color: When = .auto
    @Flag(name: .customLong("no-pager"), help: "Do not page text output on a terminal (the pager is $SKBTRAIL_PAGER, $PAGER or less -FRX).")
    var noPager = false

    /// Whether text to standard output gets colour.
    var colour: Bool {
        switch color {
        case .always: return true
        case .never: return false
        case .auto:
            let env = ProcessInfo.processInfo.environment
            return isatty(STDOUT_FILENO) == 1 && env["NO_COLOR"].map(\.isEmpty) ?? true && env["TERM"] != "dumb"
        }
    }

    /// The pager's command, when text to standard output should be paged.
    var pagerCommand: String? {
        guard !noPager, isatty(STDOUT_FILENO) == 1 else { return nil }
        let env = ProcessInfo.processInfo.environment
        let command = env["SKBTRAIL_PAGER"] ?? env["PAGER"] ?? "less"
        let trimmed = command.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed != "cat", let program = trimmed.split(separator: " ").first.map(String.init) else { return nil }
        // a pager that is not installed would take the output with it: standard output then, with a word why
        guard TerminalOptions.executable(program) else {
            FileHandle.standardError.write(Data("skbtrail: the pager '\(program)' is not installed: printing without one (set SKBTRAIL_PAGER, or --no-pager)\n".utf8))
            return nil
        }
        return trimmed
    }

    /// Whether `program` (a path, or a name looked up in $PATH) can be run.
    static func executable(_ program: String) -> Bool {
        if program.contains("/") { return access(program, X_OK) == 0 }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(program)", X_OK) == 0 }
    }
}

/// What text to standard output goes through: a colourer of complete lines, then a pager or stdout.
final class TerminalOutput {
    nonisolated(unsafe) static var options = TerminalOptions()

    private var pager: Process?
    private var pipe: Pipe?
    private var partial = ""
    private let colour: Bool
    private let out: FileHandle

    /// `text`: the output is text for people (colour and the pager apply), not JSON, CSV or bytes.
    init(text: Bool) {
        let o = TerminalOutput.options
        colour = text && o.colour
        if text, let command = o.pagerCommand {
            let p = Process(), pipe = Pipe()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", command]
            var env = ProcessInfo.processInfo.environment
            if env["LESS"] == nil { env["LESS"] = "FRX" }  // quit when it fits one screen, keep colours, leave the text on screen
            p.environment = env
            p.standardInput = pipe
            if (try? p.run()) != nil {
                pager = p
                self.pipe = pipe
                // a pager that quits early closes the pipe: writing then fails with EPIPE, not a signal
                signal(SIGPIPE, SIG_IGN)
                out = pipe.fileHandleForWriting
                return
            }
        }
        out = FileHandle.standardOutput
    }

    func write(_ text: String) {
        guard colour else { emit(text); return }
        let all = partial + text
        guard let cut = all.lastIndex(of: "\n") else { partial = all; return }
        partial = String(all[all.index(after: cut)...])
        emit(TerminalOutput.coloured(String(all[...cut])))
    }

    /// The rest, then waits for the pager to quit.
    func finish() {
        if !partial.isEmpty { emit(colour ? TerminalOutput.coloured(partial) : partial); partial = "" }
        if let pager {
            try? pipe?.fileHandleForWriting.close()
            pager.waitUntilExit()
        }
    }

    private var broken = false
    private func emit(_ text: String) {
        guard !broken else { return }
        do { try out.write(contentsOf: Data(text.utf8)) } catch {
            // the reader went away (the pager quit, or `| head` is done): stop writing, and stop the command
            broken = true
            Sandbox.interrupted = SIGPIPE
        }
    }

    /// ERROR in red and WARN in yellow, as whole words.
    static func coloured(_ text: String) -> String {
        guard text.contains("ERROR") || text.contains("WARN") else { return text }
        var out = text.replacingOccurrences(of: #"(?<![A-Za-z0-9_])ERROR(?![A-Za-z0-9_])"#, with: "\u{1B}[1;31mERROR\u{1B}[0m", options: .regularExpression)
        out = out.replacingOccurrences(of: #"(?<![A-Za-z0-9_])WARN(?![A-Za-z0-9_])"#, with: "\u{1B}[33mWARN\u{1B}[0m", options: .regularExpression)
        return out
    }
}

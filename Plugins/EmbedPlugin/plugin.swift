// Build-tool plugin: embeds the SQL under schema/ and rules/, and compiles bpf/skbtrail.bpf.c with
// `clang -target bpf` into an object embedded in the recorder. Keeps `swift build` the only build step.
import Foundation
import PackagePlugin

@main
struct EmbedPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let work = context.pluginWorkDirectoryURL
        let embed = try context.tool(named: "Embed").url

        func files(under dir: URL, suffix: String) -> [URL] {
            let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)
            var found: [URL] = []
            while let url = walker?.nextObject() as? URL {
                if url.path.hasSuffix(suffix) { found.append(url) }
            }
            return found.sorted { $0.path < $1.path }
        }
        /// Embeds the .sql files of `dirs` (under `base`), keyed by their path relative to `base`.
        func embedText(_ base: String, _ dirs: [String], _ enumName: String) -> Command {
            let baseURL = root.appendingPathComponent(base)
            let inputs = dirs.flatMap { files(under: $0.isEmpty ? baseURL : baseURL.appendingPathComponent($0), suffix: ".sql") }
            let output = work.appendingPathComponent("\(enumName).swift")
            return .buildCommand(
                displayName: "Embedding \(([base] + dirs.filter { !$0.isEmpty }).joined(separator: "/")) into \(enumName)",
                executable: embed,
                arguments: ["text", output.path, enumName, baseURL.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        }

        switch target.name {
        case "SkbtrailBundle":
            return [embedText("schema", ["bundle"], "EmbeddedSchema")]
        case "SkbtrailAnalysis":
            // What a decode depends on: a change to any of it makes a new analysis cache key.
            let decodeInputs = ["Sources/SkbtrailAnalysis", "Sources/SkbtrailBundle", "schema/analysis", "schema/findings", "bpf/include", "bpf/shim"]
                .flatMap { dir in [".swift", ".sql", ".h", ".c"].flatMap { files(under: root.appendingPathComponent(dir), suffix: $0) } }
            let hashOutput = work.appendingPathComponent("EmbeddedDecoderHash.swift")
            return [
                embedText("schema", ["analysis", "findings"], "EmbeddedAnalysisSchema"),
                embedText("rules", [""], "EmbeddedRules"),
                .buildCommand(
                    displayName: "Hashing the decoder's sources and schema",
                    executable: embed,
                    arguments: ["hash", hashOutput.path, "EmbeddedDecoderHash", root.path] + decodeInputs.map(\.path),
                    inputFiles: decodeInputs,
                    outputFiles: [hashOutput]
                ),
            ]
        case "Recorder":
            let bpf = root.appendingPathComponent("bpf")
            let source = bpf.appendingPathComponent("skbtrail.bpf.c")
            let headers = files(under: bpf.appendingPathComponent("include"), suffix: ".h")
            let object = work.appendingPathComponent("skbtrail.bpf.o")
            let swift = work.appendingPathComponent("EmbeddedBPF.swift")
            let clang = try context.tool(named: "clang").url
            return [
                .buildCommand(
                    displayName: "Compiling BPF programs (clang -target bpf)",
                    executable: clang,
                    arguments: [
                        "-target", "bpf", "-O2", "-g", "-Wall", "-Werror",
                        "-Wno-default-const-init-var-unsafe", "-Wno-unknown-warning-option",
                        "-I", bpf.appendingPathComponent("include").path,
                        // kprobe programs read registers: bpf_tracing.h's PT_REGS_* need the target
                        // architecture (the machine that builds is the one the recorder runs on)
                        targetArchDefine,
                        "-c", source.path, "-o", object.path,
                    ],
                    inputFiles: [source] + headers,
                    outputFiles: [object]
                ),
                .buildCommand(
                    displayName: "Embedding the BPF object",
                    executable: embed,
                    arguments: ["binary", swift.path, "EmbeddedBPF", object.path],
                    inputFiles: [object],
                    outputFiles: [swift]
                ),
            ]
        default:
            return []
        }
    }
}

/// The kernel architecture the BPF programs are built for, for bpf_tracing.h. The kprobe programs are
/// built for x86-64 only (vmlinux_min.h has its pt_regs); elsewhere functions take fexit alone.
#if arch(x86_64)
private let targetArchDefine = "-D__TARGET_ARCH_x86"
#else
private let targetArchDefine = "-D__SKBTRAIL_NO_KPROBES"
#endif

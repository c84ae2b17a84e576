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
        func embedText(_ dir: String, _ enumName: String) -> Command {
            let base = root.appendingPathComponent(dir)
            let inputs = files(under: base, suffix: ".sql")
            let output = work.appendingPathComponent("\(enumName).swift")
            return .buildCommand(
                displayName: "Embedding \(dir)/ into \(enumName)",
                executable: embed,
                arguments: ["text", output.path, enumName, base.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        }

        switch target.name {
        case "SkbtrailBundle":
            return [embedText("schema", "EmbeddedSchema")]
        case "SkbtrailAnalysis":
            return [embedText("rules", "EmbeddedRules")]
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

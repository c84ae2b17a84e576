// swift-tools-version: 6.1
//
// skbtrail: a flight recorder for the Linux network stack.
//
// Stages are modules. Only `Recorder` (skbtrail-record) links libbpf; the bundle format
// (`SkbtrailBundle`), the analysis (`SkbtrailAnalysis`) and the analyzer CLI (`skbtrail`) build and
// test on any machine. The BPF object is compiled by the `EmbedPlugin` build-tool plugin with
// `clang -target bpf` and embedded into the recorder, so `swift build` builds everything.
import PackageDescription

let linuxOnly = TargetDependencyCondition.when(platforms: [.linux])

// The decode's hot loops touch class properties millions of times: in release builds the dynamic
// exclusivity checks (swift_beginAccess) cost 15% of a decode (callgrind), so they are compiled out
// there; debug builds and the tests keep them.
let fast: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "skbtrail",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "skbtrail", targets: ["Analyzer"]),
        .executable(name: "skbtrail-record", targets: ["Recorder"]),
        .executable(name: "skbtrail-fuzz", targets: ["Fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        // The one contract between the BPF programs and Swift: bpf/include/events.h.
        .target(
            name: "SkbtrailEvents",
            path: "bpf",
            exclude: ["skbtrail.bpf.c", "include/vmlinux_min.h", "include/core_fixes.bpf.h"],
            sources: ["shim"],
            publicHeadersPath: "include"
        ),
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"]), .brew(["zstd"])]
        ),
        .systemLibrary(
            name: "CLibbpf",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev"])]
        ),
        // Turns files into Swift string constants at build time (schema, rules, the BPF object).
        .executableTarget(name: "Embed"),
        .plugin(
            name: "EmbedPlugin",
            capability: .buildTool(),
            dependencies: ["Embed"]
        ),
        // Bundle format: schema, chunk codec, metadata types, reader and writer.
        .target(
            name: "SkbtrailBundle",
            dependencies: [
                "SkbtrailEvents", "CZstd",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: fast,
            plugins: ["EmbedPlugin"]
        ),
        // Decoding, packets, clones, NAT, views, rules: no BPF, no root.
        .target(
            name: "SkbtrailAnalysis",
            dependencies: ["SkbtrailBundle", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: fast,
            plugins: ["EmbedPlugin"]
        ),
        .executableTarget(
            name: "Analyzer",
            dependencies: [
                "SkbtrailAnalysis",
                "SkbtrailBundle",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // libFuzzer target for the chunk codecs, the record walker and the packet header parser
        // (scripts/fuzz-libfuzzer.sh); built plainly it replays inputs.
        .executableTarget(name: "Fuzz", dependencies: ["SkbtrailAnalysis", "SkbtrailBundle", "SkbtrailEvents"]),
        .executableTarget(
            name: "Recorder",
            dependencies: [
                "SkbtrailBundle", "SkbtrailEvents",
                .target(name: "CLibbpf", condition: linuxOnly),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            plugins: ["EmbedPlugin"]
        ),
        .testTarget(
            name: "BundleTests",
            dependencies: ["SkbtrailBundle", "SkbtrailEvents", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "AnalyzerTests",
            dependencies: ["SkbtrailAnalysis"]
        ),
        .testTarget(name: "RecorderTests", dependencies: ["SkbtrailBundle", "SkbtrailEvents",
                                                          .product(name: "GRDB", package: "GRDB.swift")]),
    ],
    // Swift 5 mode: the recorder's signal handling and libbpf callbacks are C-style global state.
    swiftLanguageModes: [.v5]
)

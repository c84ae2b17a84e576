import Foundation
import SkbtrailEvents

/// Constants of the bundle format that both the recorder and the analyzer rely on.
public enum BundleFormat {
    /// The format version this build writes and the newest it reads.
    public static let version = Int(ST_FORMAT_VERSION)
    /// SQLite `application_id` of every bundle: "skbt".
    public static let applicationID: Int32 = 0x736B_6274
    /// Size of the fixed part of a record (`struct st_event`).
    public static let eventSize = MemoryLayout<st_event>.size
    /// Netfilter bracket priorities, lowest first (ST_NF_BRACKET_PRIORITIES).
    public static let nfBracketPriorities: [Int32] = [-1000, -250, -175, -125, -50, 25, 75, 150]

    /// The SQL that creates a bundle of `version`, from schema/bundle/.
    public static func schemaSQL(version: Int) -> String? {
        EmbeddedSchema.files["bundle/v\(version).sql"]
    }

    /// An embedded SQL file under schema/, by its path relative to schema/.
    public static func sql(_ path: String) -> String? {
        EmbeddedSchema.files[path]
    }

    /// Every embedded SQL file under `directory` of schema/, sorted by path.
    public static func sqlFiles(under directory: String) -> [(path: String, sql: String)] {
        EmbeddedSchema.files.filter { $0.key.hasPrefix(directory + "/") }
            .sorted { $0.key < $1.key }
            .map { (path: $0.key, sql: $0.value) }
    }
}

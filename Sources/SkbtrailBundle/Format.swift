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
    /// The byte order of this machine as `recording.byte_order` names it: records are in the recording
    /// machine's order.
    public static var hostByteOrder: String { 1.littleEndian == 1 ? "little" : "big" }
    /// The SQL that creates a bundle of `version`, from schema/bundle/: v1.sql and each upgrade after it.
    public static func schemaSQL(version: Int) -> String? {
        guard version >= 1 else { return nil }
        var sql = ""
        for v in 1...version {
            guard let step = EmbeddedSchema.files["bundle/v\(v).sql"] else { return nil }
            sql += step + "\n"
        }
        return sql
    }
}

import Foundation
import SkbtrailBundle

/// What went wrong while analyzing a bundle, said for the person who runs the command.
public enum AnalysisError: Error, CustomStringConvertible {
    /// A chunk could not be decompressed or walked.
    case corruptChunk(path: String, why: String)
    /// The analysis database could not be created or read.
    case analysisDatabase(path: String, why: String)
    /// A user query failed.
    case query(String)
    /// Something else, already phrased for people.
    case message(String)

    public var description: String {
        switch self {
        case .corruptChunk(let path, let why):
            return "\(path) has a corrupted chunk (\(why)). The file was damaged after recording (a partial copy or a disk error): copy it again from the machine that recorded it, or re-record."
        case .analysisDatabase(let path, let why):
            return "cannot write the analysis database \(path) (\(why)). Set SKBTRAIL_CACHE_DIR to a writable directory or use --no-cache."
        case .query(let why):
            return "the query failed: \(why). See docs/sql.md for the views and their columns."
        case .message(let text):
            return text
        }
    }

    /// Turns any error of the bundle layer into one sentence for people.
    public static func describe(_ error: Error) -> String {
        if let error = error as? AnalysisError { return error.description }
        if let error = error as? BundleError { return error.description }
        return "\(error)"
    }
}

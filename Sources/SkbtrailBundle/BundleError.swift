import Foundation

/// What went wrong with a bundle, said for the person who runs the command.
public enum BundleError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case isDirectory(String)
    case notABundle(String, String)
    case truncated(String, size: Int64)
    case leftoverJournal(String)
    case walReadOnly(String)
    case tooNew(String, found: Int, supported: Int)
    case damaged(String, String)
    case corruptChunk(String)
    case codec(String)
    case io(String)

    public var description: String {
        switch self {
        case .notFound(let path):
            return "\(path): no such file. Give the path of a bundle written by skbtrail-record -o FILE."
        case .isDirectory(let path):
            return "\(path) is a directory. Give the path of a bundle file written by skbtrail-record -o FILE."
        case .notABundle(let path, let why):
            return "\(path) is not an skbtrail bundle (\(why)). Give a file written by skbtrail-record -o FILE."
        case .truncated(let path, let size):
            return "\(path) is cut short (\(size) bytes, not a whole number of SQLite pages): the copy or the disk did not finish. Copy it again from the machine that recorded it."
        case .leftoverJournal(let path):
            return "\(path) has a rollback journal beside it (\(path)-journal), left by an interrupted write: move the journal away, or copy the bundle without it, and try again."
        case .walReadOnly(let path):
            return "\(path) was left with its write-ahead log (\(path)-wal, the recorder did not finish) in a directory this user cannot write: copy both files to a writable directory and open the copy there."
        case .tooNew(let path, let found, let supported):
            return "\(path) has bundle format version \(found); this skbtrail reads versions up to \(supported). Upgrade skbtrail to read it."
        case .damaged(let path, let why):
            return "\(path) is damaged: \(why). Copy it again from the machine that recorded it, or re-record."
        case .corruptChunk(let why):
            return "corrupted chunk: \(why)"
        case .codec(let why):
            return why
        case .io(let why):
            return why
        }
    }

    /// The part of the message that says what is wrong, without the advice: for lists of damage.
    public var reasonText: String {
        switch self {
        case .damaged(let path, let why): return "\(path): \(why)"
        case .corruptChunk(let why): return why
        default: return description
        }
    }

    /// `text` safe to show: at most `limit` characters, control characters and invalid UTF-8 as '?'.
    public static func printable(_ text: String, limit: Int) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if out.unicodeScalars.count >= limit { out += "…"; break }
            out.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{FFFD}" ? "?" : scalar)
        }
        return out
    }
}

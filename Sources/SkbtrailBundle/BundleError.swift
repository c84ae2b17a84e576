import Foundation

/// What went wrong with a bundle, said for the person who runs the command.
public enum BundleError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case notABundle(String, String)
    case tooNew(String, found: Int, supported: Int)
    case damaged(String, String)
    case corruptChunk(String)
    case codec(String)
    case io(String)

    public var description: String {
        switch self {
        case .notFound(let path):
            return "\(path): no such file. Give the path of a bundle written by skbtrail-record -o FILE."
        case .notABundle(let path, let why):
            return "\(path) is not an skbtrail bundle (\(why)). Give a file written by skbtrail-record -o FILE."
        case .tooNew(let path, let found, let supported):
            return "\(path) has bundle format version \(found); this skbtrail reads versions up to \(supported). Upgrade skbtrail to read it."
        case .damaged(let path, let why):
            return "\(path) is damaged (\(why)). If the recorder was killed, the chunks committed before it are still readable with a copy of its -wal file beside it; otherwise re-record."
        case .corruptChunk(let why):
            return "corrupted chunk: \(why)"
        case .codec(let why):
            return why
        case .io(let why):
            return why
        }
    }
}

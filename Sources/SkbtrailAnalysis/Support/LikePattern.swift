/// A pattern of SQLite's built-in LIKE without ESCAPE: `%` matches any run of characters (none too),
/// `_` exactly one character, and letters match either case in ASCII only (`a` is `A`, `é` is only
/// `é`), as SQLite's own `like()` does unless `PRAGMA case_sensitive_like` is on. Characters are
/// Unicode scalars, not bytes, as in SQLite. The `ev` table matches probe names with it to serve
/// `probe_name LIKE 'nf:%'` without decoding every record; SQLite checks each row it returns again.
struct LikePattern {
    private let scalars: [UInt32]
    private static let any = UInt32(UInt8(ascii: "%"))
    private static let one = UInt32(UInt8(ascii: "_"))

    init(_ pattern: String) {
        scalars = pattern.unicodeScalars.map { $0.value }
    }

    /// Whether `text` matches the whole pattern.
    func matches(_ text: String) -> Bool {
        let s = text.unicodeScalars.map { $0.value }
        let p = scalars
        var pi = 0, si = 0
        // the last `%` seen, and where in `s` it began matching: on a mismatch it takes one more character
        var star = -1, starText = 0
        while si < s.count {
            if pi < p.count && p[pi] == LikePattern.any {
                star = pi
                starText = si
                pi += 1
            } else if pi < p.count && (p[pi] == LikePattern.one || LikePattern.same(p[pi], s[si])) {
                pi += 1
                si += 1
            } else if star >= 0 {
                pi = star + 1
                starText += 1
                si = starText
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == LikePattern.any { pi += 1 }
        return pi == p.count
    }

    /// One character of the pattern against one of the text: equal, or the same ASCII letter.
    private static func same(_ a: UInt32, _ b: UInt32) -> Bool {
        if a == b { return true }
        guard a < 0x80 && b < 0x80 else { return false }
        return lower(a) == lower(b)
    }

    private static func lower(_ c: UInt32) -> UInt32 {
        c >= 0x41 && c <= 0x5a ? c + 0x20 : c
    }
}

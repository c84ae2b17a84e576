#if os(Linux)
import Foundation
import Glibc

func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB"]
    var value = Double(n)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
}

/// The live status line: rewritten in place on a terminal, a line every 5 s otherwise.
final class StatusLine {
    private let enabled: Bool
    private let tty = isatty(2) != 0
    private var last = Date.distantPast
    private var lastEvents = 0
    private var lastTime = Date()
    private var rate = 0.0
    private var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(events: Int, lost: UInt64, stored: Int, raw: Int, elapsed: Double) {
        guard enabled else { return }
        let now = Date()
        let interval = tty ? 0.5 : 5.0
        guard now.timeIntervalSince(last) >= interval else { return }
        let dt = now.timeIntervalSince(lastTime)
        if dt > 0 { rate = Double(events - lastEvents) / dt }
        lastEvents = events
        lastTime = now
        last = now
        let text = String(format: "%.0fs  %d events  %.0f/s  %llu lost  %@ written", elapsed, events, rate, lost, formatBytes(stored))
        if tty {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
            shown = true
        } else {
            warn("skbtrail-record: \(text)")
        }
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
#endif

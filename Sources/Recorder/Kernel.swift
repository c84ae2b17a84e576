#if os(Linux)
import Foundation
import Glibc

/// Facts about the running kernel and clocks that the bundle records.
enum Kernel {
    static func uname() -> (release: String, version: String, machine: String, host: String) {
        var u = utsname()
        _ = Glibc.uname(&u)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return (field(u.release), field(u.version), field(u.machine), field(u.nodename))
    }

    static func clockNs(_ id: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// CLOCK_BOOTTIME now, the clock of every record's `ts`.
    static func bootNs() -> Int64 { clockNs(CLOCK_BOOTTIME) }

    /// Offset from CLOCK_BOOTTIME to Unix time: the tightest of a few samples.
    static func bootToUnixNs() -> Int64 {
        var best: (gap: Int64, offset: Int64) = (.max, 0)
        for _ in 0..<5 {
            let b1 = clockNs(CLOCK_BOOTTIME)
            let r = clockNs(CLOCK_REALTIME)
            let b2 = clockNs(CLOCK_BOOTTIME)
            if b2 - b1 < best.gap { best = (b2 - b1, r - (b1 + (b2 - b1) / 2)) }
        }
        return best.offset
    }

    /// Inode of a namespace file (/proc/self/ns/net, /run/netns/NAME): the kernel's ns.inum.
    static func inode(of path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(truncatingIfNeeded: st.st_ino)
    }

    /// CPUs the kernel may bring up: the size of every per-CPU map value. Read once.
    static let possibleCPUs: Int = readPossibleCPUs()

    private static func readPossibleCPUs() -> Int {
        // "0-3" or "0,2-5" in /sys/devices/system/cpu/possible
        guard let text = try? String(contentsOfFile: "/sys/devices/system/cpu/possible", encoding: .utf8) else {
            return sysconf(Int32(_SC_NPROCESSORS_CONF))
        }
        var highest = 0
        for part in text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            highest = max(highest, bounds.last ?? 0)
        }
        return highest + 1
    }
}

/// Resolves kernel addresses to function names through /proc/kallsyms (needs root to see addresses).
struct KernelSymbols {
    private var starts: [UInt64] = []
    private var names: [String] = []

    init() {
        // /proc files report size 0: FileManager.contents(atPath:) stops after one page, so read to EOF.
        guard let handle = FileHandle(forReadingAtPath: "/proc/kallsyms"),
              let data = try? handle.readToEnd() else { return }
        try? handle.close()
        var entries: [(UInt64, String)] = []
        entries.reserveCapacity(200_000)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var lineStart = 0
            let bytes = raw.bindMemory(to: UInt8.self)
            for i in 0..<bytes.count where bytes[i] == 10 {
                // "ffffffff81000000 T _stext [module]"
                let line = bytes[lineStart..<i]
                lineStart = i + 1
                guard line.count > 19 else { continue }
                let base = line.startIndex
                let kind = bytes[base + 17]
                guard kind == UInt8(ascii: "t") || kind == UInt8(ascii: "T") else { continue }
                var addr: UInt64 = 0
                for j in base..<(base + 16) {
                    let c = bytes[j]
                    let v: UInt8 = c >= 97 ? c - 87 : c - 48
                    addr = addr << 4 | UInt64(v)
                }
                guard addr != 0 else { continue }
                var end = base + 19
                while end < line.endIndex && bytes[end] != 9 && bytes[end] != 32 { end += 1 }
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[(base + 19)..<end]), as: UTF8.self)
                entries.append((addr, name))
            }
        }
        entries.sort { $0.0 < $1.0 }
        starts = entries.map(\.0)
        names = entries.map(\.1)
    }

    var isEmpty: Bool { starts.isEmpty }

    /// The function containing `address` and the offset into it.
    func resolve(_ address: UInt64) -> (name: String, offset: Int64)? {
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        return (names[lo - 1], Int64(address - starts[lo - 1]))
    }
}

/// Runs a helper command (ip, iptables-save, nft, sysctl) and returns its standard output, or nil.
func runTool(_ args: [String]) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = args
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
    do { try process.run() } catch { return nil }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self)
}
#endif

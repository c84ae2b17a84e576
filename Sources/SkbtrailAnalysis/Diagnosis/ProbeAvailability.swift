import GRDB

/// Which probes a bundle attached, to say what a rule's findings could not prove.
public struct ProbeAvailability {
    public struct Missing: CustomStringConvertible {
        public var need: String
        public var why: String
        public var description: String { "\(need) \(why)" }
    }

    var attached: [String: Bool] = [:]
    var errors: [String: String] = [:]
    var netfilter = false
    var netfilterError: String?

    init(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT name, kind, attached, error FROM bundle_probe") {
            let name: String = row["name"]
            let kind: String = row["kind"] ?? ""
            let ok = (row["attached"] as Int64? ?? 0) == 1
            if kind == "netfilter" {
                netfilter = netfilter || ok
                if !ok, netfilterError == nil { netfilterError = row["error"] }
            } else {
                attached[name] = (attached[name] ?? false) || ok
                if !ok, let e: String = row["error"] { errors[name] = e }
            }
        }
    }

    /// The needs of a rule this bundle cannot prove.
    func missing(_ needs: [String]) -> [Missing] {
        needs.compactMap { need in
            if need == "netfilter" {
                if netfilter { return nil }
                return Missing(need: "netfilter brackets", why: "were not attached" + (netfilterError.map { " (\($0))" } ?? ""))
            }
            switch attached[need] {
            case true?: return nil
            case false?: return Missing(need: "probe \(need)", why: "was not attached" + (errors[need].map { " (\($0))" } ?? ""))
            case nil: return Missing(need: "probe \(need)", why: "is not in this recording")
            }
        }
    }
}

import GRDB
import GRDBSQLite
import SkbtrailBundle

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
    /// A table's or chain's function attached (tier 3): netfilter verdicts without brackets.
    var verdictFunctions = false

    init(_ connection: OpaquePointer) throws {
        let rows = try RawStatement(connection, "SELECT name, kind, attached, error, probe FROM bundle_probe")
        rows.run()
        while try rows.step() {
            let name = rows.text(0) ?? "", kind = rows.text(1) ?? ""
            let ok = rows.optInt(2) == 1
            if kind == "netfilter" {
                netfilter = netfilter || ok
                if !ok, netfilterError == nil { netfilterError = rows.text(3) }
            } else {
                attached[name] = (attached[name] ?? false) || ok
                if !ok, let e = rows.text(3) { errors[name] = e }
                // a table's or chain's verdict (tier 3) names a netfilter drop's hook and table as a bracket does
                if ok, let id = rows.optInt(4), ProbeTable.role(Int(id)) == .nfVerdict { verdictFunctions = true }
            }
        }
    }

    /// The needs of a rule this bundle cannot prove.
    func missing(_ needs: [String]) -> [Missing] {
        needs.compactMap { need in
            if need == "netfilter-verdicts" {
                if netfilter || verdictFunctions { return nil }
                return Missing(need: "netfilter brackets or the tables' functions (ipt_do_table, nft_do_chain)", why: "were not attached"
                               + (netfilterError.map { " (\($0))" } ?? ""))
            }
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

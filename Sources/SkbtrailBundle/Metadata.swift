import Foundation
import GRDB

/// Rows of the bundle's metadata tables. Column names are the snake_case of the property names.
public protocol BundleRow: Codable, FetchableRecord, PersistableRecord {}

extension BundleRow {
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }
}

/// The `recording` row: what was recorded, where and how.
public struct Recording: BundleRow, Equatable {
    public static let databaseTableName = "recording"
    public var id = 1
    public var formatVersion: Int
    public var recorderVersion: String
    public var uuid: String
    public var commandLine: String
    public var filters: String
    public var host: String
    public var kernelRelease: String
    public var kernelVersion: String
    public var machine: String
    public var byteOrder: String
    public var bootToUnixNs: Int64
    public var codec: String
    public var codecLevel: Int
    public var snaplen: Int
    public var eventSize: Int
    public var startedNs: Int64
    public var endedNs: Int64?
    public var stopReason: String?

    public init(formatVersion: Int, recorderVersion: String, uuid: String, commandLine: String, filters: String,
                host: String, kernelRelease: String, kernelVersion: String, machine: String, byteOrder: String,
                bootToUnixNs: Int64, codec: String, codecLevel: Int, snaplen: Int, eventSize: Int,
                startedNs: Int64, endedNs: Int64? = nil, stopReason: String? = nil) {
        self.formatVersion = formatVersion
        self.recorderVersion = recorderVersion
        self.uuid = uuid
        self.commandLine = commandLine
        self.filters = filters
        self.host = host
        self.kernelRelease = kernelRelease
        self.kernelVersion = kernelVersion
        self.machine = machine
        self.byteOrder = byteOrder
        self.bootToUnixNs = bootToUnixNs
        self.codec = codec
        self.codecLevel = codecLevel
        self.snaplen = snaplen
        self.eventSize = eventSize
        self.startedNs = startedNs
        self.endedNs = endedNs
        self.stopReason = stopReason
    }
}

/// A `probe` row: one attach point and whether it attached.
public struct ProbeRow: BundleRow, Equatable {
    public static let databaseTableName = "probe"
    public var id: Int64?
    public var probe: Int
    public var name: String
    public var tier: Int
    public var kind: String
    public var target: String
    public var family: Int?
    public var hook: Int?
    public var priority: Int?
    public var netns: Int64?
    public var attached: Bool
    public var error: String?

    public init(probe: Int, name: String, tier: Int, kind: String, target: String, family: Int? = nil,
                hook: Int? = nil, priority: Int? = nil, netns: Int64? = nil, attached: Bool, error: String? = nil) {
        self.netns = netns
        self.probe = probe
        self.name = name
        self.tier = tier
        self.kind = kind
        self.target = target
        self.family = family
        self.hook = hook
        self.priority = priority
        self.attached = attached
        self.error = error
    }
}

/// A name for a kernel enum value (`drop_reason`, `rst_reason`).
public struct EnumName: Codable, Equatable {
    public var value: Int64
    public var name: String
    public init(value: Int64, name: String) { self.value = value; self.name = name }
}

/// A `symbol` row: a location address and the kernel function it falls in.
public struct SymbolRow: BundleRow, Equatable {
    public static let databaseTableName = "symbol"
    public var address: Int64
    public var name: String
    public var offset: Int64
    public init(address: UInt64, name: String, offset: Int64) {
        self.address = Int64(bitPattern: address)
        self.name = name
        self.offset = offset
    }
}

public struct NetnsRow: BundleRow, Equatable {
    public static let databaseTableName = "netns"
    public var inode: Int64
    public var name: String?
    public var isRoot: Bool
    public init(inode: Int64, name: String?, isRoot: Bool) { self.inode = inode; self.name = name; self.isRoot = isRoot }
}

public struct InterfaceRow: BundleRow, Equatable {
    public static let databaseTableName = "interface"
    public var netns: Int64
    public var ifindex: Int
    public var name: String
    public var kind: String?
    public var mac: String?
    public var mtu: Int?
    public var flags: String?
    public var master: String?
    public init(netns: Int64, ifindex: Int, name: String, kind: String?, mac: String?, mtu: Int?,
                flags: String?, master: String?) {
        self.netns = netns
        self.ifindex = ifindex
        self.name = name
        self.kind = kind
        self.mac = mac
        self.mtu = mtu
        self.flags = flags
        self.master = master
    }
}

public struct AddressRow: BundleRow, Equatable {
    public static let databaseTableName = "address"
    public var netns: Int64
    public var ifindex: Int
    public var family: String
    public var address: String
    public var prefixlen: Int
    public init(netns: Int64, ifindex: Int, family: String, address: String, prefixlen: Int) {
        self.netns = netns
        self.ifindex = ifindex
        self.family = family
        self.address = address
        self.prefixlen = prefixlen
    }
}

public struct SnapshotRow: BundleRow, Equatable {
    public static let databaseTableName = "snapshot"
    public var id: Int64?
    public var netns: Int64
    public var phase: String
    public var source: String
    public var content: String
    public init(netns: Int64, phase: String, source: String, content: String) {
        self.netns = netns
        self.phase = phase
        self.source = source
        self.content = content
    }
}

public struct SysctlRow: BundleRow, Equatable {
    public static let databaseTableName = "sysctl"
    public var netns: Int64
    public var name: String
    public var value: String
    public init(netns: Int64, name: String, value: String) { self.netns = netns; self.name = name; self.value = value }
}

/// The metadata snapshot the recorder takes of the machine, written once at the end.
public struct MachineSnapshot {
    public var netns: [NetnsRow] = []
    public var interfaces: [InterfaceRow] = []
    public var addresses: [AddressRow] = []
    public var snapshots: [SnapshotRow] = []
    public var sysctls: [SysctlRow] = []
    public init() {}
}

/// Summary of one chunk row, without its data.
public struct ChunkInfo: Equatable {
    public var id: Int64
    public var firstTs: Int64
    public var lastTs: Int64
    public var records: Int
    public var rawSize: Int
    public var storedSize: Int
}

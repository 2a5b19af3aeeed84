/// `QueryFilter` (64 bytes): the event of `query_accounts` and `query_transfers`.
public struct QueryFilter: Hashable, Sendable {
    /// Zero means "no filter" for the five fields below.
    public var userData128: UInt128
    public var userData64: UInt64
    public var userData32: UInt32
    public var ledger: UInt32
    public var code: UInt16
    /// 6 reserved bytes at offset 34; all must be zero.
    public var reservedHead: UInt16
    public var reservedTail: UInt32
    public var timestampMin: UInt64
    public var timestampMax: UInt64
    public var limit: UInt32
    public var flags: QueryFilterFlags

    public init(
        userData128: UInt128 = 0, userData64: UInt64 = 0, userData32: UInt32 = 0,
        ledger: UInt32 = 0, code: UInt16 = 0, timestampMin: UInt64 = 0, timestampMax: UInt64 = 0,
        limit: UInt32 = 0, flags: QueryFilterFlags = []
    ) {
        self.userData128 = userData128
        self.userData64 = userData64
        self.userData32 = userData32
        self.ledger = ledger
        self.code = code
        self.reservedHead = 0
        self.reservedTail = 0
        self.timestampMin = timestampMin
        self.timestampMax = timestampMax
        self.limit = limit
        self.flags = flags
    }

    public var reservedIsZero: Bool { reservedHead == 0 && reservedTail == 0 }
}

/// `QueryFilterFlags` (u32).
public struct QueryFilterFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Newest first.
    public static let reversed = QueryFilterFlags(rawValue: 1 << 0)
    /// Bits 1–31 must be zero.
    public static let padding = QueryFilterFlags(rawValue: ~UInt32(1))
}

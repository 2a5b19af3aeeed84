/// `AccountFilter` (128 bytes): the event of `get_account_transfers` and `get_account_balances`.
public struct AccountFilter: Hashable, Sendable {
    public var accountId: UInt128
    /// Zero means "no filter" for the four fields below.
    public var userData128: UInt128
    public var userData64: UInt64
    public var userData32: UInt32
    /// Transfer code.
    public var code: UInt16
    /// 58 reserved bytes at offset 46: a u16 and seven u64 words; all must be zero.
    public var reservedHead: UInt16
    public var reservedTail: Padding56
    /// Inclusive; zero means unbounded.
    public var timestampMin: UInt64
    /// Inclusive; zero means unbounded.
    public var timestampMax: UInt64
    /// At least 1; clamped to `Constants.queryResultsMax`.
    public var limit: UInt32
    public var flags: AccountFilterFlags

    public init(
        accountId: UInt128 = 0, userData128: UInt128 = 0, userData64: UInt64 = 0,
        userData32: UInt32 = 0, code: UInt16 = 0, timestampMin: UInt64 = 0,
        timestampMax: UInt64 = 0, limit: UInt32 = 0, flags: AccountFilterFlags = []
    ) {
        self.accountId = accountId
        self.userData128 = userData128
        self.userData64 = userData64
        self.userData32 = userData32
        self.code = code
        self.reservedHead = 0
        self.reservedTail = Padding56()
        self.timestampMin = timestampMin
        self.timestampMax = timestampMax
        self.limit = limit
        self.flags = flags
    }

    public var reservedIsZero: Bool { reservedHead == 0 && reservedTail.isZero }
}

/// `AccountFilterFlags` (u32).
public struct AccountFilterFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Match transfers that debit the account.
    public static let debits = AccountFilterFlags(rawValue: 1 << 0)
    /// Match transfers that credit the account.
    public static let credits = AccountFilterFlags(rawValue: 1 << 1)
    /// Newest first.
    public static let reversed = AccountFilterFlags(rawValue: 1 << 2)
    /// Bits 3–31 must be zero.
    public static let padding = AccountFilterFlags(rawValue: ~UInt32(0b111))
}

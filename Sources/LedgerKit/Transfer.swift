/// A transfer: 128 bytes, laid out exactly as on the wire and on disk. Immutable once created.
public struct Transfer: Hashable, Sendable, BitwiseCopyable {
    public var id: UInt128
    public var debitAccountId: UInt128
    public var creditAccountId: UInt128
    /// The amount actually moved (after balancing, or the posted/voided amount).
    public var amount: UInt128
    /// The pending transfer that a post or void resolves; zero otherwise.
    public var pendingId: UInt128
    public var userData128: UInt128
    public var userData64: UInt64
    public var userData32: UInt32
    /// Seconds until a pending transfer expires; zero never expires.
    public var timeout: UInt32
    public var ledger: UInt32
    public var code: UInt16
    public var flags: TransferFlags
    public var timestamp: UInt64

    public init(
        id: UInt128 = 0, debitAccountId: UInt128 = 0, creditAccountId: UInt128 = 0,
        amount: UInt128 = 0, pendingId: UInt128 = 0, userData128: UInt128 = 0,
        userData64: UInt64 = 0, userData32: UInt32 = 0, timeout: UInt32 = 0, ledger: UInt32 = 0,
        code: UInt16 = 0, flags: TransferFlags = [], timestamp: UInt64 = 0
    ) {
        self.id = id
        self.debitAccountId = debitAccountId
        self.creditAccountId = creditAccountId
        self.amount = amount
        self.pendingId = pendingId
        self.userData128 = userData128
        self.userData64 = userData64
        self.userData32 = userData32
        self.timeout = timeout
        self.ledger = ledger
        self.code = code
        self.flags = flags
        self.timestamp = timestamp
    }
}

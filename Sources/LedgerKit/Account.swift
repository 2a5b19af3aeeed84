/// An account: 128 bytes, laid out exactly as on the wire and on disk (little-endian hosts;
/// offsets are checked by a test against the spec). Balances are maintained by the ledger.
public struct Account: Hashable, Sendable, BitwiseCopyable {
    public var id: UInt128
    public var debitsPending: UInt128
    public var debitsPosted: UInt128
    public var creditsPending: UInt128
    public var creditsPosted: UInt128
    public var userData128: UInt128
    public var userData64: UInt64
    public var userData32: UInt32
    /// Must be zero.
    public var reserved: UInt32
    public var ledger: UInt32
    public var code: UInt16
    public var flags: AccountFlags
    /// Set by the ledger on creation, or by the client for imported accounts.
    public var timestamp: UInt64

    public init(
        id: UInt128 = 0, debitsPending: UInt128 = 0, debitsPosted: UInt128 = 0,
        creditsPending: UInt128 = 0, creditsPosted: UInt128 = 0, userData128: UInt128 = 0,
        userData64: UInt64 = 0, userData32: UInt32 = 0, reserved: UInt32 = 0, ledger: UInt32 = 0,
        code: UInt16 = 0, flags: AccountFlags = [], timestamp: UInt64 = 0
    ) {
        self.id = id
        self.debitsPending = debitsPending
        self.debitsPosted = debitsPosted
        self.creditsPending = creditsPending
        self.creditsPosted = creditsPosted
        self.userData128 = userData128
        self.userData64 = userData64
        self.userData32 = userData32
        self.reserved = reserved
        self.ledger = ledger
        self.code = code
        self.flags = flags
        self.timestamp = timestamp
    }
}

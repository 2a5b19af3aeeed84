/// `AccountFlags` (u16 on the wire). Stored exactly as submitted; the ledger only ever changes
/// `closed` afterwards.
public struct AccountFlags: OptionSet, Hashable, Sendable, BitwiseCopyable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Chains this event with the next one in the batch: all succeed or none does.
    public static let linked = AccountFlags(rawValue: 1 << 0)
    /// Rejects transfers that would make `debitsPending + debitsPosted > creditsPosted`.
    public static let debitsMustNotExceedCredits = AccountFlags(rawValue: 1 << 1)
    /// Rejects transfers that would make `creditsPending + creditsPosted > debitsPosted`.
    public static let creditsMustNotExceedDebits = AccountFlags(rawValue: 1 << 2)
    /// Keeps balance history readable through `get_account_balances`.
    public static let history = AccountFlags(rawValue: 1 << 3)
    /// The client supplies `timestamp` (historical import).
    public static let imported = AccountFlags(rawValue: 1 << 4)
    /// The account rejects movements except voids and expiries of pending transfers.
    public static let closed = AccountFlags(rawValue: 1 << 5)

    /// Bits 6–15 must be zero.
    public static let padding = AccountFlags(rawValue: 0xFFC0)
}

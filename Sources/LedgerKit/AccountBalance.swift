/// `AccountBalance` (128 bytes): one result of `get_account_balances`, the account's balances
/// immediately after the transfer with `timestamp`.
public struct AccountBalance: Hashable, Sendable {
    public var debitsPending: UInt128
    public var debitsPosted: UInt128
    public var creditsPending: UInt128
    public var creditsPosted: UInt128
    public var timestamp: UInt64
    public var reserved: Padding56

    public init(
        debitsPending: UInt128 = 0, debitsPosted: UInt128 = 0, creditsPending: UInt128 = 0,
        creditsPosted: UInt128 = 0, timestamp: UInt64 = 0
    ) {
        self.debitsPending = debitsPending
        self.debitsPosted = debitsPosted
        self.creditsPending = creditsPending
        self.creditsPosted = creditsPosted
        self.timestamp = timestamp
        self.reserved = Padding56()
    }
}

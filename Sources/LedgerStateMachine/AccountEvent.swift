import LedgerKit

/// One entry of the account-event log (state-machine spec §5.10): written for every successful
/// transfer and every expiry, with both accounts' balances *after* the event. It serves
/// `get_account_balances` (history) and `get_change_events` (change-data capture).
public struct AccountEvent: Hashable, Sendable {
    /// The event's timestamp: the transfer's, or the expiry's slot in its pulse.
    public var timestamp: UInt64
    /// The transfer this event renders: the transfer itself, or for an expiry the pending
    /// transfer that expired.
    public var transferTimestamp: UInt64
    /// The amount moved: posted amount for a post, the pending amount for a void or expiry.
    public var amount: UInt128
    /// The pending transfer's id for posted/voided/expired events, else 0.
    public var pendingId: UInt128
    public var debitAccount: AccountSnapshot
    public var creditAccount: AccountSnapshot
    public var ledger: UInt32
    public var pendingStatus: PendingStatus

    public init(
        timestamp: UInt64, transferTimestamp: UInt64, amount: UInt128, pendingId: UInt128,
        debitAccount: AccountSnapshot, creditAccount: AccountSnapshot, ledger: UInt32,
        pendingStatus: PendingStatus
    ) {
        self.timestamp = timestamp
        self.transferTimestamp = transferTimestamp
        self.amount = amount
        self.pendingId = pendingId
        self.debitAccount = debitAccount
        self.creditAccount = creditAccount
        self.ledger = ledger
        self.pendingStatus = pendingStatus
    }
}

/// An account's mutable state at one moment.
public struct AccountSnapshot: Hashable, Sendable {
    public var id: UInt128
    public var debitsPending: UInt128
    public var debitsPosted: UInt128
    public var creditsPending: UInt128
    public var creditsPosted: UInt128
    /// The account's creation timestamp.
    public var timestamp: UInt64
    public var flags: AccountFlags

    public init(_ account: Account) {
        id = account.id
        debitsPending = account.debitsPending
        debitsPosted = account.debitsPosted
        creditsPending = account.creditsPending
        creditsPosted = account.creditsPosted
        timestamp = account.timestamp
        flags = account.flags
    }
}

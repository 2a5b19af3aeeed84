import LedgerKit

/// A validated, normalized `query_accounts` filter. `matches` is the one definition of which
/// accounts a query selects; stores only choose how to find candidates.
public struct AccountQuery: Sendable, Equatable {
    public var userData128: UInt128
    public var userData64: UInt64
    public var userData32: UInt32
    public var ledger: UInt32
    public var code: UInt16
    /// Inclusive range, already defaulted to [1, TS_MAX].
    public var timestampMin: UInt64
    public var timestampMax: UInt64
    /// Already clamped to the result maximum; at least 1.
    public var limit: Int
    public var reversed: Bool

    @inline(__always)
    public func matches(_ account: Account) -> Bool {
        (userData128 == 0 || account.userData128 == userData128)
            && (userData64 == 0 || account.userData64 == userData64)
            && (userData32 == 0 || account.userData32 == userData32)
            && (ledger == 0 || account.ledger == ledger)
            && (code == 0 || account.code == code)
            && account.timestamp >= timestampMin && account.timestamp <= timestampMax
    }

    /// Whether `other` selects the same accounts in the same order, whatever its limit: a store
    /// that ran a query at prefetch answers execute's (whose limit may be clamped lower).
    public func sameSelection(as other: AccountQuery) -> Bool {
        var clamped = other
        clamped.limit = limit
        return clamped == self
    }
}

/// A validated, normalized transfer filter: `query_transfers` (no account) or
/// `get_account_transfers` (an account and the sides to match).
public struct TransferQuery: Sendable, Equatable {
    /// Zero: any account (query_transfers).
    public var accountId: UInt128
    public var debits: Bool
    public var credits: Bool
    public var userData128: UInt128
    public var userData64: UInt64
    public var userData32: UInt32
    public var ledger: UInt32
    public var code: UInt16
    public var timestampMin: UInt64
    public var timestampMax: UInt64
    public var limit: Int
    public var reversed: Bool

    @inline(__always)
    public func matches(_ transfer: Transfer) -> Bool {
        if accountId != 0 {
            let debitMatch = debits && transfer.debitAccountId == accountId
            let creditMatch = credits && transfer.creditAccountId == accountId
            if !debitMatch && !creditMatch { return false }
        }
        return (userData128 == 0 || transfer.userData128 == userData128)
            && (userData64 == 0 || transfer.userData64 == userData64)
            && (userData32 == 0 || transfer.userData32 == userData32)
            && (ledger == 0 || transfer.ledger == ledger)
            && (code == 0 || transfer.code == code)
            && transfer.timestamp >= timestampMin && transfer.timestamp <= timestampMax
    }

    /// Whether `other` selects the same transfers in the same order, whatever its limit.
    public func sameSelection(as other: TransferQuery) -> Bool {
        var clamped = other
        clamped.limit = limit
        return clamped == self
    }
}

/// The stable u16 ids of the forest's trees (storage spec §5 "Grooves"). They are written into
/// every value block, index block and manifest entry, so they never change once used; new
/// trees take new numbers.
public enum TreeId: UInt16, CaseIterable, Sendable {
    // Accounts groove.
    case accountsId = 1
    case accountsUserData128 = 2
    case accountsUserData64 = 3
    case accountsUserData32 = 4
    case accountsLedger = 5
    case accountsCode = 6
    case accountsObject = 7
    case accountsImported = 23
    case accountsClosed = 25
    // Transfers groove.
    case transfersId = 8
    case transfersDebitAccountId = 9
    case transfersCreditAccountId = 10
    case transfersAmount = 11
    case transfersPendingId = 12
    case transfersUserData128 = 13
    case transfersUserData64 = 14
    case transfersUserData32 = 15
    case transfersLedger = 16
    case transfersCode = 17
    case transfersObject = 18
    case transfersExpiresAt = 19
    case transfersImported = 24
    case transfersClosing = 26
    // Pending transfers groove.
    case transfersPendingObject = 20
    case transfersPendingStatus = 21
    // Account events groove (balance history, change events).
    case accountEventsObject = 22
    case accountEventsAccountTimestamp = 27
    case accountEventsPendingStatus = 28
    case accountEventsExpiredDebitAccountId = 29
    case accountEventsExpiredCreditAccountId = 30
    case accountEventsExpiredPendingId = 31
    case accountEventsExpiredLedger = 32
    case accountEventsPrunable = 33

    /// The case name, for logs and `ledger-inspect` (the enum deliberately has no custom
    /// `description`, so `String(describing:)` gives the case name).
    public var name: String { String(describing: self) }
}

import LedgerKit

// Accounts and transfers are the values of their grooves' object trees (storage spec §5),
// keyed by their creation timestamp, the synthetic primary key. Objects are never deleted
// (an account is closed by a flag, a transfer is immutable but for its pending status, kept in
// its own tree), so these trees hold no tombstones.

extension Account: TreeValue {
    public var key: UInt64 { timestamp }
    public var isTombstone: Bool { false }
    public static func tombstone(key: UInt64) -> Account {
        preconditionFailure("accounts are never deleted: the object tree has no tombstones")
    }
}

extension Transfer: TreeValue {
    public var key: UInt64 { timestamp }
    public var isTombstone: Bool { false }
    public static func tombstone(key: UInt64) -> Transfer {
        preconditionFailure("transfers are never deleted: the object tree has no tombstones")
    }
}

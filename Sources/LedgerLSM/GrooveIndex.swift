import LedgerKit

// What a groove stores and indexes (storage spec §5 "Grooves"): the object protocol, index
// declarations, and the accounts groove's index table.
//
// Index kinds: a u64 field (`CompositeKey64`), a u128 field (`CompositeKey128`), or a flag
// ("exists" index). Zero or nil values are not indexed (spec: zero optional values are not
// indexed). A flag-only index is stored as a `CompositeKey64` with field 0: 16 B per value
// instead of the spec's 8 B timestamp-only key, which saves a key type and a tree flavour; a
// scan of field 0 lists the flagged objects in timestamp order.

/// An object a groove stores, keyed by its u64 creation timestamp. Objects that clients name
/// by a u128 id conform to `IdentifiedGrooveObject` instead, and their groove keeps an id tree;
/// the others (pending statuses, account events) are found by timestamp only (Groove.swift).
public protocol GrooveObject: TreeValue where Key == UInt64 {
    var timestamp: UInt64 { get }
    /// The object's id, nil for an object without one. Not written by conforming types: the
    /// extensions below answer it (nil here, `id` for an `IdentifiedGrooveObject`), statically,
    /// so a specialized groove pays nothing for the choice.
    var grooveId: UInt128? { get }
    /// Whether objects of this type have ids (and their groove an id tree).
    static var hasGrooveId: Bool { get }
}

/// A groove object named by a u128 id: its groove has an id tree (id → timestamp).
public protocol IdentifiedGrooveObject: GrooveObject {
    var id: UInt128 { get }
}

extension GrooveObject {
    public var grooveId: UInt128? { nil }
    public static var hasGrooveId: Bool { false }
}

extension IdentifiedGrooveObject {
    public var grooveId: UInt128? { id }
    public static var hasGrooveId: Bool { true }
}

extension Account: IdentifiedGrooveObject {}
extension Transfer: IdentifiedGrooveObject {}

/// One index of a groove: its tree and how an object's key in it is derived.
public struct GrooveIndex<Object: GrooveObject> {
    public enum Derivation {
        /// A u64 field (nil or zero: not indexed).
        case u64((Object) -> UInt64?)
        /// A u128 field (nil or zero: not indexed).
        case u128((Object) -> UInt128?)
        /// A flag: objects with it set are indexed under field 0.
        case exists((Object) -> Bool)
    }

    public let treeId: UInt16
    public let derivation: Derivation

    public init(treeId: UInt16, _ derivation: Derivation) {
        self.treeId = treeId
        self.derivation = derivation
    }

    public init(_ treeId: TreeId, _ derivation: Derivation) {
        self.init(treeId: treeId.rawValue, derivation)
    }

    /// The field this index stores for `object` (u64 fields and flags as u128), nil when not
    /// indexed.
    func field(of object: Object) -> UInt128? {
        switch derivation {
        case .u64(let derive):
            guard let value = derive(object), value != 0 else { return nil }
            return UInt128(value)
        case .u128(let derive):
            guard let value = derive(object), value != 0 else { return nil }
            return value
        case .exists(let derive):
            return derive(object) ? 0 : nil
        }
    }

    var isWide: Bool {
        if case .u128 = derivation { return true }
        return false
    }
}

extension GrooveIndex where Object == Account {
    /// The accounts groove's indexes (storage spec §5): user_data_128/64/32, ledger, code,
    /// imported and closed (flag-only). Balances are not indexed.
    public static func accounts() -> [GrooveIndex<Account>] {
        [
            GrooveIndex(.accountsUserData128, .u128 { $0.userData128 }),
            GrooveIndex(.accountsUserData64, .u64 { $0.userData64 }),
            GrooveIndex(.accountsUserData32, .u64 { UInt64($0.userData32) }),
            GrooveIndex(.accountsLedger, .u64 { UInt64($0.ledger) }),
            GrooveIndex(.accountsCode, .u64 { UInt64($0.code) }),
            GrooveIndex(.accountsImported, .exists { $0.flags.contains(.imported) }),
            GrooveIndex(.accountsClosed, .exists { $0.flags.contains(.closed) }),
        ]
    }

    /// Whether `a` and `b` derive the same key in every index of `accounts()` (the fields it
    /// reads, and the two flags): an update that only moves balances derives none of them.
    /// Kept next to `accounts()` so the two change together; a test checks they agree.
    public static func accountsUnchanged(_ a: Account, _ b: Account) -> Bool {
        guard a.userData128 == b.userData128, a.userData64 == b.userData64, a.userData32 == b.userData32 else {
            return false
        }
        guard a.ledger == b.ledger, a.code == b.code else { return false }
        guard a.flags.contains(.imported) == b.flags.contains(.imported) else { return false }
        return a.flags.contains(.closed) == b.flags.contains(.closed)
    }
}

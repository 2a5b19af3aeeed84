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
    /// How many fields `indexField(_:number:)` derives: 0 (the default) when the type derives
    /// none statically and its groove calls each index's closure.
    static var indexFieldCount: Int { get }
    /// The key field of index `number` (0 ..< `indexFieldCount`) for `object`, nil when not
    /// indexed; the same answer as the closure of the index declared with that field number
    /// (a test checks both on random objects). A `switch` in the type's extension: a groove
    /// pays one witness call per index instead of a closure call, its context and an enum.
    static func indexField(_ object: Self, number: Int) -> UInt128?
}

/// A groove object named by a u128 id: its groove has an id tree (id → timestamp).
public protocol IdentifiedGrooveObject: GrooveObject {
    var id: UInt128 { get }
}

extension GrooveObject {
    public var grooveId: UInt128? { nil }
    public static var hasGrooveId: Bool { false }
    public static var indexFieldCount: Int { 0 }
    public static func indexField(_ object: Self, number: Int) -> UInt128? {
        preconditionFailure("a type without static index fields derives through its indexes' closures")
    }
}

extension IdentifiedGrooveObject {
    public var grooveId: UInt128? { id }
    public static var hasGrooveId: Bool { true }
}

extension Account: IdentifiedGrooveObject {
    public static var indexFieldCount: Int { 7 }

    /// `GrooveIndex<Account>.accounts()` field by field (its closures say the same).
    @inline(__always)
    public static func indexField(_ account: Account, number: Int) -> UInt128? {
        switch number {
        case 0: return nonZero(account.userData128)
        case 1: return nonZero(account.userData64)
        case 2: return nonZero(UInt64(account.userData32))
        case 3: return nonZero(UInt64(account.ledger))
        case 4: return nonZero(UInt64(account.code))
        case 5: return account.flags.contains(.imported) ? 0 : nil
        case 6: return account.flags.contains(.closed) ? 0 : nil
        default: preconditionFailure("an account has 7 index fields")
        }
    }
}

extension Transfer: IdentifiedGrooveObject {
    public static var indexFieldCount: Int { 11 }

    /// `GrooveIndex<Transfer>.transfers()` field by field (its closures say the same).
    @inline(__always)
    public static func indexField(_ transfer: Transfer, number: Int) -> UInt128? {
        switch number {
        case 0: return nonZero(transfer.debitAccountId)
        case 1: return nonZero(transfer.creditAccountId)
        case 2: return nonZero(transfer.amount)
        case 3: return nonZero(transfer.pendingId)
        case 4: return nonZero(transfer.userData128)
        case 5: return nonZero(transfer.userData64)
        case 6: return nonZero(UInt64(transfer.userData32))
        case 7: return nonZero(UInt64(transfer.ledger))
        case 8: return nonZero(UInt64(transfer.code))
        case 9: return transfer.flags.contains(.imported) ? 0 : nil
        case 10: return transfer.flags.isDisjoint(with: [.closingDebit, .closingCredit]) ? nil : 0
        default: preconditionFailure("a transfer has 11 index fields")
        }
    }
}

/// A field as an index key: zero is not indexed (spec §5).
@inline(__always)
private func nonZero(_ value: UInt128) -> UInt128? { value == 0 ? nil : value }

@inline(__always)
private func nonZero(_ value: UInt64) -> UInt128? { value == 0 ? nil : UInt128(value) }

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
    /// The `Object.indexField(_:number:)` field that derives the same key as `derivation`, nil
    /// when only the closure does. A groove whose index at position p has field number p for
    /// every p derives through `indexField` (Groove.swift, "Indexes").
    public let fieldNumber: Int?

    public init(treeId: UInt16, fieldNumber: Int? = nil, _ derivation: Derivation) {
        if let fieldNumber {
            precondition(fieldNumber >= 0, "a field number names one of the object's index fields")
            precondition(fieldNumber < Object.indexFieldCount, "a field number names one of the object's index fields")
        }
        self.treeId = treeId
        self.derivation = derivation
        self.fieldNumber = fieldNumber
    }

    public init(_ treeId: TreeId, fieldNumber: Int? = nil, _ derivation: Derivation) {
        self.init(treeId: treeId.rawValue, fieldNumber: fieldNumber, derivation)
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
            GrooveIndex(.accountsUserData128, fieldNumber: 0, .u128 { $0.userData128 }),
            GrooveIndex(.accountsUserData64, fieldNumber: 1, .u64 { $0.userData64 }),
            GrooveIndex(.accountsUserData32, fieldNumber: 2, .u64 { UInt64($0.userData32) }),
            GrooveIndex(.accountsLedger, fieldNumber: 3, .u64 { UInt64($0.ledger) }),
            GrooveIndex(.accountsCode, fieldNumber: 4, .u64 { UInt64($0.code) }),
            GrooveIndex(.accountsImported, fieldNumber: 5, .exists { $0.flags.contains(.imported) }),
            GrooveIndex(.accountsClosed, fieldNumber: 6, .exists { $0.flags.contains(.closed) }),
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

import LedgerKit
import LedgerStateMachine

// The two small objects of the forest store's id-less grooves (storage spec §5 "Grooves":
// transfers_pending object 20, account_events object 22), each a `TreeValue` keyed by its u64
// timestamp, with a fixed layout and no hidden padding (every byte is a declared field; the
// reserved ones are zero). Tests check sizes and offsets against the tables below.
//
// Neither is ever deleted: a pending status changes by putting the record again under the same
// timestamp (the newer value wins), and account events are append-only. `tombstone` traps.
//
// Decoding: a record read from disk passed a block checksum, so an unknown pending-status byte
// means a bug or a hostile writer, not a torn sector. It is still not a crash: `status` and
// `event` are failable (nil for such a byte: cheap for the execute path, which treats it as a
// broken invariant), and `decodeStatus()` / `decodeEvent()` throw `StoreRecordError` naming the
// byte and the record, for a caller that reports it like any corrupt block.

/// Why a stored record does not decode.
public enum StoreRecordError: Error, Equatable, Sendable {
    /// The pending-status byte names no `PendingStatus`.
    case unknownPendingStatus(UInt8, timestamp: UInt64)
}

/// A transfer's pending status (16 B), the object of the TransfersPending groove (tree 20).
///
/// | offset | size | field |
/// | 0 | 8 | transfer timestamp (the key) |
/// | 8 | 1 | status (`PendingStatus` raw value) |
/// | 9 | 7 | reserved, zero |
public struct TransferPendingRecord: TreeValue, GrooveObject, Equatable {
    public var timestamp: UInt64
    public var statusRaw: UInt8
    public var reserved8: UInt8 = 0
    public var reserved16: UInt16 = 0
    public var reserved32: UInt32 = 0

    public init(timestamp: UInt64, status: PendingStatus) {
        self.timestamp = timestamp
        statusRaw = status.rawValue
    }

    /// The status, nil for a byte no `PendingStatus` has.
    public var status: PendingStatus? { PendingStatus(rawValue: statusRaw) }

    /// The status, or a typed error for a byte no `PendingStatus` has.
    public func decodeStatus() throws(StoreRecordError) -> PendingStatus {
        guard let status else { throw .unknownPendingStatus(statusRaw, timestamp: timestamp) }
        return status
    }

    public var key: UInt64 { timestamp }
    public var isTombstone: Bool { false }
    public static func tombstone(key: UInt64) -> TransferPendingRecord {
        preconditionFailure("pending statuses are never deleted: their tree has no tombstones")
    }
}

/// An account's balances at one event (96 B), inside `AccountEventRecord`.
///
/// | offset | size | field |
/// | 0 | 16 | account id |
/// | 16 | 16 | debits pending |
/// | 32 | 16 | debits posted |
/// | 48 | 16 | credits pending |
/// | 64 | 16 | credits posted |
/// | 80 | 8 | account timestamp |
/// | 88 | 2 | account flags |
/// | 90 | 6 | reserved, zero |
public struct AccountSnapshotRecord: Sendable, BitwiseCopyable, Equatable {
    public var id: UInt128
    public var debitsPending: UInt128
    public var debitsPosted: UInt128
    public var creditsPending: UInt128
    public var creditsPosted: UInt128
    public var timestamp: UInt64
    public var flagsRaw: UInt16
    public var reserved16: UInt16 = 0
    public var reserved32: UInt32 = 0

    public init(_ snapshot: AccountSnapshot) {
        id = snapshot.id
        debitsPending = snapshot.debitsPending
        debitsPosted = snapshot.debitsPosted
        creditsPending = snapshot.creditsPending
        creditsPosted = snapshot.creditsPosted
        timestamp = snapshot.timestamp
        flagsRaw = snapshot.flags.rawValue
    }

    /// Every u16 is a valid `AccountFlags` (unknown bits are kept, as the wire keeps them).
    public var snapshot: AccountSnapshot {
        AccountSnapshot(Account(
            id: id, debitsPending: debitsPending, debitsPosted: debitsPosted, creditsPending: creditsPending,
            creditsPosted: creditsPosted, flags: AccountFlags(rawValue: flagsRaw), timestamp: timestamp))
    }
}

/// One account event (256 B), the object of the AccountEvents groove (tree 22).
///
/// | offset | size | field |
/// | 0 | 8 | timestamp (the key) |
/// | 8 | 8 | transfer timestamp |
/// | 16 | 16 | amount |
/// | 32 | 16 | pending id |
/// | 48 | 4 | ledger |
/// | 52 | 1 | pending status (`PendingStatus` raw value) |
/// | 53 | 11 | reserved, zero |
/// | 64 | 96 | debit account snapshot (`AccountSnapshotRecord`) |
/// | 160 | 96 | credit account snapshot |
public struct AccountEventRecord: TreeValue, GrooveObject, Equatable {
    public var timestamp: UInt64
    public var transferTimestamp: UInt64
    public var amount: UInt128
    public var pendingId: UInt128
    public var ledger: UInt32
    public var pendingStatusRaw: UInt8
    public var reserved8: UInt8 = 0
    public var reserved16: UInt16 = 0
    public var reserved64: UInt64 = 0
    public var debitAccount: AccountSnapshotRecord
    public var creditAccount: AccountSnapshotRecord

    public init(_ event: AccountEvent) {
        timestamp = event.timestamp
        transferTimestamp = event.transferTimestamp
        amount = event.amount
        pendingId = event.pendingId
        ledger = event.ledger
        pendingStatusRaw = event.pendingStatus.rawValue
        debitAccount = AccountSnapshotRecord(event.debitAccount)
        creditAccount = AccountSnapshotRecord(event.creditAccount)
    }

    /// The event, nil if the pending-status byte names no `PendingStatus`.
    public var event: AccountEvent? {
        guard let status = PendingStatus(rawValue: pendingStatusRaw) else { return nil }
        return AccountEvent(
            timestamp: timestamp, transferTimestamp: transferTimestamp, amount: amount, pendingId: pendingId,
            debitAccount: debitAccount.snapshot, creditAccount: creditAccount.snapshot, ledger: ledger,
            pendingStatus: status)
    }

    /// The event, or a typed error for a pending-status byte no `PendingStatus` has.
    public func decodeEvent() throws(StoreRecordError) -> AccountEvent {
        guard let event else { throw .unknownPendingStatus(pendingStatusRaw, timestamp: timestamp) }
        return event
    }

    public var key: UInt64 { timestamp }
    public var isTombstone: Bool { false }
    public static func tombstone(key: UInt64) -> AccountEventRecord {
        preconditionFailure("account events are never deleted: their tree has no tombstones")
    }
}

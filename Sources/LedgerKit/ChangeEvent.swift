/// `ChangeEventType` (u8 on the wire), kept as a raw-value struct so that the record keeps its
/// one-byte layout and an unknown value from a newer peer is representable.
public struct ChangeEventType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let singlePhase = ChangeEventType(rawValue: 0)
    public static let twoPhasePending = ChangeEventType(rawValue: 1)
    public static let twoPhasePosted = ChangeEventType(rawValue: 2)
    public static let twoPhaseVoided = ChangeEventType(rawValue: 3)
    public static let twoPhaseExpired = ChangeEventType(rawValue: 4)

    public var description: String {
        switch rawValue {
        case 0: "single_phase"
        case 1: "two_phase_pending"
        case 2: "two_phase_posted"
        case 3: "two_phase_voided"
        case 4: "two_phase_expired"
        default: "change_event_type(\(rawValue))"
        }
    }
}

/// `ChangeEvent` (384 bytes = one transfer and two accounts): a result of `get_change_events`.
public struct ChangeEvent: Hashable, Sendable {
    public var transferId: UInt128
    public var transferAmount: UInt128
    public var transferPendingId: UInt128
    public var transferUserData128: UInt128
    public var transferUserData64: UInt64
    public var transferUserData32: UInt32
    public var transferTimeout: UInt32
    public var transferCode: UInt16
    public var transferFlags: TransferFlags
    public var ledger: UInt32
    public var type: ChangeEventType
    /// 39 reserved bytes at offset 89.
    public var reserved0: UInt8
    public var reserved1: UInt16
    public var reserved2: UInt32
    public var reserved3: Padding32

    public var debitAccountId: UInt128
    public var debitAccountDebitsPending: UInt128
    public var debitAccountDebitsPosted: UInt128
    public var debitAccountCreditsPending: UInt128
    public var debitAccountCreditsPosted: UInt128
    public var debitAccountUserData128: UInt128
    public var debitAccountUserData64: UInt64
    public var debitAccountUserData32: UInt32
    public var debitAccountCode: UInt16
    public var debitAccountFlags: AccountFlags

    public var creditAccountId: UInt128
    public var creditAccountDebitsPending: UInt128
    public var creditAccountDebitsPosted: UInt128
    public var creditAccountCreditsPending: UInt128
    public var creditAccountCreditsPosted: UInt128
    public var creditAccountUserData128: UInt128
    public var creditAccountUserData64: UInt64
    public var creditAccountUserData32: UInt32
    public var creditAccountCode: UInt16
    public var creditAccountFlags: AccountFlags

    /// The event's timestamp.
    public var timestamp: UInt64
    public var transferTimestamp: UInt64
    public var debitAccountTimestamp: UInt64
    public var creditAccountTimestamp: UInt64

    /// An all-zero event.
    public init() {
        transferId = 0
        transferAmount = 0
        transferPendingId = 0
        transferUserData128 = 0
        transferUserData64 = 0
        transferUserData32 = 0
        transferTimeout = 0
        transferCode = 0
        transferFlags = []
        ledger = 0
        type = .singlePhase
        reserved0 = 0
        reserved1 = 0
        reserved2 = 0
        reserved3 = Padding32()
        debitAccountId = 0
        debitAccountDebitsPending = 0
        debitAccountDebitsPosted = 0
        debitAccountCreditsPending = 0
        debitAccountCreditsPosted = 0
        debitAccountUserData128 = 0
        debitAccountUserData64 = 0
        debitAccountUserData32 = 0
        debitAccountCode = 0
        debitAccountFlags = []
        creditAccountId = 0
        creditAccountDebitsPending = 0
        creditAccountDebitsPosted = 0
        creditAccountCreditsPending = 0
        creditAccountCreditsPosted = 0
        creditAccountUserData128 = 0
        creditAccountUserData64 = 0
        creditAccountUserData32 = 0
        creditAccountCode = 0
        creditAccountFlags = []
        timestamp = 0
        transferTimestamp = 0
        debitAccountTimestamp = 0
        creditAccountTimestamp = 0
    }
}

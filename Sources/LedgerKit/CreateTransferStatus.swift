/// `CreateTransferStatus` (u32 on the wire). The outcome of one event of `create_transfers`.
///
/// A raw-value struct rather than an enum: it keeps the 4-byte layout inside the result record,
/// and a value this build does not know (from a newer peer) stays representable. `allCases` lists
/// the known codes in the spec's precedence order (the order of the checks).
public struct CreateTransferStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let created = CreateTransferStatus(rawValue: 0xFFFF_FFFF)
    public static let deprecatedOk = CreateTransferStatus(rawValue: 0)
    public static let linkedEventFailed = CreateTransferStatus(rawValue: 1)
    public static let linkedEventChainOpen = CreateTransferStatus(rawValue: 2)
    public static let importedEventExpected = CreateTransferStatus(rawValue: 56)
    public static let importedEventNotExpected = CreateTransferStatus(rawValue: 57)
    public static let timestampMustBeZero = CreateTransferStatus(rawValue: 3)
    public static let importedEventTimestampOutOfRange = CreateTransferStatus(rawValue: 58)
    public static let importedEventTimestampMustNotAdvance = CreateTransferStatus(rawValue: 59)
    public static let reservedFlag = CreateTransferStatus(rawValue: 4)
    public static let idMustNotBeZero = CreateTransferStatus(rawValue: 5)
    public static let idMustNotBeIntMax = CreateTransferStatus(rawValue: 6)
    public static let existsWithDifferentFlags = CreateTransferStatus(rawValue: 36)
    public static let existsWithDifferentPendingId = CreateTransferStatus(rawValue: 40)
    public static let existsWithDifferentTimeout = CreateTransferStatus(rawValue: 44)
    public static let existsWithDifferentDebitAccountId = CreateTransferStatus(rawValue: 37)
    public static let existsWithDifferentCreditAccountId = CreateTransferStatus(rawValue: 38)
    public static let existsWithDifferentAmount = CreateTransferStatus(rawValue: 39)
    public static let existsWithDifferentUserData128 = CreateTransferStatus(rawValue: 41)
    public static let existsWithDifferentUserData64 = CreateTransferStatus(rawValue: 42)
    public static let existsWithDifferentUserData32 = CreateTransferStatus(rawValue: 43)
    public static let existsWithDifferentLedger = CreateTransferStatus(rawValue: 67)
    public static let existsWithDifferentCode = CreateTransferStatus(rawValue: 45)
    public static let exists = CreateTransferStatus(rawValue: 46)
    public static let idAlreadyFailed = CreateTransferStatus(rawValue: 68)
    public static let flagsAreMutuallyExclusive = CreateTransferStatus(rawValue: 7)
    public static let debitAccountIdMustNotBeZero = CreateTransferStatus(rawValue: 8)
    public static let debitAccountIdMustNotBeIntMax = CreateTransferStatus(rawValue: 9)
    public static let creditAccountIdMustNotBeZero = CreateTransferStatus(rawValue: 10)
    public static let creditAccountIdMustNotBeIntMax = CreateTransferStatus(rawValue: 11)
    public static let accountsMustBeDifferent = CreateTransferStatus(rawValue: 12)
    public static let pendingIdMustBeZero = CreateTransferStatus(rawValue: 13)
    public static let pendingIdMustNotBeZero = CreateTransferStatus(rawValue: 14)
    public static let pendingIdMustNotBeIntMax = CreateTransferStatus(rawValue: 15)
    public static let pendingIdMustBeDifferent = CreateTransferStatus(rawValue: 16)
    public static let timeoutReservedForPendingTransfer = CreateTransferStatus(rawValue: 17)
    public static let closingTransferMustBePending = CreateTransferStatus(rawValue: 64)
    public static let ledgerMustNotBeZero = CreateTransferStatus(rawValue: 19)
    public static let codeMustNotBeZero = CreateTransferStatus(rawValue: 20)
    public static let debitAccountNotFound = CreateTransferStatus(rawValue: 21)
    public static let creditAccountNotFound = CreateTransferStatus(rawValue: 22)
    public static let accountsMustHaveTheSameLedger = CreateTransferStatus(rawValue: 23)
    public static let transferMustHaveTheSameLedgerAsAccounts = CreateTransferStatus(rawValue: 24)
    public static let pendingTransferNotFound = CreateTransferStatus(rawValue: 25)
    public static let pendingTransferNotPending = CreateTransferStatus(rawValue: 26)
    public static let pendingTransferHasDifferentDebitAccountId = CreateTransferStatus(rawValue: 27)
    public static let pendingTransferHasDifferentCreditAccountId = CreateTransferStatus(rawValue: 28)
    public static let pendingTransferHasDifferentLedger = CreateTransferStatus(rawValue: 29)
    public static let pendingTransferHasDifferentCode = CreateTransferStatus(rawValue: 30)
    public static let exceedsPendingTransferAmount = CreateTransferStatus(rawValue: 31)
    public static let pendingTransferHasDifferentAmount = CreateTransferStatus(rawValue: 32)
    public static let pendingTransferAlreadyPosted = CreateTransferStatus(rawValue: 33)
    public static let pendingTransferAlreadyVoided = CreateTransferStatus(rawValue: 34)
    public static let pendingTransferExpired = CreateTransferStatus(rawValue: 35)
    public static let importedEventTimestampMustNotRegress = CreateTransferStatus(rawValue: 60)
    public static let importedEventTimestampMustPostdateDebitAccount = CreateTransferStatus(rawValue: 61)
    public static let importedEventTimestampMustPostdateCreditAccount = CreateTransferStatus(rawValue: 62)
    public static let importedEventTimeoutMustBeZero = CreateTransferStatus(rawValue: 63)
    public static let debitAccountAlreadyClosed = CreateTransferStatus(rawValue: 65)
    public static let creditAccountAlreadyClosed = CreateTransferStatus(rawValue: 66)
    public static let overflowsDebitsPending = CreateTransferStatus(rawValue: 47)
    public static let overflowsCreditsPending = CreateTransferStatus(rawValue: 48)
    public static let overflowsDebitsPosted = CreateTransferStatus(rawValue: 49)
    public static let overflowsCreditsPosted = CreateTransferStatus(rawValue: 50)
    public static let overflowsDebits = CreateTransferStatus(rawValue: 51)
    public static let overflowsCredits = CreateTransferStatus(rawValue: 52)
    public static let overflowsTimeout = CreateTransferStatus(rawValue: 53)
    public static let exceedsCredits = CreateTransferStatus(rawValue: 54)
    public static let exceedsDebits = CreateTransferStatus(rawValue: 55)
    public static let deprecated18 = CreateTransferStatus(rawValue: 18)

    /// Every known code, success first, then the failures in precedence order.
    public static let allCases: [CreateTransferStatus] = [
        .created,
        .deprecatedOk,
        .linkedEventFailed,
        .linkedEventChainOpen,
        .importedEventExpected,
        .importedEventNotExpected,
        .timestampMustBeZero,
        .importedEventTimestampOutOfRange,
        .importedEventTimestampMustNotAdvance,
        .reservedFlag,
        .idMustNotBeZero,
        .idMustNotBeIntMax,
        .existsWithDifferentFlags,
        .existsWithDifferentPendingId,
        .existsWithDifferentTimeout,
        .existsWithDifferentDebitAccountId,
        .existsWithDifferentCreditAccountId,
        .existsWithDifferentAmount,
        .existsWithDifferentUserData128,
        .existsWithDifferentUserData64,
        .existsWithDifferentUserData32,
        .existsWithDifferentLedger,
        .existsWithDifferentCode,
        .exists,
        .idAlreadyFailed,
        .flagsAreMutuallyExclusive,
        .debitAccountIdMustNotBeZero,
        .debitAccountIdMustNotBeIntMax,
        .creditAccountIdMustNotBeZero,
        .creditAccountIdMustNotBeIntMax,
        .accountsMustBeDifferent,
        .pendingIdMustBeZero,
        .pendingIdMustNotBeZero,
        .pendingIdMustNotBeIntMax,
        .pendingIdMustBeDifferent,
        .timeoutReservedForPendingTransfer,
        .closingTransferMustBePending,
        .ledgerMustNotBeZero,
        .codeMustNotBeZero,
        .debitAccountNotFound,
        .creditAccountNotFound,
        .accountsMustHaveTheSameLedger,
        .transferMustHaveTheSameLedgerAsAccounts,
        .pendingTransferNotFound,
        .pendingTransferNotPending,
        .pendingTransferHasDifferentDebitAccountId,
        .pendingTransferHasDifferentCreditAccountId,
        .pendingTransferHasDifferentLedger,
        .pendingTransferHasDifferentCode,
        .exceedsPendingTransferAmount,
        .pendingTransferHasDifferentAmount,
        .pendingTransferAlreadyPosted,
        .pendingTransferAlreadyVoided,
        .pendingTransferExpired,
        .importedEventTimestampMustNotRegress,
        .importedEventTimestampMustPostdateDebitAccount,
        .importedEventTimestampMustPostdateCreditAccount,
        .importedEventTimeoutMustBeZero,
        .debitAccountAlreadyClosed,
        .creditAccountAlreadyClosed,
        .overflowsDebitsPending,
        .overflowsCreditsPending,
        .overflowsDebitsPosted,
        .overflowsCreditsPosted,
        .overflowsDebits,
        .overflowsCredits,
        .overflowsTimeout,
        .exceedsCredits,
        .exceedsDebits,
        .deprecated18,
    ]

    /// A transfer id that fails with a transient code can never be used again
    /// (`idAlreadyFailed`): the failure depended on state that may change later.
    public var isTransient: Bool {
        switch self {
        case .debitAccountNotFound, .creditAccountNotFound, .pendingTransferNotFound,
            .debitAccountAlreadyClosed, .creditAccountAlreadyClosed, .exceedsCredits,
            .exceedsDebits:
            true
        default: false
        }
    }

    /// The spec's snake_case name.
    public var description: String {
        switch rawValue {
        case 0xFFFF_FFFF: "created"
        case 0: "deprecated_ok"
        case 1: "linked_event_failed"
        case 2: "linked_event_chain_open"
        case 56: "imported_event_expected"
        case 57: "imported_event_not_expected"
        case 3: "timestamp_must_be_zero"
        case 58: "imported_event_timestamp_out_of_range"
        case 59: "imported_event_timestamp_must_not_advance"
        case 4: "reserved_flag"
        case 5: "id_must_not_be_zero"
        case 6: "id_must_not_be_int_max"
        case 36: "exists_with_different_flags"
        case 40: "exists_with_different_pending_id"
        case 44: "exists_with_different_timeout"
        case 37: "exists_with_different_debit_account_id"
        case 38: "exists_with_different_credit_account_id"
        case 39: "exists_with_different_amount"
        case 41: "exists_with_different_user_data_128"
        case 42: "exists_with_different_user_data_64"
        case 43: "exists_with_different_user_data_32"
        case 67: "exists_with_different_ledger"
        case 45: "exists_with_different_code"
        case 46: "exists"
        case 68: "id_already_failed"
        case 7: "flags_are_mutually_exclusive"
        case 8: "debit_account_id_must_not_be_zero"
        case 9: "debit_account_id_must_not_be_int_max"
        case 10: "credit_account_id_must_not_be_zero"
        case 11: "credit_account_id_must_not_be_int_max"
        case 12: "accounts_must_be_different"
        case 13: "pending_id_must_be_zero"
        case 14: "pending_id_must_not_be_zero"
        case 15: "pending_id_must_not_be_int_max"
        case 16: "pending_id_must_be_different"
        case 17: "timeout_reserved_for_pending_transfer"
        case 64: "closing_transfer_must_be_pending"
        case 19: "ledger_must_not_be_zero"
        case 20: "code_must_not_be_zero"
        case 21: "debit_account_not_found"
        case 22: "credit_account_not_found"
        case 23: "accounts_must_have_the_same_ledger"
        case 24: "transfer_must_have_the_same_ledger_as_accounts"
        case 25: "pending_transfer_not_found"
        case 26: "pending_transfer_not_pending"
        case 27: "pending_transfer_has_different_debit_account_id"
        case 28: "pending_transfer_has_different_credit_account_id"
        case 29: "pending_transfer_has_different_ledger"
        case 30: "pending_transfer_has_different_code"
        case 31: "exceeds_pending_transfer_amount"
        case 32: "pending_transfer_has_different_amount"
        case 33: "pending_transfer_already_posted"
        case 34: "pending_transfer_already_voided"
        case 35: "pending_transfer_expired"
        case 60: "imported_event_timestamp_must_not_regress"
        case 61: "imported_event_timestamp_must_postdate_debit_account"
        case 62: "imported_event_timestamp_must_postdate_credit_account"
        case 63: "imported_event_timeout_must_be_zero"
        case 65: "debit_account_already_closed"
        case 66: "credit_account_already_closed"
        case 47: "overflows_debits_pending"
        case 48: "overflows_credits_pending"
        case 49: "overflows_debits_posted"
        case 50: "overflows_credits_posted"
        case 51: "overflows_debits"
        case 52: "overflows_credits"
        case 53: "overflows_timeout"
        case 54: "exceeds_credits"
        case 55: "exceeds_debits"
        case 18: "deprecated_18"
        default: "CreateTransferStatus(\(rawValue))"
        }
    }
}

/// `CreateAccountStatus` (u32 on the wire). The outcome of one event of `create_accounts`.
///
/// A raw-value struct rather than an enum: it keeps the 4-byte layout inside the result record,
/// and a value this build does not know (from a newer peer) stays representable. `allCases` lists
/// the known codes in the spec's precedence order (the order of the checks).
public struct CreateAccountStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let created = CreateAccountStatus(rawValue: 0xFFFF_FFFF)
    public static let deprecatedOk = CreateAccountStatus(rawValue: 0)
    public static let linkedEventFailed = CreateAccountStatus(rawValue: 1)
    public static let linkedEventChainOpen = CreateAccountStatus(rawValue: 2)
    public static let importedEventExpected = CreateAccountStatus(rawValue: 22)
    public static let importedEventNotExpected = CreateAccountStatus(rawValue: 23)
    public static let timestampMustBeZero = CreateAccountStatus(rawValue: 3)
    public static let importedEventTimestampOutOfRange = CreateAccountStatus(rawValue: 24)
    public static let importedEventTimestampMustNotAdvance = CreateAccountStatus(rawValue: 25)
    public static let reservedField = CreateAccountStatus(rawValue: 4)
    public static let reservedFlag = CreateAccountStatus(rawValue: 5)
    public static let idMustNotBeZero = CreateAccountStatus(rawValue: 6)
    public static let idMustNotBeIntMax = CreateAccountStatus(rawValue: 7)
    public static let existsWithDifferentFlags = CreateAccountStatus(rawValue: 15)
    public static let existsWithDifferentUserData128 = CreateAccountStatus(rawValue: 16)
    public static let existsWithDifferentUserData64 = CreateAccountStatus(rawValue: 17)
    public static let existsWithDifferentUserData32 = CreateAccountStatus(rawValue: 18)
    public static let existsWithDifferentLedger = CreateAccountStatus(rawValue: 19)
    public static let existsWithDifferentCode = CreateAccountStatus(rawValue: 20)
    public static let exists = CreateAccountStatus(rawValue: 21)
    public static let flagsAreMutuallyExclusive = CreateAccountStatus(rawValue: 8)
    public static let debitsPendingMustBeZero = CreateAccountStatus(rawValue: 9)
    public static let debitsPostedMustBeZero = CreateAccountStatus(rawValue: 10)
    public static let creditsPendingMustBeZero = CreateAccountStatus(rawValue: 11)
    public static let creditsPostedMustBeZero = CreateAccountStatus(rawValue: 12)
    public static let ledgerMustNotBeZero = CreateAccountStatus(rawValue: 13)
    public static let codeMustNotBeZero = CreateAccountStatus(rawValue: 14)
    public static let importedEventTimestampMustNotRegress = CreateAccountStatus(rawValue: 26)

    /// Every known code, success first, then the failures in precedence order.
    public static let allCases: [CreateAccountStatus] = [
        .created,
        .deprecatedOk,
        .linkedEventFailed,
        .linkedEventChainOpen,
        .importedEventExpected,
        .importedEventNotExpected,
        .timestampMustBeZero,
        .importedEventTimestampOutOfRange,
        .importedEventTimestampMustNotAdvance,
        .reservedField,
        .reservedFlag,
        .idMustNotBeZero,
        .idMustNotBeIntMax,
        .existsWithDifferentFlags,
        .existsWithDifferentUserData128,
        .existsWithDifferentUserData64,
        .existsWithDifferentUserData32,
        .existsWithDifferentLedger,
        .existsWithDifferentCode,
        .exists,
        .flagsAreMutuallyExclusive,
        .debitsPendingMustBeZero,
        .debitsPostedMustBeZero,
        .creditsPendingMustBeZero,
        .creditsPostedMustBeZero,
        .ledgerMustNotBeZero,
        .codeMustNotBeZero,
        .importedEventTimestampMustNotRegress,
    ]

    /// The spec's snake_case name.
    public var description: String {
        switch rawValue {
        case 0xFFFF_FFFF: "created"
        case 0: "deprecated_ok"
        case 1: "linked_event_failed"
        case 2: "linked_event_chain_open"
        case 22: "imported_event_expected"
        case 23: "imported_event_not_expected"
        case 3: "timestamp_must_be_zero"
        case 24: "imported_event_timestamp_out_of_range"
        case 25: "imported_event_timestamp_must_not_advance"
        case 4: "reserved_field"
        case 5: "reserved_flag"
        case 6: "id_must_not_be_zero"
        case 7: "id_must_not_be_int_max"
        case 15: "exists_with_different_flags"
        case 16: "exists_with_different_user_data_128"
        case 17: "exists_with_different_user_data_64"
        case 18: "exists_with_different_user_data_32"
        case 19: "exists_with_different_ledger"
        case 20: "exists_with_different_code"
        case 21: "exists"
        case 8: "flags_are_mutually_exclusive"
        case 9: "debits_pending_must_be_zero"
        case 10: "debits_posted_must_be_zero"
        case 11: "credits_pending_must_be_zero"
        case 12: "credits_posted_must_be_zero"
        case 13: "ledger_must_not_be_zero"
        case 14: "code_must_not_be_zero"
        case 26: "imported_event_timestamp_must_not_regress"
        default: "CreateAccountStatus(\(rawValue))"
        }
    }
}

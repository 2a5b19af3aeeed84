import LedgerKit

// The transfers groove's index table (storage spec §5 "Grooves": transfers id 8, debit 9,
// credit 10, amount 11, pending_id 12, user_data 13–15, ledger 16, code 17, object 18,
// imported 24, closing 26). The id and object trees are the groove's own (`GrooveConfiguration`);
// this file lists only the index trees, in tree-id order.
//
// expires_at (tree 19) is not a derived index here: a derived key cannot be dropped when its
// pending transfer is posted, voided or expired (transfers are immutable, so the groove never
// sees a change that would tombstone it). The forest store keeps the expiry schedule as its own
// tree of `CompositeKey64(field: expiresAt, timestamp:)`, putting a key when a transfer is
// scheduled and its tombstone when it leaves the schedule; `expiresAt(of:)` below computes it.
//
// Zero fields are not indexed (the generic `GrooveIndex` rule, spec §5 "Zero optional values are
// not indexed"). That includes `amount` 0 and `pending_id` 0 (every transfer that is not a post
// or void), so neither tree holds a key per plain transfer: a query for amount 0 cannot use the
// amount tree. Transfers are immutable, so the indexes only ever see inserts.

extension GrooveIndex where Object == Transfer {
    /// NS_PER_S of the state-machine spec's expiry rule.
    static var nanosecondsPerSecond: UInt64 { 1_000_000_000 }

    /// The derived `expires_at` of `transfer` (state-machine spec §2 item 5 "Expiry schedule":
    /// "for every pending transfer with `timeout > 0` ... `expires_at = timestamp + timeout ×
    /// NS_PER_S`"; §5.4 step 32), nil when the transfer never expires: not pending, or timeout 0
    /// (posts and voids are stored with timeout 0, §5.6; imported pending transfers cannot have a
    /// timeout, §7.3). The state machine rejects a sum past 2^63 - 1 (`overflows_timeout`, §5.4
    /// step 29), so a larger sum only comes from a hostile or corrupt object: nil rather than a
    /// trap (u32 seconds × 10^9 itself always fits in a u64; the check costs nothing).
    public static func expiresAt(of transfer: Transfer) -> UInt64? {
        guard transfer.flags.contains(.pending), transfer.timeout > 0 else { return nil }
        let (timeoutNs, productOverflow) = UInt64(transfer.timeout).multipliedReportingOverflow(by: nanosecondsPerSecond)
        guard !productOverflow else { return nil }
        let (expiresAt, sumOverflow) = transfer.timestamp.addingReportingOverflow(timeoutNs)
        guard !sumOverflow, expiresAt <= UInt64(Int64.max) else { return nil }
        return expiresAt
    }

    /// The transfers groove's indexes (storage spec §5), in tree-id order: debit_account_id,
    /// credit_account_id, amount, pending_id, user_data_128 (u128 keys); user_data_64/32, ledger,
    /// code (u64 keys); imported and closing (`closing_debit` or `closing_credit`) flag-only.
    public static func transfers() -> [GrooveIndex<Transfer>] {
        [
            GrooveIndex(.transfersDebitAccountId, fieldNumber: 0, .u128 { $0.debitAccountId }),
            GrooveIndex(.transfersCreditAccountId, fieldNumber: 1, .u128 { $0.creditAccountId }),
            GrooveIndex(.transfersAmount, fieldNumber: 2, .u128 { $0.amount }),
            GrooveIndex(.transfersPendingId, fieldNumber: 3, .u128 { $0.pendingId }),
            GrooveIndex(.transfersUserData128, fieldNumber: 4, .u128 { $0.userData128 }),
            GrooveIndex(.transfersUserData64, fieldNumber: 5, .u64 { $0.userData64 }),
            GrooveIndex(.transfersUserData32, fieldNumber: 6, .u64 { UInt64($0.userData32) }),
            GrooveIndex(.transfersLedger, fieldNumber: 7, .u64 { UInt64($0.ledger) }),
            GrooveIndex(.transfersCode, fieldNumber: 8, .u64 { UInt64($0.code) }),
            GrooveIndex(.transfersImported, fieldNumber: 9, .exists { $0.flags.contains(.imported) }),
            GrooveIndex(
                .transfersClosing, fieldNumber: 10,
                .exists { !$0.flags.isDisjoint(with: [.closingDebit, .closingCredit]) }),
        ]
    }
}

import LedgerKit

extension StateMachine {
    /// `create_accounts` for one batch with batch timestamp `batchTimestamp` (spec §4.3–4.4).
    public func createAccounts(
        _ events: UnsafeBufferPointer<Account>, batchTimestamp: UInt64,
        results: UnsafeMutableBufferPointer<CreateAccountResult>
    ) {
        executeCreateBatch(
            events: events, batchTimestamp: batchTimestamp, results: results,
            isTransient: { _ in false },  // create_accounts has no transient codes.
            hint: { account, timestamp, records in
                if !records {
                    store.hint(
                        accountId: account.id, otherAccountId: 0, transferId: 0, timestamp: timestamp, pending: false,
                        records: false)
                }
            },
            createOne: { account, slotTimestamp in createAccount(account, slotTimestamp) })
    }

    /// The per-account checks of spec §5.2, in precedence order, and the success effects.
    func createAccount(_ a: Account, _ slotTimestamp: UInt64) -> (CreateAccountStatus, UInt64) {
        if a.reserved != 0 { return (.reservedField, 0) }
        if !a.flags.isDisjoint(with: .padding) { return (.reservedFlag, 0) }
        if a.id == 0 { return (.idMustNotBeZero, 0) }
        if a.id == UInt128.max { return (.idMustNotBeIntMax, 0) }

        if let index = store.accountIndex(id: a.id) {
            let e = store.account(at: index)
            return (accountExistsStatus(a, e), e.timestamp)
        }

        if a.flags.contains(.debitsMustNotExceedCredits)
            && a.flags.contains(.creditsMustNotExceedDebits)
        {
            return (.flagsAreMutuallyExclusive, 0)
        }
        if a.debitsPending != 0 { return (.debitsPendingMustBeZero, 0) }
        if a.debitsPosted != 0 { return (.debitsPostedMustBeZero, 0) }
        if a.creditsPending != 0 { return (.creditsPendingMustBeZero, 0) }
        if a.creditsPosted != 0 { return (.creditsPostedMustBeZero, 0) }
        if a.ledger == 0 { return (.ledgerMustNotBeZero, 0) }
        if a.code == 0 { return (.codeMustNotBeZero, 0) }

        let imported = a.flags.contains(.imported)
        if imported {
            if store.accountTimestampMax > 0 && a.timestamp <= store.accountTimestampMax {
                return (.importedEventTimestampMustNotRegress, 0)
            }
            if store.transferExists(timestamp: a.timestamp) {
                return (.importedEventTimestampMustNotRegress, 0)
            }
            // Q1 (docs/decisions.md): an imported timestamp inside this batch's own future
            // slots would collide with a later event; the reference asserts, we reject.
            if a.timestamp > slotTimestamp {
                return (.importedEventTimestampMustNotAdvance, 0)
            }
        }

        let timestamp = imported ? a.timestamp : slotTimestamp
        store.insertAccount(
            Account(
                id: a.id, userData128: a.userData128, userData64: a.userData64,
                userData32: a.userData32, reserved: 0, ledger: a.ledger, code: a.code,
                flags: a.flags, timestamp: timestamp))
        return (.created, timestamp)
    }

    /// Idempotency (spec §5.2 step 5): compares against the *current* stored flags, so a
    /// closed account's original creation event reports `exists_with_different_flags`.
    private func accountExistsStatus(_ a: Account, _ e: Account) -> CreateAccountStatus {
        if a.flags != e.flags { return .existsWithDifferentFlags }
        if a.userData128 != e.userData128 { return .existsWithDifferentUserData128 }
        if a.userData64 != e.userData64 { return .existsWithDifferentUserData64 }
        if a.userData32 != e.userData32 { return .existsWithDifferentUserData32 }
        if a.ledger != e.ledger { return .existsWithDifferentLedger }
        if a.code != e.code { return .existsWithDifferentCode }
        return .exists
    }
}

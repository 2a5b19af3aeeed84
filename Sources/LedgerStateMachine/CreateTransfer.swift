import LedgerKit

extension StateMachine {
    /// `create_transfers` for one batch with batch timestamp `batchTimestamp` (spec §4.3–4.4).
    public func createTransfers(
        _ events: UnsafeBufferPointer<Transfer>, batchTimestamp: UInt64,
        results: UnsafeMutableBufferPointer<CreateTransferResult>
    ) {
        executeCreateBatch(
            events: events, batchTimestamp: batchTimestamp, results: results,
            isTransient: { $0.isTransient },
            hint: { transfer, timestamp, records in
                store.hint(
                    accountId: transfer.debitAccountId, otherAccountId: transfer.creditAccountId,
                    transferId: transfer.id, timestamp: timestamp, pending: transfer.flags.contains(.pending),
                    records: records)
            },
            createOne: { transfer, slotTimestamp in createTransfer(transfer, slotTimestamp) })
    }

    /// The common prefix of spec §5.3, then the single-phase/pending path (§5.4) or the
    /// post/void path (§5.6).
    func createTransfer(_ t: Transfer, _ slotTimestamp: UInt64) -> (CreateTransferStatus, UInt64) {
        if !t.flags.isDisjoint(with: .padding) { return (.reservedFlag, 0) }
        if t.id == 0 { return (.idMustNotBeZero, 0) }
        if t.id == UInt128.max { return (.idMustNotBeIntMax, 0) }

        if let index = store.transferIndex(id: t.id) {
            let e = store.transfer(at: index)
            return (transferExistsStatus(t, e), e.timestamp)
        }
        if store.transferFailed(id: t.id) { return (.idAlreadyFailed, 0) }

        if t.flags.contains(.postPendingTransfer) || t.flags.contains(.voidPendingTransfer) {
            return postOrVoidPendingTransfer(t, slotTimestamp)
        }
        return createSinglePhaseOrPending(t, slotTimestamp)
    }

    /// Spec §5.4 steps 7–32.
    private func createSinglePhaseOrPending(
        _ t: Transfer, _ slotTimestamp: UInt64
    ) -> (CreateTransferStatus, UInt64) {
        if t.debitAccountId == 0 { return (.debitAccountIdMustNotBeZero, 0) }
        if t.debitAccountId == UInt128.max { return (.debitAccountIdMustNotBeIntMax, 0) }
        if t.creditAccountId == 0 { return (.creditAccountIdMustNotBeZero, 0) }
        if t.creditAccountId == UInt128.max { return (.creditAccountIdMustNotBeIntMax, 0) }
        if t.debitAccountId == t.creditAccountId { return (.accountsMustBeDifferent, 0) }
        if t.pendingId != 0 { return (.pendingIdMustBeZero, 0) }
        let pending = t.flags.contains(.pending)
        if !pending {
            if t.timeout != 0 { return (.timeoutReservedForPendingTransfer, 0) }
            if t.flags.contains(.closingDebit) || t.flags.contains(.closingCredit) {
                return (.closingTransferMustBePending, 0)
            }
        }
        if t.ledger == 0 { return (.ledgerMustNotBeZero, 0) }
        if t.code == 0 { return (.codeMustNotBeZero, 0) }

        guard let drIndex = store.accountIndex(id: t.debitAccountId) else {
            return (.debitAccountNotFound, 0)
        }
        guard let crIndex = store.accountIndex(id: t.creditAccountId) else {
            return (.creditAccountNotFound, 0)
        }
        var dr = store.account(at: drIndex)
        var cr = store.account(at: crIndex)
        if dr.ledger != cr.ledger { return (.accountsMustHaveTheSameLedger, 0) }
        if t.ledger != dr.ledger { return (.transferMustHaveTheSameLedgerAsAccounts, 0) }

        let imported = t.flags.contains(.imported)
        if imported {
            if let status = importedTransferTimestampStatus(t.timestamp, slotTimestamp) {
                return (status, 0)
            }
            if t.timestamp <= dr.timestamp { return (.importedEventTimestampMustPostdateDebitAccount, 0) }
            if t.timestamp <= cr.timestamp { return (.importedEventTimestampMustPostdateCreditAccount, 0) }
            if t.timeout != 0 { return (.importedEventTimeoutMustBeZero, 0) }
        }
        let timestamp = imported ? t.timestamp : slotTimestamp

        if dr.flags.contains(.closed) { return (.debitAccountAlreadyClosed, 0) }
        if cr.flags.contains(.closed) { return (.creditAccountAlreadyClosed, 0) }

        let amount = balancedAmount(t, dr, cr)
        if pending {
            if overflows(amount, dr.debitsPending) { return (.overflowsDebitsPending, 0) }
            if overflows(amount, cr.creditsPending) { return (.overflowsCreditsPending, 0) }
        }
        if overflows(amount, dr.debitsPosted) { return (.overflowsDebitsPosted, 0) }
        if overflows(amount, cr.creditsPosted) { return (.overflowsCreditsPosted, 0) }
        // The inner sums cannot overflow: invariant §11.3 holds for every stored account.
        if overflows(amount, dr.debitsPending + dr.debitsPosted) { return (.overflowsDebits, 0) }
        if overflows(amount, cr.creditsPending + cr.creditsPosted) { return (.overflowsCredits, 0) }
        let timeoutNs = UInt64(t.timeout) * Constants.nanosecondsPerSecond  // < 2^62: fits.
        if timestamp > Constants.timestampMax - timeoutNs { return (.overflowsTimeout, 0) }
        if dr.flags.contains(.debitsMustNotExceedCredits)
            && dr.debitsPending + dr.debitsPosted + amount > dr.creditsPosted
        {
            return (.exceedsCredits, 0)
        }
        if cr.flags.contains(.creditsMustNotExceedDebits)
            && cr.creditsPending + cr.creditsPosted + amount > cr.debitsPosted
        {
            return (.exceedsDebits, 0)
        }
        if imported && t.timestamp > slotTimestamp {
            return (.importedEventTimestampMustNotAdvance, 0)  // Q1, see createAccount.
        }

        // Success (spec §5.4 step 32), effects in the spec's order.
        var stored = t
        stored.amount = amount
        stored.timestamp = timestamp
        store.insertTransfer(stored)
        if pending {
            dr.debitsPending += amount
            cr.creditsPending += amount
        } else {
            dr.debitsPosted += amount
            cr.creditsPosted += amount
        }
        if t.flags.contains(.closingDebit) { dr.flags.insert(.closed) }
        if t.flags.contains(.closingCredit) { cr.flags.insert(.closed) }
        store.updateAccount(at: drIndex, dr)
        store.updateAccount(at: crIndex, cr)
        appendEvent(
            timestamp: timestamp, transferTimestamp: timestamp, amount: amount, pendingId: 0,
            dr: dr, cr: cr, ledger: t.ledger, status: pending ? .pending : .none)
        if t.timeout > 0 {
            let expiresAt = timestamp + timeoutNs
            store.expiryInsert(Expiry(expiresAt: expiresAt, transferTimestamp: timestamp))
            pulseNextTimestamp = min(pulseNextTimestamp, expiresAt)
        }
        return (.created, timestamp)
    }

    /// Spec §5.6 steps 7–31.
    private func postOrVoidPendingTransfer(
        _ t: Transfer, _ slotTimestamp: UInt64
    ) -> (CreateTransferStatus, UInt64) {
        let post = t.flags.contains(.postPendingTransfer)
        let void = t.flags.contains(.voidPendingTransfer)
        if post && void { return (.flagsAreMutuallyExclusive, 0) }
        if !t.flags.isDisjoint(with: [.pending, .balancingDebit, .balancingCredit]) {
            return (.flagsAreMutuallyExclusive, 0)
        }
        if !t.flags.isDisjoint(with: [.closingDebit, .closingCredit]) {
            return (.flagsAreMutuallyExclusive, 0)
        }
        if t.pendingId == 0 { return (.pendingIdMustNotBeZero, 0) }
        if t.pendingId == UInt128.max { return (.pendingIdMustNotBeIntMax, 0) }
        if t.pendingId == t.id { return (.pendingIdMustBeDifferent, 0) }
        if t.timeout != 0 { return (.timeoutReservedForPendingTransfer, 0) }

        guard let pIndex = store.transferIndex(id: t.pendingId) else {
            return (.pendingTransferNotFound, 0)
        }
        let p = store.transfer(at: pIndex)
        if !p.flags.contains(.pending) { return (.pendingTransferNotPending, 0) }
        if t.debitAccountId != 0 && t.debitAccountId != p.debitAccountId {
            return (.pendingTransferHasDifferentDebitAccountId, 0)
        }
        if t.creditAccountId != 0 && t.creditAccountId != p.creditAccountId {
            return (.pendingTransferHasDifferentCreditAccountId, 0)
        }
        if t.ledger != 0 && t.ledger != p.ledger { return (.pendingTransferHasDifferentLedger, 0) }
        if t.code != 0 && t.code != p.code { return (.pendingTransferHasDifferentCode, 0) }

        let amount = postOrVoidAmount(t, p)
        if amount > p.amount { return (.exceedsPendingTransferAmount, 0) }
        if void && amount < p.amount { return (.pendingTransferHasDifferentAmount, 0) }

        switch store.pendingStatus(transferAt: pIndex) {
        case .pending: break
        case .posted: return (.pendingTransferAlreadyPosted, 0)
        case .voided: return (.pendingTransferAlreadyVoided, 0)
        case .expired: return (.pendingTransferExpired, 0)
        case .none: preconditionFailure("a pending transfer has a pending status")
        }
        let expiresAt = p.timeout > 0 ? p.timestamp + UInt64(p.timeout) * Constants.nanosecondsPerSecond : 0
        if p.timeout > 0 && expiresAt <= slotTimestamp { return (.pendingTransferExpired, 0) }

        let imported = t.flags.contains(.imported)
        if imported {
            if let status = importedTransferTimestampStatus(t.timestamp, slotTimestamp) {
                return (status, 0)
            }
        }
        let timestamp = imported ? t.timestamp : slotTimestamp

        guard let drIndex = store.accountIndex(id: p.debitAccountId),
            let crIndex = store.accountIndex(id: p.creditAccountId)
        else { preconditionFailure("a pending transfer's accounts exist") }
        var dr = store.account(at: drIndex)
        var cr = store.account(at: crIndex)
        if dr.flags.contains(.closed) && !void { return (.debitAccountAlreadyClosed, 0) }
        if cr.flags.contains(.closed) && !void { return (.creditAccountAlreadyClosed, 0) }
        if imported && t.timestamp > slotTimestamp {
            return (.importedEventTimestampMustNotAdvance, 0)  // Q1, see createAccount.
        }

        // Success (spec §5.6 step 31).
        store.insertTransfer(
            Transfer(
                id: t.id, debitAccountId: p.debitAccountId, creditAccountId: p.creditAccountId,
                amount: amount, pendingId: t.pendingId,
                userData128: t.userData128 != 0 ? t.userData128 : p.userData128,
                userData64: t.userData64 != 0 ? t.userData64 : p.userData64,
                userData32: t.userData32 != 0 ? t.userData32 : p.userData32,
                timeout: 0, ledger: p.ledger, code: p.code, flags: t.flags, timestamp: timestamp))
        if p.timeout > 0 {
            store.expiryRemove(Expiry(expiresAt: expiresAt, transferTimestamp: p.timestamp))
            if pulseNextTimestamp == expiresAt { pulseNextTimestamp = 1 }
        }
        store.setPendingStatus(transferAt: pIndex, post ? .posted : .voided)
        precondition(dr.debitsPending >= p.amount, "a pending amount is reserved on the debit account")
        precondition(cr.creditsPending >= p.amount, "a pending amount is reserved on the credit account")
        dr.debitsPending -= p.amount
        cr.creditsPending -= p.amount
        if post {
            dr.debitsPosted += amount
            cr.creditsPosted += amount
        } else {
            if p.flags.contains(.closingDebit) { dr.flags.remove(.closed) }
            if p.flags.contains(.closingCredit) { cr.flags.remove(.closed) }
        }
        store.updateAccount(at: drIndex, dr)
        store.updateAccount(at: crIndex, cr)
        appendEvent(
            timestamp: timestamp, transferTimestamp: timestamp, amount: amount, pendingId: p.id,
            dr: dr, cr: cr, ledger: p.ledger, status: post ? .posted : .voided)
        return (.created, timestamp)
    }

    /// Spec §5.4 step 20.1–20.2 and §5.6 step 28: an imported transfer must be newer than every
    /// transfer and must not share an account's timestamp. Q2 (docs/decisions.md): it must also
    /// be newer than every account event (expiries), so the change-event log stays in order.
    private func importedTransferTimestampStatus(
        _ timestamp: UInt64, _ slotTimestamp: UInt64
    ) -> CreateTransferStatus? {
        let newest = max(store.transferTimestampMax, store.accountEventTimestampMax)
        if newest > 0 && timestamp <= newest { return .importedEventTimestampMustNotRegress }
        if store.accountExists(timestamp: timestamp) { return .importedEventTimestampMustNotRegress }
        return nil
    }

    /// Spec §5.5: balancing clamps the amount to what the accounts allow.
    private func balancedAmount(_ t: Transfer, _ dr: Account, _ cr: Account) -> UInt128 {
        var amount = t.amount
        if t.flags.contains(.balancingDebit) {
            amount = min(amount, saturatingSubtract(dr.creditsPosted, dr.debitsPosted + dr.debitsPending))
        }
        if t.flags.contains(.balancingCredit) {
            amount = min(amount, saturatingSubtract(cr.debitsPosted, cr.creditsPosted + cr.creditsPending))
        }
        return amount
    }

    /// Spec §5.6 step 23: a void of 0 voids everything; a post of MAX128 posts everything.
    private func postOrVoidAmount(_ t: Transfer, _ p: Transfer) -> UInt128 {
        if t.flags.contains(.voidPendingTransfer) {
            return t.amount == 0 ? p.amount : t.amount
        }
        return t.amount == UInt128.max ? p.amount : t.amount
    }

    /// Spec §5.7.
    private func transferExistsStatus(_ t: Transfer, _ e: Transfer) -> CreateTransferStatus {
        if t.flags != e.flags { return .existsWithDifferentFlags }
        if t.pendingId != e.pendingId { return .existsWithDifferentPendingId }
        if t.timeout != e.timeout { return .existsWithDifferentTimeout }
        if t.flags.contains(.postPendingTransfer) || t.flags.contains(.voidPendingTransfer) {
            return postOrVoidExistsStatus(t, e)
        }
        if t.debitAccountId != e.debitAccountId { return .existsWithDifferentDebitAccountId }
        if t.creditAccountId != e.creditAccountId { return .existsWithDifferentCreditAccountId }
        if t.flags.contains(.balancingDebit) || t.flags.contains(.balancingCredit) {
            if t.amount < e.amount { return .existsWithDifferentAmount }
        } else if t.amount != e.amount {
            return .existsWithDifferentAmount
        }
        if t.userData128 != e.userData128 { return .existsWithDifferentUserData128 }
        if t.userData64 != e.userData64 { return .existsWithDifferentUserData64 }
        if t.userData32 != e.userData32 { return .existsWithDifferentUserData32 }
        if t.ledger != e.ledger { return .existsWithDifferentLedger }
        if t.code != e.code { return .existsWithDifferentCode }
        return .exists
    }

    /// Spec §5.7 step 4: zero fields of a post/void request stand for the pending transfer's.
    private func postOrVoidExistsStatus(_ t: Transfer, _ e: Transfer) -> CreateTransferStatus {
        if t.debitAccountId != 0 && t.debitAccountId != e.debitAccountId {
            return .existsWithDifferentDebitAccountId
        }
        if t.creditAccountId != 0 && t.creditAccountId != e.creditAccountId {
            return .existsWithDifferentCreditAccountId
        }
        guard let pIndex = store.transferIndex(id: t.pendingId) else {
            preconditionFailure("a post/void transfer's pending transfer exists")
        }
        let p = store.transfer(at: pIndex)
        let amountDefaulted =
            t.flags.contains(.voidPendingTransfer) ? t.amount == 0 : t.amount == UInt128.max
        if amountDefaulted ? e.amount != p.amount : t.amount != e.amount {
            return .existsWithDifferentAmount
        }
        if t.userData128 == 0 ? e.userData128 != p.userData128 : t.userData128 != e.userData128 {
            return .existsWithDifferentUserData128
        }
        if t.userData64 == 0 ? e.userData64 != p.userData64 : t.userData64 != e.userData64 {
            return .existsWithDifferentUserData64
        }
        if t.userData32 == 0 ? e.userData32 != p.userData32 : t.userData32 != e.userData32 {
            return .existsWithDifferentUserData32
        }
        if t.ledger != 0 && t.ledger != e.ledger { return .existsWithDifferentLedger }
        if t.code != 0 && t.code != e.code { return .existsWithDifferentCode }
        return .exists
    }

    func appendEvent(
        timestamp: UInt64, transferTimestamp: UInt64, amount: UInt128, pendingId: UInt128,
        dr: Account, cr: Account, ledger: UInt32, status: PendingStatus
    ) {
        store.appendAccountEvent(
            AccountEvent(
                timestamp: timestamp, transferTimestamp: transferTimestamp, amount: amount,
                pendingId: pendingId, debitAccount: AccountSnapshot(dr),
                creditAccount: AccountSnapshot(cr), ledger: ledger, pendingStatus: status))
    }
}

/// True iff `a + b` exceeds `UInt128.max`.
@inline(__always)
func overflows(_ a: UInt128, _ b: UInt128) -> Bool {
    a.addingReportingOverflow(b).overflow
}

/// `a − b`, or 0 if `b > a`.
@inline(__always)
func saturatingSubtract(_ a: UInt128, _ b: UInt128) -> UInt128 {
    a >= b ? a - b : 0
}

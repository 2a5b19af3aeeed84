import LedgerKit

extension StateMachine {
    /// Whether expiry work may be due at `timestamp` (spec §7.1). The host runs a `pulse`
    /// operation when this is true after a commit, and on its idle timer.
    public func pulseNeeded(timestamp: UInt64) -> Bool {
        pulseNextTimestamp <= timestamp
    }

    /// Expires the pending transfers due at the pulse's timestamp `pulseTimestamp`, at most
    /// `Constants.pulseExpiriesMax` of them, oldest deadline first (spec §7.2).
    public func executePulse(pulseTimestamp: UInt64) {
        // Select first: the k-th expiry's timestamp depends on how many there are.
        var selected = 0
        while selected < Constants.pulseExpiriesMax, let first = store.expiryFirst(),
            first.expiresAt <= pulseTimestamp
        {
            store.expiryRemove(first)
            pulseScratch[selected] = first
            selected += 1
        }
        precondition(pulseTimestamp >= UInt64(selected), "every expiry has a slot timestamp")

        for k in 0..<selected {
            let expiry = pulseScratch[k]
            let eventTimestamp = pulseTimestamp - UInt64(selected) + UInt64(k) + 1
            guard let pIndex = store.transferIndex(timestamp: expiry.transferTimestamp) else {
                preconditionFailure("a scheduled expiry has its pending transfer")
            }
            let p = store.transfer(at: pIndex)
            precondition(store.pendingStatus(transferAt: pIndex) == .pending, "expiry is pending")
            guard let drIndex = store.accountIndex(id: p.debitAccountId),
                let crIndex = store.accountIndex(id: p.creditAccountId)
            else { preconditionFailure("a pending transfer's accounts exist") }
            var dr = store.account(at: drIndex)
            var cr = store.account(at: crIndex)
            precondition(dr.debitsPending >= p.amount, "pending amount reserved on debit account")
            precondition(cr.creditsPending >= p.amount, "pending amount reserved on credit account")
            dr.debitsPending -= p.amount
            cr.creditsPending -= p.amount
            if p.flags.contains(.closingDebit) { dr.flags.remove(.closed) }
            if p.flags.contains(.closingCredit) { cr.flags.remove(.closed) }
            store.updateAccount(at: drIndex, dr)
            store.updateAccount(at: crIndex, cr)
            store.setPendingStatus(transferAt: pIndex, .expired)
            appendEvent(
                timestamp: eventTimestamp, transferTimestamp: p.timestamp, amount: p.amount,
                pendingId: p.id, dr: dr, cr: cr, ledger: p.ledger, status: .expired)
        }

        if selected == Constants.pulseExpiriesMax {
            pulseNextTimestamp = pulseScratch[selected - 1].expiresAt  // More may be due now.
        } else if let next = store.expiryFirst() {
            pulseNextTimestamp = next.expiresAt
        } else {
            pulseNextTimestamp = Constants.timestampMax
        }
    }
}

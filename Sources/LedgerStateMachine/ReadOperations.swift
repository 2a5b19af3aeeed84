import LedgerKit

/// Lookups and queries (state-machine spec §6). Reads never fail: an invalid filter yields an
/// empty result.
extension StateMachine {
    /// Appends every account found, in request order; missing ids are omitted.
    public func lookupAccounts(
        _ ids: UnsafeBufferPointer<UInt128>, results: UnsafeMutableBufferPointer<Account>
    ) -> Int {
        var count = 0
        for id in ids {
            guard let index = store.accountIndex(id: id) else { continue }
            precondition(count < results.count, "one result slot per id")
            results[count] = store.account(at: index)
            count += 1
        }
        return count
    }

    /// Appends every transfer found, in request order; failed ids are never transfers.
    public func lookupTransfers(
        _ ids: UnsafeBufferPointer<UInt128>, results: UnsafeMutableBufferPointer<Transfer>
    ) -> Int {
        var count = 0
        for id in ids {
            guard let index = store.transferIndex(id: id) else { continue }
            precondition(count < results.count, "one result slot per id")
            results[count] = store.transfer(at: index)
            count += 1
        }
        return count
    }

    public func getAccountTransfers(
        _ filter: AccountFilter, results: UnsafeMutableBufferPointer<Transfer>
    ) -> Int {
        guard let query = transferQuery(filter) else { return 0 }
        return store.scanTransfers(query, into: results)
    }

    /// The account's balances after each transfer that `get_account_transfers` would select;
    /// only for accounts with `history`.
    public func getAccountBalances(
        _ filter: AccountFilter, results: UnsafeMutableBufferPointer<AccountBalance>
    ) -> Int {
        guard let query = transferQuery(filter) else { return 0 }
        guard let index = store.accountIndex(id: filter.accountId) else { return 0 }
        guard store.account(at: index).flags.contains(.history) else { return 0 }
        let limit = min(query.limit, results.count, balanceScratch.count)
        let found = store.scanTransfers(
            query, into: UnsafeMutableBufferPointer(rebasing: balanceScratch[0..<limit]))
        for position in 0..<found {
            let transfer = balanceScratch[position]
            guard let event = store.accountEvent(timestamp: transfer.timestamp) else {
                preconditionFailure("every transfer has its account event")
            }
            let side =
                transfer.debitAccountId == filter.accountId ? event.debitAccount : event.creditAccount
            results[position] = AccountBalance(
                debitsPending: side.debitsPending, debitsPosted: side.debitsPosted,
                creditsPending: side.creditsPending, creditsPosted: side.creditsPosted,
                timestamp: transfer.timestamp)
        }
        return found
    }

    public func queryAccounts(
        _ filter: QueryFilter, results: UnsafeMutableBufferPointer<Account>
    ) -> Int {
        guard let query = accountQuery(filter, resultsMax: results.count) else { return 0 }
        return store.scanAccounts(query, into: results)
    }

    public func queryTransfers(
        _ filter: QueryFilter, results: UnsafeMutableBufferPointer<Transfer>
    ) -> Int {
        guard let query = transferQuery(filter, resultsMax: results.count) else { return 0 }
        return store.scanTransfers(query, into: results)
    }

    /// Account events in ascending timestamp order, rendered as `ChangeEvent`s (spec §6.6).
    public func getChangeEvents(
        _ filter: ChangeEventsFilter, results: UnsafeMutableBufferPointer<ChangeEvent>
    ) -> Int {
        guard let scan = changeEventsScan(filter, resultsMax: results.count) else { return 0 }
        let limit = scan.limit
        let found = store.scanAccountEvents(
            timestampMin: scan.min, timestampMax: scan.max,
            into: UnsafeMutableBufferPointer(rebasing: eventScratch[0..<limit]))
        for position in 0..<found {
            results[position] = changeEvent(eventScratch[position])
        }
        return found
    }

    private func changeEvent(_ event: AccountEvent) -> ChangeEvent {
        guard let transferIndex = store.transferIndex(timestamp: event.transferTimestamp),
            let drIndex = store.accountIndex(id: event.debitAccount.id),
            let crIndex = store.accountIndex(id: event.creditAccount.id)
        else { preconditionFailure("an account event's transfer and accounts exist") }
        let transfer = store.transfer(at: transferIndex)
        let dr = store.account(at: drIndex)
        let cr = store.account(at: crIndex)
        var result = ChangeEvent()
        result.transferId = transfer.id
        result.transferAmount = event.amount
        result.transferPendingId = transfer.pendingId
        result.transferUserData128 = transfer.userData128
        result.transferUserData64 = transfer.userData64
        result.transferUserData32 = transfer.userData32
        result.transferTimeout = transfer.timeout
        result.transferCode = transfer.code
        result.transferFlags = transfer.flags
        result.ledger = event.ledger
        result.type = ChangeEventType(rawValue: event.pendingStatus.changeEventTypeRawValue)
        Self.fill(&result, debit: event.debitAccount, dr)
        Self.fill(&result, credit: event.creditAccount, cr)
        result.timestamp = event.timestamp
        result.transferTimestamp = transfer.timestamp
        return result
    }

    private static func fill(_ r: inout ChangeEvent, debit s: AccountSnapshot, _ a: Account) {
        r.debitAccountId = s.id
        r.debitAccountDebitsPending = s.debitsPending
        r.debitAccountDebitsPosted = s.debitsPosted
        r.debitAccountCreditsPending = s.creditsPending
        r.debitAccountCreditsPosted = s.creditsPosted
        r.debitAccountUserData128 = a.userData128
        r.debitAccountUserData64 = a.userData64
        r.debitAccountUserData32 = a.userData32
        r.debitAccountCode = a.code
        r.debitAccountFlags = s.flags
        r.debitAccountTimestamp = a.timestamp
    }

    private static func fill(_ r: inout ChangeEvent, credit s: AccountSnapshot, _ a: Account) {
        r.creditAccountId = s.id
        r.creditAccountDebitsPending = s.debitsPending
        r.creditAccountDebitsPosted = s.debitsPosted
        r.creditAccountCreditsPending = s.creditsPending
        r.creditAccountCreditsPosted = s.creditsPosted
        r.creditAccountUserData128 = a.userData128
        r.creditAccountUserData64 = a.userData64
        r.creditAccountUserData32 = a.userData32
        r.creditAccountCode = a.code
        r.creditAccountFlags = s.flags
        r.creditAccountTimestamp = a.timestamp
    }

    // MARK: Filters to queries (shared by prefetch and execute, so both ask the same)

    /// Validates a `QueryFilter` for `query_accounts` (spec §6.4) and normalizes it; the limit
    /// is also clamped to `resultsMax` (the reply's free space).
    func accountQuery(_ filter: QueryFilter, resultsMax: Int) -> AccountQuery? {
        guard let range = timestampRange(filter.timestampMin, filter.timestampMax),
            filter.limit != 0, filter.flags.isDisjoint(with: .padding), filter.reservedIsZero
        else { return nil }
        return AccountQuery(
            userData128: filter.userData128, userData64: filter.userData64,
            userData32: filter.userData32, ledger: filter.ledger, code: filter.code,
            timestampMin: range.min, timestampMax: range.max,
            limit: min(Int(filter.limit), Constants.queryResultsMax, resultsMax),
            reversed: filter.flags.contains(.reversed))
    }

    /// Validates a `QueryFilter` for `query_transfers` (spec §6.5) and normalizes it.
    func transferQuery(_ filter: QueryFilter, resultsMax: Int) -> TransferQuery? {
        guard let range = timestampRange(filter.timestampMin, filter.timestampMax),
            filter.limit != 0, filter.flags.isDisjoint(with: .padding), filter.reservedIsZero
        else { return nil }
        return TransferQuery(
            accountId: 0, debits: false, credits: false, userData128: filter.userData128,
            userData64: filter.userData64, userData32: filter.userData32, ledger: filter.ledger,
            code: filter.code, timestampMin: range.min, timestampMax: range.max,
            limit: min(Int(filter.limit), Constants.queryResultsMax, resultsMax),
            reversed: filter.flags.contains(.reversed))
    }

    /// Validates a `ChangeEventsFilter` (spec §6.6): the inclusive range and the clamped limit.
    func changeEventsScan(
        _ filter: ChangeEventsFilter, resultsMax: Int
    ) -> (min: UInt64, max: UInt64, limit: Int)? {
        guard let range = timestampRange(filter.timestampMin, filter.timestampMax),
            filter.limit != 0, filter.reservedIsZero
        else { return nil }
        return (range.min, range.max, min(Int(filter.limit), Constants.changeEventsMax, resultsMax))
    }

    /// Validates an `AccountFilter` (spec §6.2) and normalizes it.
    func transferQuery(_ filter: AccountFilter) -> TransferQuery? {
        guard filter.accountId != 0, filter.accountId != UInt128.max,
            let range = timestampRange(filter.timestampMin, filter.timestampMax),
            filter.limit != 0,
            filter.flags.contains(.debits) || filter.flags.contains(.credits),
            filter.flags.isDisjoint(with: .padding), filter.reservedIsZero
        else { return nil }
        return TransferQuery(
            accountId: filter.accountId, debits: filter.flags.contains(.debits),
            credits: filter.flags.contains(.credits), userData128: filter.userData128,
            userData64: filter.userData64, userData32: filter.userData32, ledger: 0,
            code: filter.code, timestampMin: range.min, timestampMax: range.max,
            limit: min(Int(filter.limit), Constants.queryResultsMax),
            reversed: filter.flags.contains(.reversed))
    }

    /// The three timestamp rules of spec §6.2, and the effective inclusive range.
    private func timestampRange(_ low: UInt64, _ high: UInt64) -> (min: UInt64, max: UInt64)? {
        if low != 0 && !Timestamp.isValid(low) { return nil }
        if high != 0 && !Timestamp.isValid(high) { return nil }
        if high != 0 && low > high { return nil }
        return (low == 0 ? 1 : low, high == 0 ? Constants.timestampMax : high)
    }
}

extension PendingStatus {
    /// `ChangeEventType` of an event with this pending status (spec §6.6).
    var changeEventTypeRawValue: UInt8 {
        switch self {
        case .none: ChangeEventType.singlePhase.rawValue
        case .pending: ChangeEventType.twoPhasePending.rawValue
        case .posted: ChangeEventType.twoPhasePosted.rawValue
        case .voided: ChangeEventType.twoPhaseVoided.rawValue
        case .expired: ChangeEventType.twoPhaseExpired.rawValue
        }
    }
}

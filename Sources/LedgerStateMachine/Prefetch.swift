import LedgerKit

// The prefetch phase (ARCHITECTURE.md "prefetch, then execute"; docs/lsm.md "The state machine
// on the forest"): before `execute`, name to the store everything the operation may read, so
// that a store on disk loads it while execute stays synchronous and IO-free.
//
// What each operation names follows from what its execute path reads (and nothing else reads
// the store):
//
//   create_accounts     each account by id; an imported account's timestamp as a transfer's
//   create_transfers    each transfer by id; its pending_id's transfer (+ status, accounts); its
//                       accounts; an imported transfer's timestamp as an account's
//   lookup_*            the ids
//   get_account_*       the query's transfers (+ their account events for balances), the account
//   query_*             the query's objects
//   get_change_events   the events, their transfers and accounts
//   pulse               the due expiries, their transfers, statuses and accounts
//
// The queries are built by the same functions execute uses (ReadOperations.swift), so a store
// that answers a scan from what prefetch found answers exactly the scan execute makes. Query
// limits here are not yet clamped to the reply's free space (execute clamps to it); a request
// that passed `isValidRequest` has room for every batch's limit, and a store returns at most
// the output's count anyway.

extension StateMachine {
    /// Names every object `operation` may read, then lets the store load them; `callback` runs
    /// once they are loaded (possibly before this returns), or with the store's fault. `body`
    /// must be valid (`isValidRequest`) and stay valid until the callback; `timestamp` is the
    /// operation's (from `prepare`).
    public func prefetch(
        operation: Operation, body: UnsafeRawBufferPointer, timestamp: UInt64,
        callback: @escaping (Result<Void, Store.PrefetchFault>) -> Void
    ) {
        precondition(prefetchCallback == nil, "one prefetch at a time")
        // Kept here, in a field of the callback's own (generic) type, and reached through the
        // machine's completion made at init: handing `callback` to the store would convert it
        // (an allocation) per operation.
        prefetchCallback = callback
        prefetch(operation: operation, body: body, timestamp: timestamp, completion: callbackCompletion)
    }

    /// `prefetch(operation:body:timestamp:callback:)` with a completion the host made once:
    /// allocates nothing.
    public func prefetch(
        operation: Operation, body: UnsafeRawBufferPointer, timestamp: UInt64,
        completion: PrefetchCompletion<Store.PrefetchFault>
    ) {
        store.prefetchStart()
        switch operation {
        case .pulse:
            store.prefetchExpiries(pulseTimestamp: timestamp)
        case .getChangeEvents:
            let filter = body.load(as: ChangeEventsFilter.self)
            if let scan = changeEventsScan(filter, resultsMax: Constants.changeEventsMax) {
                store.prefetchScanAccountEvents(
                    timestampMin: scan.min, timestampMax: scan.max, limit: scan.limit)
            }
        default:
            guard let reader = MultiBatchReader(body: body, elementSize: operation.eventSize) else {
                preconditionFailure("prefetch needs a valid request")
            }
            reader.forEachBatch { _, batch in prefetchBatch(operation, batch) }
        }
        store.prefetchFinish(completion: completion)
    }

    private func prefetchBatch(_ operation: Operation, _ batch: UnsafeRawBufferPointer) {
        switch operation {
        case .createAccounts:
            for account in batch.bindMemory(to: Account.self) {
                store.prefetchAccount(id: account.id)
                if account.flags.contains(.imported) { store.prefetchTransfer(timestamp: account.timestamp) }
            }
        case .createTransfers:
            for transfer in batch.bindMemory(to: Transfer.self) {
                store.prefetchTransfer(id: transfer.id)
                if transfer.pendingId != 0 { store.prefetchPendingTransfer(id: transfer.pendingId) }
                store.prefetchAccount(id: transfer.debitAccountId)
                store.prefetchAccount(id: transfer.creditAccountId)
                if transfer.flags.contains(.imported) { store.prefetchAccount(timestamp: transfer.timestamp) }
            }
        case .lookupAccounts:
            for id in batch.bindMemory(to: UInt128.self) { store.prefetchAccount(id: id) }
        case .lookupTransfers:
            for id in batch.bindMemory(to: UInt128.self) { store.prefetchTransfer(id: id) }
        case .getAccountTransfers, .getAccountBalances:
            let filter = batch.load(as: AccountFilter.self)
            guard let query = transferQuery(filter) else { return }
            let balances = operation == .getAccountBalances
            if balances { store.prefetchAccount(id: filter.accountId) }
            store.prefetchScanTransfers(query, accountEvents: balances)
        case .queryAccounts:
            let filter = batch.load(as: QueryFilter.self)
            if let query = accountQuery(filter, resultsMax: Constants.queryResultsMax) {
                store.prefetchScanAccounts(query)
            }
        case .queryTransfers:
            let filter = batch.load(as: QueryFilter.self)
            if let query = transferQuery(filter, resultsMax: Constants.queryResultsMax) {
                store.prefetchScanTransfers(query, accountEvents: false)
            }
        case .pulse, .getChangeEvents:
            preconditionFailure("not a multi-batch operation")
        }
    }
}

import CLedgerHints
import LedgerKit

/// The in-memory `LedgerStore`: flat, preallocated record arrays with open-addressing id
/// indexes. It is the fast store of the benchmarks and the reference model that the LSM forest
/// is tested against.
///
/// Layout: accounts and transfers are appended in timestamp order (imported objects must be
/// newer than every existing one, so both arrays stay sorted by timestamp); lookups by id go
/// through `IdIndex`, by timestamp through binary search. The account-event log is sorted the
/// same way. Scans walk the timestamp-sorted arrays from the range's start: O(range), which is
/// fine for a reference model; the forest answers queries from index trees.
///
/// Limits: every capacity comes from `Configuration` and is allocated in `init`; exceeding one
/// is a configuration error and stops the process with a message naming the limit.
public final class MemoryStore: LedgerStore {
    public struct Configuration: Sendable {
        public var accountsMax: Int
        public var transfersMax: Int
        /// Transfer ids burned by transient failures.
        public var failedTransfersMax: Int
        public var accountEventsMax: Int

        public init(accountsMax: Int, transfersMax: Int, failedTransfersMax: Int, accountEventsMax: Int) {
            self.accountsMax = accountsMax
            self.transfersMax = transfersMax
            self.failedTransfersMax = failedTransfersMax
            self.accountEventsMax = accountEventsMax
        }

        /// Room for `accounts` accounts and `transfers` transfers (and as many events).
        public static func sized(accounts: Int, transfers: Int) -> Configuration {
            Configuration(
                accountsMax: accounts, transfersMax: transfers, failedTransfersMax: transfers,
                accountEventsMax: transfers)
        }
    }

    private let accounts: UnsafeMutableBufferPointer<Account>
    private let transfers: UnsafeMutableBufferPointer<Transfer>
    private let pendingStatuses: UnsafeMutableBufferPointer<PendingStatus>
    private let events: UnsafeMutableBufferPointer<AccountEvent>
    public private(set) var accountCount = 0
    public private(set) var transferCount = 0
    public private(set) var accountEventCount = 0

    private var accountIds: IdIndex
    /// Transfer ids to their index, and failed ids to `failedMarker`: one probe answers both
    /// "does this transfer exist" and "did this id fail".
    private var transferIds: IdIndex
    private static let failedMarker: Int32 = -2
    private var failedTransferCount = 0
    private let failedTransfersMax: Int
    private var expiries: ExpiryHeap
    private var undo: UndoLog

    public init(_ configuration: Configuration) {
        accounts = LargeAllocation.allocate(Account.self, capacity: configuration.accountsMax)
        transfers = LargeAllocation.allocate(Transfer.self, capacity: configuration.transfersMax)
        pendingStatuses = LargeAllocation.allocate(PendingStatus.self, capacity: configuration.transfersMax)
        events = LargeAllocation.allocate(AccountEvent.self, capacity: configuration.accountEventsMax)
        // Touch every page now: a first touch on the hot path costs a page fault per 4 KiB.
        accounts.initialize(repeating: Account())
        transfers.initialize(repeating: Transfer())
        pendingStatuses.initialize(repeating: .none)
        events.initialize(
            repeating: AccountEvent(
                timestamp: 0, transferTimestamp: 0, amount: 0, pendingId: 0,
                debitAccount: AccountSnapshot(Account()), creditAccount: AccountSnapshot(Account()),
                ledger: 0, pendingStatus: .none))
        accountIds = IdIndex(capacity: configuration.accountsMax)
        transferIds = IdIndex(capacity: configuration.transfersMax + configuration.failedTransfersMax)
        failedTransfersMax = configuration.failedTransfersMax
        expiries = ExpiryHeap(capacity: configuration.transfersMax)
        // A chain spans at most one batch; an event makes at most 6 undoable changes.
        undo = UndoLog(capacity: Constants.batchEventsMaxLegacy * UndoLog.changesPerEventMax)
    }

    deinit {
        LargeAllocation.deallocate(accounts)
        LargeAllocation.deallocate(transfers)
        LargeAllocation.deallocate(pendingStatuses)
        LargeAllocation.deallocate(events)
    }

    // MARK: Prefetch
    //
    // Everything is resident, so the batch prefetch names nothing to load. The cost that
    // remains is CPU cache misses (1 M accounts are 128 MiB): a whole-batch prefetch measured
    // slower than execute-time hints, because a batch's data (~3.5 MiB) outgrows the L2 cache
    // before execute reaches it. So this store overlaps misses with `hint`, 16 events ahead:
    // first the hash slots, then the records they point at.

    public func prefetchStart() {}
    public func prefetchAccount(id: UInt128) {}
    public func prefetchAccount(timestamp: UInt64) {}
    public func prefetchTransfer(id: UInt128) {}
    public func prefetchTransfer(timestamp: UInt64) {}
    public func prefetchPendingTransfer(id: UInt128) {}
    public func prefetchExpiries(pulseTimestamp: UInt64) {}
    public func prefetchScanTransfers(_ query: TransferQuery, accountEvents: Bool) {}
    public func prefetchScanAccounts(_ query: AccountQuery) {}
    public func prefetchScanAccountEvents(timestampMin: UInt64, timestampMax: UInt64, limit: Int) {}
    public func prefetchFinish(completion: PrefetchCompletion<Never>) {
        completion(.success(()))
    }

    public func hint(
        accountId: UInt128, otherAccountId: UInt128, transferId: UInt128, timestamp: UInt64, pending: Bool,
        records: Bool
    ) {
        if records {
            if accountId != 0, let index = accountIds.find(accountId) {
                prefetchRecord(accounts.baseAddress! + Int(index))
            }
            if otherAccountId != 0, let index = accountIds.find(otherAccountId) {
                prefetchRecord(accounts.baseAddress! + Int(index))
            }
        } else {
            if accountId != 0 { accountIds.prefetch(accountId) }
            if otherAccountId != 0 { accountIds.prefetch(otherAccountId) }
            if transferId != 0 { transferIds.prefetch(transferId) }
        }
    }

    /// Both cache lines of a 128-byte record.
    @inline(__always)
    private func prefetchRecord<Record>(_ record: UnsafeMutablePointer<Record>) {
        let bytes = UnsafeRawPointer(record)
        ledger_prefetch_read(bytes)
        ledger_prefetch_read(bytes + 64)
    }

    // MARK: Accounts

    public func accountIndex(id: UInt128) -> Int? {
        if id == 0 { return nil }
        return accountIds.find(id).map { Int($0) }
    }

    public func account(at index: Int) -> Account {
        precondition(index < accountCount, "account index in range")
        return accounts[index]
    }

    public func updateAccount(at index: Int, _ account: Account) {
        precondition(index < accountCount, "account index in range")
        precondition(accounts[index].id == account.id, "an update keeps the id")
        undo.record(UndoEntry(kind: .accountUpdated, index: index, account: accounts[index]))
        accounts[index] = account
    }

    public func insertAccount(_ account: Account) {
        precondition(accountCount < accounts.count, "accountsMax exceeded (configure a larger store)")
        precondition(account.timestamp > accountTimestampMax, "accounts are appended in timestamp order")
        accounts[accountCount] = account
        accountIds.insert(account.id, value: Int32(accountCount))
        undo.record(UndoEntry(kind: .accountInserted, index: accountCount))
        accountCount += 1
    }

    public var accountTimestampMax: UInt64 {
        accountCount == 0 ? 0 : accounts[accountCount - 1].timestamp
    }

    public func accountExists(timestamp: UInt64) -> Bool {
        let position = lowerBound(accountCount, timestamp) { accounts[$0].timestamp }
        return position < accountCount && accounts[position].timestamp == timestamp
    }

    // MARK: Transfers

    public func transferIndex(id: UInt128) -> Int? {
        if id == 0 { return nil }
        guard let value = transferIds.find(id), value >= 0 else { return nil }
        return Int(value)
    }

    public func transferIndex(timestamp: UInt64) -> Int? {
        let position = lowerBound(transferCount, timestamp) { transfers[$0].timestamp }
        guard position < transferCount, transfers[position].timestamp == timestamp else { return nil }
        return position
    }

    public func transfer(at index: Int) -> Transfer {
        precondition(index < transferCount, "transfer index in range")
        return transfers[index]
    }

    public func insertTransfer(_ transfer: Transfer) {
        precondition(transferCount < transfers.count, "transfersMax exceeded (configure a larger store)")
        precondition(transfer.timestamp > transferTimestampMax, "transfers are appended in timestamp order")
        transfers[transferCount] = transfer
        pendingStatuses[transferCount] = transfer.flags.contains(.pending) ? .pending : .none
        transferIds.insert(transfer.id, value: Int32(transferCount))
        undo.record(UndoEntry(kind: .transferInserted, index: transferCount))
        transferCount += 1
    }

    public var transferTimestampMax: UInt64 {
        transferCount == 0 ? 0 : transfers[transferCount - 1].timestamp
    }

    public func transferExists(timestamp: UInt64) -> Bool { transferIndex(timestamp: timestamp) != nil }

    public func pendingStatus(transferAt index: Int) -> PendingStatus {
        precondition(index < transferCount, "transfer index in range")
        return pendingStatuses[index]
    }

    public func setPendingStatus(transferAt index: Int, _ status: PendingStatus) {
        precondition(index < transferCount, "transfer index in range")
        undo.record(UndoEntry(kind: .pendingStatusSet, index: index, status: pendingStatuses[index]))
        pendingStatuses[index] = status
    }

    public func transferFailed(id: UInt128) -> Bool {
        id != 0 && transferIds.find(id) == Self.failedMarker
    }

    /// Never undone: failed ids outlive rollbacks. No scope is open here (the batch loop
    /// closes a failed chain's scope first), which keeps `IdIndex.removeLast` LIFO.
    public func insertFailedTransfer(id: UInt128, timestamp: UInt64) {
        precondition(!undo.isOpen, "failed ids are recorded outside linked-chain scopes")
        precondition(failedTransferCount < failedTransfersMax, "failedTransfersMax exceeded")
        transferIds.insert(id, value: Self.failedMarker)
        failedTransferCount += 1
    }

    // MARK: Expiry schedule

    public func expiryInsert(_ entry: Expiry) {
        guard let index = transferIndex(timestamp: entry.transferTimestamp) else {
            preconditionFailure("a scheduled expiry has its pending transfer")
        }
        expiries.insert(entry, transferIndex: index)
        undo.record(UndoEntry(kind: .expiryInserted, index: index, expiry: entry))
    }

    public func expiryRemove(_ entry: Expiry) {
        guard let index = transferIndex(timestamp: entry.transferTimestamp) else {
            preconditionFailure("a scheduled expiry has its pending transfer")
        }
        expiries.remove(transferIndex: index)
        undo.record(UndoEntry(kind: .expiryRemoved, index: index, expiry: entry))
    }

    public func expiryFirst() -> Expiry? { expiries.first }

    public var expiryCount: Int { expiries.count }

    // MARK: Account events

    public func appendAccountEvent(_ event: AccountEvent) {
        precondition(accountEventCount < events.count, "accountEventsMax exceeded (configure a larger store)")
        precondition(event.timestamp > accountEventTimestampMax, "events are appended in timestamp order")
        events[accountEventCount] = event
        undo.record(UndoEntry(kind: .eventAppended, index: accountEventCount))
        accountEventCount += 1
    }

    public var accountEventTimestampMax: UInt64 {
        accountEventCount == 0 ? 0 : events[accountEventCount - 1].timestamp
    }

    public func accountEvent(timestamp: UInt64) -> AccountEvent? {
        let position = lowerBound(accountEventCount, timestamp) { events[$0].timestamp }
        guard position < accountEventCount, events[position].timestamp == timestamp else { return nil }
        return events[position]
    }

    // MARK: Scans

    public func scanAccounts(_ query: AccountQuery, into output: UnsafeMutableBufferPointer<Account>) -> Int {
        scan(
            count: accountCount, min: query.timestampMin, max: query.timestampMax,
            limit: min(query.limit, output.count), reversed: query.reversed,
            timestamp: { accounts[$0].timestamp },
            take: { index, position in
                guard query.matches(accounts[index]) else { return false }
                output[position] = accounts[index]
                return true
            })
    }

    public func scanTransfers(_ query: TransferQuery, into output: UnsafeMutableBufferPointer<Transfer>) -> Int {
        scan(
            count: transferCount, min: query.timestampMin, max: query.timestampMax,
            limit: min(query.limit, output.count), reversed: query.reversed,
            timestamp: { transfers[$0].timestamp },
            take: { index, position in
                guard query.matches(transfers[index]) else { return false }
                output[position] = transfers[index]
                return true
            })
    }

    public func scanAccountEvents(
        timestampMin: UInt64, timestampMax: UInt64, into output: UnsafeMutableBufferPointer<AccountEvent>
    ) -> Int {
        scan(
            count: accountEventCount, min: timestampMin, max: timestampMax, limit: output.count,
            reversed: false, timestamp: { events[$0].timestamp },
            take: { index, position in
                output[position] = events[index]
                return true
            })
    }

    /// Walks a timestamp-sorted array over `[min, max]` in either direction, offering each
    /// element to `take` until `limit` were taken.
    @inline(__always)
    private func scan(
        count: Int, min: UInt64, max: UInt64, limit: Int, reversed: Bool,
        timestamp: (Int) -> UInt64, take: (_ index: Int, _ position: Int) -> Bool
    ) -> Int {
        guard min <= max, limit > 0 else { return 0 }
        let start = lowerBound(count, min, timestamp)
        let end = max == UInt64.max ? count : lowerBound(count, max + 1, timestamp)
        var taken = 0
        var step = 0
        while taken < limit && step < end - start {
            let index = reversed ? end - 1 - step : start + step
            if take(index, taken) { taken += 1 }
            step += 1
        }
        return taken
    }

    /// First position in `0..<count` whose timestamp is ≥ `target`.
    @inline(__always)
    private func lowerBound(_ count: Int, _ target: UInt64, _ timestamp: (Int) -> UInt64) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if timestamp(middle) < target { low = middle + 1 } else { high = middle }
        }
        return low
    }

    // MARK: Scopes

    public func scopeOpen() { undo.open() }

    public func scopeClose(persist: Bool) {
        if persist {
            undo.close()
            return
        }
        // Undo in reverse order, so each step sees exactly the state it changed.
        while let entry = undo.popLast() {
            switch entry.kind {
            case .accountInserted:
                precondition(entry.index == accountCount - 1, "undo the newest account")
                accountIds.removeLast(accounts[entry.index].id)
                accountCount -= 1
            case .accountUpdated:
                accounts[entry.index] = entry.account
            case .transferInserted:
                precondition(entry.index == transferCount - 1, "undo the newest transfer")
                transferIds.removeLast(transfers[entry.index].id)
                transferCount -= 1
            case .pendingStatusSet:
                pendingStatuses[entry.index] = entry.status
            case .expiryInserted:
                expiries.remove(transferIndex: entry.index)
            case .expiryRemoved:
                expiries.insert(entry.expiry, transferIndex: entry.index)
            case .eventAppended:
                precondition(entry.index == accountEventCount - 1, "undo the newest event")
                accountEventCount -= 1
            }
        }
        undo.close()
    }

    // MARK: Test hooks

    /// Overwrites an account's balances directly: the "setup" step of the spec's worked
    /// examples. Tests only; production balances come from transfers.
    public func setBalancesForTesting(
        id: UInt128, debitsPending: UInt128, debitsPosted: UInt128, creditsPending: UInt128,
        creditsPosted: UInt128
    ) {
        guard let index = accountIndex(id: id) else { preconditionFailure("the account exists") }
        accounts[index].debitsPending = debitsPending
        accounts[index].debitsPosted = debitsPosted
        accounts[index].creditsPending = creditsPending
        accounts[index].creditsPosted = creditsPosted
    }
}

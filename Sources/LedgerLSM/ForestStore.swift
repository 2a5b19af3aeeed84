import LedgerIO
import LedgerKit
import LedgerStateMachine

// The state machine's store on the LSM forest (storage spec §5 "Grooves", "Prefetch, then
// execute"; docs/lsm.md "The state machine on the forest"): `StateMachine<ForestStore<S>>` runs
// the same semantics code as on `MemoryStore`, with every read it makes during execute answered
// from memory that the prefetch phase filled.
//
// ## What lives where
//
//   accounts groove           Account by timestamp; id tree; the query indexes
//   transfers groove          Transfer by timestamp; id tree (+ failed ids, orphaned); indexes
//   transfers-pending groove  `TransferPendingRecord` by the pending transfer's timestamp
//   account-events groove     `AccountEventRecord` by event timestamp
//   expiry schedule           `CompositeKey64(expires_at, transfer timestamp)` (tree 19): put
//                             when scheduled, tombstoned when posted, voided or expired, so the
//                             tree *is* the schedule (a derived index could not drop entries)
//
// Handles (`accountIndex`, `transferIndex`) are the objects' timestamps: unique, stable for the
// whole batch (across inserts, updates and scopes, more than the `LedgerStore` contract asks),
// and the key of the groove caches. `accountIndex(id:)` answers from the groove's per-batch id
// map alone (no cache lookup: the object is read by `account(at:)`). Execute's read-change-write
// of an account (`account(at:)`, then `updateAccount(at:)` after the transfer's other reads
// and writes) would look the account up twice; `account(at:)` therefore remembers where the
// cache keeps it (a CacheMap slot hint) in a small ring of the last `accountHintCount` reads,
// and `updateAccount` writes through that hint. A hint is a guess checked against the slot's
// key (slots move on evictions and discarded scopes): a stale one costs the lookup it saves.
//
// ## Prefetch (ForestStorePrefetch.swift), execute, compact
//
// The host calls `StateMachine.prefetch`, then `execute` once it called back, then
// `compact(op:callback:)`: the forest's beat for the op (and at a checkpoint trigger, the
// checkpoint the host writes into the superblock).
//
// ## Compaction during execute
//
// A detached beat's jobs (Forest.swift "Detached beats") move only when their IO completions
// run, and a batch's execute (~4 ms for 8,189 transfers) never returns to the event loop: their
// reads and writes completed early in it and then waited, and the next beat waited for the
// rest of their chain of reads, merges and writes (~2.3 ms of a ~13 ms batch). So every
// `executePollInserts` (256) inserts of a create batch, the store runs the compaction
// completions that are ready (`Storage.runPollableCompletions`), when the grid's IO is all
// compaction's (`Grid.isAllIOCompaction`: a create batch's prefetch reads are done by then; a
// manifest log or trailer write still in flight skips the poll). Their callbacks
// touch only the jobs, the grid (its cache and IO slots) and the free set's reservations:
// nothing execute reads or writes. A detached beat never ends a half-bar, so no manifest
// change, memtable swap or beat callback runs inside execute (the forest's next `compact` is
// not called yet). The grid written is the same (tests compare it byte for byte with and
// without polls: `SimulatedStorage.Options.pollLookaheadTicks`).
//
// ## Scopes
//
// A linked chain's scope covers the grooves, the expiry tree and the three newest-timestamp
// counters; a discarded scope truncates the memtables' puts and restores the caches (Groove,
// Memtable).
//
// ## Open and replay
//
// `open(checkpoint:callback:)` opens the forest at a checkpoint; the newest timestamps come from
// the object trees' tables (no tombstones there, so the largest table key is the newest object),
// then the host replays the ops after the checkpoint through the state machine, as at first.

/// Why the store stopped: the forest could not read or decode what it needed. A replica repairs
/// the block from a peer (step 5); a single replica cannot, and stops.
public enum ForestStoreFault: Error, Equatable, Sendable {
    case groove(treeId: UInt16, GrooveFault)
    case scan(treeId: UInt16, TreeScanResult)
    case query(ForestQueryFault)
}

public final class ForestStore<S: Storage>: LedgerStore {
    public typealias PrefetchFault = ForestStoreFault

    public let configuration: ForestStoreConfiguration
    public let forest: Forest<S>
    public let accounts: Groove<Account, S>
    public let transfers: Groove<Transfer, S>
    public let transfersPending: Groove<TransferPendingRecord, S>
    public let accountEvents: Groove<AccountEventRecord, S>
    /// The expiry schedule (see the header).
    public let expiries: Tree<CompositeKey64, S>
    /// Query planners over the accounts' and the transfers' index trees (ForestQuery.swift).
    public let accountQueries: ForestQuery<Account, S>
    public let transferQueries: ForestQuery<Transfer, S>

    public private(set) var accountTimestampMax: UInt64 = 0
    public private(set) var transferTimestampMax: UInt64 = 0
    public private(set) var accountEventTimestampMax: UInt64 = 0
    private var scopeTimestamps: (accounts: UInt64, transfers: UInt64, events: UInt64)?

    /// Prefetch state (ForestStorePrefetch.swift).
    let prefetcher: ForestStorePrefetcher<S>

    /// The ring of the last account reads' (timestamp, cache slot hint), see the header: a
    /// create_transfer reads two accounts and updates both, a post or void also reads its
    /// pending transfer's, so four cover each operation's reads.
    private static var accountHintCount: Int { 4 }
    private var accountHintTimestamps: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var accountHintSlots: (Int, Int, Int, Int) = (0, 0, 0, 0)
    private var accountHintNext = 0

    /// Account timestamps whose cache sets `hint` started loading, each waiting
    /// `accountValueHintLag` hints before its value lines are loaded (the set's tags must be in
    /// by then): a ring of two per hint, 0 for none.
    private static var accountValueHintLag: Int { 8 }
    private let accountValueHints: UnsafeMutableBufferPointer<UInt64>
    private var accountValueHintNext = 0

    public init(storage: S, configuration: ForestStoreConfiguration) {
        self.configuration = configuration
        forest = Forest(storage: storage, configuration: configuration.forest)
        let grid = forest.grid
        let freeSet = forest.freeSet
        accounts = Groove(
            grid: grid, freeSet: freeSet, configuration: configuration.accounts, indexes: GrooveIndex<Account>.accounts(),
            indexesUnchanged: GrooveIndex<Account>.accountsUnchanged)
        transfers = Groove(
            grid: grid, freeSet: freeSet, configuration: configuration.transfers,
            indexes: GrooveIndex<Transfer>.transfers())
        transfersPending = Groove(grid: grid, freeSet: freeSet, configuration: configuration.transfersPending, indexes: [])
        accountEvents = Groove(grid: grid, freeSet: freeSet, configuration: configuration.accountEvents, indexes: [])
        expiries = Tree(
            treeId: TreeId.transfersExpiresAt.rawValue, grid: grid, freeSet: freeSet, configuration: configuration.expiries)
        accounts.registerTrees(in: forest)
        transfers.registerTrees(in: forest)
        transfersPending.registerTrees(in: forest)
        accountEvents.registerTrees(in: forest)
        forest.add(expiries)
        accountQueries = ForestQuery(accounts: accounts)
        transferQueries = ForestQuery(transfers: transfers)
        prefetcher = ForestStorePrefetcher()
        accountValueHints = .allocate(capacity: 2 * Self.accountValueHintLag)
        accountValueHints.initialize(repeating: 0)
        prefetcher.attach(self)
    }

    deinit { accountValueHints.deallocate() }

    // MARK: Beat, checkpoint, open

    /// The compaction beat of `op`, after its operation executed (Forest.compact).
    public func compact(op: UInt64, callback: @escaping Forest<S>.BeatCallback) {
        precondition(!prefetcher.isActive, "a beat runs between operations")
        forest.compact(op: op, callback: callback)
    }

    /// Opens the forest at `checkpoint` on a fresh store over the same storage; the host then
    /// replays the ops after the checkpoint.
    public func open(checkpoint: ForestCheckpoint, callback: @escaping Forest<S>.OpenCallback) {
        forest.open(checkpoint: checkpoint) { [unowned self] result in
            if case .success = result {
                accountTimestampMax = Self.keyMax(accounts.objectTree)
                transferTimestampMax = Self.keyMax(transfers.objectTree)
                accountEventTimestampMax = Self.keyMax(accountEvents.objectTree)
            }
            callback(result)
        }
    }

    /// The largest key in a tree's visible tables (an object tree has no tombstones, so it is
    /// the newest object's timestamp); 0 for an empty tree.
    private static func keyMax<Value: TreeValue>(_ tree: Tree<Value, S>) -> UInt64 where Value.Key == UInt64 {
        var result: UInt64 = 0
        for level in 0..<tree.manifest.levelCount {
            let tables = tree.manifest.level(level)
            for position in 0..<tables.count {
                let table = tables.table(at: position)
                guard table.isVisible(snapshot: TableInfo.snapshotLatest) else { continue }
                result = max(result, table.keyMax(as: UInt64.self))
            }
        }
        return result
    }

    // MARK: Prefetch (names; the work is the prefetcher's)

    public func prefetchStart() { prefetcher.start() }
    public func prefetchAccount(id: UInt128) { prefetcher.account(id: id) }
    public func prefetchAccount(timestamp: UInt64) { prefetcher.account(timestamp: timestamp) }
    public func prefetchTransfer(id: UInt128) { prefetcher.transfer(id: id) }
    public func prefetchTransfer(timestamp: UInt64) { prefetcher.transfer(timestamp: timestamp) }
    public func prefetchPendingTransfer(id: UInt128) { prefetcher.pendingTransfer(id: id) }
    public func prefetchExpiries(pulseTimestamp: UInt64) { prefetcher.expiries(pulseTimestamp: pulseTimestamp) }
    public func prefetchScanTransfers(_ query: TransferQuery, accountEvents: Bool) {
        prefetcher.scanTransfers(query, accountEvents: accountEvents)
    }
    public func prefetchScanAccounts(_ query: AccountQuery) { prefetcher.scanAccounts(query) }
    public func prefetchScanAccountEvents(timestampMin: UInt64, timestampMax: UInt64, limit: Int) {
        prefetcher.scanAccountEvents(timestampMin: timestampMin, timestampMax: timestampMax, limit: limit)
    }
    public func prefetchFinish(completion: PrefetchCompletion<ForestStoreFault>) {
        prefetcher.finish(completion: completion)
    }

    /// Execute reads only memory that prefetch filled, but that memory (the batch's id maps,
    /// tens of MiB of object and id caches) is far larger than the CPU caches: each lookup
    /// costs dependent misses. The state machine hints events ahead (CreateBatch.swift), twice:
    /// first (`records` false) the ids' batch-map slots and, for a transfer, the id-cache and
    /// object-cache sets and stash slots its insert probes (by its id and its would-be
    /// `timestamp`); then (`records` true, nearer) the accounts' cache sets, found through the
    /// now-loaded batch map. Loads only: answers are unchanged.
    public func hint(
        accountId: UInt128, otherAccountId: UInt128, transferId: UInt128, timestamp: UInt64, pending: Bool,
        records: Bool
    ) {
        if records {
            // The ring's entries from `accountValueHintLag` hints ago: their tags are loaded.
            let position = accountValueHintNext
            accountValueHintNext = (position + 2) % accountValueHints.count
            if accountValueHints[position] != 0 { accounts.cache.prefetchValue(of: accountValueHints[position]) }
            if accountValueHints[position + 1] != 0 { accounts.cache.prefetchValue(of: accountValueHints[position + 1]) }
            accountValueHints[position] = accountId != 0 ? accounts.hintObject(id: accountId) : 0
            accountValueHints[position + 1] = otherAccountId != 0 ? accounts.hintObject(id: otherAccountId) : 0
        } else {
            if accountId != 0 { accounts.hintId(accountId, idCache: false) }
            if otherAccountId != 0 { accounts.hintId(otherAccountId, idCache: false) }
            if transferId != 0 {
                // The caches' sets only for a transfer they will take (`insertTransfer`).
                transfers.hintId(transferId, idCache: pending)
                if pending { transfers.cache.prefetchPlacement(of: timestamp, stash: true) }
            }
        }
    }

    // MARK: Accounts

    public func accountIndex(id: UInt128) -> Int? {
        guard id != 0 else { return nil }
        return accounts.timestamp(id: id).map { Int($0) }
    }

    public func account(at index: Int) -> Account {
        let timestamp = UInt64(index)
        var hint = accountHint(timestamp)
        guard let account = accounts.get(timestamp: timestamp, hint: &hint) else {
            preconditionFailure("an account handle names a prefetched account")
        }
        rememberAccountHint(timestamp, hint)
        return account
    }

    public func updateAccount(at index: Int, _ account: Account) {
        let timestamp = UInt64(index)
        precondition(account.timestamp == timestamp, "an account update keeps the handle's timestamp")
        accounts.update(account, hint: accountHint(timestamp))
    }

    /// The remembered slot hint of `timestamp`, `slotHintNone` if not among the last reads.
    private func accountHint(_ timestamp: UInt64) -> CacheMap<Account>.SlotHint {
        if accountHintTimestamps.0 == timestamp { return accountHintSlots.0 }
        if accountHintTimestamps.1 == timestamp { return accountHintSlots.1 }
        if accountHintTimestamps.2 == timestamp { return accountHintSlots.2 }
        if accountHintTimestamps.3 == timestamp { return accountHintSlots.3 }
        return CacheMap<Account>.slotHintNone
    }

    private func rememberAccountHint(_ timestamp: UInt64, _ hint: CacheMap<Account>.SlotHint) {
        // Overwrite the entry of the same timestamp if present, else the oldest one.
        var position = accountHintNext
        if accountHintTimestamps.0 == timestamp { position = 0 }
        else if accountHintTimestamps.1 == timestamp { position = 1 }
        else if accountHintTimestamps.2 == timestamp { position = 2 }
        else if accountHintTimestamps.3 == timestamp { position = 3 }
        else { accountHintNext = (accountHintNext + 1) % Self.accountHintCount }
        switch position {
        case 0: accountHintTimestamps.0 = timestamp; accountHintSlots.0 = hint
        case 1: accountHintTimestamps.1 = timestamp; accountHintSlots.1 = hint
        case 2: accountHintTimestamps.2 = timestamp; accountHintSlots.2 = hint
        default: accountHintTimestamps.3 = timestamp; accountHintSlots.3 = hint
        }
    }

    public func insertAccount(_ account: Account) {
        precondition(account.timestamp > accountTimestampMax, "accounts are inserted in timestamp order")
        accounts.insert(account)
        accountTimestampMax = account.timestamp
        countInsertAndPoll()
    }

    /// Inserts since the last poll of compaction's completions (see "Compaction during
    /// execute"; every `configuration.executePollInserts`).
    private var insertsSincePoll = 0
    /// Polls made (tests check that execute polls).
    public private(set) var executePollCount = 0

    private func countInsertAndPoll() {
        insertsSincePoll += 1
        guard insertsSincePoll >= configuration.executePollInserts else { return }
        insertsSincePoll = 0
        guard forest.grid.isAllIOCompaction else { return }
        executePollCount += 1
        forest.grid.storage.runPollableCompletions()
    }

    public func accountExists(timestamp: UInt64) -> Bool {
        accounts.get(timestamp: timestamp) != nil
    }

    // MARK: Transfers

    public func transferIndex(id: UInt128) -> Int? {
        guard id != 0 else { return nil }
        return transfers.timestamp(id: id).map { Int($0) }
    }

    public func transferIndex(timestamp: UInt64) -> Int? {
        transfers.get(timestamp: timestamp).map { Int($0.timestamp) }
    }

    public func transfer(at index: Int) -> Transfer {
        guard let transfer = transfers.get(timestamp: UInt64(index)) else {
            preconditionFailure("a transfer handle names a prefetched transfer")
        }
        return transfer
    }

    public func insertTransfer(_ transfer: Transfer) {
        precondition(transfer.timestamp > transferTimestampMax, "transfers are inserted in timestamp order")
        // Only a pending transfer is read again soon (its post, void or expiry): the others go
        // to the trees alone (Groove.swift, "Uncached inserts").
        transfers.insert(transfer, cached: transfer.flags.contains(.pending))
        transferTimestampMax = transfer.timestamp
        if transfer.flags.contains(.pending) {
            transfersPending.insert(TransferPendingRecord(timestamp: transfer.timestamp, status: .pending))
        }
        countInsertAndPoll()
    }

    public func transferExists(timestamp: UInt64) -> Bool {
        transfers.get(timestamp: timestamp) != nil
    }

    public func pendingStatus(transferAt index: Int) -> PendingStatus {
        guard let record = transfersPending.get(timestamp: UInt64(index)) else { return .none }
        guard let status = record.status else {
            preconditionFailure("a stored pending status decodes (its block verified)")
        }
        return status
    }

    public func setPendingStatus(transferAt index: Int, _ status: PendingStatus) {
        guard let old = transfersPending.get(timestamp: UInt64(index)) else {
            preconditionFailure("only a pending transfer's status changes")
        }
        transfersPending.update(old: old, new: TransferPendingRecord(timestamp: old.timestamp, status: status))
    }

    public func transferFailed(id: UInt128) -> Bool {
        id != 0 && transfers.isOrphaned(id: id)
    }

    public func insertFailedTransfer(id: UInt128, timestamp: UInt64) {
        transfers.insertOrphanedId(id, timestamp: timestamp)
    }

    // MARK: Expiry schedule

    public func expiryInsert(_ entry: Expiry) {
        expiries.put(CompositeKey64(field: entry.expiresAt, timestamp: entry.transferTimestamp))
    }

    public func expiryRemove(_ entry: Expiry) {
        expiries.put(.tombstone(key: CompositeKey64(field: entry.expiresAt, timestamp: entry.transferTimestamp)))
        prefetcher.expiryRemoved(entry)
    }

    public func expiryFirst() -> Expiry? { prefetcher.expiryFirst() }

    // MARK: Account events

    public func appendAccountEvent(_ event: AccountEvent) {
        precondition(event.timestamp > accountEventTimestampMax, "account events are appended in timestamp order")
        // Not cached: no read of this op asks for an event it appends (Groove.insertUncached).
        accountEvents.insertUncached(AccountEventRecord(event))
        accountEventTimestampMax = event.timestamp
    }

    public func accountEvent(timestamp: UInt64) -> AccountEvent? {
        accountEvents.get(timestamp: timestamp).map { record in
            guard let event = record.event else {
                preconditionFailure("a stored account event decodes (its block verified)")
            }
            return event
        }
    }

    // MARK: Scans (answered from what prefetch found)

    public func scanAccounts(_ query: AccountQuery, into output: UnsafeMutableBufferPointer<Account>) -> Int {
        prefetcher.takeScan(accounts: query) { timestamps in
            let count = min(timestamps.count, output.count, query.limit)
            for position in 0..<count { output[position] = account(at: Int(timestamps[position])) }
            return count
        }
    }

    public func scanTransfers(_ query: TransferQuery, into output: UnsafeMutableBufferPointer<Transfer>) -> Int {
        prefetcher.takeScan(transfers: query) { timestamps in
            let count = min(timestamps.count, output.count, query.limit)
            for position in 0..<count { output[position] = transfer(at: Int(timestamps[position])) }
            return count
        }
    }

    public func scanAccountEvents(
        timestampMin: UInt64, timestampMax: UInt64, into output: UnsafeMutableBufferPointer<AccountEvent>
    ) -> Int {
        prefetcher.takeAccountEvents(timestampMin: timestampMin, timestampMax: timestampMax, into: output)
    }

    // MARK: Scopes

    public func scopeOpen() {
        precondition(scopeTimestamps == nil, "scopes do not nest")
        scopeTimestamps = (accountTimestampMax, transferTimestampMax, accountEventTimestampMax)
        accounts.scopeOpen()
        transfers.scopeOpen()
        transfersPending.scopeOpen()
        accountEvents.scopeOpen()
        expiries.scopeOpen()
    }

    public func scopeClose(persist: Bool) {
        guard let saved = scopeTimestamps else { preconditionFailure("scopeClose follows scopeOpen") }
        scopeTimestamps = nil
        accounts.scopeClose(persist: persist)
        transfers.scopeClose(persist: persist)
        transfersPending.scopeClose(persist: persist)
        accountEvents.scopeClose(persist: persist)
        expiries.scopeClose(persist: persist)
        if !persist {
            accountTimestampMax = saved.accounts
            transferTimestampMax = saved.transfers
            accountEventTimestampMax = saved.events
        }
    }
}

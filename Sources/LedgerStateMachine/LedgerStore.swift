import LedgerKit

/// The storage the state machine runs on: the logical state of state-machine spec §2, behind
/// an interface that the in-memory `MemoryStore` (the reference model) and the LSM forest both
/// implement. The state machine is generic over it (`StateMachine<Store>`), so calls are
/// specialized and direct: no existentials on the hot path.
///
/// Phases (ARCHITECTURE.md): during *prefetch* the state machine names every object a batch may
/// touch (`prefetch…`); a store with slow storage loads them then, so that during *execute*
/// every accessor below is a synchronous in-memory lookup. After execute, the host runs the
/// concrete store's per-op work (the forest's compaction beat): it is not part of this
/// interface because only the host, not the state machine, drives it.
///
/// Handles (`Int`) returned by `accountIndex`/`transferIndex` stay valid until the next
/// insertion or scope close; the state machine never keeps one across events.
///
/// Linked chains: `scopeOpen()` starts a savepoint; `scopeClose(persist: false)` undoes every
/// change made since (accounts, transfers, pending statuses, expiry schedule, account events).
/// Failed transfer ids are *not* covered: they are recorded after the rollback and persist.
/// The end of a prefetch (`StateMachine.prefetch`, `LedgerStore.prefetchFinish`): a callback
/// made once by its owner and passed by reference. Why not a closure argument: the callback's
/// type names the store's fault type, so a closure handed through the generic state machine
/// to a concrete store was re-wrapped in a reabstraction thunk on every operation (a heap
/// allocation per request on the server's request path); a class reference is never
/// converted.
public final class PrefetchCompletion<Fault: Error> {
    let body: (Result<Void, Fault>) -> Void

    public init(_ body: @escaping (Result<Void, Fault>) -> Void) { self.body = body }

    /// Calls the callback.
    @inline(__always)
    public func callAsFunction(_ result: Result<Void, Fault>) { body(result) }
}

public protocol LedgerStore: AnyObject {
    // MARK: Prefetch (docs/lsm.md "The state machine on the forest")
    //
    // `StateMachine.prefetch` names everything an operation may read, then calls
    // `prefetchFinish`; `execute` starts once its callback ran. A store whose data is resident
    // (`MemoryStore`) ignores the names and calls back at once; the forest loads them from disk.
    // Scans (queries, account events, the expiry schedule) run here too: the store keeps their
    // results, and the execute-time `scan…`/`expiryFirst` calls, made with the same arguments
    // in the same order, read them.

    /// What stops a prefetch: the store's storage failed in a way only repair can fix.
    associatedtype PrefetchFault: Error

    /// Starts naming the objects of one operation.
    func prefetchStart()
    func prefetchAccount(id: UInt128)
    /// The account created at `timestamp`, if any (imported transfers must not reuse it).
    func prefetchAccount(timestamp: UInt64)
    func prefetchTransfer(id: UInt128)
    /// The transfer created at `timestamp`, if any (imported accounts must not reuse it).
    func prefetchTransfer(timestamp: UInt64)
    /// A transfer that a post or void names: the transfer, and if it is pending, its pending
    /// status and its two accounts (a post/void may leave its own account ids zero).
    func prefetchPendingTransfer(id: UInt128)
    /// The expiry schedule's first entries for a pulse at `pulseTimestamp`: those due (at most
    /// `Constants.pulseExpiriesMax`), the next one after them, and the due transfers, their
    /// pending statuses and accounts.
    func prefetchExpiries(pulseTimestamp: UInt64)
    /// The transfers `query` selects (a later `scanTransfers` with this query reads them); with
    /// `accountEvents`, also the account event of each (get_account_balances).
    func prefetchScanTransfers(_ query: TransferQuery, accountEvents: Bool)
    func prefetchScanAccounts(_ query: AccountQuery)
    /// The account events of `scanAccountEvents(timestampMin:timestampMax:)` with at most
    /// `limit` results, and each event's transfer and accounts (get_change_events).
    func prefetchScanAccountEvents(timestampMin: UInt64, timestampMax: UInt64, limit: Int)
    /// Everything is named: load it, then call `completion` (possibly before this returns).
    func prefetchFinish(completion: PrefetchCompletion<PrefetchFault>)

    /// Execute-time cache hints for an event a few positions ahead of the one executing
    /// (`StateMachine.hintDistance`): first its hash slots, later (`records: true`) the records
    /// those slots point at. A store whose prefetch phase already made everything resident in
    /// CPU cache may ignore them; the in-memory store uses them to overlap cache misses, which
    /// a whole-batch prefetch cannot do once a batch's data outgrows the CPU cache.
    /// `timestamp` is the event's timestamp should it be created (its slot timestamp, or its
    /// own if imported): where a store will insert it. `pending`: the event would create a
    /// pending transfer (a store may keep those closer at hand: the forest caches only them).
    /// A guess only: the event may fail.
    func hint(
        accountId: UInt128, otherAccountId: UInt128, transferId: UInt128, timestamp: UInt64, pending: Bool,
        records: Bool)

    // MARK: Accounts

    func accountIndex(id: UInt128) -> Int?
    func account(at index: Int) -> Account
    /// Replaces the account at `index` (balances and `closed` change; the id never does).
    func updateAccount(at index: Int, _ account: Account)
    /// Inserts a new account whose timestamp is greater than every account's timestamp.
    func insertAccount(_ account: Account)
    /// Largest timestamp of any account, 0 if there is none.
    var accountTimestampMax: UInt64 { get }
    func accountExists(timestamp: UInt64) -> Bool

    // MARK: Transfers

    func transferIndex(id: UInt128) -> Int?
    func transferIndex(timestamp: UInt64) -> Int?
    func transfer(at index: Int) -> Transfer
    /// Inserts a new transfer whose timestamp is greater than every transfer's timestamp.
    /// Its pending status starts as `pending` if it is a pending transfer, else `none`.
    func insertTransfer(_ transfer: Transfer)
    /// Largest timestamp of any transfer, 0 if there is none.
    var transferTimestampMax: UInt64 { get }
    func transferExists(timestamp: UInt64) -> Bool

    func pendingStatus(transferAt index: Int) -> PendingStatus
    func setPendingStatus(transferAt index: Int, _ status: PendingStatus)

    /// Ids that failed with a transient status: never a transfer, never reusable.
    func transferFailed(id: UInt128) -> Bool
    /// `timestamp`: the slot of the event that failed (the forest keeps it with the id).
    func insertFailedTransfer(id: UInt128, timestamp: UInt64)

    // MARK: Expiry schedule, ordered by (expiresAt, transfer timestamp)

    func expiryInsert(_ entry: Expiry)
    func expiryRemove(_ entry: Expiry)
    /// The first entry of the schedule, if any.
    func expiryFirst() -> Expiry?

    // MARK: Account events (balance history and change-data capture), ordered by timestamp

    /// Appends an event whose timestamp is greater than every event's timestamp.
    func appendAccountEvent(_ event: AccountEvent)
    var accountEventTimestampMax: UInt64 { get }
    func accountEvent(timestamp: UInt64) -> AccountEvent?

    // MARK: Scans: the matching rules are the queries' own (`matches`), the store picks the path

    /// Writes the accounts matching `query` into `output` (at most `query.limit` and at most
    /// `output.count`), in timestamp order (descending if reversed); returns how many.
    func scanAccounts(_ query: AccountQuery, into output: UnsafeMutableBufferPointer<Account>) -> Int
    func scanTransfers(_ query: TransferQuery, into output: UnsafeMutableBufferPointer<Transfer>) -> Int
    /// Writes the account events with timestamps in `[timestampMin, timestampMax]`, ascending.
    func scanAccountEvents(
        timestampMin: UInt64, timestampMax: UInt64,
        into output: UnsafeMutableBufferPointer<AccountEvent>
    ) -> Int

    // MARK: Scopes

    func scopeOpen()
    func scopeClose(persist: Bool)
}

/// Status of a pending transfer (u8): it changes at most once, from `pending`.
public enum PendingStatus: UInt8, Sendable {
    case none = 0
    case pending = 1
    case posted = 2
    case voided = 3
    case expired = 4
}

/// One entry of the expiry schedule: a pending transfer with a timeout, not yet resolved.
public struct Expiry: Hashable, Sendable, Comparable {
    public var expiresAt: UInt64
    /// The pending transfer's timestamp (its key; unique).
    public var transferTimestamp: UInt64

    public init(expiresAt: UInt64, transferTimestamp: UInt64) {
        self.expiresAt = expiresAt
        self.transferTimestamp = transferTimestamp
    }

    public static func < (a: Expiry, b: Expiry) -> Bool {
        if a.expiresAt != b.expiresAt { return a.expiresAt < b.expiresAt }
        return a.transferTimestamp < b.transferTimestamp
    }
}

import LedgerIO
import LedgerKit
import LedgerStateMachine

// The forest store's prefetch phase: everything one operation's execute will read, loaded into
// the grooves' caches and the prefetcher's result buffers before execute starts.
//
// ## Stages (one operation)
//
//   names       `StateMachine.prefetch` names objects by id or timestamp (enqueued in the
//               grooves at once) and asks for scans (recorded here)
//   scans       one at a time: the expiry schedule (pulse), the account events (change events),
//               the queries (ForestQuery: index scans → timestamps)
//   round 1     what the scans found is enqueued (objects by timestamp; for change events the
//               accounts by id; for balances the account events), then each groove prefetches
//   round 2     what round 1 found names more: a post/void's pending transfer → its pending
//               status and its two accounts; an expiring transfer → its two accounts; then the
//               grooves prefetch again (a groove keeps round 1's objects: one batch, one stash)
//   done        the callback
//
// A stage's IO may complete before the call that started it returns; the driver loop (`drive`)
// picks the next stage up without recursion, so the stack does not grow with the stages.
//
// ## Results kept for execute
//
// Scans are answered by execute in the order the state machine makes them, with the same
// arguments (both sides build their queries with the same functions, Prefetch.swift in
// LedgerStateMachine); a scan the state machine skips (get_account_balances on an account
// without history) is passed over. Query results are timestamps (the objects are in the groove
// caches); all queries of one request share one buffer of `Constants.queryResultsMax`
// timestamps, as their results share one reply.
//
// The pulse reads the expiry schedule's head through `expiryFirst`: the scan keeps the first
// `pulseExpiriesMax + 1` entries (the due ones and the next), and `expiryRemove` of the head
// moves a cursor, so the pulse's selection loop and its "next expiry" read what the schedule
// holds.

final class ForestStorePrefetcher<S: Storage> {
    /// The store that owns this prefetcher (and so outlives it). `unowned(unsafe)`: a checked
    /// `unowned` reference cost a strong retain/release per access, 3.5 % of a create_transfers
    /// batch's CPU in the forest benchmark (every name goes through it).
    private unowned(unsafe) var store: ForestStore<S>!

    enum ScanKind: Equatable {
        case accounts(AccountQuery)
        case transfers(TransferQuery, accountEvents: Bool)
    }

    struct ScanRequest {
        var kind: ScanKind
        var resultStart = 0
        var resultCount = 0
    }

    private enum Stage: Int {
        case expiryScan, eventScan, queryScans, roundOne, roundOneGrooves, roundTwo, roundTwoGrooves, done
    }

    private(set) var isActive = false
    private var isNaming = false
    private var stage = Stage.done
    private var isDriving = false
    private var isWaiting = false
    private var fault: ForestStoreFault?
    private var callback: PrefetchCompletion<ForestStoreFault>?
    /// Which groove of a round prefetches next (0 accounts, 1 transfers, 2 pending, 3 events).
    private var grooveNext = 0
    /// The store's grooves, each prefetched once per round (`prefetchGroove`).
    private static var grooveCount: Int { 4 }

    // Names that round 2 follows up.
    private var pendingIds: [UInt128] = []

    // Pulse.
    private var pulseTimestamp: UInt64?
    private let expiryKeys: UnsafeMutableBufferPointer<CompositeKey64>
    private var expiryCount = 0
    private var expiryCursor = 0
    /// Expiries due at the pulse (≤ pulseExpiriesMax of the found ones).
    private var expiryDue = 0

    // Account events (get_change_events).
    private var eventScan: (min: UInt64, max: UInt64, limit: Int)?
    private let eventRecords: UnsafeMutableBufferPointer<AccountEventRecord>
    private var eventCount = 0

    // Queries.
    private var scans: [ScanRequest] = []
    private var scanNext = 0
    private var scanTaken = 0
    private let timestamps: UnsafeMutableBufferPointer<UInt64>
    private var timestampsUsed = 0

    // Callbacks made once (no allocation per operation).
    private var grooveDone: (Result<Void, GrooveFault>) -> Void = { _ in }
    private var expiryScanDone: (TreeScanResult) -> Void = { _ in }
    private var eventScanDone: (TreeScanResult) -> Void = { _ in }
    private var queryDone: (Result<Int, ForestQueryFault>) -> Void = { _ in }

    init() {
        expiryKeys = .allocate(capacity: Constants.pulseExpiriesMax + 1)
        eventRecords = .allocate(capacity: Constants.changeEventsMax)
        timestamps = .allocate(capacity: Constants.queryResultsMax)
        pendingIds.reserveCapacity(Constants.batchEventsMax)
        scans.reserveCapacity(Constants.queryResultsMax)
    }

    deinit {
        expiryKeys.deallocate()
        eventRecords.deallocate()
        timestamps.deallocate()
    }

    func attach(_ store: ForestStore<S>) {
        self.store = store
        grooveDone = { [unowned self] result in
            if case .failure(let groove) = result {
                self.fail(.groove(treeId: self.grooveTreeId(self.grooveNext - 1), groove))
            }
            self.resume()
        }
        expiryScanDone = { [unowned self] result in
            if case .done(let count) = result { self.expiryCount = count } else {
                self.fail(.scan(treeId: TreeId.transfersExpiresAt.rawValue, result))
            }
            self.resume()
        }
        eventScanDone = { [unowned self] result in
            if case .done(let count) = result { self.eventCount = count } else {
                self.fail(.scan(treeId: TreeId.accountEventsObject.rawValue, result))
            }
            self.resume()
        }
        queryDone = { [unowned self] result in
            switch result {
            case .success(let count): self.scans[self.scanNext - 1].resultCount = count
            case .failure(let query): self.fail(.query(query))
            }
            self.resume()
        }
    }

    // MARK: Names

    func start() {
        precondition(!isActive, "one prefetch at a time")
        isActive = true
        isNaming = true
        fault = nil
        pendingIds.removeAll(keepingCapacity: true)
        pulseTimestamp = nil
        expiryCount = 0
        expiryCursor = 0
        expiryDue = 0
        eventScan = nil
        eventCount = 0
        scans.removeAll(keepingCapacity: true)
        scanNext = 0
        scanTaken = 0
        timestampsUsed = 0
        store.accounts.prefetchStart()
        store.transfers.prefetchStart()
        store.transfersPending.prefetchStart()
        store.accountEvents.prefetchStart()
    }

    func account(id: UInt128) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        if id != 0 { store.accounts.prefetchEnqueue(id: id) }
    }

    func account(timestamp: UInt64) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        if timestamp != 0 { store.accounts.prefetchEnqueue(timestamp: timestamp) }
    }

    func transfer(id: UInt128) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        if id != 0 { store.transfers.prefetchEnqueue(id: id) }
    }

    func transfer(timestamp: UInt64) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        if timestamp != 0 { store.transfers.prefetchEnqueue(timestamp: timestamp) }
    }

    func pendingTransfer(id: UInt128) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        guard id != 0 else { return }
        store.transfers.prefetchEnqueue(id: id)
        precondition(pendingIds.count < Constants.batchEventsMax, "a batch names at most a batch of pending ids")
        pendingIds.append(id)
    }

    func expiries(pulseTimestamp: UInt64) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        precondition(self.pulseTimestamp == nil, "one pulse per operation")
        self.pulseTimestamp = pulseTimestamp
    }

    func scanAccounts(_ query: AccountQuery) { addScan(.accounts(query), limit: query.limit) }

    func scanTransfers(_ query: TransferQuery, accountEvents: Bool) {
        addScan(.transfers(query, accountEvents: accountEvents), limit: query.limit)
    }

    private func addScan(_ kind: ScanKind, limit: Int) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        precondition(limit >= 1, "a query asks for a result")
        precondition(timestampsUsed + limit <= timestamps.count,
                     "a request's query limits fit one reply (isValidRequest)")
        scans.append(ScanRequest(kind: kind, resultStart: timestampsUsed))
        timestampsUsed += limit
    }

    func scanAccountEvents(timestampMin: UInt64, timestampMax: UInt64, limit: Int) {
        precondition(isNaming, "names come between prefetchStart and prefetchFinish")
        precondition(eventScan == nil, "one change-events scan per operation")
        precondition(limit >= 1 && limit <= eventRecords.count, "change events fit one reply")
        eventScan = (timestampMin, timestampMax, limit)
    }

    func finish(completion: PrefetchCompletion<ForestStoreFault>) {
        precondition(isNaming, "prefetchFinish follows prefetchStart")
        isNaming = false
        self.callback = completion
        stage = .expiryScan
        drive()
    }

    // MARK: Driver

    private func fail(_ fault: ForestStoreFault) {
        if self.fault == nil { self.fault = fault }
    }

    /// An asynchronous step completed: continue (or let the running loop continue).
    private func resume() {
        isWaiting = false
        drive()
    }

    /// Runs stages until one waits for IO or all are done. Steps that complete synchronously
    /// call `resume` inside `advance`, which only clears `isWaiting`: this loop continues.
    private func drive() {
        guard !isDriving else { return }
        isDriving = true
        // Each turn advances `stage`, `scanNext` or `grooveNext`: bounded by the stages.
        while !isWaiting && stage != .done {
            if fault != nil { stage = .done; break }
            advance()
        }
        isDriving = false
        if stage == .done && !isWaiting, let callback {
            self.callback = nil
            isActive = false
            if let fault {
                callback(.failure(fault))
            } else {
                callback(.success(()))
            }
        }
    }

    private func advance() {
        switch stage {
        case .expiryScan:
            stage = .eventScan
            guard pulseTimestamp != nil else { return }
            isWaiting = true
            store.expiries.scan(
                keyMin: CompositeKey64(field: 0, timestamp: 0),
                keyMax: CompositeKey64(field: UInt64.max, timestamp: CompositeKey64.tombstoneBit - 1),
                direction: .ascending, limit: expiryKeys.count, into: expiryKeys, callback: expiryScanDone)
        case .eventScan:
            stage = .queryScans
            guard let scan = eventScan else { return }
            isWaiting = true
            store.accountEvents.objectTree.scan(
                keyMin: scan.min, keyMax: scan.max, direction: .ascending, limit: scan.limit,
                into: UnsafeMutableBufferPointer(rebasing: eventRecords[0..<scan.limit]), callback: eventScanDone)
        case .queryScans:
            guard scanNext < scans.count else {
                stage = .roundOne
                return
            }
            let request = scans[scanNext]
            scanNext += 1
            isWaiting = true
            runQuery(request)
        case .roundOne:
            enqueueRoundOne()
            stage = .roundOneGrooves
            grooveNext = 0
        case .roundOneGrooves, .roundTwoGrooves:
            guard grooveNext < Self.grooveCount else {
                stage = stage == .roundOneGrooves ? .roundTwo : .done
                return
            }
            let groove = grooveNext
            grooveNext += 1
            isWaiting = true
            prefetchGroove(groove)
        case .roundTwo:
            enqueueRoundTwo()
            stage = .roundTwoGrooves
            grooveNext = 0
        case .done:
            break
        }
    }

    private func prefetchGroove(_ groove: Int) {
        switch groove {
        case 0: store.accounts.prefetch(callback: grooveDone)
        case 1: store.transfers.prefetch(callback: grooveDone)
        case 2: store.transfersPending.prefetch(callback: grooveDone)
        default: store.accountEvents.prefetch(callback: grooveDone)
        }
    }

    private func grooveTreeId(_ groove: Int) -> UInt16 {
        switch groove {
        case 0: store.configuration.accounts.objectTreeId
        case 1: store.configuration.transfers.objectTreeId
        case 2: store.configuration.transfersPending.objectTreeId
        default: store.configuration.accountEvents.objectTreeId
        }
    }

    private func runQuery(_ request: ScanRequest) {
        let limit: Int
        switch request.kind {
        case .accounts(let query): limit = query.limit
        case .transfers(let query, _): limit = query.limit
        }
        let output = UnsafeMutableBufferPointer(rebasing: timestamps[request.resultStart..<request.resultStart + limit])
        switch request.kind {
        case .accounts(let query): store.accountQueries.run(query, output: output, callback: queryDone)
        case .transfers(let query, _): store.transferQueries.run(query, output: output, callback: queryDone)
        }
    }

    // MARK: Rounds

    private func enqueueRoundOne() {
        if let pulseTimestamp {
            while expiryDue < min(expiryCount, Constants.pulseExpiriesMax)
                && expiryKeys[expiryDue].field <= pulseTimestamp
            {
                let transferTimestamp = expiryKeys[expiryDue].timestamp
                store.transfers.prefetchEnqueue(timestamp: transferTimestamp)
                store.transfersPending.prefetchEnqueue(timestamp: transferTimestamp)
                expiryDue += 1
            }
        }
        for position in 0..<eventCount {
            let record = eventRecords[position]
            store.transfers.prefetchEnqueue(timestamp: record.transferTimestamp)
            if record.debitAccount.id != 0 { store.accounts.prefetchEnqueue(id: record.debitAccount.id) }
            if record.creditAccount.id != 0 { store.accounts.prefetchEnqueue(id: record.creditAccount.id) }
        }
        for request in scans {
            for position in request.resultStart..<request.resultStart + request.resultCount {
                let timestamp = timestamps[position]
                switch request.kind {
                case .accounts:
                    store.accounts.prefetchEnqueue(timestamp: timestamp)
                case .transfers(_, let events):
                    store.transfers.prefetchEnqueue(timestamp: timestamp)
                    if events { store.accountEvents.prefetchEnqueue(timestamp: timestamp) }
                }
            }
        }
    }

    private func enqueueRoundTwo() {
        for id in pendingIds {
            guard let pending = store.transfers.get(id: id) else { continue }
            store.transfersPending.prefetchEnqueue(timestamp: pending.timestamp)
            account(pending.debitAccountId)
            account(pending.creditAccountId)
        }
        for position in 0..<expiryDue {
            guard let pending = store.transfers.get(timestamp: expiryKeys[position].timestamp) else { continue }
            account(pending.debitAccountId)
            account(pending.creditAccountId)
        }
    }

    private func account(_ id: UInt128) {
        if id != 0 { store.accounts.prefetchEnqueue(id: id) }
    }

    // MARK: Execute-time reads

    /// Execute has started: names are over, the results stay until the next `start`.
    private func requirePrefetched() {
        precondition(!isNaming && stage == .done && callback == nil, "execute reads after prefetch")
    }

    func takeScan(accounts query: AccountQuery, _ body: (UnsafeBufferPointer<UInt64>) -> Int) -> Int {
        requirePrefetched()
        let request = nextScan { kind in
            if case .accounts(let found) = kind { return found.sameSelection(as: query) }
            return false
        }
        return body(UnsafeBufferPointer(rebasing: timestamps[request.resultStart..<request.resultStart + request.resultCount]))
    }

    func takeScan(transfers query: TransferQuery, _ body: (UnsafeBufferPointer<UInt64>) -> Int) -> Int {
        requirePrefetched()
        let request = nextScan { kind in
            if case .transfers(let found, _) = kind { return found.sameSelection(as: query) }
            return false
        }
        return body(UnsafeBufferPointer(rebasing: timestamps[request.resultStart..<request.resultStart + request.resultCount]))
    }

    /// The next prefetched scan that matches (scans the state machine skipped are passed over).
    private func nextScan(_ matches: (ScanKind) -> Bool) -> ScanRequest {
        while scanTaken < scans.count {
            let request = scans[scanTaken]
            scanTaken += 1
            if matches(request.kind) { return request }
        }
        preconditionFailure("every scan execute makes was prefetched")
    }

    func takeAccountEvents(
        timestampMin: UInt64, timestampMax: UInt64, into output: UnsafeMutableBufferPointer<AccountEvent>
    ) -> Int {
        requirePrefetched()
        guard let scan = eventScan, scan.min == timestampMin, scan.max == timestampMax else {
            preconditionFailure("the change-events scan execute makes was prefetched")
        }
        let count = min(eventCount, output.count)
        for position in 0..<count {
            guard let event = eventRecords[position].event else {
                preconditionFailure("a stored account event decodes (its block verified)")
            }
            output[position] = event
        }
        return count
    }

    // MARK: The expiry schedule during a pulse

    func expiryFirst() -> Expiry? {
        requirePrefetched()
        precondition(pulseTimestamp != nil, "only a pulse reads the schedule's head")
        guard expiryCursor < expiryCount else { return nil }
        let key = expiryKeys[expiryCursor]
        return Expiry(expiresAt: key.field, transferTimestamp: key.timestamp)
    }

    func expiryRemoved(_ entry: Expiry) {
        guard pulseTimestamp != nil, expiryCursor < expiryCount else { return }
        let key = expiryKeys[expiryCursor]
        if key.field == entry.expiresAt && key.timestamp == entry.transferTimestamp { expiryCursor += 1 }
    }
}

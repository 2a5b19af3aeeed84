import LedgerKit

/// The ledger state machine: the semantics of state-machine spec §4–7 over a `LedgerStore`.
///
/// Deterministic and single-threaded: it reads no clock (timestamps come from the host through
/// `prepare`/`execute`) and allocates nothing after `init` (scratch buffers are sized from the
/// constants). The host drives each committed operation through three phases:
///
///     prefetch(operation:body:timestamp:callback:)  load what the operation may read
///     execute(operation:timestamp:body:output:)     run it in memory, write the reply
///     (the host's store work, e.g. the forest's compaction beat)
///
/// On the primary, `prepare(operation:body:realtime:)` assigns the operation's timestamp first.
public final class StateMachine<Store: LedgerStore> {
    public let store: Store

    /// The timestamp of the last prepared operation (primary only).
    public private(set) var prepareTimestamp: UInt64 = 0
    /// The timestamp of the last executed operation.
    public private(set) var commitTimestamp: UInt64 = 0
    /// When the next expiry pulse may be due; 1 means unknown, scan at the next opportunity.
    /// Not rolled back with a failed chain (Q3 in docs/decisions.md), as in the reference.
    public internal(set) var pulseNextTimestamp: UInt64 = 1

    let pulseScratch: UnsafeMutableBufferPointer<Expiry>
    let balanceScratch: UnsafeMutableBufferPointer<Transfer>
    let eventScratch: UnsafeMutableBufferPointer<AccountEvent>

    /// The callback of the prefetch in flight made through `prefetch(…callback:)`, and the
    /// completion (made once) that runs it (Prefetch.swift).
    var prefetchCallback: ((Result<Void, Store.PrefetchFault>) -> Void)?
    private(set) var callbackCompletion: PrefetchCompletion<Store.PrefetchFault>!

    public init(store: Store) {
        Constants.verify()
        self.store = store
        pulseScratch = .allocate(capacity: Constants.pulseExpiriesMax)
        balanceScratch = .allocate(capacity: Constants.queryResultsMax)
        eventScratch = .allocate(capacity: Constants.changeEventsMax)
        callbackCompletion = PrefetchCompletion { [unowned self] result in
            guard let callback = self.prefetchCallback else {
                preconditionFailure("a prefetch made with a callback has one")
            }
            self.prefetchCallback = nil
            callback(result)
        }
    }

    deinit {
        pulseScratch.deallocate()
        balanceScratch.deallocate()
        eventScratch.deallocate()
    }

    // MARK: Prepare (primary)

    /// Timestamps the operation consumes beyond its base (spec §4.1): one per create event,
    /// 8190 for a pulse, none for reads. `body` must be valid (`isValidRequest`).
    public func timestampDelta(operation: Operation, body: UnsafeRawBufferPointer) -> UInt64 {
        switch operation {
        case .pulse: return Constants.pulseTimestampDelta
        case .createAccounts, .createTransfers:
            guard let reader = MultiBatchReader(body: body, elementSize: operation.eventSize) else {
                preconditionFailure("prepare needs a valid request body")
            }
            return UInt64(reader.elementCountTotal)
        default: return 0
        }
    }

    /// Assigns the next operation timestamp with the reference host formula (spec §4.1):
    /// `base = max(max(prepare, commit) + 1, realtime)`, `timestamp = base + delta`. Every
    /// timestamp is strictly greater than the last, and so are all of this operation's slots.
    public func prepare(operation: Operation, body: UnsafeRawBufferPointer, realtime: UInt64) -> UInt64 {
        let delta = timestampDelta(operation: operation, body: body)
        let base = max(max(prepareTimestamp, commitTimestamp) + 1, realtime)
        precondition(base + delta <= Constants.timestampMax, "timestamps stay below 2^63")
        prepareTimestamp = base + delta
        return prepareTimestamp
    }

    /// Moves the timestamps forward (never back) without executing: a host restoring them at
    /// restart (from the last replayed op's header), or committing an op the state machine
    /// does not execute (a session `register`), so later timestamps stay above it.
    public func advanceTimestamps(prepare: UInt64, commit: UInt64) {
        precondition(prepare <= Constants.timestampMax, "timestamps stay below 2^63")
        precondition(commit <= Constants.timestampMax, "timestamps stay below 2^63")
        prepareTimestamp = max(prepareTimestamp, prepare)
        commitTimestamp = max(commitTimestamp, commit)
    }

    // MARK: Request validation (wire spec §7.4)

    /// Whether a request body is well formed for `operation`: multi-batch encoding, batch
    /// sizes, one filter per query batch, and a reply that fits in one message. Field-level
    /// checks are not done here: they produce per-event results instead.
    public func isValidRequest(operation: Operation, body: UnsafeRawBufferPointer) -> Bool {
        guard body.count <= Constants.messageBodySizeMax else { return false }
        switch operation {
        case .pulse:
            return body.count == 0
        case .getChangeEvents:
            return body.count == Constants.changeEventsFilterSize
        default:
            break
        }
        guard let reader = MultiBatchReader(body: body, elementSize: operation.eventSize) else {
            return false
        }
        var resultsExpected = 0
        for batch in 0..<reader.batchCount {
            let count = reader.elementCount(batch: batch)
            if operation.isBatchable {
                guard count <= operation.batchEventsMax else { return false }
                resultsExpected += count
            } else {
                guard count == 1 else { return false }
                resultsExpected += min(Int(filterLimit(operation, reader, batch)), operation.batchResultsMax)
            }
        }
        let replyTrailer = MultiBatch.trailerSize(
            elementSize: operation.resultSize, batchCount: reader.batchCount)
        return resultsExpected * operation.resultSize + replyTrailer <= Constants.messageBodySizeMax
    }

    /// The `limit` of the one filter in a query batch.
    private func filterLimit(_ operation: Operation, _ reader: MultiBatchReader, _ batch: Int) -> UInt32 {
        // Every earlier batch holds exactly one filter (checked before this is called).
        let offset = batch * operation.eventSize
        let limitOffset: Int
        switch operation {
        case .getAccountTransfers, .getAccountBalances: limitOffset = 120
        case .queryAccounts, .queryTransfers: limitOffset = 56
        default: preconditionFailure("only queries have a limit")
        }
        return UInt32(littleEndian: reader.body.loadUnaligned(fromByteOffset: offset + limitOffset, as: UInt32.self))
    }

    // MARK: Execute

    /// Executes a valid request at `timestamp` and writes the reply body into `output`
    /// (at least `Constants.messageBodySizeMax` bytes). Returns the reply body's size.
    public func execute(
        operation: Operation, timestamp: UInt64, body: UnsafeRawBufferPointer,
        output: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(timestamp > commitTimestamp, "operation timestamps strictly increase")
        precondition(output.count >= Constants.messageBodySizeMax, "the reply buffer holds a body")
        precondition(Int(bitPattern: output.baseAddress) % 16 == 0, "reply bodies are 16-byte aligned")
        precondition(
            Int(bitPattern: body.baseAddress) % 16 == 0 || body.count == 0,
            "request bodies are 16-byte aligned")
        precondition(isValidRequest(operation: operation, body: body), "execute needs a valid request")
        commitTimestamp = timestamp
        switch operation {
        case .pulse:
            executePulse(pulseTimestamp: timestamp)
            return 0
        case .getChangeEvents:
            let filter = body.load(as: ChangeEventsFilter.self)
            return getChangeEvents(filter, results: output.bindMemory(to: ChangeEvent.self))
                * Constants.changeEventSize
        default:
            return executeMultiBatch(operation: operation, timestamp: timestamp, body: body, output: output)
        }
    }

    private func executeMultiBatch(
        operation: Operation, timestamp: UInt64, body: UnsafeRawBufferPointer,
        output: UnsafeMutableRawBufferPointer
    ) -> Int {
        guard let reader = MultiBatchReader(body: body, elementSize: operation.eventSize) else {
            preconditionFailure("execute needs a valid request")
        }
        var writer = MultiBatchWriter(
            buffer: output, elementSize: operation.resultSize, batchCount: reader.batchCount)
        // Create batches split the operation's timestamps in order (spec §4.2).
        var batchTimestamp = timestamp - UInt64(operation.isCreate ? reader.elementCountTotal : 0)
        reader.forEachBatch { _, batch in
            let free = writer.freeSpace
            let count: Int
            switch operation {
            case .createAccounts:
                let events = batch.bindMemory(to: Account.self)
                batchTimestamp += UInt64(events.count)
                createAccounts(
                    events, batchTimestamp: batchTimestamp,
                    results: free.bindMemory(to: CreateAccountResult.self))
                count = events.count
            case .createTransfers:
                let events = batch.bindMemory(to: Transfer.self)
                batchTimestamp += UInt64(events.count)
                createTransfers(
                    events, batchTimestamp: batchTimestamp,
                    results: free.bindMemory(to: CreateTransferResult.self))
                count = events.count
            case .lookupAccounts:
                count = lookupAccounts(
                    batch.bindMemory(to: UInt128.self), results: free.bindMemory(to: Account.self))
            case .lookupTransfers:
                count = lookupTransfers(
                    batch.bindMemory(to: UInt128.self), results: free.bindMemory(to: Transfer.self))
            case .getAccountTransfers:
                count = getAccountTransfers(
                    batch.load(as: AccountFilter.self), results: free.bindMemory(to: Transfer.self))
            case .getAccountBalances:
                count = getAccountBalances(
                    batch.load(as: AccountFilter.self),
                    results: free.bindMemory(to: AccountBalance.self))
            case .queryAccounts:
                count = queryAccounts(
                    batch.load(as: QueryFilter.self), results: free.bindMemory(to: Account.self))
            case .queryTransfers:
                count = queryTransfers(
                    batch.load(as: QueryFilter.self), results: free.bindMemory(to: Transfer.self))
            case .pulse, .getChangeEvents:
                preconditionFailure("not a multi-batch operation")
            }
            writer.finishBatch(elementCount: count)
        }
        precondition(!operation.isCreate || batchTimestamp == timestamp, "create batches use every slot")
        return writer.finish()
    }
}

import LedgerKit
import LedgerStateMachine

/// A single-node host for tests: it owns a state machine over a `MemoryStore`, a settable wall
/// clock, and request/reply buffers, and drives every operation the way the replica will —
/// encode the multi-batch request, validate it, `prepare` (reference timestamp formula),
/// `prefetch`, `execute`, decode the reply. Pulses run only when a test asks
/// (`advance(seconds:)`, `pulseIfNeeded()`), as in the spec's worked examples.
final class TestLedger {
    let store: MemoryStore
    let machine: StateMachine<MemoryStore>
    /// The host's wall clock in nanoseconds; `prepare` never goes below it.
    var realtime: UInt64 = 1_000_000_000
    private let request: UnsafeMutableRawBufferPointer
    private let reply: UnsafeMutableRawBufferPointer

    init(accounts: Int = 1 << 12, transfers: Int = 1 << 16) {
        store = MemoryStore(.sized(accounts: accounts, transfers: transfers))
        machine = StateMachine(store: store)
        request = .allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
        reply = .allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    }

    deinit {
        request.deallocate()
        reply.deallocate()
    }

    /// The timestamp of the last executed operation.
    var timestamp: UInt64 { machine.commitTimestamp }

    // MARK: Creates

    func createAccounts(_ events: [Account]) -> [CreateAccountResult] {
        createAccounts(batches: [events])[0]
    }

    func createAccounts(batches: [[Account]]) -> [[CreateAccountResult]] {
        run(.createAccounts, batches: batches, as: CreateAccountResult.self)
    }

    func createTransfers(_ events: [Transfer]) -> [CreateTransferResult] {
        createTransfers(batches: [events])[0]
    }

    func createTransfers(batches: [[Transfer]]) -> [[CreateTransferResult]] {
        run(.createTransfers, batches: batches, as: CreateTransferResult.self)
    }

    // MARK: Reads

    func lookupAccounts(_ ids: [UInt128]) -> [Account] {
        run(.lookupAccounts, batches: [ids], as: Account.self)[0]
    }

    func lookupTransfers(_ ids: [UInt128]) -> [Transfer] {
        run(.lookupTransfers, batches: [ids], as: Transfer.self)[0]
    }

    func lookupAccount(_ id: UInt128) -> Account? { lookupAccounts([id]).first }
    func lookupTransfer(_ id: UInt128) -> Transfer? { lookupTransfers([id]).first }

    func getAccountTransfers(_ filter: AccountFilter) -> [Transfer] {
        run(.getAccountTransfers, batches: [[filter]], as: Transfer.self)[0]
    }

    func getAccountBalances(_ filter: AccountFilter) -> [AccountBalance] {
        run(.getAccountBalances, batches: [[filter]], as: AccountBalance.self)[0]
    }

    func queryAccounts(_ filter: QueryFilter) -> [Account] {
        run(.queryAccounts, batches: [[filter]], as: Account.self)[0]
    }

    func queryTransfers(_ filter: QueryFilter) -> [Transfer] {
        run(.queryTransfers, batches: [[filter]], as: Transfer.self)[0]
    }

    func getChangeEvents(_ filter: ChangeEventsFilter) -> [ChangeEvent] {
        withUnsafeBytes(of: filter) { bytes in
            request.copyMemory(from: bytes)
        }
        let body = UnsafeRawBufferPointer(rebasing: request[0..<Constants.changeEventsFilterSize])
        let size = execute(.getChangeEvents, body: body)
        precondition(size % Constants.changeEventSize == 0, "whole change events")
        return Array(UnsafeRawBufferPointer(rebasing: reply[0..<size]).bindMemory(to: ChangeEvent.self))
    }

    // MARK: Time

    /// Lets `seconds` pass after the last operation (the wall clock first catches up with the
    /// last prepared timestamp, which runs a few ns ahead of it), then runs a pulse if one is
    /// due (the host's idle timer).
    func advance(seconds: UInt64) {
        realtime = max(realtime, machine.prepareTimestamp) + seconds * Constants.nanosecondsPerSecond
        pulseIfNeeded()
    }

    /// Runs a pulse if expiries may be due now, as the host's idle timer does (spec §7.1).
    @discardableResult
    func pulseIfNeeded() -> Bool {
        let now = max(machine.prepareTimestamp, realtime)
        guard machine.pulseNeeded(timestamp: now) else { return false }
        let size = execute(.pulse, body: UnsafeRawBufferPointer(start: nil, count: 0))
        precondition(size == 0, "a pulse has no reply")
        return true
    }

    // MARK: Test hooks

    func setBalances(
        _ id: UInt128, _ debitsPending: UInt128, _ debitsPosted: UInt128,
        _ creditsPending: UInt128, _ creditsPosted: UInt128
    ) {
        store.setBalancesForTesting(
            id: id, debitsPending: debitsPending, debitsPosted: debitsPosted,
            creditsPending: creditsPending, creditsPosted: creditsPosted)
    }

    /// Whether the state machine accepts this raw body for `operation` (wire spec §7.4).
    func isValidRequest(_ operation: LedgerKit.Operation, body: [UInt8]) -> Bool {
        body.withUnsafeBytes { bytes in
            request.copyMemory(from: bytes)
        }
        return machine.isValidRequest(
            operation: operation, body: UnsafeRawBufferPointer(rebasing: request[0..<body.count]))
    }

    // MARK: Plumbing

    private func run<Event, Result>(
        _ operation: LedgerKit.Operation, batches: [[Event]], as: Result.Type
    ) -> [[Result]] {
        precondition(MemoryLayout<Event>.stride == operation.eventSize, "event type matches")
        precondition(MemoryLayout<Result>.stride == operation.resultSize, "result type matches")
        let size = encode(batches, elementSize: operation.eventSize)
        let replySize = execute(operation, body: UnsafeRawBufferPointer(rebasing: request[0..<size]))
        guard
            let reader = MultiBatchReader(
                body: UnsafeRawBufferPointer(rebasing: reply[0..<replySize]),
                elementSize: operation.resultSize)
        else { preconditionFailure("the reply is a valid multi-batch body") }
        precondition(reader.batchCount == batches.count, "one reply batch per request batch")
        var results: [[Result]] = []
        reader.forEachBatch { _, batch in
            results.append(Array(batch.bindMemory(to: Result.self)))
        }
        return results
    }

    private func encode<Event>(_ batches: [[Event]], elementSize: Int) -> Int {
        let bytes = batches.reduce(0) { $0 + $1.count } * elementSize
        precondition(
            bytes + MultiBatch.trailerSize(elementSize: elementSize, batchCount: batches.count)
                <= request.count,
            "the test request fits in one message (at most 8189 events of 128 bytes)")
        var writer = MultiBatchWriter(buffer: request, elementSize: elementSize, batchCount: batches.count)
        for batch in batches {
            batch.withUnsafeBytes { bytes in
                writer.freeSpace.copyMemory(from: bytes)
            }
            writer.finishBatch(elementCount: batch.count)
        }
        return writer.finish()
    }

    private func execute(_ operation: LedgerKit.Operation, body: UnsafeRawBufferPointer) -> Int {
        precondition(machine.isValidRequest(operation: operation, body: body), "a valid request")
        let timestamp = machine.prepare(operation: operation, body: body, realtime: realtime)
        machine.prefetch(operation: operation, body: body, timestamp: timestamp) { _ in }
        let size = machine.execute(operation: operation, timestamp: timestamp, body: body, output: reply)
        return size
    }
}

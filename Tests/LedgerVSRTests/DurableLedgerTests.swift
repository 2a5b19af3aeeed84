import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerStateMachine
import LedgerTesting
import LedgerVSR
import Testing

/// Drives a `DurableLedger` on a simulated disk the way a client population would (registers,
/// create_accounts, create_transfers, pipelined), crashes the disk at random points (journal
/// writes, beats, checkpoint trailers, superblock writes), reopens a new ledger on the same disk,
/// and checks it against a model: the in-memory state machine executing exactly the ops the
/// ledger's WAL holds, with the timestamps of their prepares.
final class DurableLedgerRun {
    static let cluster: UInt128 = 0xD0AB_1E_0000_0001
    static let release: UInt32 = 7
    static let batchEventsMax = 24

    static func storageConfiguration() -> StorageConfiguration {
        var configuration = StorageConfiguration.testing
        configuration.gridBlockCountMax = 16_384
        return configuration
    }

    static func storeConfiguration() -> ForestStoreConfiguration {
        ForestStoreConfiguration(
            storage: storageConfiguration(),
            caches: .init(accounts: 32, transfers: 32, transfersPending: 16, accountEvents: 0, gridBlocks: 64),
            batchEventsMax: batchEventsMax, expiriesMax: 256, growthFactor: 4, tablesMax: 64, lookupsMax: 4,
            gridReadsMax: 8, manifestLogTablesMax: 4096)
    }

    /// A simulated data file formatted for one replica.
    static func formattedStorage(seed: UInt64) -> SimulatedStorage {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...8
        options.writeLatencyTicks = 1...8
        let storage = SimulatedStorage(layout: DataFileLayout(storageConfiguration()), seed: seed, options: options)
        var done = false
        DataFileFormatter.format(
            storage: storage,
            options: .init(cluster: cluster, replica: 0, replicaCount: 1, sizeBytes: 0, release: release),
            storageSize: storage.layout.sizeMin
        ) { _ in done = true }
        storage.runUntilIdle()
        precondition(done, "format completes")
        return storage
    }

    struct Logged {
        var header: PrepareHeader
        var body: [UInt8]
    }

    let seed: UInt64
    let storage: SimulatedStorage
    var ledger: DurableLedger<SimulatedStorage>
    var prng: PRNG
    var realtime: UInt64 = 1_000_000_000
    /// Every prepared op (truncated at a restart to what the WAL kept).
    var log: [UInt64: Logged] = [:]
    /// Replies the ledger acknowledged, by op.
    var acked: [UInt64: [UInt8]] = [:]
    /// The sessions table right after each acknowledged op committed.
    var sessionsAt: [UInt64: ClientSessions] = [:]
    var clients: [UInt128] = []
    var requestNext: [UInt128: UInt32] = [:]
    var accountIds: [UInt128] = []
    var transferIds: [UInt128] = []
    var failure: String?
    var crashes = 0
    var restarts = 0
    var checkpointCrashes = 0
    var replayedOps = 0
    var replayCheckpoints = 0
    var repliesPending = 0
    let bodyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    let replyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)

    init(seed: UInt64) {
        self.seed = seed
        storage = Self.formattedStorage(seed: seed)
        prng = PRNG(seed: seed ^ 0xD0AB)
        ledger = DurableLedger(storage: storage, configuration: Self.storeConfiguration(), batchEventsMax: Self.batchEventsMax)
        if case .failure(let error) = open(ledger) { failure = "seed \(seed): first open failed: \(error)" }
    }

    deinit {
        bodyBuffer.deallocate()
        replyBuffer.deallocate()
    }

    func open(_ ledger: DurableLedger<SimulatedStorage>) -> Result<Void, DurableLedgerOpenError> {
        var outcome: Result<Void, DurableLedgerOpenError>?
        ledger.open { outcome = $0 }
        guard storage.run(until: { outcome != nil }) else {
            failure = "seed \(seed): open never finished"
            return .success(())
        }
        return outcome!
    }

    // MARK: Requests

    func encode<Event>(_ events: [Event], elementSize: Int) -> UnsafeRawBufferPointer {
        precondition(MemoryLayout<Event>.stride == elementSize, "the event type has the wire size")
        var writer = MultiBatchWriter(buffer: bodyBuffer, elementSize: elementSize, batchCount: 1)
        events.withUnsafeBytes { writer.freeSpace.copyMemory(from: $0) }
        writer.finishBatch(elementCount: events.count)
        return UnsafeRawBufferPointer(rebasing: bodyBuffer[0..<writer.finish()])
    }

    func randomId() -> UInt128 { UInt128(prng.next()) << 64 | UInt128(prng.next() | 1) }

    func accountsBody() -> UnsafeRawBufferPointer {
        var accounts: [Account] = []
        for _ in 0..<prng.int(in: 1...6) {
            // Now and then an id again: the reply says `exists`.
            let id = !accountIds.isEmpty && prng.chance(percent: 10)
                ? accountIds[Int(prng.below(UInt64(accountIds.count)))] : randomId()
            if !accountIds.contains(id) { accountIds.append(id) }
            accounts.append(Account(id: id, userData64: prng.next(), ledger: 1, code: 1))
        }
        return encode(accounts, elementSize: Constants.accountSize)
    }

    func transfersBody() -> UnsafeRawBufferPointer {
        var transfers: [Transfer] = []
        for _ in 0..<prng.int(in: 1...8) {
            let id = randomId()
            transferIds.append(id)
            func account() -> UInt128 {
                accountIds.isEmpty || prng.chance(percent: 5) ? randomId() : accountIds[Int(prng.below(UInt64(accountIds.count)))]
            }
            transfers.append(Transfer(
                id: id, debitAccountId: account(), creditAccountId: account(), amount: UInt128(prng.int(in: 1...1000)),
                ledger: 1, code: 1))
        }
        return encode(transfers, elementSize: Constants.transferSize)
    }

    /// Submits one new request if the pipeline has room.
    func submitOne() {
        let op = ledger.opHead + 1
        realtime += UInt64(prng.int(in: 1...50_000_000))
        let callback: DurableLedger<SimulatedStorage>.ReplyCallback = { [unowned self] result in self.replied(op, result) }
        let result: Result<PrepareHeader, DurableSubmitError>
        let body: UnsafeRawBufferPointer
        let sessions = ledger.clientSessions
        let registered = clients.filter { sessions.session(client: $0) != nil }
        if registered.isEmpty || prng.chance(percent: 6) {
            body = UnsafeRawBufferPointer(start: nil, count: 0)
            result = ledger.register(client: randomId(), realtime: realtime, callback: callback)
        } else {
            let client = registered[Int(prng.below(UInt64(registered.count)))]
            let operation: Operation = accountIds.count < 4 || prng.chance(percent: 40) ? .createAccounts : .createTransfers
            body = operation == .createAccounts ? accountsBody() : transfersBody()
            let request = requestNext[client, default: 1]
            result = ledger.submit(
                operation: operation, body: body, realtime: realtime, client: client, request: request, callback: callback)
            if case .success = result { requestNext[client] = request + 1 }
        }
        switch result {
        case .success(let header):
            precondition(header.op == op, "the next op")
            log[op] = Logged(header: header, body: Array(body))
            repliesPending += 1
        case .failure(.pipelineFull):
            break
        case .failure(let error):
            failure = failure ?? "seed \(seed): op \(op): submit refused: \(error)"
        }
    }

    func replied(_ op: UInt64, _ result: Result<DurableReply, DurableLedgerFault>) {
        repliesPending -= 1
        switch result {
        case .failure(let fault):
            failure = failure ?? "seed \(seed): op \(op): fault \(fault)"
        case .success(let reply):
            // Replies come after the op's execute and before its beat: commit_min advances
            // once the beat is done.
            guard reply.header.op == op, ledger.commitMin + 1 == op else {
                failure = failure ?? "seed \(seed): op \(op): reply for op \(reply.header.op) at commit \(ledger.commitMin)"
                return
            }
            acked[op] = Array(reply.body)
            sessionsAt[op] = ledger.clientSessions
            if let logged = log[op], logged.header.operation == VSROperation.register.rawValue {
                clients.append(logged.header.client)
            }
        }
    }

    // MARK: Run

    /// Submits `ops` requests, crashing with `crashPercent` per step (and at a share of the
    /// checkpoints), restarting after each crash.
    func run(ops: Int, crashPercent: Int) {
        var submitted = 0
        var lastCheckpointCrashed: UInt64 = 0
        // Each turn submits at most one request and ticks the disk: bounded by a multiple of ops.
        for _ in 0..<(ops * 20) where failure == nil && submitted < ops {
            let before = ledger.opHead
            submitOne()
            if ledger.opHead > before { submitted += 1 }
            for _ in 0..<prng.int(in: 1...6) { storage.tick() }
            let atCheckpoint = ledger.isWritingCheckpoint && ledger.commitMin != lastCheckpointCrashed
            if crashPercent > 0 && (prng.chance(percent: crashPercent) || (atCheckpoint && prng.chance(percent: 40))) {
                if atCheckpoint {
                    lastCheckpointCrashed = ledger.commitMin
                    checkpointCrashes += 1
                }
                for _ in 0..<prng.int(in: 0...10) { storage.tick() }
                storage.crash()
                crashes += 1
                restart(full: false)
            }
        }
        // Drain: every prepared op commits and replies.
        if failure == nil && !storage.run(until: { self.repliesPending == 0 }) {
            failure = "seed \(seed): the pipeline never drained"
        }
    }

    /// A new process on the same disk (after a crash, or a clean stop: the disk finishes what
    /// is in flight first), then the checks; `full` looks up every id, not a sample.
    func restart(full: Bool = true, verify: Bool = true) {
        restarts += 1
        storage.runUntilIdle()
        let previous = ledger.clientSessions
        let previousCommit = ledger.commitMin
        ledger = DurableLedger(storage: storage, configuration: Self.storeConfiguration(), batchEventsMax: Self.batchEventsMax)
        repliesPending = 0
        if case .failure(let error) = open(ledger) {
            failure = failure ?? "seed \(seed): restart \(restarts): open failed: \(error)"
            return
        }
        let head = ledger.opHead
        replayedOps += ledger.replayedOpCount
        replayCheckpoints += ledger.replayCheckpointCount
        for op in acked.keys where op > head {
            failure = failure ?? "seed \(seed): restart \(restarts): acknowledged op \(op) lost (head \(head))"
        }
        log = log.filter { $0.key <= head }
        // The WAL holds exactly the ops prepared (not some other op under the same number).
        for op in max(1, ledger.checkpointOp)...max(1, head) where head > 0 {
            guard let logged = log[op], ledger.journal.header(op: op)?.frame.checksum == logged.header.frame.checksum else {
                failure = failure ?? "seed \(seed): restart \(restarts): op \(op) in the WAL is not the prepared one"
                return
            }
        }
        if head == previousCommit && ledger.clientSessions != previous {
            failure = failure ?? "seed \(seed): restart \(restarts): sessions differ from before the stop"
        }
        if let before = sessionsAt[head], ledger.clientSessions != before {
            failure = failure ?? "seed \(seed): restart \(restarts): sessions differ from those after op \(head)"
        }
        if verify { verifyAgainstModel(full: full) }
    }

    // MARK: Model

    /// Executes ops 1…head of the log on the in-memory state machine with the prepares'
    /// timestamps: acknowledged replies must be the model's, the sessions table the one the
    /// same ops build, and lookups of every id (through the ledger) the model's answers.
    func verifyAgainstModel(full: Bool) {
        guard failure == nil else { return }
        let model = StateMachine(store: MemoryStore(.sized(accounts: 1 << 12, transfers: 1 << 14)))
        var sessions = ClientSessions(capacity: Self.storageConfiguration().clientsMax)
        let head = ledger.opHead
        var op: UInt64 = 1
        while op <= head {
            guard let logged = log[op] else {
                failure = "seed \(seed): op \(op) is missing from the test's log"
                return
            }
            let reply = execute(model, logged)
            if let ackedReply = acked[op], ackedReply != reply {
                failure = "seed \(seed): op \(op): the acknowledged reply is not the model's"
                return
            }
            _ = reply.withUnsafeBytes { sessions.commit(prepare: logged.header, reply: ReplyHeader(prepare: logged.header, body: $0)) }
            op += 1
        }
        guard ledger.clientSessions == sessions else {
            failure = "seed \(seed): the sessions table is not the one the durable ops build"
            return
        }
        lookups(model, operation: .lookupAccounts, ids: full ? accountIds : sample(accountIds))
        lookups(model, operation: .lookupTransfers, ids: full ? transferIds : sample(transferIds))
    }

    /// Up to two batches of ids, the newest ones (the ops a crash may have cut) first.
    func sample(_ ids: [UInt128]) -> [UInt128] {
        var result = Array(ids.suffix(Self.batchEventsMax))
        for _ in 0..<min(ids.count, Self.batchEventsMax) { result.append(ids[Int(prng.below(UInt64(ids.count)))]) }
        return result
    }

    func execute(_ model: StateMachine<MemoryStore>, _ logged: Logged) -> [UInt8] {
        let header = logged.header
        guard let operation = Operation(rawValue: header.operation) else {
            model.advanceTimestamps(prepare: 0, commit: header.timestamp)
            var result = [UInt8](repeating: 0, count: 64)
            withUnsafeBytes(of: UInt32(Constants.messageBodySizeMax).littleEndian) { result.replaceSubrange(0..<4, with: $0) }
            return result
        }
        logged.body.withUnsafeBytes { if $0.count > 0 { bodyBuffer.copyMemory(from: $0) } }
        let body = UnsafeRawBufferPointer(rebasing: bodyBuffer[0..<logged.body.count])
        model.prefetch(operation: operation, body: body, timestamp: header.timestamp) { _ in }
        let size = model.execute(operation: operation, timestamp: header.timestamp, body: body, output: replyBuffer)
        return Array(UnsafeRawBufferPointer(rebasing: replyBuffer[0..<size]))
    }

    /// Looks `ids` up through the ledger (client 0, batches of `batchEventsMax`) and on the
    /// model at the same op and timestamp: the replies must be byte for byte equal.
    func lookups(_ model: StateMachine<MemoryStore>, operation: Operation, ids: [UInt128]) {
        var start = 0
        // Each turn looks up one batch: bounded by the ids.
        while start < ids.count && failure == nil {
            let batch = Array(ids[start..<min(ids.count, start + Self.batchEventsMax)])
            start += batch.count
            let body = encode(batch, elementSize: Constants.idSize)
            let op = ledger.opHead + 1
            var reply: [UInt8]?
            let result = ledger.submit(
                operation: operation, body: body, realtime: realtime, client: 0, request: 0
            ) { [unowned self] result in
                switch result {
                case .success(let answer): reply = Array(answer.body)
                case .failure(let fault): self.failure = self.failure ?? "seed \(self.seed): lookup fault \(fault)"
                }
            }
            guard case .success(let header) = result else {
                failure = "seed \(seed): lookup refused: \(result)"
                return
            }
            log[op] = Logged(header: header, body: Array(body))
            guard storage.run(until: { reply != nil || self.failure != nil }), let reply else {
                failure = failure ?? "seed \(seed): the lookup never replied"
                return
            }
            acked[op] = reply
            sessionsAt[op] = ledger.clientSessions
            let expected = execute(model, log[op]!)
            if reply != expected {
                failure = "seed \(seed): op \(op): \(operation) differs from the model (\(reply.count) vs \(expected.count) bytes)"
            }
        }
    }
}

@Suite("DurableLedger: WAL, forest, checkpoints, restart")
struct DurableLedgerTests {
    @Test("crashes at random points lose nothing acknowledged", arguments: [1, 2, 3] as [UInt64])
    func crashesLoseNothing(seed: UInt64) {
        let run = DurableLedgerRun(seed: seed)
        run.run(ops: 260, crashPercent: 2)
        if run.failure == nil { run.restart() }
        #expect(run.failure == nil, "seed \(seed): \(run.failure ?? "")")
        #expect(run.crashes > 0, "seed \(seed): the run crashed")
        #expect(run.checkpointCrashes > 0, "seed \(seed): a crash hit a checkpoint write")
        #expect(run.ledger.checkpointOp >= 59, "seed \(seed): the run passed several checkpoints")
        #expect(run.ledger.clientSessions.count > 0, "seed \(seed): sessions survived")
        #expect(run.replayedOps > 0, "seed \(seed): restarts replayed ops")
        #expect(run.replayCheckpoints > 0, "seed \(seed): a replay passed a trigger and wrote its checkpoint again")
        print("seed \(seed): \(run.crashes) crashes (\(run.checkpointCrashes) at checkpoints), \(run.replayedOps) ops and "
            + "\(run.replayCheckpoints) checkpoints replayed, head \(run.ledger.opHead), checkpoint \(run.ledger.checkpointOp)")
    }

    @Test("a clean restart, and a second one, find the same state")
    func cleanRestartTwice() {
        let run = DurableLedgerRun(seed: 21)
        run.run(ops: 90, crashPercent: 0)
        #expect(run.failure == nil, "\(run.failure ?? "")")
        let head = run.ledger.opHead
        let sessions = run.ledger.clientSessions
        let checkpoint = run.ledger.checkpointOp
        #expect(checkpoint >= 39, "the run passed checkpoints")
        run.restart(verify: false)
        #expect(run.failure == nil, "\(run.failure ?? "")")
        #expect(run.ledger.checkpointOp == checkpoint, "a clean restart keeps the checkpoint")
        #expect(run.ledger.clientSessions == sessions, "the sessions table survives a clean restart")
        #expect(run.ledger.opHead == head, "every op is back, no more")
        #expect(run.ledger.commitMin == head, "and committed again")
        run.verifyAgainstModel(full: true)
        #expect(run.ledger.opHead > head, "the checks after the restart committed lookups")
        run.restart()
        #expect(run.failure == nil, "\(run.failure ?? "")")
        // And the ledger keeps going after two restarts.
        run.run(ops: 40, crashPercent: 0)
        run.restart()
        #expect(run.failure == nil, "\(run.failure ?? "")")
    }

    @Test("a corrupt client-sessions trailer block is a typed open error")
    func corruptSessionsTrailer() {
        let run = DurableLedgerRun(seed: 31)
        run.run(ops: 50, crashPercent: 0)
        #expect(run.failure == nil, "\(run.failure ?? "")")
        let reference = run.ledger.superblock.working.vsrState.checkpoint.clientSessions
        #expect(reference.lastBlockAddress != 0, "the checkpoint has a sessions trailer")
        run.storage.corruptSector(zone: .grid, offset: run.storage.layout.gridBlockOffset(address: reference.lastBlockAddress))
        let ledger = DurableLedger(
            storage: run.storage, configuration: DurableLedgerRun.storeConfiguration(),
            batchEventsMax: DurableLedgerRun.batchEventsMax)
        let outcome = run.open(ledger)
        guard case .failure(.clientSessionsTrailer(.block(let address, _))) = outcome else {
            Issue.record("expected a client-sessions block error, got \(outcome)")
            return
        }
        #expect(address == reference.lastBlockAddress, "the error names the corrupt block")
        #expect(ledger.status == .openFailed, "the ledger does not start")
    }

    @Test("a WAL a solo replica cannot repair, or no superblock quorum, is a typed open error")
    func hostileDisk() {
        let run = DurableLedgerRun(seed: 51)
        run.run(ops: 30, crashPercent: 0)
        #expect(run.failure == nil, "\(run.failure ?? "")")
        let layout = run.storage.layout
        func reopen() -> Result<Void, DurableLedgerOpenError> {
            run.open(DurableLedger(
                storage: run.storage, configuration: DurableLedgerRun.storeConfiguration(),
                batchEventsMax: DurableLedgerRun.batchEventsMax))
        }
        // A prepare below the head, after the checkpoint: only a peer could repair it.
        let op = run.ledger.opHead - 2
        #expect(op > run.ledger.checkpointOp, "the damaged op is one replay needs")
        let slot = Int(op % UInt64(layout.configuration.journalSlotCount))
        run.storage.corruptSector(zone: .walPrepares, offset: layout.walPrepareOffset(slot: slot))
        let walOutcome = reopen()
        guard case .failure(.journal(.repairNeededButSolo(let slots))) = walOutcome else {
            Issue.record("expected a solo repair refusal, got \(walOutcome)")
            return
        }
        #expect(slots == [slot], "the refusal names the damaged slot")
        for copy in 0..<Constants.superblockCopies {
            run.storage.corruptSector(zone: .superblock, offset: layout.superblockCopyOffset(copy: copy))
        }
        let superblockOutcome = reopen()
        guard case .failure(.superblock) = superblockOutcome else {
            Issue.record("expected a superblock error, got \(superblockOutcome)")
            return
        }
    }

    @Test("submit refuses what it cannot prepare")
    func submitRefusals() {
        let run = DurableLedgerRun(seed: 41)
        let ledger = run.ledger
        let body = run.encode([Account(id: 1, ledger: 1, code: 1)], elementSize: Constants.accountSize)
        let ignore: DurableLedger<SimulatedStorage>.ReplyCallback = { _ in }
        let noSession = ledger.submit(operation: .createAccounts, body: body, realtime: 1, client: 99, request: 1, callback: ignore)
        #expect(noSession.failureValue == .noSession, "a client without a session is refused")
        let garbage = UnsafeRawBufferPointer(rebasing: run.bodyBuffer[0..<7])
        let invalid = ledger.submit(operation: .createAccounts, body: garbage, realtime: 1, client: 0, request: 0, callback: ignore)
        #expect(invalid.failureValue == .invalidRequest, "a malformed body is refused")
        let many = run.encode(
            (1...25).map { Account(id: UInt128($0), ledger: 1, code: 1) }, elementSize: Constants.accountSize)
        let tooMany = ledger.submit(operation: .createAccounts, body: many, realtime: 1, client: 0, request: 0, callback: ignore)
        #expect(tooMany.failureValue == .tooManyEvents, "more events than the store holds are refused")
        var accepted = 0
        for client in 1...5 as ClosedRange<UInt128> {
            if case .success = ledger.register(client: client, realtime: 1, callback: ignore) { accepted += 1 }
        }
        #expect(accepted == DurableLedgerRun.storageConfiguration().pipelinePrepareQueueMax, "the pipeline bounds prepares")
        #expect(ledger.register(client: 9, realtime: 1, callback: ignore).failureValue == .pipelineFull, "a full pipeline refuses")
        run.storage.runUntilIdle()
        #expect(ledger.commitMin == ledger.opHead, "every accepted op committed")
        #expect(ledger.clientSessions.count == 4, "four sessions registered")
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

@Suite("ClientSessions: the table and its encoding")
struct ClientSessionsTests {
    static func reply(client: UInt128, op: UInt64, request: UInt32) -> ReplyHeader {
        var prepare = PrepareHeader()
        prepare.frame.cluster = 5
        prepare.frame.release = 1
        prepare.client = client
        prepare.op = op
        prepare.timestamp = op * 10
        prepare.request = request
        prepare.operation = Operation.createAccounts.rawValue
        return [UInt8](repeating: 7, count: 16).withUnsafeBytes { ReplyHeader(prepare: prepare, body: $0) }
    }

    @Test("reply header fields sit at the wire offsets")
    func replyLayout() {
        #expect(MemoryLayout<ReplyHeader>.size == 256)
        #expect(MemoryLayout<ReplyHeader>.offset(of: \.requestChecksum) == 128)
        #expect(MemoryLayout<ReplyHeader>.offset(of: \.context) == 160)
        #expect(MemoryLayout<ReplyHeader>.offset(of: \.client) == 192)
        #expect(MemoryLayout<ReplyHeader>.offset(of: \.op) == 208)
        #expect(MemoryLayout<ReplyHeader>.offset(of: \.timestamp) == 224)
        #expect(MemoryLayout<ReplyHeader>.offset(of: \.request) == 232)
        #expect(MemoryLayout<ReplyHeader>.offset(of: \.operation) == 236)
        let reply = Self.reply(client: 3, op: 9, request: 2)
        #expect(reply.isChecksumValid, "a built reply is sealed")
        #expect(reply.context != 0 && reply.commit == reply.op, "context set, op = commit")
    }

    @Test("a register into a full table evicts the oldest latest commit")
    func eviction() {
        var table = ClientSessions(capacity: 3)
        for client in 1...3 as ClosedRange<UInt128> {
            let evicted = table.register(
                client: client, session: UInt64(client), reply: Self.reply(client: client, op: UInt64(client), request: 0))
            #expect(evicted == nil, "a table with room evicts nobody")
        }
        // Client 1 commits later, so client 2 is now the oldest.
        let updated = table.update(client: 1, request: 1, reply: Self.reply(client: 1, op: 10, request: 1))
        #expect(updated, "a client with a session is updated")
        let evicted = table.register(client: 4, session: 11, reply: Self.reply(client: 4, op: 11, request: 0))
        #expect(evicted == 2, "the oldest latest commit is evicted")
        #expect(table.session(client: 2) == nil, "the evicted client has no session")
        #expect(table.session(client: 4)?.session == 11, "the new session is the register's op")
        let stale = table.update(client: 2, request: 1, reply: Self.reply(client: 2, op: 12, request: 1))
        #expect(!stale, "no session, no update")
    }

    @Test("encode and decode round trip; hostile bytes are typed errors", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func encoding(seed: UInt64) {
        var prng = PRNG(seed: seed)
        var table = ClientSessions(capacity: 4)
        for op in 1...UInt64(prng.int(in: 1...8)) {
            let client = UInt128(prng.int(in: 1...6))
            table.register(client: client, session: op, reply: Self.reply(client: client, op: op, request: 0))
        }
        var bytes = [UInt8](repeating: 0, count: table.encodedSize)
        _ = bytes.withUnsafeMutableBytes { table.encode(into: $0) }
        let decoded = bytes.withUnsafeBytes { try? ClientSessions.decode($0, capacity: 4) }
        #expect(decoded == table, "seed \(seed): the table reads back as itself")
        #expect(bytes.withUnsafeBytes { try? ClientSessions.decode($0, capacity: 5) } == nil, "another capacity is refused")
        // Any single flipped byte is either refused or (in a reply's unchecked bytes) caught by
        // its checksum: never a crash, never the same table with a different meaning.
        for _ in 0..<200 {
            var hostile = bytes
            let index = Int(prng.below(UInt64(hostile.count)))
            hostile[index] ^= UInt8(prng.int(in: 1...255))
            let result = hostile.withUnsafeBytes { bytes in Result { () throws(ClientSessionsDecodeError) in
                try ClientSessions.decode(bytes, capacity: 4)
            } }
            if case .success(let other) = result {
                Issue.record("seed \(seed): a flipped byte at \(index) decoded (\(other.count) sessions)")
            }
        }
        let short = bytes.withUnsafeBytes { bytes in Result { () throws(ClientSessionsDecodeError) in
            try ClientSessions.decode(UnsafeRawBufferPointer(rebasing: bytes[0..<100]), capacity: 4)
        } }
        #expect(short.failureValue == .size(100), "a short table is refused")
    }
}

import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerStateMachine
import LedgerTesting
import Testing

/// The state machine on the forest against the state machine on the in-memory store (the model),
/// request by request: every reply byte for byte, the pulse schedule, and after crashes at
/// random points of the compaction beats, a restart (open the last checkpoint, replay the ops
/// after it from the log) whose replies match the model's again. Both run the same semantics
/// code, so what this checks is the store: prefetch (names, scans, rounds), the grooves, the
/// expiry schedule, scopes, checkpoints and recovery.
final class ForestLedgerPair: ForestRunHarness {
    static func storageConfiguration() -> StorageConfiguration {
        var configuration = StorageConfiguration.testing
        configuration.gridBlockCountMax = 16_384
        return configuration
    }

    static let batchEventsMax = 24
    static let expiriesMax = 256

    /// Trees whose beat start sorts or merges this many values let the loop turn before the next
    /// starts: low, so a test's small batches take the turns a production batch takes.
    static let beatTurnValuesMin = 4

    static func storeConfiguration(beatTurnValuesMin: Int = beatTurnValuesMin) -> ForestStoreConfiguration {
        var configuration = ForestStoreConfiguration(
            storage: storageConfiguration(),
            caches: .init(accounts: 32, transfers: 32, transfersPending: 16, accountEvents: 0, gridBlocks: 64),
            batchEventsMax: batchEventsMax, expiriesMax: expiriesMax, growthFactor: 4, tablesMax: 64, lookupsMax: 4,
            gridReadsMax: 8, manifestLogTablesMax: 4096)
        configuration.beatTurnValuesMin = beatTurnValuesMin
        // Every few inserts, as production batches poll every 1,024 (ForestStore "Compaction
        // during execute"): polls complete IO only with `pollLookaheadTicks` > 0.
        configuration.executePollInserts = 3
        return configuration
    }

    static func makeStorage(seed: UInt64, faults: Bool, pollLookaheadTicks: Int = 0) -> SimulatedStorage {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...8
        options.writeLatencyTicks = 1...8
        options.pollLookaheadTicks = pollLookaheadTicks
        return SimulatedStorage(layout: DataFileLayout(storageConfiguration()), seed: seed, options: options)
    }

    struct Entry {
        var request: LedgerRequest
        var timestamp: UInt64
        var reply: [UInt8]
        /// The model's pulse schedule head after the op.
        var pulseNext: UInt64
    }

    let modelStore = MemoryStore(.sized(accounts: 1 << 12, transfers: 1 << 14))
    let model: StateMachine<MemoryStore>
    var store: ForestStore<SimulatedStorage>
    var machine: StateMachine<ForestStore<SimulatedStorage>>
    var log: [UInt64: Entry] = [:]
    var realtime: UInt64 = 1_000_000_000
    var workload: LedgerWorkload
    let requestBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    let replyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    var pulses = 0
    var replayed = 0
    /// The newest logged op: prepared (durable in a real WAL) even if its beat crashed.
    var loggedOp: UInt64 = 0

    /// Whether the forest holds small immutable tables back from their flush (Tree.swift):
    /// on as in production, off where a test needs a light load's values on the grid.
    let holdsSmallImmutableTables: Bool
    let beatTurnValuesMin: Int

    /// `storageSeed` (default `seed`) sets the storage's IO latencies and so the order in which
    /// IO completes; the workload depends on `seed` only. `pollLookaheadTicks` > 0: execute's
    /// polls complete compaction IO due that many ticks ahead (compaction runs inside execute).
    init(
        seed: UInt64, storageSeed: UInt64? = nil, holdsSmallImmutableTables: Bool = true,
        beatTurnValuesMin: Int = ForestLedgerPair.beatTurnValuesMin, pollLookaheadTicks: Int = 0
    ) {
        let storage = Self.makeStorage(seed: storageSeed ?? seed, faults: false, pollLookaheadTicks: pollLookaheadTicks)
        self.holdsSmallImmutableTables = holdsSmallImmutableTables
        self.beatTurnValuesMin = beatTurnValuesMin
        store = ForestStore(storage: storage, configuration: Self.storeConfiguration(beatTurnValuesMin: beatTurnValuesMin))
        store.forest.holdsSmallImmutableTables = holdsSmallImmutableTables
        machine = StateMachine(store: store)
        model = StateMachine(store: modelStore)
        workload = LedgerWorkload(seed: seed ^ 0x5EED, batchEventsMax: Self.batchEventsMax, timeoutsMax: Self.expiriesMax - 16)
        super.init(storage: storage)
    }

    deinit {
        requestBuffer.deallocate()
        replyBuffer.deallocate()
    }

    /// Runs one new op: the model decides timestamps and replies, the forest must agree.
    func step(op: UInt64, crashTicks: Int?) -> Bool {
        let now = max(realtime, model.prepareTimestamp)
        let request: LedgerRequest
        if machine.pulseNeeded(timestamp: now) || model.pulseNeeded(timestamp: now) {
            request = LedgerRequest(operation: .pulse, body: [])
            pulses += 1
        } else {
            request = workload.next(importBase: model.commitTimestamp)
        }
        let size = load(request)
        let body = UnsafeRawBufferPointer(rebasing: requestBuffer[0..<size])
        guard model.isValidRequest(operation: request.operation, body: body) else {
            failure = "op \(op): the workload made an invalid request \(request.operation)"
            return false
        }
        let timestamp = model.prepare(operation: request.operation, body: body, realtime: realtime)
        model.prefetch(operation: request.operation, body: body, timestamp: timestamp) { _ in }
        let replySize = model.execute(operation: request.operation, timestamp: timestamp, body: body, output: replyBuffer)
        log[op] = Entry(request: request, timestamp: timestamp, reply: Array(UnsafeRawBufferPointer(rebasing: replyBuffer[0..<replySize])),
            pulseNext: model.pulseNextTimestamp)
        loggedOp = op
        realtime += 50_000_000 + workload.prng.below(400_000_000)
        return commit(op, crashTicks: crashTicks)
    }

    private func load(_ request: LedgerRequest) -> Int {
        request.body.withUnsafeBytes { bytes in
            if bytes.count > 0 { requestBuffer.copyMemory(from: bytes) }
        }
        return request.body.count
    }

    /// Runs logged op `op` on the forest: prefetch, execute (the reply must be the model's),
    /// then the beat (crashing after `crashTicks` ticks of it if given).
    func commit(_ op: UInt64, crashTicks: Int? = nil) -> Bool {
        guard let entry = log[op] else { preconditionFailure("ops are logged before they commit") }
        beginOp(op, forest: store.forest)
        let size = load(entry.request)
        let body = UnsafeRawBufferPointer(rebasing: requestBuffer[0..<size])
        var prefetched: Result<Void, ForestStoreFault>?
        machine.prefetch(operation: entry.request.operation, body: body, timestamp: entry.timestamp) { prefetched = $0 }
        guard storage.run(until: { prefetched != nil }) else {
            failure = "op \(op): the prefetch never finished"
            return false
        }
        if case .failure(let fault) = prefetched! {
            failure = "op \(op): prefetch fault \(fault)"
            return false
        }
        let replySize = machine.execute(
            operation: entry.request.operation, timestamp: entry.timestamp, body: body, output: replyBuffer)
        let reply = Array(UnsafeRawBufferPointer(rebasing: replyBuffer[0..<replySize]))
        guard reply == entry.reply else {
            failure = "op \(op) (\(entry.request.operation)): the forest's reply differs from the model's "
                + "(\(reply.count) vs \(entry.reply.count) bytes\(firstDifference(reply, entry.reply)))"
            return false
        }
        if entry.request.operation == .pulse && machine.pulseNextTimestamp != entry.pulseNext {
            failure = "op \(op): pulse schedule differs: forest next \(machine.pulseNextTimestamp), model \(entry.pulseNext)"
            return false
        }
        return runBeat(op, forest: store.forest, crashTicks: crashTicks)
    }

    private func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
        for index in 0..<min(a.count, b.count) where a[index] != b[index] { return ", first at byte \(index)" }
        return ""
    }

    /// A new process after a crash: a fresh store opens the last checkpoint and replays the log.
    func restart() -> String? {
        store = ForestStore(storage: storage, configuration: Self.storeConfiguration(beatTurnValuesMin: beatTurnValuesMin))
        store.forest.holdsSmallImmutableTables = holdsSmallImmutableTables
        machine = StateMachine(store: store)
        var outcome: Result<Void, ForestOpenError>?
        store.open(checkpoint: superblock) { outcome = $0 }
        guard storage.run(until: { outcome != nil }) else { return "open never finished" }
        if case .failure(let error) = outcome! { return "open of checkpoint \(superblock.op) failed: \(error)" }
        let trigger = superblock.op + UInt64(layout.configuration.lsmCompactionOps)
        durableAtOp = superblock.op == 0 ? nil : trigger + durableDelay
        committedOp = superblock.op
        // Each turn replays one op: bounded by the log (which holds the op whose beat crashed).
        while committedOp < loggedOp {
            replayed += 1
            guard commit(committedOp + 1) else { return failure ?? "the replay crashed" }
        }
        return nil
    }
}

@Suite("ForestStore against the in-memory model")
struct ForestStoreModelTests {
    /// Runs `ops` ops; with `crashPercent`, crashes that share of beats and restarts.
    static func run(
        seed: UInt64, storageSeed: UInt64? = nil, ops: UInt64, crashPercent: Int, holdsSmallImmutableTables: Bool = true,
        pollLookaheadTicks: Int = 0
    ) -> ForestLedgerPair {
        let pair = ForestLedgerPair(
            seed: seed, storageSeed: storageSeed, holdsSmallImmutableTables: holdsSmallImmutableTables,
            pollLookaheadTicks: pollLookaheadTicks)
        var prng = PRNG(seed: seed &+ 77)
        var op: UInt64 = 1
        // Each turn commits an op or restarts after a crash: bounded by ops plus crashes.
        while op <= ops && pair.failure == nil {
            let crash = crashPercent > 0 && prng.chance(percent: crashPercent)
            if pair.step(op: op, crashTicks: crash ? prng.int(in: 0...40) : nil) {
                op += 1
                continue
            }
            guard pair.failure == nil else { break }
            if let error = pair.restart() {
                pair.failure = pair.failure ?? error
                break
            }
            // The crashed op was logged and replayed: the next op is new.
            op = pair.loggedOp + 1
        }
        return pair
    }

    /// Beats run their trees side by side and detach from the next op (Forest "Detached
    /// beats"), so IO completes in a different order with another storage seed; the grid must
    /// not depend on it, nor on detaching: every checkpoint (whose references checksum the
    /// manifest log and the free set, and through them every table) is the same.
    @Test("the grid does not depend on the order IO completes in", arguments: [5, 6] as [UInt64])
    func gridIsIndependentOfIOOrder(seed: UInt64) {
        let first = Self.run(seed: seed, storageSeed: seed &* 101, ops: 160, crashPercent: 0)
        let second = Self.run(seed: seed, storageSeed: seed &* 103 &+ 7, ops: 160, crashPercent: 0)
        #expect(first.failure == nil && second.failure == nil,
                "seed \(seed): \(first.failure ?? "") \(second.failure ?? "")")
        #expect(first.checkpoints.count >= 2, "seed \(seed): checkpoints were written (\(first.checkpoints.count))")
        #expect(first.checkpoints == second.checkpoints, "seed \(seed): the checkpoints differ")
        #expect(first.store.forest.detachedBeatCount > 0 && second.store.forest.detachedBeatCount > 0,
                "seed \(seed): beats detached")
        // Beats that run to their end before calling back make the same grid.
        let undetached = ForestLedgerPair(seed: seed, storageSeed: seed &* 101)
        undetached.store.forest.detachesBeats = false
        undetached.commit(ops: 160)
        #expect(undetached.failure == nil, "seed \(seed): \(undetached.failure ?? "")")
        #expect(undetached.store.forest.detachedBeatCount == 0)
        #expect(undetached.checkpoints == first.checkpoints, "seed \(seed): detaching changed the checkpoints")
        // Trees started without loop turns between them make the same grid too.
        #expect(first.store.forest.beatTurnCount > 0, "seed \(seed): beats turned the loop between trees")
        let unturned = ForestLedgerPair(seed: seed, storageSeed: seed &* 101, beatTurnValuesMin: Int.max)
        unturned.commit(ops: 160)
        #expect(unturned.failure == nil, "seed \(seed): \(unturned.failure ?? "")")
        #expect(unturned.store.forest.beatTurnCount == 0)
        #expect(unturned.checkpoints == first.checkpoints, "seed \(seed): turns between trees changed the checkpoints")
        // Compaction run inside execute (its IO completed by execute's polls) makes the same grid.
        let polled = Self.run(seed: seed, storageSeed: seed &* 101, ops: 160, crashPercent: 0, pollLookaheadTicks: 6)
        #expect(polled.failure == nil, "seed \(seed): \(polled.failure ?? "")")
        #expect(polled.store.executePollCount > 0 && polled.storage.pollCompletedCount > 0,
                "seed \(seed): execute polled (\(polled.store.executePollCount)) and completed IO (\(polled.storage.pollCompletedCount))")
        #expect(polled.checkpoints == first.checkpoints, "seed \(seed): compaction during execute changed the checkpoints")
    }

    @Test("replies equal the model's, op by op", arguments: [1, 2, 3, 4] as [UInt64])
    func repliesMatch(seed: UInt64) {
        // Seeds 3 and 4 run compaction inside execute (ForestStore "Compaction during execute").
        let pair = Self.run(seed: seed, ops: 160, crashPercent: 0, pollLookaheadTicks: seed >= 3 ? Int(seed) : 0)
        #expect(pair.failure == nil, "seed \(seed): \(pair.failure ?? "")")
        #expect(pair.pulses > 0, "seed \(seed): the workload reached the expiry pulse")
        #expect(pair.checkpoints.count >= 2, "seed \(seed): the run passed checkpoints")
    }

    /// Half the seeds hold small immutable tables (flushed at checkpoint triggers: the bar
    /// a restart replays must find everything before it on the grid), half flush every bar.
    /// Held tables make fewer beats wait for IO, where crashes strike: a higher crash rate.
    @Test("crashes and restarts lose nothing durable", arguments: [11, 12, 13, 14, 15, 16] as [UInt64])
    func crashesAndRestarts(seed: UInt64) {
        let holds = seed % 2 == 1
        // Seeds 13–16 also run compaction inside execute, so crashes strike while it does.
        let lookahead = seed >= 13 ? Int(seed % 5) + 2 : 0
        let pair = Self.run(
            seed: seed, ops: 160, crashPercent: holds ? 20 : 6, holdsSmallImmutableTables: holds,
            pollLookaheadTicks: lookahead)
        #expect(pair.failure == nil, "seed \(seed): \(pair.failure ?? "")")
        if lookahead > 0 {
            #expect(pair.storage.pollCompletedCount > 0, "seed \(seed): execute's polls completed IO")
        }
        #expect(pair.crashes > 0, "seed \(seed): the run crashed")
        #expect(pair.replayed > 0, "seed \(seed): a restart replayed ops")
    }
}

extension ForestLedgerPair {
    /// Commits ops 1...ops without crashes, stopping at the first failure.
    func commit(ops: UInt64) {
        var op: UInt64 = 1
        // Each turn commits one op: bounded by ops.
        while op <= ops && failure == nil {
            guard step(op: op, crashTicks: nil) else { break }
            op += 1
        }
    }

    /// Prefetches and executes `request` on the forest only (no model, no beat): the reply, or
    /// the prefetch's fault.
    func executeOnForest(_ request: LedgerRequest) -> Result<[UInt8], ForestStoreFault> {
        request.body.withUnsafeBytes { requestBuffer.copyMemory(from: $0) }
        let body = UnsafeRawBufferPointer(rebasing: requestBuffer[0..<request.body.count])
        let timestamp = model.prepare(operation: request.operation, body: body, realtime: realtime)
        var prefetched: Result<Void, ForestStoreFault>?
        machine.prefetch(operation: request.operation, body: body, timestamp: timestamp) { prefetched = $0 }
        guard storage.run(until: { prefetched != nil }) else { preconditionFailure("the prefetch finishes") }
        if case .failure(let fault) = prefetched! { return .failure(fault) }
        let size = machine.execute(operation: request.operation, timestamp: timestamp, body: body, output: replyBuffer)
        return .success(Array(UnsafeRawBufferPointer(rebasing: replyBuffer[0..<size])))
    }
}

extension ForestStoreModelTests {
    @Test("a corrupt grid block is reported by the prefetch, never returned as data")
    func corruptBlockIsAFault() {
        // Every bar flushed: the accounts must be on the grid, not only in held memtables.
        let pair = Self.run(seed: 5, ops: 120, crashPercent: 0, holdsSmallImmutableTables: false)
        #expect(pair.failure == nil, "\(pair.failure ?? "")")
        let lookup = LedgerRequest(
            operation: .lookupAccounts, body: LedgerWorkload.encode([pair.workload.accountIds], elementSize: 16))
        // Before: the forest answers as the model does.
        guard case .success(let before) = pair.executeOnForest(lookup) else {
            Issue.record("the lookup answers before the corruption")
            return
        }
        #expect(before.count > 128, "accounts were found")
        // A new process (empty caches), then corrupt every index block of the accounts object
        // tree and drop them from the block cache: accounts not in the memtables or the object
        // cache must be read from the disk.
        let fresh = ForestLedgerPair.reopen(pair)
        let tree = fresh.store.accounts.objectTree
        let tables = (0..<tree.manifest.levelCount).flatMap { level in
            (0..<tree.manifest.level(level).count).map { tree.manifest.level(level).table(at: $0) }
        }
        #expect(!tables.isEmpty, "the accounts object tree has tables on the grid")
        for table in tables {
            fresh.storage.corruptSector(zone: .grid, offset: fresh.layout.gridBlockOffset(address: table.address))
            _ = fresh.store.forest.grid.cache.remove(table.address)
        }
        switch fresh.executeOnForest(lookup) {
        case .success(let reply):
            #expect(reply == before, "an answer after the corruption can only come from memory and must be the same")
            Issue.record("the lookup of every account read no corrupt block")
        case .failure(let fault):
            guard case .groove(let treeId, .block) = fault else {
                Issue.record("a block fault, not \(fault)")
                return
            }
            #expect(treeId == TreeId.accountsObject.rawValue, "the fault names the accounts object tree")
        }
    }
}

extension ForestLedgerPair {
    /// The same disk opened by a new store at the last checkpoint, replayed (empty caches).
    static func reopen(_ pair: ForestLedgerPair) -> ForestLedgerPair {
        if let error = pair.restart() { Issue.record("restart: \(error)") }
        return pair
    }
}

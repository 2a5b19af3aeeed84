import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerStateMachine
import LedgerTesting
import Testing

// MARK: - Memtables and trees

@Suite struct MemtableScopeTests {
    @Test func aDiscardedScopeVanishesAndAPersistedOneStays() {
        let table = Memtable<IdTreeValue>(capacity: 64, runsMax: 4)
        table.put(IdTreeValue(id: 1, timestamp: 10))
        table.scopeOpen()
        table.put(IdTreeValue(id: 1, timestamp: 11))
        table.put(IdTreeValue(id: 2, timestamp: 12))
        #expect(table.get(1)?.timestamp == 11, "a scope's put is visible inside it")
        table.scopeClose(persist: false)
        #expect(table.get(1)?.timestamp == 10, "the put before the scope is back")
        #expect(table.get(2) == nil, "a key put only in the discarded scope is gone")
        #expect(table.count == 1)
        table.scopeOpen()
        table.put(IdTreeValue(id: 3, timestamp: 13))
        table.scopeClose(persist: true)
        #expect(table.get(3)?.timestamp == 13, "a persisted scope keeps its puts")
        table.makeImmutable()
        table.finishMerge()
        #expect(table.values.map(\.id) == [1, 3], "the flushed values hold no discarded put")
    }

    /// Random puts in groups (unscoped, persisted scope, discarded scope) over beats, checked
    /// against a dictionary by gets and by the immutable table's values.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func randomScopesMatchTheModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let beats = prng.int(in: 1...20)
        let putsPerBeatMax = 40
        let keySpace = UInt64(prng.int(in: 4...100))
        let table = Memtable<IdTreeValue>(capacity: beats * putsPerBeatMax, runsMax: prng.int(in: 1...8))
        var model: [UInt128: IdTreeValue] = [:]
        var stamp: UInt64 = 0
        var failures = 0
        func check(_ where_: String) {
            for key in 0..<(keySpace + 2) {
                let found = table.get(UInt128(key))
                if found.map({ treeValuesEqual($0, model[UInt128(key)] ?? IdTreeValue(id: 0, timestamp: 0)) })
                    ?? (model[UInt128(key)] == nil) { continue }
                failures += 1
            }
            #expect(failures == 0, "seed \(seed): gets differ from the model \(where_)")
        }
        for beat in 0..<beats {
            var left = putsPerBeatMax
            // Each turn puts one group: bounded by the beat's puts.
            while left > 0 {
                let count = min(left, prng.int(in: 1...8))
                left -= count
                let kind = prng.int(in: 0...2)
                if kind > 0 { table.scopeOpen() }
                var scoped = model
                for _ in 0..<count {
                    stamp += 1
                    var value = IdTreeValue(id: UInt128(prng.below(keySpace)), timestamp: stamp)
                    if prng.chance(percent: 15) { value.flags = IdTreeValue.tombstoneFlag }
                    table.put(value)
                    scoped[value.id] = value
                }
                if kind > 0 { table.scopeClose(persist: kind == 1) }
                if kind != 2 { model = scoped }
                if prng.chance(percent: 30) { check("in beat \(beat)") }
            }
            table.sortSuffix()
            check("after beat \(beat)")
        }
        table.makeImmutable()
        table.finishMerge()
        let expected = model.values.sorted { $0.id < $1.id }
        let same = table.values.count == expected.count && zip(table.values, expected).allSatisfy(treeValuesEqual)
        #expect(same, "seed \(seed): the immutable table is the model")
    }
}

@Suite struct TreeScopeTests {
    /// Random batches of puts (some in discarded scopes) over many bars, so values reach the
    /// levels; lookups and a whole-range scan agree with the model.
    @Test(arguments: [UInt64(1), 2])
    func discardedPutsNeverReachTheTree(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let perBeat = 24
        let harness = TreeHarness<TreeTestObject>(
            storageSeed: seed, configuration: TreeHarness<TreeTestObject>.configuration(valuesPerBeatMax: perBeat, growthFactor: 4))
        let tree = harness.tree
        var version: UInt64 = 0
        var discarded = 0
        for _ in 0..<48 {
            var left = perBeat
            // Each turn puts one group: bounded by the beat's puts.
            while left > 0 {
                let count = min(left, prng.int(in: 1...6))
                left -= count
                let discard = prng.chance(percent: 40)
                tree.scopeOpen()
                var puts: [TreeTestObject] = []
                for _ in 0..<count {
                    version += 1
                    // Mostly new keys, so tables do not all overlap and compaction reaches the
                    // levels below 0; some overwrites and deletes of older keys.
                    let key = prng.chance(percent: 70) ? version : prng.below(version)
                    puts.append(prng.chance(percent: 10) ? .tombstone(key: key) : TreeTestObject(id: key, version: version))
                    tree.put(puts[puts.count - 1])
                }
                tree.scopeClose(persist: !discard)
                if discard {
                    discarded += count
                } else {
                    for value in puts { if value.isTombstone { harness.model[value.key] = nil } else { harness.model[value.key] = value } }
                }
            }
            #expect(harness.commit(), "seed \(seed): the beat finished")
        }
        #expect(discarded > 100, "seed \(seed): scopes were discarded (\(discarded) puts)")
        #expect(harness.levelCounts().dropFirst().contains { $0 > 0 }, "seed \(seed): values reached the levels")
        var failure: String?
        for key in 0...version where failure == nil { failure = harness.check(key) }
        #expect(failure == nil, "seed \(seed): \(failure ?? "")")
        let limit = Int(version) + 1
        let output = UnsafeMutableBufferPointer<TreeTestObject>.allocate(capacity: limit)
        defer { output.deallocate() }
        var result: TreeScanResult?
        tree.scan(keyMin: 0, keyMax: .max, direction: .ascending, limit: limit, into: output) { result = $0 }
        guard harness.storage.run(until: { result != nil }), case .done(let count) = result! else {
            Issue.record("seed \(seed): the scan failed: \(String(describing: result))")
            return
        }
        let expected = harness.model.values.sorted { $0.id < $1.id }
        let same = count == expected.count && zip(output[0..<count], expected).allSatisfy(treeValuesEqual)
        #expect(same, "seed \(seed): the scan is the model (\(count) values, the model has \(expected.count))")
    }
}

// MARK: - Grooves

/// One change of a chain.
enum ScopeAction {
    case insert(Account)
    case update(GrooveUpdate)
    case orphan(id: UInt128, timestamp: UInt64)
}

struct ScopeChain {
    var actions: [ScopeAction] = []
    var scoped = true
    var persist = true
}

/// What the groove must answer at one point of a batch.
struct ScopeAnswers: Equatable {
    var accounts: [Account?]
    var orphaned: [Bool]
    var byTimestamp: [Account?]
}

/// One batch: what it prefetches, its chains, and the answers expected before the first chain
/// and after each one (computed when the WAL is made, so replays check the same).
struct ScopeBatch {
    var ids: [UInt128] = []
    var timestamps: [UInt64] = []
    var chains: [ScopeChain] = []
    var expected: [ScopeAnswers] = []
}

/// The accounts groove driven by batches of linked chains, some discarded, over the forest with
/// crashes and restarts (via `GrooveHarness`'s node, beats and checks).
final class ScopeGrooveRun {
    static let changesMax = 12
    let harness: GrooveHarness
    let configuration: GrooveConfiguration
    let wal: [ScopeBatch]
    var checkedAnswers = 0

    init(storageSeed: UInt64, wal: [ScopeBatch], configuration: GrooveConfiguration) {
        harness = GrooveHarness(storageSeed: storageSeed, wal: [], configuration: configuration)
        self.configuration = configuration
        self.wal = wal
    }

    struct Model {
        var accounts: [UInt128: Account] = [:]
        var orphans: Set<UInt128> = []
        func answers(_ batch: ScopeBatch) -> ScopeAnswers {
            let byTimestamp = Dictionary(uniqueKeysWithValues: accounts.values.map { ($0.timestamp, $0) })
            return ScopeAnswers(
                accounts: batch.ids.map { accounts[$0] }, orphaned: batch.ids.map { orphans.contains($0) },
                byTimestamp: batch.timestamps.map { byTimestamp[$0] })
        }
        mutating func apply(_ action: ScopeAction) {
            switch action {
            case .insert(let account): accounts[account.id] = account
            case .update(let update): accounts[update.id] = update.apply(to: accounts[update.id]!)
            case .orphan(let id, _): orphans.insert(id)
            }
        }
    }

    /// The WAL and the final model.
    static func makeWAL(seed: UInt64, count: Int) -> ([ScopeBatch], Model) {
        var prng = PRNG(seed: seed)
        var model = Model()
        var wal: [ScopeBatch] = []
        var nextId: UInt128 = 1
        var timestamp: UInt64 = 0
        var gone: [UInt128] = []
        func newId() -> UInt128 {
            nextId += 1
            return nextId &* 7919 &+ (UInt128(prng.below(5)) << 64)
        }
        for _ in 0..<count {
            var batch = ScopeBatch()
            var work = model
            var states: [Model] = [model]
            var changes = 0
            // Each turn builds one chain: bounded by changesMax.
            while changes < changesMax && prng.chance(percent: 85) {
                var chain = ScopeChain()
                chain.scoped = prng.chance(percent: 80)
                chain.persist = !chain.scoped || prng.chance(percent: 50)
                var next = work
                for _ in 0..<min(changesMax - changes, prng.int(in: 1...3)) {
                    let existing = next.accounts.keys.sorted()
                    let roll = prng.int(in: 0...9)
                    let action: ScopeAction
                    timestamp += 1
                    if roll < 5 || existing.isEmpty {
                        action = .insert(Account(
                            id: newId(), userData128: UInt128(prng.below(4)), userData64: prng.below(4),
                            userData32: UInt32(prng.below(4)), ledger: UInt32(1 + prng.below(3)),
                            code: UInt16(1 + prng.below(3)), flags: prng.chance(percent: 20) ? [.imported] : [],
                            timestamp: timestamp))
                    } else if roll < 9 {
                        action = .update(GrooveUpdate(
                            id: existing[Int(prng.below(UInt64(existing.count)))], debit: UInt128(1 + prng.below(100)),
                            userData64: prng.chance(percent: 40) ? prng.below(4) : nil,
                            toggleClosed: prng.chance(percent: 25)))
                    } else {
                        action = .orphan(id: newId(), timestamp: timestamp)
                    }
                    next.apply(action)
                    chain.actions.append(action)
                    changes += 1
                }
                if chain.persist {
                    work = next
                } else {
                    for action in chain.actions {
                        if case .insert(let account) = action { gone.append(account.id) }
                        if case .orphan(let id, _) = action { gone.append(id) }
                    }
                }
                batch.chains.append(chain)
                states.append(work)
            }
            // Prefetch every id the chains touch, a few older ones (live, orphaned, discarded),
            // the timestamps the batch creates and a few older ones.
            var ids: [UInt128] = []
            var timestamps: [UInt64] = []
            for chain in batch.chains {
                for action in chain.actions {
                    switch action {
                    case .insert(let account):
                        ids.append(account.id)
                        timestamps.append(account.timestamp)
                    case .update(let update): ids.append(update.id)
                    case .orphan(let id, _): ids.append(id)
                    }
                }
            }
            let live = model.accounts.keys.sorted()
            for _ in 0..<2 where !live.isEmpty {
                let id = live[Int(prng.below(UInt64(live.count)))]
                ids.append(id)
                timestamps.append(model.accounts[id]!.timestamp)
            }
            let orphans = model.orphans.sorted()
            if !orphans.isEmpty { ids.append(orphans[Int(prng.below(UInt64(orphans.count)))]) }
            for _ in 0..<2 where !gone.isEmpty { ids.append(gone[Int(prng.below(UInt64(gone.count)))]) }
            var seenIds: Set<UInt128> = []
            batch.ids = ids.filter { seenIds.insert($0).inserted }
            var seenTimestamps: Set<UInt64> = []
            batch.timestamps = timestamps.filter { seenTimestamps.insert($0).inserted }
            batch.expected = states.map { $0.answers(batch) }
            model = work
            wal.append(batch)
        }
        return (wal, model)
    }

    func answers(_ batch: ScopeBatch) -> ScopeAnswers {
        let groove = harness.node.groove
        return ScopeAnswers(
            accounts: batch.ids.map { groove.get(id: $0) }, orphaned: batch.ids.map { groove.isOrphaned(id: $0) },
            byTimestamp: batch.timestamps.map { groove.get(timestamp: $0) })
    }

    func commit(_ op: UInt64, crashTicks: Int? = nil) -> Bool {
        harness.beginOp(op, forest: harness.node.forest)
        let batch = wal[Int(op - 1)]
        let groove = harness.node.groove
        groove.prefetchStart()
        for id in batch.ids { groove.prefetchEnqueue(id: id) }
        for timestamp in batch.timestamps { groove.prefetchEnqueue(timestamp: timestamp) }
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        guard harness.storage.run(until: { prefetched != nil }), case .success = prefetched! else {
            harness.failure = "op \(op): prefetch failed: \(String(describing: prefetched))"
            return false
        }
        guard answers(batch) == batch.expected[0] else {
            harness.failure = "op \(op): the prefetched answers differ from the model"
            return false
        }
        for (position, chain) in batch.chains.enumerated() {
            if chain.scoped { groove.scopeOpen() }
            for action in chain.actions {
                switch action {
                case .insert(let account): groove.insert(account)
                case .update(let update):
                    guard let old = groove.get(id: update.id) else {
                        harness.failure = "op \(op): the updated account \(update.id) is missing"
                        return false
                    }
                    groove.update(old: old, new: update.apply(to: old))
                case .orphan(let id, let timestamp): groove.insertOrphanedId(id, timestamp: timestamp)
                }
            }
            if chain.scoped { groove.scopeClose(persist: chain.persist) }
            guard answers(batch) == batch.expected[position + 1] else {
                harness.failure = "op \(op): after chain \(position) (persist \(chain.persist)) the answers differ"
                return false
            }
            checkedAnswers += batch.ids.count
        }
        return harness.runBeat(op, forest: harness.node.forest, crashTicks: crashTicks)
    }

    func restart() -> String? {
        harness.node = GrooveNode(storage: harness.storage, configuration: configuration)
        return harness.openAndReplay(forest: harness.node.forest) { commit($0) }
    }
}

@Suite struct GrooveScopeTests {
    static let opCount: UInt64 = 160

    /// `defersUpdates`: updates reach the object tree at the op's beat (Groove "Deferred
    /// updates"), as the accounts groove of a ledger does.
    static func configuration(defersUpdates: Bool = false) -> GrooveConfiguration {
        var configuration = GrooveNode.configuration(cacheCapacity: 32, changesPerBeatMax: 16, prefetchEntriesMax: 64)
        configuration.defersUpdates = defersUpdates
        return configuration
    }

    @Test(arguments: [UInt64(1), 2, 3], [false, true])
    func chainsCommitOrVanishAcrossBeatsAndRestarts(seed: UInt64, defersUpdates: Bool) {
        let (wal, model) = ScopeGrooveRun.makeWAL(seed: seed, count: Int(Self.opCount))
        let discarded = wal.flatMap(\.chains).filter { !$0.persist }.count
        #expect(discarded > 20, "seed \(seed): chains were discarded (\(discarded))")
        var prng = PRNG(seed: seed ^ 0x5c0e)
        let run = ScopeGrooveRun(
            storageSeed: seed &* 13, wal: wal, configuration: Self.configuration(defersUpdates: defersUpdates))
        let harness = run.harness
        // Each turn commits an op or crashes and restarts; crashes are capped, so ops advance.
        while harness.committedOp < Self.opCount && harness.failure == nil {
            let crash = harness.crashes < 4 && prng.chance(percent: 5)
            if run.commit(harness.committedOp + 1, crashTicks: crash ? prng.int(in: 1...20) : nil) { continue }
            guard harness.failure == nil else { break }
            if let failure = run.restart() { harness.failure = "after crash \(harness.crashes): \(failure)" }
        }
        #expect(harness.failure == nil, "seed \(seed): \(harness.failure ?? "")")
        guard harness.failure == nil else { return }
        harness.storage.runUntilIdle()
        #expect(run.checkedAnswers > 500, "seed \(seed): answers were checked (\(run.checkedAnswers))")
        #expect(harness.crashes >= 1, "seed \(seed): the run crashed and replayed (\(harness.crashes))")
        #expect(harness.checkpoints.count >= 2, "seed \(seed): checkpoints (\(harness.checkpoints.count))")
        let levels = harness.node.groove.objectTree.manifest.levelsTables().map(\.count)
        #expect(levels.dropFirst().contains { $0 > 0 }, "seed \(seed): objects reached levels below 0 (\(levels))")
        harness.model = model.accounts
        let accounts = harness.checkAllAccounts()
        #expect(accounts == nil, "seed \(seed): \(accounts ?? "")")
        // The index scans equal the model's keys: no key of a discarded insert or update is left,
        // and none of a persisted one is lost.
        let indexes = harness.checkIndexes()
        #expect(indexes.failure == nil, "seed \(seed): \(indexes.failure ?? "")")
        #expect(indexes.compared > model.accounts.count, "seed \(seed): index scans compared timestamps")
    }

    /// Within one batch: a discarded scope after a persisted change restores exactly the state
    /// at its open (an update of a changed object, a second insert, an orphan of a known id).
    @Test func aDiscardedScopeRestoresTheStateAtItsOpen() {
        let harness = GrooveHarness(storageSeed: 3, wal: [], configuration: Self.configuration())
        let groove = harness.node.groove
        let a = Account(id: 10, userData64: 1, ledger: 1, code: 1, timestamp: 1)
        let b = Account(id: 20, userData64: 2, ledger: 1, code: 1, timestamp: 2)
        groove.prefetchStart()
        for id: UInt128 in [10, 20, 30] { groove.prefetchEnqueue(id: id) }
        groove.prefetchEnqueue(timestamp: 2)
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        #expect(harness.storage.run(until: { prefetched != nil }))
        groove.insert(a)
        var a2 = a
        a2.userData64 = 3
        groove.scopeOpen()
        #expect(groove.scopeIsActive)
        groove.update(old: a, new: a2)
        groove.insert(b)
        groove.insertOrphanedId(30, timestamp: 3)
        #expect(groove.get(id: 10) == a2 && groove.get(id: 20) == b && groove.isOrphaned(id: 30), "changes seen inside")
        groove.scopeClose(persist: false)
        #expect(groove.get(id: 10) == a, "the update is undone")
        #expect(groove.get(timestamp: 1) == a)
        #expect(groove.get(id: 20) == nil, "the insert is undone")
        #expect(groove.get(timestamp: 2) == nil, "the insert is undone by timestamp")
        #expect(!groove.isOrphaned(id: 30), "the orphan is undone")
        #expect(groove.objectTree.memtableCounts.mutable == 1, "the object tree keeps only the persisted insert")
        #expect(groove.idTree!.memtableCounts.mutable == 1, "the id tree keeps only the persisted insert")
        let userData64 = groove.indexes.firstIndex { $0.treeId == TreeId.accountsUserData64.rawValue }!
        #expect(groove.indexTrees64[userData64]!.memtableCounts.mutable == 1, "the update's index keys are gone")
        #expect(!groove.scopeIsActive)
    }
}

extension GrooveScopeTests {
    /// Deferred updates: however often an op updates an object, the object tree gets it once,
    /// its latest version, when the op's beat starts; a discarded scope's updates are dropped,
    /// an update before the scope stays; nothing reaches the tree before the beat.
    @Test func deferredUpdatesReachTheObjectTreeOncePerObjectAtTheBeat() {
        let harness = GrooveHarness(storageSeed: 5, wal: [], configuration: Self.configuration(defersUpdates: true))
        let groove = harness.node.groove
        let accounts = (1...3).map { Account(id: UInt128($0) * 10, ledger: 1, code: 1, timestamp: UInt64($0)) }
        harness.beginOp(1, forest: harness.node.forest)
        groove.prefetchStart()
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        #expect(harness.storage.run(until: { prefetched != nil }))
        for account in accounts { groove.insert(account) }
        #expect(harness.runBeat(1, forest: harness.node.forest, crashTicks: nil))
        #expect(groove.objectTree.memtableCounts.mutable == 3)

        harness.beginOp(2, forest: harness.node.forest)
        groove.prefetchStart()
        for account in accounts { groove.prefetchEnqueue(id: account.id) }
        prefetched = nil
        groove.prefetch { prefetched = $0 }
        #expect(harness.storage.run(until: { prefetched != nil }))
        func bump(_ id: UInt128, by amount: UInt128) {
            let old = groove.get(id: id)!
            var new = old
            new.debitsPosted += amount
            groove.update(old: old, new: new)
        }
        for _ in 0..<5 { bump(10, by: 1) }
        bump(30, by: 7)
        groove.scopeOpen()
        bump(10, by: 100)
        bump(20, by: 100)
        groove.scopeClose(persist: false)
        #expect(groove.objectTree.memtableCounts.mutable == 3, "no update reached the tree before the beat")
        #expect(harness.runBeat(2, forest: harness.node.forest, crashTicks: nil))
        // Accounts 10 and 30 once each; 20 only changed in the discarded scope.
        #expect(groove.objectTree.memtableCounts.mutable == 5)
        var lookedUp: [UInt64: Account] = [:]
        for timestamp: UInt64 in [1, 2, 3] {
            var result: TreeLookupResult<Account>?
            groove.objectTree.lookup(timestamp) { result = $0 }
            #expect(harness.storage.run(until: { result != nil }))
            if case .found(let account)? = result { lookedUp[timestamp] = account }
        }
        #expect(lookedUp[1]?.debitsPosted == 5 && lookedUp[2]?.debitsPosted == 0 && lookedUp[3]?.debitsPosted == 7)
    }

    /// A second prefetch round of the same batch adds to the first: earlier answers stay.
    @Test func prefetchRoundsAccumulate() {
        let harness = GrooveHarness(storageSeed: 4, wal: [], configuration: Self.configuration())
        let groove = harness.node.groove
        let a = Account(id: 10, ledger: 1, code: 1, timestamp: 1)
        let b = Account(id: 20, ledger: 1, code: 1, timestamp: 2)
        groove.prefetchStart()
        groove.insert(a)
        groove.insert(b)
        var result: Result<ForestCheckpoint?, ForestFault>?
        harness.node.forest.compact(op: 1) { result = $0 }
        #expect(harness.storage.run(until: { result != nil }), "the beat finished")
        groove.prefetchStart()
        groove.prefetchEnqueue(id: 10)
        var first: Result<Void, GrooveFault>?
        groove.prefetch { first = $0 }
        #expect(harness.storage.run(until: { first != nil }), "round one finished")
        #expect(groove.get(id: 10) == a, "round one's answer")
        groove.prefetchEnqueue(id: 20)
        groove.prefetchEnqueue(id: 30)
        groove.prefetchEnqueue(timestamp: 2)
        var second: Result<Void, GrooveFault>?
        groove.prefetch { second = $0 }
        #expect(harness.storage.run(until: { second != nil }), "round two finished")
        #expect(groove.get(id: 10) == a, "round one's answer stays")
        #expect(groove.get(id: 20) == b && groove.get(timestamp: 2) == b, "round two's answers")
        #expect(groove.get(id: 30) == nil, "a missing id of round two")
    }
}

// MARK: - Id-less groove

/// The account-events groove (no id tree, no indexes) with restarts.
final class EventGrooveRun: ForestRunHarness {
    typealias Node = GrooveTestNode<AccountEventRecord>
    let configuration: GrooveConfiguration
    var node: Node
    let wal: [[AccountEvent]]
    var model: [UInt64: AccountEvent] = [:]
    var checked = 0

    static func configuration() -> GrooveConfiguration {
        Node.configuration(
            objectTreeId: .accountEventsObject, idTreeId: nil, indexes: [], cacheCapacity: 16, changesPerBeatMax: 8,
            prefetchEntriesMax: 32)
    }

    init(seed: UInt64, wal: [[AccountEvent]]) {
        let storage = ForestRunHarness.makeStorage(seed: seed)
        configuration = Self.configuration()
        node = Node(storage: storage, configuration: configuration, indexes: [])
        self.wal = wal
        super.init(storage: storage)
    }

    /// Batches of up to 8 events with increasing timestamps (gaps, so some asked-for
    /// timestamps do not exist).
    static func makeWAL(seed: UInt64, count: Int) -> [[AccountEvent]] {
        var prng = PRNG(seed: seed)
        var timestamp: UInt64 = 1000
        return (0..<count).map { _ in
            (0..<prng.int(in: 0...8)).map { _ in
                timestamp += 1 + prng.below(3)
                var event = StoreRecordsTests.randomEvent(&prng)
                event.timestamp = timestamp
                return event
            }
        }
    }

    /// Prefetches the op's own timestamps (absent before) and a few older ones (present, or gaps),
    /// checks them against what the WAL implies, inserts the batch and runs the beat.
    func commit(_ op: UInt64, crashTicks: Int? = nil) -> Bool {
        beginOp(op, forest: node.forest)
        let batch = wal[Int(op - 1)]
        // What exists before this op: every earlier op's events (deterministic, so replays agree).
        let before = wal[0..<Int(op - 1)].joined()
        var probe = PRNG(seed: op)
        var timestamps = batch.map(\.timestamp)
        if let last = before.last?.timestamp {
            for _ in 0..<6 { timestamps.append(1000 + probe.below(last - 999)) }
        }
        let known = Dictionary(uniqueKeysWithValues: before.map { ($0.timestamp, $0) })
        let groove = node.groove
        groove.prefetchStart()
        for timestamp in timestamps { groove.prefetchEnqueue(timestamp: timestamp) }
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        guard storage.run(until: { prefetched != nil }), case .success = prefetched! else {
            failure = "op \(op): prefetch failed \(String(describing: prefetched))"
            return false
        }
        for timestamp in timestamps {
            let got = groove.get(timestamp: timestamp).map(\.event)
            let expected = known[timestamp]
            if got != expected.map({ Optional($0) }) {
                failure = "op \(op): event at \(timestamp) is \(String(describing: got)), expected \(String(describing: expected))"
                return false
            }
            checked += 1
        }
        for event in batch { groove.insert(AccountEventRecord(event)) }
        for event in batch where groove.get(timestamp: event.timestamp)?.event != event {
            failure = "op \(op): the inserted event \(event.timestamp) is not read back"
            return false
        }
        guard runBeat(op, forest: node.forest, crashTicks: crashTicks) else { return false }
        for event in batch { model[event.timestamp] = event }
        return true
    }

    func restart() -> String? {
        node = Node(storage: storage, configuration: configuration, indexes: [])
        return openAndReplay(forest: node.forest) { commit($0) }
    }
}

@Suite struct IdlessGrooveTests {
    @Test func anIdlessGrooveHasOnlyItsObjectTree() {
        let configuration = EventGrooveRun.configuration()
        #expect(configuration.treeConfigurations.count == 1, "the object tree alone")
        let run = EventGrooveRun(seed: 1, wal: [])
        #expect(run.node.groove.idTree == nil, "no id tree")
        #expect(run.node.manifests().count == run.node.groove.objectTree.manifest.levelsTables().count)
    }

    @Test(arguments: [UInt64(1), 2])
    func eventsSurviveBeatsAndRestarts(seed: UInt64) {
        let opCount: UInt64 = 80
        let run = EventGrooveRun(seed: seed, wal: EventGrooveRun.makeWAL(seed: seed, count: Int(opCount)))
        var prng = PRNG(seed: seed ^ 0xe7e7)
        // Each turn commits an op or crashes and restarts; crashes are capped, so ops advance.
        while run.committedOp < opCount && run.failure == nil {
            let crash = run.crashes < 3 && prng.chance(percent: 6)
            if run.commit(run.committedOp + 1, crashTicks: crash ? prng.int(in: 1...20) : nil) { continue }
            guard run.failure == nil else { break }
            if let failure = run.restart() { run.failure = "after crash \(run.crashes): \(failure)" }
        }
        #expect(run.failure == nil, "seed \(seed): \(run.failure ?? "")")
        guard run.failure == nil else { return }
        run.storage.runUntilIdle()
        #expect(run.checked > 300, "seed \(seed): timestamps were checked (\(run.checked))")
        #expect(run.crashes >= 1, "seed \(seed): the run crashed and replayed (\(run.crashes))")
        let levels = run.node.groove.objectTree.manifest.levelsTables().map(\.count)
        #expect(levels.dropFirst().contains { $0 > 0 }, "seed \(seed): events reached levels below 0 (\(levels))")
        // A final restart: every event is read back from the checkpoint plus the replay.
        let restarted = run.restart()
        #expect(restarted == nil, "seed \(seed): \(restarted ?? "")")
        let all = run.model.keys.sorted()
        var start = 0
        var missing = 0
        // Each turn prefetches one chunk: bounded by the model's size.
        while start < all.count {
            let chunk = all[start..<min(start + 24, all.count)]
            let groove = run.node.groove
            groove.prefetchStart()
            for timestamp in chunk { groove.prefetchEnqueue(timestamp: timestamp) }
            var prefetched: Result<Void, GrooveFault>?
            groove.prefetch { prefetched = $0 }
            guard run.storage.run(until: { prefetched != nil }), case .success = prefetched! else {
                Issue.record("seed \(seed): the final prefetch failed")
                return
            }
            missing += chunk.filter { groove.get(timestamp: $0)?.event != run.model[$0] }.count
            start += 24
        }
        #expect(missing == 0, "seed \(seed): every event is read back after a restart (\(missing) missing)")
    }

    @Test func idOperationsTrapOnAnIdlessGroove() async {
        await #expect(processExitsWith: .failure) {
            let run = EventGrooveRun(seed: 1, wal: [])
            run.node.groove.prefetchStart()
            run.node.groove.prefetchEnqueue(id: 1)
        }
        await #expect(processExitsWith: .failure) {
            let run = EventGrooveRun(seed: 1, wal: [])
            run.node.groove.insertOrphanedId(1, timestamp: 1)
        }
    }

    @Test func aScopeCannotSpanABeat() async {
        await #expect(processExitsWith: .failure) {
            let table = Memtable<IdTreeValue>(capacity: 8)
            table.scopeOpen()
            table.put(IdTreeValue(id: 1, timestamp: 1))
            table.sortSuffix()
        }
        await #expect(processExitsWith: .failure) {
            let table = Memtable<IdTreeValue>(capacity: 8)
            table.scopeOpen()
            table.scopeOpen()
        }
    }
}

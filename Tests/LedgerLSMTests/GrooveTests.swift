import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerTesting
import Testing

/// An update of one account in a batch: a balance change, and sometimes an indexed field.
struct GrooveUpdate {
    var id: UInt128
    var debit: UInt128
    var userData64: UInt64?
    var toggleClosed: Bool

    func apply(to old: Account) -> Account {
        var new = old
        new.debitsPosted &+= debit
        if let userData64 { new.userData64 = userData64 }
        if toggleClosed {
            if new.flags.contains(.closed) { new.flags.remove(.closed) } else { new.flags.insert(.closed) }
        }
        return new
    }
}

/// One batch of the test's WAL: the ids it prefetches, the accounts it creates and updates.
struct GrooveBatch {
    var enqueue: [UInt128] = []
    var inserts: [Account] = []
    var updates: [GrooveUpdate] = []
}


/// Drives the accounts groove batch by batch against a model, with crashes and restarts from the
/// last durable checkpoint (replaying the batches after it).
final class GrooveHarness: ForestRunHarness {
    let configuration: GrooveConfiguration
    var node: GrooveNode
    let wal: [GrooveBatch]
    var model: [UInt128: Account] = [:]
    var modelOp: UInt64 = 0
    /// What each op's gets answered when it first ran (replays must answer the same).
    var expectedGets: [UInt64: [(UInt128, Account?)]] = [:]
    var getsChecked = 0

    init(storageSeed: UInt64, wal: [GrooveBatch], configuration: GrooveConfiguration) {
        let storage = ForestRunHarness.makeStorage(seed: storageSeed)
        self.configuration = configuration
        node = GrooveNode(storage: storage, configuration: configuration)
        self.wal = wal
        super.init(storage: storage)
    }

    static let insertsMax = 6
    static let updatesMax = 6

    /// `count` batches: new accounts with increasing timestamps and fields from small domains,
    /// updates of existing accounts (balances; sometimes user_data_64 or the closed flag).
    static func makeWAL(seed: UInt64, count: Int) -> [GrooveBatch] {
        var prng = PRNG(seed: seed)
        var wal: [GrooveBatch] = []
        var existing: [UInt128] = []
        var nextId: UInt128 = 1
        var timestamp: UInt64 = 0
        for _ in 0..<count {
            var batch = GrooveBatch()
            for _ in 0..<prng.int(in: 0...insertsMax) {
                timestamp += 1
                let id = nextId &* 7919 &+ (UInt128(prng.below(7)) << 64)
                nextId += 1
                batch.inserts.append(Account(
                    id: id, userData128: UInt128(prng.below(4)), userData64: prng.below(4),
                    userData32: UInt32(prng.below(4)), ledger: UInt32(1 + prng.below(3)), code: UInt16(1 + prng.below(3)),
                    flags: prng.chance(percent: 20) ? [.imported] : [], timestamp: timestamp))
            }
            var chosen: Set<UInt128> = []
            if !existing.isEmpty {
                for _ in 0..<prng.int(in: 0...updatesMax) {
                    let id = existing[Int(prng.below(UInt64(existing.count)))]
                    guard chosen.insert(id).inserted else { continue }
                    batch.updates.append(GrooveUpdate(
                        id: id, debit: UInt128(1 + prng.below(100)),
                        userData64: prng.chance(percent: 30) ? prng.below(4) : nil, toggleClosed: prng.chance(percent: 15)))
                }
                for _ in 0..<2 { batch.enqueue.append(existing[Int(prng.below(UInt64(existing.count)))]) }
            }
            batch.enqueue += batch.inserts.map(\.id) + batch.updates.map(\.id)
            // An id that never exists.
            batch.enqueue.append((UInt128(1) << 100) &+ UInt128(prng.below(1000)))
            existing += batch.inserts.map(\.id)
            wal.append(batch)
        }
        return wal
    }

    /// Prefetches, checks and applies op `op`'s batch, then runs its beat; crashes after
    /// `crashTicks` ticks of the beat if given (false: crashed or failed).
    func commit(_ op: UInt64, crashTicks: Int? = nil) -> Bool {
        beginOp(op, forest: node.forest)
        let batch = wal[Int(op - 1)]
        let groove = node.groove
        guard prefetch(groove, ids: batch.enqueue, op: op) else { return false }
        let gets = batch.enqueue.map { ($0, groove.get(id: $0)) }
        if op > modelOp {
            for (id, got) in gets where got != model[id] {
                failure = "op \(op): get(id: \(id)) is \(String(describing: got)), the model has \(String(describing: model[id]))"
                return false
            }
            expectedGets[op] = gets
        } else {
            guard let expected = expectedGets[op], expected.count == gets.count,
                  zip(expected, gets).allSatisfy({ $0.0 == $1.0 && $0.1 == $1.1 })
            else {
                failure = "op \(op): the replay's gets differ from the original run's"
                return false
            }
        }
        getsChecked += gets.count
        for account in batch.inserts { groove.insert(account) }
        for update in batch.updates {
            guard let old = groove.get(id: update.id) else {
                failure = "op \(op): the updated account \(update.id) is missing"
                return false
            }
            groove.update(old: old, new: update.apply(to: old))
        }
        guard runBeat(op, forest: node.forest, crashTicks: crashTicks) else { return false }
        if op > modelOp {
            for account in batch.inserts { model[account.id] = account }
            for update in batch.updates { model[update.id] = update.apply(to: model[update.id]!) }
            modelOp = op
        }
        return true
    }

    /// A new process: a fresh forest and groove open the superblock's checkpoint and replay the
    /// batches up to the highest committed op.
    func restart() -> String? {
        node = GrooveNode(storage: storage, configuration: configuration)
        return openAndReplay(forest: node.forest) { commit($0) }
    }

    /// Every model account through prefetch (in batches the groove accepts), plus a missing id.
    func checkAllAccounts() -> String? {
        let ids = model.keys.sorted()
        let chunk = (configuration.prefetchEntriesMax - 1) / 2
        var start = 0
        // Each turn prefetches one chunk: bounded by the model's size.
        while start <= ids.count {
            let slice = ids[start..<min(start + chunk, ids.count)]
            let groove = node.groove
            let missing = UInt128(1) << 120
            if let error = prefetchAndWait(
                groove, ids: Array(slice) + [missing], timestamps: slice.map { model[$0]!.timestamp })
            { return error }
            for id in slice {
                guard groove.get(id: id) == model[id] else { return "account \(id) differs from the model" }
                guard groove.get(timestamp: model[id]!.timestamp) == model[id] else {
                    return "account at timestamp \(model[id]!.timestamp) differs from the model"
                }
            }
            if groove.get(id: missing) != nil { return "a missing id was found" }
            start += chunk
        }
        return nil
    }

    /// The timestamps an index tree holds for `field`, by range scan.
    func scanIndex(_ position: Int, field: UInt128) -> [UInt64]? {
        let groove = node.groove
        let limit = 4096
        let timestampMax = CompositeKey64.tombstoneBit - 1
        var result: TreeScanResult?
        if let tree = groove.indexTrees64[position] {
            let output = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: limit)
            defer { output.deallocate() }
            tree.scan(
                keyMin: CompositeKey64(field: UInt64(field), timestamp: 0),
                keyMax: CompositeKey64(field: UInt64(field), timestamp: timestampMax), direction: .ascending,
                limit: limit, into: output
            ) { result = $0 }
            guard storage.run(until: { result != nil }), case .done(let count) = result! else { return nil }
            return output[0..<count].map(\.timestamp)
        }
        guard let tree = groove.indexTrees128[position] else { return nil }
        let output = UnsafeMutableBufferPointer<CompositeKey128>.allocate(capacity: limit)
        defer { output.deallocate() }
        tree.scan(
            keyMin: CompositeKey128(field: field, timestamp: 0), keyMax: CompositeKey128(field: field, timestamp: timestampMax),
            direction: .ascending, limit: limit, into: output
        ) { result = $0 }
        guard storage.run(until: { result != nil }), case .done(let count) = result! else { return nil }
        return output[0..<count].map(\.timestamp)
    }

    /// Each index tree scanned for every field value the WAL uses (and 0, never indexed for
    /// fields), compared with the model's index; returns the number of timestamps compared.
    func checkIndexes() -> (failure: String?, compared: Int) {
        var compared = 0
        for (position, index) in node.groove.indexes.enumerated() {
            let fields: [UInt128]
            if case .exists = index.derivation { fields = [0] } else { fields = [0, 1, 2, 3] }
            for field in fields {
                let expected = model.values.filter { index.field(of: $0) == field }.map(\.timestamp).sorted()
                guard let found = scanIndex(position, field: field) else {
                    return ("index tree \(index.treeId): the scan of \(field) failed", compared)
                }
                guard found == expected else {
                    return ("index tree \(index.treeId), field \(field): \(found.count) timestamps, the model has \(expected.count)", compared)
                }
                compared += found.count
            }
        }
        return (nil, compared)
    }
}

@Suite struct GrooveTests {
    static let opCount: UInt64 = 120

    static func standardConfiguration() -> GrooveConfiguration {
        GrooveNode.configuration(
            cacheCapacity: 64, changesPerBeatMax: GrooveHarness.insertsMax + GrooveHarness.updatesMax,
            prefetchEntriesMax: 32)
    }

    @Test(arguments: [UInt64(1), 2])
    func batchesMatchTheModelAndRestartsReplayToTheSameState(seed: UInt64) {
        let wal = GrooveHarness.makeWAL(seed: seed, count: Int(Self.opCount))
        let straight = GrooveHarness(storageSeed: seed &* 31, wal: wal, configuration: Self.standardConfiguration())
        // Each turn commits one op: bounded by opCount.
        while straight.committedOp < Self.opCount {
            guard straight.commit(straight.committedOp + 1) else { break }
        }
        #expect(straight.failure == nil, "seed \(seed): \(straight.failure ?? "")")
        guard straight.failure == nil else { return }
        straight.storage.runUntilIdle()
        #expect(straight.checkpoints.count >= 4, "seed \(seed): several checkpoints (\(straight.checkpoints.count))")
        #expect(straight.getsChecked > 1000, "seed \(seed): gets were checked (\(straight.getsChecked))")
        let levels = straight.node.groove.objectTree.manifest.levelsTables().map(\.count)
        #expect(levels.dropFirst().contains { $0 > 0 }, "seed \(seed): objects reached levels below 0 (\(levels))")
        let straightAccounts = straight.checkAllAccounts()
        #expect(straightAccounts == nil, "seed \(seed): \(straightAccounts ?? "")")
        let straightIndexes = straight.checkIndexes()
        #expect(straightIndexes.failure == nil, "seed \(seed): \(straightIndexes.failure ?? "")")
        #expect(straightIndexes.compared > straight.model.count, "seed \(seed): index scans compared timestamps")
        #expect(straight.node.groove.lookupsInFlightMax > 1, "seed \(seed): prefetch lookups ran side by side")

        // The same WAL with crashes at random points of random beats, each followed by a restart
        // from the last durable checkpoint and a replay.
        var prng = PRNG(seed: seed ^ 0x5eed)
        let crashing = GrooveHarness(storageSeed: seed &* 57 &+ 3, wal: wal, configuration: Self.standardConfiguration())
        // Each turn commits an op or crashes and restarts; crashes are capped, so ops advance.
        while crashing.committedOp < Self.opCount && crashing.failure == nil {
            let crash = crashing.crashes < 8 && prng.chance(percent: 6)
            if crashing.commit(crashing.committedOp + 1, crashTicks: crash ? prng.int(in: 1...8) : nil) { continue }
            guard crashing.failure == nil else { break }
            if let failure = crashing.restart() { crashing.failure = "after crash \(crashing.crashes): \(failure)" }
        }
        #expect(crashing.failure == nil, "seed \(seed): \(crashing.failure ?? "")")
        guard crashing.failure == nil else { return }
        crashing.storage.runUntilIdle()
        #expect(crashing.crashes >= 2, "seed \(seed): the run crashed (\(crashing.crashes))")
        let crashingAccounts = crashing.checkAllAccounts()
        #expect(crashingAccounts == nil, "seed \(seed): \(crashingAccounts ?? "")")
        let crashingIndexes = crashing.checkIndexes()
        #expect(crashingIndexes.failure == nil, "seed \(seed): \(crashingIndexes.failure ?? "")")
        #expect(crashing.model == straight.model, "seed \(seed): the same accounts")
        let sameCheckpoints = crashing.checkpoints == straight.checkpoints
        #expect(sameCheckpoints, "seed \(seed): the same checkpoints")
        let sameManifests = crashing.node.manifests() == straight.node.manifests()
        #expect(sameManifests, "seed \(seed): the same manifests")
        let sameGrid = crashing.gridBytes() == straight.gridBytes()
        #expect(sameGrid, "seed \(seed): byte-identical grids")
    }

    /// A batch that prefetches more objects than the cache holds still finds every one (the
    /// stash keeps what the cache evicts), and orphaned ids are reported as such.
    @Test func prefetchBeyondTheCacheFindsEveryObject() {
        let configuration = GrooveNode.configuration(cacheCapacity: 16, changesPerBeatMax: 16, prefetchEntriesMax: 128)
        let harness = GrooveHarness(storageSeed: 5, wal: [], configuration: configuration)
        let writer = harness.node.groove
        let count = 100
        var accounts: [Account] = []
        var op: UInt64 = 0
        var failure: String?
        // Each turn inserts one batch of 10 accounts (and an orphaned id) and runs its beat.
        for batch in 0..<(count / 10) {
            writer.prefetchStart()
            for index in 0..<10 {
                let number = batch * 10 + index + 1
                let account = Account(
                    id: UInt128(number) << 70, userData64: UInt64(number % 3), ledger: 1, code: 1,
                    timestamp: UInt64(number))
                writer.insert(account)
                accounts.append(account)
            }
            writer.insertOrphanedId(UInt128(batch + 1), timestamp: UInt64(1000 + batch))
            op += 1
            var result: Result<ForestCheckpoint?, ForestFault>?
            harness.node.forest.compact(op: op) { result = $0 }
            guard harness.storage.run(until: { result != nil }), case .success = result! else {
                failure = "op \(op): the beat failed"
                break
            }
        }
        // Beats with no puts push the bars through to the levels, up to the first checkpoint.
        var checkpoint: ForestCheckpoint?
        while failure == nil && op < 24 {
            op += 1
            var result: Result<ForestCheckpoint?, ForestFault>?
            harness.node.forest.compact(op: op) { result = $0 }
            if !harness.storage.run(until: { result != nil }) { failure = "op \(op): the beat never finished" }
            if case .success(let written?) = result { checkpoint = written }
        }
        harness.storage.runUntilIdle()
        #expect(failure == nil, "\(failure ?? "")")
        guard failure == nil, let checkpoint else {
            Issue.record("a checkpoint was written")
            return
        }
        // The writer's own prefetch is served from its block cache: lookups that complete before
        // `lookup` returns, absorbed by the prefetch loop (no recursion).
        writer.prefetchStart()
        for account in accounts { writer.prefetchEnqueue(id: account.id) }
        var writerPrefetched: Result<Void, GrooveFault>?
        writer.prefetch { writerPrefetched = $0 }
        #expect(harness.storage.run(until: { writerPrefetched != nil }), "the writer's prefetch finished")
        let writerMissing = accounts.filter { writer.get(id: $0.id) != $0 }.count
        #expect(writerMissing == 0, "the writer finds every account (\(writerMissing) missing)")

        // A new process opens the checkpoint: nothing in memtables or the block cache, so every
        // lookup reads the disk (asynchronously).
        let node = GrooveNode(storage: harness.storage, configuration: configuration)
        var opened: Result<Void, ForestOpenError>?
        node.forest.open(checkpoint: checkpoint) { opened = $0 }
        #expect(harness.storage.run(until: { opened != nil }), "the open finished")
        guard case .success = opened else {
            Issue.record("open failed: \(String(describing: opened))")
            return
        }
        let groove = node.groove
        let objectTables = groove.objectTree.manifest.levelsTables().joined().count
        #expect(objectTables > 0, "the objects are on the grid, not only in memtables")

        groove.prefetchStart()
        for account in accounts { groove.prefetchEnqueue(id: account.id) }
        for batch in 0..<(count / 10) { groove.prefetchEnqueue(id: UInt128(batch + 1)) }
        groove.prefetchEnqueue(id: 999)
        groove.prefetchEnqueue(timestamp: 5000)
        let evictionsBefore = groove.cache.evictions
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        #expect(harness.storage.run(until: { prefetched != nil }), "the prefetch finished")
        guard case .success = prefetched else {
            Issue.record("prefetch failed: \(String(describing: prefetched))")
            return
        }
        #expect(groove.cache.evictions > evictionsBefore, "the cache evicted prefetched objects into the stash")
        #expect(groove.cache.stashCount > 0, "the stash holds objects")
        #expect(groove.lookupsInFlightMax >= configuration.lookupsMax, "lookups ran side by side (\(groove.lookupsInFlightMax))")
        #expect(groove.lookupsInFlightMax <= 2 * configuration.lookupsMax, "id and object lookups stay within their pools")
        let missing = accounts.filter { groove.get(id: $0.id) != $0 }.count
        #expect(missing == 0, "every prefetched account is found (\(missing) missing)")
        let missingByTimestamp = accounts.filter { groove.get(timestamp: $0.timestamp) != $0 }.count
        #expect(missingByTimestamp == 0, "every prefetched account is found by timestamp")
        for batch in 0..<(count / 10) {
            #expect(groove.isOrphaned(id: UInt128(batch + 1)), "orphaned id \(batch + 1) is reported")
            #expect(groove.get(id: UInt128(batch + 1)) == nil, "an orphaned id has no object")
        }
        #expect(!groove.isOrphaned(id: accounts[0].id), "a live id is not orphaned")
        #expect(!groove.isOrphaned(id: 999), "a missing id is not orphaned")
        #expect(groove.get(id: 999) == nil, "a missing id answers nil")
        #expect(groove.get(timestamp: 5000) == nil, "a missing timestamp answers nil")
    }

    /// A block the prefetch needs that cannot be read is reported, not trapped on.
    @Test func aFaultyBlockStopsThePrefetchWithAFault() {
        let configuration = GrooveNode.configuration(cacheCapacity: 16, changesPerBeatMax: 16, prefetchEntriesMax: 32)
        let harness = GrooveHarness(storageSeed: 9, wal: [], configuration: configuration)
        let groove = harness.node.groove
        var ids: [UInt128] = []
        var op: UInt64 = 0
        // Each turn inserts a batch, then beats push the values to the grid.
        while op < 16 {
            groove.prefetchStart()
            if op < 4 {
                for index in 0..<8 {
                    let number = Int(op) * 8 + index + 1
                    ids.append(UInt128(number) << 64)
                    groove.insert(Account(id: UInt128(number) << 64, ledger: 1, code: 1, timestamp: UInt64(number)))
                }
            }
            op += 1
            var result: Result<ForestCheckpoint?, ForestFault>?
            harness.node.forest.compact(op: op) { result = $0 }
            _ = harness.storage.run(until: { result != nil })
        }
        harness.storage.runUntilIdle()
        // Corrupt every block of the id tree's tables (index blocks: the first read of a lookup),
        // and restart so no cached copy answers.
        let tables = groove.idTree!.manifest.levelsTables().joined()
        #expect(!tables.isEmpty, "the id tree has tables on the grid")
        let blockSize = harness.layout.configuration.blockSize
        for table in tables {
            harness.storage.corruptSector(zone: .grid, offset: (table.address - 1) * UInt64(blockSize))
        }
        let fresh = GrooveNode(storage: harness.storage, configuration: configuration)
        // The fresh node's trees are empty (not opened): load the tables directly.
        for table in tables { fresh.groove.idTree!.manifest.insert(table) }
        fresh.groove.prefetchStart()
        for id in ids.prefix(8) { fresh.groove.prefetchEnqueue(id: id) }
        var prefetched: Result<Void, GrooveFault>?
        fresh.groove.prefetch { prefetched = $0 }
        #expect(harness.storage.run(until: { prefetched != nil }), "the prefetch finished")
        guard case .failure(let fault) = prefetched else {
            Issue.record("the prefetch reported no fault: \(String(describing: prefetched))")
            return
        }
        guard case .block(let treeId, _) = fault else {
            Issue.record("a block fault, not \(fault)")
            return
        }
        #expect(treeId == TreeId.accountsId.rawValue, "the id tree's block is named")
    }
}

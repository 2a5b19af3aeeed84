import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerTesting
import Testing

extension GrooveHarness {
    /// What the id tree itself says about `id` (memtables, then a lookup), bypassing the cache.
    func idTreeAnswer(_ id: UInt128) -> Result<IdTreeValue?, GrooveFault> {
        guard let tree = node.groove.idTree else { preconditionFailure("an id'd groove") }
        switch tree.getCached(id) {
        case .found(let value): return .success(value)
        case .deleted: return .success(nil)
        case .notInMemory: break
        }
        var answer: TreeLookupResult<IdTreeValue>?
        tree.lookup(id) { answer = $0 }
        guard storage.run(until: { answer != nil }) else { return .failure(.idWithoutObject(id: id, timestamp: 0)) }
        switch answer! {
        case .found(let value): return .success(value)
        case .notFound: return .success(nil)
        case .fault(let fault): return .failure(.block(treeId: tree.treeId, fault))
        case .corrupt(let error): return .failure(.corrupt(treeId: tree.treeId, error))
        }
    }

    /// Nil when every id in `ids` that the id cache holds has the id tree's value; counts the
    /// cached ids compared.
    func checkIdCache(_ ids: [UInt128]) -> (failure: String?, compared: Int) {
        guard let cache = node.groove.idCache else { return ("the groove has an id cache", 0) }
        var compared = 0
        for id in ids {
            guard let cached = cache.peek(id) else { continue }
            guard case .success(let tree) = idTreeAnswer(id) else { return ("id \(id): the id tree lookup failed", compared) }
            guard let tree, treeValuesEqual(tree, cached) else {
                return ("id \(id): the cache says \(cached), the id tree \(String(describing: tree))", compared)
            }
            compared += 1
        }
        return (nil, compared)
    }

    /// Runs op `op`'s beat with no crash (false: it failed).
    func beat(_ op: UInt64) -> Bool {
        var result: Result<ForestCheckpoint?, ForestFault>?
        node.forest.compact(op: op) { result = $0 }
        guard storage.run(until: { result != nil }), case .success = result! else { return false }
        return true
    }

    /// Grid reads of any kind (storage, block cache, in-flight writes).
    var gridReads: Int {
        let statistics = node.forest.grid.statistics
        return statistics.readsFromStorage + statistics.readsFromCache + statistics.readsFromWrites
    }
}

/// The groove's id → timestamp cache: its answers are the id tree's, whatever the batches,
/// scopes, crashes and restarts; and a batch of cached ids does no id-tree IO.
@Suite struct GrooveIdCacheTests {
    static let opCount: UInt64 = 120

    /// The accounts WAL of GrooveTests (inserts, updates, prefetches of existing and missing
    /// ids), crashing at random beats; after every committed op, each model id (and each missing
    /// id the WAL names) that the id cache holds is compared with the id tree.
    @Test(arguments: [UInt64(11), 12])
    func idCacheAnswersAreTheIdTreesAcrossCrashes(seed: UInt64) {
        let wal = GrooveHarness.makeWAL(seed: seed, count: Int(Self.opCount))
        let configuration = GrooveTests.standardConfiguration()
        #expect(configuration.idCacheCapacity == configuration.cacheCapacity, "sized like the object cache by default")
        let harness = GrooveHarness(storageSeed: seed &* 13, wal: wal, configuration: configuration)
        let namedIds = Array(Set(wal.flatMap(\.enqueue))).sorted()
        var prng = PRNG(seed: seed ^ 0x1dca)
        var compared = 0
        var hits: UInt64 = 0
        // Each turn commits an op or crashes and restarts; crashes are capped, so ops advance.
        while harness.committedOp < Self.opCount && harness.failure == nil {
            let crash = harness.crashes < 6 && prng.chance(percent: 6)
            if harness.commit(harness.committedOp + 1, crashTicks: crash ? prng.int(in: 1...8) : nil) {
                let check = harness.checkIdCache(namedIds)
                if let failure = check.failure { harness.failure = "seed \(seed) op \(harness.committedOp): \(failure)" }
                compared += check.compared
                continue
            }
            guard harness.failure == nil else { break }
            hits += harness.node.groove.idCache?.hitsCache ?? 0
            if let failure = harness.restart() {
                harness.failure = "after crash \(harness.crashes): \(failure)"
                break
            }
            let check = harness.checkIdCache(namedIds)
            if let failure = check.failure { harness.failure = "seed \(seed) after restart: \(failure)" }
        }
        #expect(harness.failure == nil, "seed \(seed): \(harness.failure ?? "")")
        guard harness.failure == nil else { return }
        hits += harness.node.groove.idCache?.hitsCache ?? 0
        #expect(harness.crashes >= 1, "seed \(seed): the run crashed and restarted")
        #expect(compared > 1000, "seed \(seed): cached ids were compared (\(compared))")
        #expect(hits > 100, "seed \(seed): prefetch was answered by the id cache (\(hits) hits)")
        #expect(harness.node.groove.idCache!.evictions > 0, "seed \(seed): the id cache evicted (it is smaller than the ids)")
        let accounts = harness.checkAllAccounts()
        #expect(accounts == nil, "seed \(seed): \(accounts ?? "")")
    }

    /// Not-found ids are not cached; the batch's inserts and orphaned ids are; a discarded scope
    /// takes its ids out of the cache again, a persisted one keeps them.
    @Test func insertsScopesAndMissingIds() {
        let configuration = GrooveNode.configuration(cacheCapacity: 64, changesPerBeatMax: 16, prefetchEntriesMax: 32)
        let harness = GrooveHarness(storageSeed: 21, wal: [], configuration: configuration)
        let groove = harness.node.groove
        guard let cache = groove.idCache else {
            Issue.record("an accounts groove with a cache has an id cache")
            return
        }
        let kept: UInt128 = 1 << 80
        let discarded: UInt128 = 2 << 80
        let orphanDiscarded: UInt128 = 3 << 80
        let orphanKept: UInt128 = 4 << 80
        #expect(harness.prefetch(groove, ids: [kept, discarded, orphanDiscarded, orphanKept], op: 1))
        for id in [kept, discarded, orphanDiscarded, orphanKept] {
            #expect(cache.peek(id) == nil, "a missing id is not cached")
            #expect(groove.get(id: id) == nil)
        }
        let account = Account(id: kept, ledger: 1, code: 1, timestamp: 10)
        groove.insert(account)
        #expect(cache.peek(kept).map { treeValuesEqual($0, IdTreeValue(id: kept, timestamp: 10)) } == true,
                "an insert caches its id")
        groove.scopeOpen()
        groove.insert(Account(id: discarded, ledger: 1, code: 1, timestamp: 11))
        groove.insertOrphanedId(orphanDiscarded, timestamp: 12)
        #expect(cache.peek(discarded) != nil)
        #expect(cache.peek(orphanDiscarded)?.isOrphaned == true)
        groove.scopeClose(persist: false)
        #expect(cache.peek(discarded) == nil, "a discarded scope's insert leaves the id cache")
        #expect(cache.peek(orphanDiscarded) == nil, "a discarded scope's orphaned id leaves the id cache")
        #expect(cache.peek(kept) != nil, "an id cached before the scope stays")
        groove.scopeOpen()
        groove.insertOrphanedId(orphanKept, timestamp: 13)
        groove.scopeClose(persist: true)
        #expect(cache.peek(orphanKept).map { treeValuesEqual($0, IdTreeValue(id: orphanKept, timestamp: 13, orphaned: true)) } == true)
        #expect(harness.beat(1), "op 1's beat")

        let hitsBefore = cache.hitsCache
        let missesBefore = cache.misses
        #expect(harness.prefetch(groove, ids: [kept, discarded, orphanDiscarded, orphanKept], op: 2))
        #expect(cache.hitsCache - hitsBefore == 2, "the kept insert and orphaned id are cache hits")
        #expect(cache.misses - missesBefore == 2, "the discarded ids miss, once each")
        #expect(groove.get(id: kept) == account)
        #expect(groove.isOrphaned(id: orphanKept))
        #expect(groove.get(id: discarded) == nil)
        #expect(!groove.isOrphaned(id: orphanDiscarded))
        #expect(groove.get(id: orphanDiscarded) == nil)
        #expect(cache.peek(discarded) == nil, "still not cached after the tree said not found")
        let check = harness.checkIdCache([kept, discarded, orphanDiscarded, orphanKept])
        #expect(check.failure == nil, "\(check.failure ?? "")")
        #expect(check.compared == 2)
    }

    /// Accounts flushed to the grid, then a new process: the first batch reads the id tree (the
    /// cache starts empty), the second is answered by the id cache and reads no block; without
    /// an id cache the second batch reads the id tree's blocks again.
    @Test(arguments: [true, false])
    func cachedIdsSkipTheIdTree(withIdCache: Bool) {
        var configuration = GrooveNode.configuration(cacheCapacity: 1024, changesPerBeatMax: 64, prefetchEntriesMax: 512)
        if !withIdCache { configuration.idCacheCapacity = 0 }
        let harness = GrooveHarness(storageSeed: 31, wal: [], configuration: configuration)
        var accounts: [Account] = []
        var op: UInt64 = 0
        var checkpoint: ForestCheckpoint?
        // Each turn is one batch (40 inserts in the first 4) and its beat, up to a checkpoint.
        while op < 24 {
            harness.node.groove.prefetchStart()
            if op < 4 {
                for index in 0..<40 {
                    let number = Int(op) * 40 + index + 1
                    let account = Account(id: UInt128(number) &* 0x9e37_79b9 << 40, ledger: 1, code: 1, timestamp: UInt64(number))
                    harness.node.groove.insert(account)
                    accounts.append(account)
                }
            }
            op += 1
            var result: Result<ForestCheckpoint?, ForestFault>?
            harness.node.forest.compact(op: op) { result = $0 }
            guard harness.storage.run(until: { result != nil }), case .success(let written) = result! else {
                Issue.record("op \(op): the beat failed")
                return
            }
            if let written { checkpoint = written }
        }
        harness.storage.runUntilIdle()
        guard let checkpoint else {
            Issue.record("a checkpoint was written")
            return
        }
        harness.node = GrooveNode(storage: harness.storage, configuration: configuration)
        var opened: Result<Void, ForestOpenError>?
        harness.node.forest.open(checkpoint: checkpoint) { opened = $0 }
        guard harness.storage.run(until: { opened != nil }), case .success = opened! else {
            Issue.record("the open failed: \(String(describing: opened))")
            return
        }
        let groove = harness.node.groove
        #expect((groove.idCache != nil) == withIdCache)
        #expect(groove.idCache?.cacheCount ?? 0 == 0, "a new process starts with an empty id cache")
        let ids = accounts.map(\.id)
        let readsStart = harness.gridReads
        #expect(harness.prefetch(groove, ids: ids, op: op + 1))
        let readsFirst = harness.gridReads - readsStart
        #expect(readsFirst > 0, "the first batch reads the id and object trees")
        #expect(accounts.allSatisfy { groove.get(id: $0.id) == $0 }, "the first batch finds every account")
        #expect(groove.cache.evictions == 0, "the object cache holds every account")

        let hitsBefore = groove.idCache?.hitsCache ?? 0
        let readsBefore = harness.gridReads
        #expect(harness.prefetch(groove, ids: ids, op: op + 1))
        let readsSecond = harness.gridReads - readsBefore
        #expect(accounts.allSatisfy { groove.get(id: $0.id) == $0 }, "the second batch finds every account")
        if withIdCache {
            #expect(groove.idCache!.hitsCache - hitsBefore == UInt64(ids.count), "every id is an id cache hit")
            #expect(readsSecond == 0, "no block read for cached ids and objects (\(readsSecond) reads)")
            let check = harness.checkIdCache(ids)
            #expect(check.failure == nil, "\(check.failure ?? "")")
            #expect(check.compared == ids.count)
        } else {
            #expect(readsSecond > 0, "without an id cache every id goes through the id tree")
        }
    }
}

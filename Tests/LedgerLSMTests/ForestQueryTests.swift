import LedgerIO
import LedgerKit
@testable import LedgerLSM
@testable import LedgerStateMachine
import LedgerTesting
import Testing

/// One groove's forest fed batch by batch, with the model the queries are checked against:
/// every object's current version, by timestamp.
final class ForestQueryHarness<Object: GrooveObject>: ForestRunHarness {
    typealias Start = (UnsafeMutableBufferPointer<UInt64>, @escaping (Result<Int, ForestQueryFault>) -> Void) -> Void

    let node: GrooveTestNode<Object>
    /// Current objects, ascending by timestamp.
    var objects: [Object] = []
    var positionByTimestamp: [UInt64: Int] = [:]

    init(storageSeed: UInt64, makeNode: (SimulatedStorage) -> GrooveTestNode<Object>) {
        let storage = ForestRunHarness.makeStorage(seed: storageSeed)
        node = makeNode(storage)
        super.init(storage: storage)
    }

    /// Inserts `inserts`, applies `updates` (old, new), then runs the op's beat.
    func commit(inserts: [Object], updates: [(old: Object, new: Object)] = []) -> Bool {
        let op = committedOp + 1
        beginOp(op, forest: node.forest)
        node.groove.prefetchStart()
        for object in inserts { node.groove.insert(object) }
        for update in updates { node.groove.update(old: update.old, new: update.new) }
        guard runBeat(op, forest: node.forest, crashTicks: nil) else { return false }
        for object in inserts {
            precondition(objects.last.map { $0.timestamp < object.timestamp } ?? true, "the model inserts in timestamp order")
            positionByTimestamp[object.timestamp] = objects.count
            objects.append(object)
        }
        for update in updates {
            guard let position = positionByTimestamp[update.new.timestamp] else { preconditionFailure("updates name objects") }
            objects[position] = update.new
        }
        return true
    }

    /// Runs one query to its end: its timestamps or its fault; nil if it never finished.
    func run(limit: Int, _ start: Start) -> Result<[UInt64], ForestQueryFault>? {
        let output = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: limit)
        defer { output.deallocate() }
        var result: Result<Int, ForestQueryFault>?
        start(output) { result = $0 }
        guard storage.run(until: { result != nil }), let result else { return nil }
        return result.map { Array(output[0..<$0]) }
    }

    /// Runs a query while op `committedOp + 1`'s beat runs (no puts: a prefetch overlapping the
    /// previous beat's IO), both to their ends.
    func runDuringBeat(limit: Int, _ start: Start) -> Result<[UInt64], ForestQueryFault>? {
        let op = committedOp + 1
        beginOp(op, forest: node.forest)
        node.groove.prefetchStart()
        let output = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: limit)
        defer { output.deallocate() }
        var result: Result<Int, ForestQueryFault>?
        var beat: Result<ForestCheckpoint?, ForestFault>?
        start(output) { result = $0 }
        node.forest.compact(op: op) { beat = $0 }
        guard storage.run(until: { result != nil && beat != nil }), let result, let beat else { return nil }
        guard case .success(let checkpoint) = beat else {
            failure = "op \(op): the beat failed"
            return nil
        }
        if let checkpoint {
            superblock = checkpoint
            checkpoints[checkpoint.op] = checkpoint
            durableAtOp = op + durableDelay
        }
        committedOp = op
        highestCommittedOp = max(highestCommittedOp, op)
        return result.map { Array(output[0..<$0]) }
    }

    /// The brute-force answer: `matches` over every object, in order, the first `limit`.
    func expected(reversed: Bool, limit: Int, _ matches: (Object) -> Bool) -> [UInt64] {
        var selected = objects.filter(matches).map(\.timestamp)
        if reversed { selected.reverse() }
        return Array(selected.prefix(limit))
    }

    /// Tables per level of tree `treeId` (one of the groove's indexes, or its object tree).
    func levelCounts(treeId: UInt16) -> [Int] {
        let groove = node.groove
        if groove.objectTree.treeId == treeId { return groove.objectTree.manifest.levelsTables().map(\.count) }
        guard let position = groove.indexes.firstIndex(where: { $0.treeId == treeId }) else { return [] }
        if let tree = groove.indexTrees64[position] { return tree.manifest.levelsTables().map(\.count) }
        if let tree = groove.indexTrees128[position] { return tree.manifest.levelsTables().map(\.count) }
        return []
    }
}

/// Random data and queries from small domains, so that intersections are non-trivial.
enum ForestQueryData {
    static let timestampMax = UInt64(Int64.max)
    static func accountId(_ number: UInt64) -> UInt128 { (UInt128(number) << 64) | 0xacc }

    /// Up to `count` transfers with timestamps after `timestamp` (gaps of 1–3, so ranges fall
    /// between objects too). Some name the same account on both sides.
    static func transfers(_ prng: inout PRNG, count: Int, timestamp: inout UInt64, nextId: inout UInt128) -> [Transfer] {
        (0..<count).map { _ in
            timestamp += 1 + prng.below(3)
            nextId += 1
            let debit = 1 + prng.below(5)
            let credit = prng.chance(percent: 5) ? debit : 1 + prng.below(5)
            return Transfer(
                id: nextId, debitAccountId: accountId(debit), creditAccountId: accountId(credit),
                amount: UInt128(1 + prng.below(9)), userData128: UInt128(prng.below(4)), userData64: prng.below(4),
                userData32: UInt32(prng.below(3)), ledger: UInt32(1 + prng.below(3)), code: UInt16(prng.below(4)),
                timestamp: timestamp)
        }
    }

    static func accounts(_ prng: inout PRNG, count: Int, timestamp: inout UInt64, nextId: inout UInt128) -> [Account] {
        (0..<count).map { _ in
            timestamp += 1 + prng.below(3)
            nextId += 1
            return Account(
                id: nextId, userData128: UInt128(prng.below(4)), userData64: prng.below(4),
                userData32: UInt32(prng.below(3)), ledger: UInt32(1 + prng.below(3)), code: UInt16(1 + prng.below(3)),
                timestamp: timestamp)
        }
    }

    /// A value from a field's domain (0: no filter; the top value matches nothing) or 0.
    static func field(_ prng: inout PRNG, percent: Int, domain: UInt64) -> UInt64 {
        prng.chance(percent: percent) ? prng.below(domain + 1) : 0
    }

    /// A range: the default, around the data, narrow, past the data, or inverted.
    static func range(_ prng: inout PRNG, last: UInt64) -> (min: UInt64, max: UInt64) {
        let a = 1 + prng.below(last + 5)
        let b = 1 + prng.below(last + 5)
        switch prng.below(6) {
        case 0, 1: return (1, timestampMax)
        case 2: return (min(a, b), max(a, b))
        case 3: return (a, min(a + prng.below(20), timestampMax))
        case 4: return (last + 1 + prng.below(5), timestampMax)
        default: return (max(a, b) + 1, min(a, b))
        }
    }

    static func limit(_ prng: inout PRNG) -> Int {
        switch prng.below(4) {
        case 0: return 1
        case 1: return prng.int(in: 1...10)
        case 2: return prng.int(in: 1...100)
        default: return prng.int(in: 1...3000)
        }
    }

    static func transferQuery(_ prng: inout PRNG, last: UInt64) -> TransferQuery {
        let range = range(&prng, last: last)
        let account = prng.chance(percent: 50) ? accountId(1 + prng.below(6)) : 0
        let sides = prng.below(10)
        return TransferQuery(
            accountId: account, debits: sides != 1 && sides != 9, credits: sides != 2 && sides != 9,
            userData128: UInt128(field(&prng, percent: 35, domain: 4)), userData64: field(&prng, percent: 35, domain: 4),
            userData32: UInt32(field(&prng, percent: 35, domain: 3)),
            ledger: UInt32(field(&prng, percent: account == 0 ? 35 : 10, domain: 3)),
            code: UInt16(field(&prng, percent: 35, domain: 4)), timestampMin: range.min, timestampMax: range.max,
            limit: limit(&prng), reversed: prng.chance(percent: 50))
    }

    static func accountQuery(_ prng: inout PRNG, last: UInt64) -> AccountQuery {
        let range = range(&prng, last: last)
        return AccountQuery(
            userData128: UInt128(field(&prng, percent: 35, domain: 4)), userData64: field(&prng, percent: 35, domain: 4),
            userData32: UInt32(field(&prng, percent: 35, domain: 3)), ledger: UInt32(field(&prng, percent: 35, domain: 3)),
            code: UInt16(field(&prng, percent: 35, domain: 3)), timestampMin: range.min, timestampMax: range.max,
            limit: limit(&prng), reversed: prng.chance(percent: 50))
    }
}

@Suite struct ForestQueryTests {
    static func transfersHarness(seed: UInt64, changesPerBeatMax: Int) -> ForestQueryHarness<Transfer> {
        let configuration = TransferGrooveNode.configuration(
            cacheCapacity: 0, changesPerBeatMax: changesPerBeatMax, prefetchEntriesMax: 8)
        return ForestQueryHarness(storageSeed: seed) { TransferGrooveNode(storage: $0, configuration: configuration) }
    }

    static func accountsHarness(seed: UInt64, changesPerBeatMax: Int) -> ForestQueryHarness<Account> {
        let configuration = GrooveNode.configuration(cacheCapacity: 0, changesPerBeatMax: changesPerBeatMax, prefetchEntriesMax: 8)
        return ForestQueryHarness(storageSeed: seed) { GrooveNode(storage: $0, configuration: configuration) }
    }

    /// Runs `query` and compares it with the model; nil when they agree.
    static func check(
        _ harness: ForestQueryHarness<Transfer>, _ planner: ForestQuery<Transfer, SimulatedStorage>,
        _ query: TransferQuery, duringBeat: Bool = false
    ) -> String? {
        let start: ForestQueryHarness<Transfer>.Start = { planner.run(query, output: $0, callback: $1) }
        let answer = duringBeat ? harness.runDuringBeat(limit: query.limit, start) : harness.run(limit: query.limit, start)
        let expected = harness.expected(reversed: query.reversed, limit: query.limit, query.matches)
        guard case .success(let found) = answer else { return "\(query): \(String(describing: answer))" }
        return found == expected ? nil : "\(query): found \(found.count) \(found.prefix(8)), expected \(expected.count) \(expected.prefix(8))"
    }

    static func check(
        _ harness: ForestQueryHarness<Account>, _ planner: ForestQuery<Account, SimulatedStorage>, _ query: AccountQuery
    ) -> String? {
        let answer = harness.run(limit: query.limit) { planner.run(query, output: $0, callback: $1) }
        let expected = harness.expected(reversed: query.reversed, limit: query.limit, query.matches)
        guard case .success(let found) = answer else { return "\(query): \(String(describing: answer))" }
        return found == expected ? nil : "\(query): found \(found.count) \(found.prefix(8)), expected \(expected.count) \(expected.prefix(8))"
    }

    /// Transfers over many bars (tables on several levels), queries between the beats and
    /// during them, with windows of 4 and 64 keys, all checked against `matches`.
    @Test(arguments: [UInt64(1), 2, 3])
    func transferQueriesMatchTheModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let harness = Self.transfersHarness(seed: seed &* 7 &+ 1, changesPerBeatMax: 16)
        let small = ForestQuery(transfers: harness.node.groove, chunkCount: 4, objectChunkCount: 3)
        let wide = ForestQuery(transfers: harness.node.groove, chunkCount: 64)
        var timestamp: UInt64 = 10
        var nextId: UInt128 = 0
        var checked = 0
        var nonEmpty = 0
        // Each turn commits one op: bounded by 100.
        for op in 1...100 {
            let batch = ForestQueryData.transfers(&prng, count: prng.int(in: 0...16), timestamp: &timestamp, nextId: &nextId)
            guard harness.commit(inserts: batch) else {
                Issue.record("seed \(seed): \(harness.failure ?? "the commit failed")")
                return
            }
            let queries = op % 10 == 0 ? 30 : 2
            for turn in 0..<queries {
                let query = ForestQueryData.transferQuery(&prng, last: timestamp)
                let duringBeat = turn == 0 && op % 5 == 0
                let failure = Self.check(harness, turn % 2 == 0 ? small : wide, query, duringBeat: duringBeat)
                #expect(failure == nil, "seed \(seed) op \(op): \(failure ?? "")")
                if failure != nil { return }
                checked += 1
                if !harness.expected(reversed: false, limit: 1, query.matches).isEmpty { nonEmpty += 1 }
            }
        }
        let levels = harness.levelCounts(treeId: TreeId.transfersDebitAccountId.rawValue)
        #expect(levels.dropFirst().contains { $0 > 0 }, "seed \(seed): index tables below level 0 (\(levels))")
        #expect(nonEmpty > checked / 4, "seed \(seed): queries select something (\(nonEmpty) of \(checked))")
    }

    @Test(arguments: [UInt64(4), 5])
    func accountQueriesMatchTheModelThroughUpdates(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let harness = Self.accountsHarness(seed: seed &* 7 &+ 1, changesPerBeatMax: 16)
        let small = ForestQuery(accounts: harness.node.groove, chunkCount: 4, objectChunkCount: 3)
        let wide = ForestQuery(accounts: harness.node.groove)
        var timestamp: UInt64 = 10
        var nextId: UInt128 = 0
        var updated = 0
        // Each turn commits one op: bounded by 160.
        for op in 1...160 {
            let batch = ForestQueryData.accounts(&prng, count: prng.int(in: 0...14), timestamp: &timestamp, nextId: &nextId)
            // Some updates change indexed fields (tombstones in the index trees), once each.
            var updates: [(old: Account, new: Account)] = []
            var touched: Set<UInt64> = []
            for _ in 0..<prng.int(in: 0...3) where !harness.objects.isEmpty {
                let old = harness.objects[Int(prng.below(UInt64(harness.objects.count)))]
                guard touched.insert(old.timestamp).inserted else { continue }
                var new = old
                new.userData32 = UInt32(prng.below(3))
                new.code = UInt16(1 + prng.below(3))
                new.debitsPosted += 1
                updates.append((old, new))
            }
            updated += updates.count
            guard harness.commit(inserts: batch, updates: updates) else {
                Issue.record("seed \(seed): \(harness.failure ?? "the commit failed")")
                return
            }
            for turn in 0..<(op % 10 == 0 ? 20 : 1) {
                let query = ForestQueryData.accountQuery(&prng, last: timestamp)
                let failure = Self.check(harness, turn % 2 == 0 ? small : wide, query)
                #expect(failure == nil, "seed \(seed) op \(op): \(failure ?? "")")
                if failure != nil { return }
            }
        }
        let levels = harness.levelCounts(treeId: TreeId.accountsCode.rawValue)
        #expect(levels.dropFirst().contains { $0 > 0 }, "seed \(seed): index tables below level 0 (\(levels))")
        #expect(updated > 50, "seed \(seed): updates moved index keys (\(updated))")
    }

    /// Every combination of the five fields and the account sides, both directions, on one
    /// data set.
    @Test func everyFieldCombinationMatchesTheModel() {
        var prng = PRNG(seed: 11)
        let harness = Self.transfersHarness(seed: 12, changesPerBeatMax: 32)
        let planner = ForestQuery(transfers: harness.node.groove, chunkCount: 8)
        var timestamp: UInt64 = 10
        var nextId: UInt128 = 0
        // Each turn commits one op: bounded by 40.
        for _ in 0..<40 {
            let batch = ForestQueryData.transfers(&prng, count: 24, timestamp: &timestamp, nextId: &nextId)
            guard harness.commit(inserts: batch) else {
                Issue.record("\(harness.failure ?? "the commit failed")")
                return
            }
        }
        var nonEmpty = 0
        for mask in 0..<(1 << 5) {
            for sides in 0..<4 {
                let account = sides == 0 ? UInt128(0) : ForestQueryData.accountId(2)
                for reversed in [false, true] {
                    let query = TransferQuery(
                        accountId: account, debits: sides != 2, credits: sides != 1,
                        userData128: mask & 1 != 0 ? 1 : 0, userData64: mask & 2 != 0 ? 2 : 0,
                        userData32: mask & 4 != 0 ? 1 : 0, ledger: mask & 8 != 0 ? 3 : 0, code: mask & 16 != 0 ? 1 : 0,
                        timestampMin: 1, timestampMax: ForestQueryData.timestampMax, limit: 8189, reversed: reversed)
                    let failure = Self.check(harness, planner, query)
                    #expect(failure == nil, "mask \(mask) sides \(sides): \(failure ?? "")")
                    if !harness.expected(reversed: false, limit: 1, query.matches).isEmpty { nonEmpty += 1 }
                }
            }
        }
        #expect(nonEmpty > 200, "most combinations select transfers (\(nonEmpty) of 256)")
    }

    /// More matches than a window holds, sparse among many non-matches: the zig-zag seeks past
    /// the non-matches (far fewer scans than walking them window by window).
    @Test func aResultSpanningManyWindowsSkipsTheNonMatches() {
        let harness = Self.transfersHarness(seed: 21, changesPerBeatMax: 64)
        var timestamp: UInt64 = 100
        var transfers: [Transfer] = []
        for index in 0..<1_600 {
            timestamp += 1
            transfers.append(Transfer(
                id: UInt128(index + 1), debitAccountId: ForestQueryData.accountId(1), creditAccountId: ForestQueryData.accountId(2),
                amount: 1, userData64: index % 40 == 7 ? 9 : 1, userData32: index % 2 == 0 ? 5 : 6, ledger: 1, code: 1,
                timestamp: timestamp))
        }
        var next = 0
        // Each turn commits a batch of 64: bounded by 1,600 / 64 + 1 beats.
        while next < transfers.count {
            let batch = Array(transfers[next..<min(next + 64, transfers.count)])
            next += batch.count
            guard harness.commit(inserts: batch) else {
                Issue.record("\(harness.failure ?? "the commit failed")")
                return
            }
        }
        let levels = harness.levelCounts(treeId: TreeId.transfersLedger.rawValue)
        #expect(levels.dropFirst().contains { $0 > 0 }, "index tables below level 0 (\(levels))")

        // 800 matches with the default 512-key windows, both directions.
        let planner = ForestQuery(transfers: harness.node.groove)
        for reversed in [false, true] {
            let query = TransferQuery(
                accountId: ForestQueryData.accountId(1), debits: true, credits: true, userData128: 0, userData64: 0,
                userData32: 5, ledger: 0, code: 1, timestampMin: 1, timestampMax: ForestQueryData.timestampMax,
                limit: 8189, reversed: reversed)
            let failure = Self.check(harness, planner, query)
            #expect(failure == nil, "\(failure ?? "")")
            #expect(harness.expected(reversed: reversed, limit: 8189, query.matches).count == 800, "800 matches")
        }

        // 40 sparse matches, 16-key windows: the ledger cursor seeks from match to match.
        let sparse = ForestQuery(transfers: harness.node.groove, chunkCount: 16)
        let query = TransferQuery(
            accountId: 0, debits: false, credits: false, userData128: 0, userData64: 9, userData32: 0, ledger: 1, code: 0,
            timestampMin: 1, timestampMax: ForestQueryData.timestampMax, limit: 8189, reversed: false)
        let failure = Self.check(harness, sparse, query)
        #expect(failure == nil, "\(failure ?? "")")
        #expect(harness.expected(reversed: false, limit: 8189, query.matches).count == 40, "40 matches")
        let walked = 1_600 / 16
        #expect(sparse.scansStarted < walked / 2, "seeks skip the non-matches (about one scan per match, not per window) (\(sparse.scansStarted) scans)")

        // No field: the object tree in 7-object windows, with a limit past one window.
        let objects = ForestQuery(transfers: harness.node.groove, objectChunkCount: 7)
        let all = TransferQuery(
            accountId: 0, debits: false, credits: false, userData128: 0, userData64: 0, userData32: 0, ledger: 0, code: 0,
            timestampMin: 150, timestampMax: 1_400, limit: 1_000, reversed: true)
        let allFailure = Self.check(harness, objects, all)
        #expect(allFailure == nil, "\(allFailure ?? "")")
    }

    /// A corrupt block under a query's scan is reported as a fault of that tree, never as an
    /// answer.
    @Test func aCorruptBlockUnderAQueryReportsAFault() {
        var prng = PRNG(seed: 31)
        let harness = Self.transfersHarness(seed: 32, changesPerBeatMax: 32)
        var timestamp: UInt64 = 10
        var nextId: UInt128 = 0
        // Each turn commits one op: bounded by 24.
        for _ in 0..<24 {
            let batch = ForestQueryData.transfers(&prng, count: 24, timestamp: &timestamp, nextId: &nextId)
            guard harness.commit(inserts: batch) else {
                Issue.record("\(harness.failure ?? "the commit failed")")
                return
            }
        }
        harness.storage.runUntilIdle()
        let planner = ForestQuery(transfers: harness.node.groove, chunkCount: 8)
        let query = TransferQuery(
            accountId: ForestQueryData.accountId(3), debits: true, credits: true, userData128: 0, userData64: 2,
            userData32: 0, ledger: 0, code: 0, timestampMin: 1, timestampMax: ForestQueryData.timestampMax, limit: 100,
            reversed: false)
        #expect(Self.check(harness, planner, query) == nil, "the query answers before the corruption")

        // Corrupt every table's index block of the user_data_64 index, out of the cache too.
        let groove = harness.node.groove
        guard let position = groove.indexes.firstIndex(where: { $0.treeId == TreeId.transfersUserData64.rawValue }),
            let tree = groove.indexTrees64[position]
        else {
            Issue.record("the transfers groove has a user_data_64 index")
            return
        }
        let tables = tree.manifest.levelsTables().joined()
        #expect(!tables.isEmpty, "the index has tables on the grid")
        for table in tables {
            harness.storage.corruptSector(zone: .grid, offset: harness.layout.gridBlockOffset(address: table.address))
            _ = groove.objectTree.grid.cache.remove(table.address)
        }
        for reversed in [false, true] {
            var corrupted = query
            corrupted.reversed = reversed
            let answer = harness.run(limit: corrupted.limit) { planner.run(corrupted, output: $0, callback: $1) }
            guard case .failure(.block(let treeId, _)) = answer else {
                Issue.record("reversed \(reversed): a block fault, not \(String(describing: answer))")
                continue
            }
            #expect(treeId == TreeId.transfersUserData64.rawValue, "the corrupt tree is named")
        }
        // Queries that do not touch the corrupt index still answer.
        var other = query
        other.userData64 = 0
        other.code = 2
        #expect(Self.check(harness, planner, other) == nil, "other indexes still answer")
    }
}

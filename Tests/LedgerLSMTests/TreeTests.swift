import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

@Suite struct TreeTests {
    // MARK: Drivers

    /// Random puts and deletes of index keys: `fields × timestamps` keys.
    static func runCompositeModel(
        harness: TreeHarness<CompositeKey64>, seed: UInt64, bars: Int, fields: UInt64, timestamps: UInt64,
        finalChecks: Int = 3_000, afterBatch: (TreeHarness<CompositeKey64>) -> String? = { _ in nil }
    ) -> String? {
        var prng = PRNG(seed: seed)
        let ops = harness.tree.configuration.compactionOps
        let perBeat = harness.tree.configuration.valuesPerBeatMax
        for _ in 0..<(bars * ops) {
            let count = prng.int(in: 1...perBeat)
            for _ in 0..<count {
                let key = CompositeKey64(field: prng.below(fields), timestamp: prng.below(timestamps))
                harness.put(prng.chance(percent: 25) ? CompositeKey64.tombstone(key: key) : key)
            }
            let concurrent = (0..<2).map { _ in CompositeKey64(field: prng.below(fields), timestamp: prng.below(timestamps)) }
            if let failure = harness.commit(lookingUp: concurrent) { return "seed \(seed) op \(harness.op): \(failure)" }
            for _ in 0..<4 {
                let key = CompositeKey64(field: prng.below(fields), timestamp: prng.below(timestamps))
                if let failure = harness.check(key) { return "seed \(seed) op \(harness.op): \(failure)" }
            }
            if let failure = afterBatch(harness) { return "seed \(seed) op \(harness.op): \(failure)" }
        }
        // Live keys (up to `finalChecks`, evenly spread), and as many random ones (mostly
        // deleted or never put).
        let live = harness.model.keys.sorted(by: <)
        let stride = max(1, live.count / finalChecks)
        for index in Swift.stride(from: 0, to: live.count, by: stride) {
            if let failure = harness.check(live[index]) { return "seed \(seed) final: \(failure)" }
        }
        for _ in 0..<min(live.count, finalChecks) {
            let key = CompositeKey64(field: prng.below(fields), timestamp: prng.below(timestamps))
            if let failure = harness.check(key) { return "seed \(seed) final: \(failure)" }
        }
        return nil
    }

    /// Commits empty ops to the end of the current half-bar: no compaction job is in flight
    /// after it (a job planned at a half-bar's first beat may hold an input block it read
    /// already, so a block corrupted under it would go unnoticed until a later read).
    static func finishHalfBar<Value: TreeValue>(_ harness: TreeHarness<Value>) {
        let half = UInt64(harness.tree.configuration.halfBarBeats)
        // At most one half-bar of beats.
        while (harness.op + 1) % half != 0 { #expect(harness.commit()) }
    }

    /// Checks after a batch: manifest invariants, and level counts within limits at bar ends.
    static func levelChecks<Value: TreeValue>(_ harness: TreeHarness<Value>) -> String? {
        if let fault = harness.tree.manifest.checkInvariants() { return "manifest: \(fault)" }
        if let fault = harness.tree.fault { return "tree fault \(fault)" }
        guard !harness.freeSet.isReserving else { return nil }
        guard harness.freeSet.verifyInvariants() else { return "free set invariants" }
        let ops = UInt64(harness.tree.configuration.compactionOps)
        guard (harness.op + 1) % ops == 0 else { return nil }
        let counts = harness.levelCounts()
        let manifest = harness.tree.configuration.manifest
        for level in 0..<(manifest.levelCount - 1) where counts[level] > manifest.tableCountMax(level: level) {
            return "level \(level) holds \(counts[level]) tables (\(counts))"
        }
        return nil
    }

    // MARK: Stage 1: memtables and level 0

    @Test(arguments: [UInt64(1), 2, 3])
    func compositeKeysMatchModelThroughLevelZero(seed: UInt64) {
        // Growth factor 64: no compaction below level 1, so flushes merge into the landing
        // level 0 and level 0 merges into level 1 (Tree.swift "Level 0").
        let configuration = TreeHarness<CompositeKey64>.configuration(valuesPerBeatMax: 150, growthFactor: 64)
        let harness = TreeHarness<CompositeKey64>(storageSeed: seed &* 7, configuration: configuration)
        let failure = Self.runCompositeModel(
            harness: harness, seed: seed, bars: 24, fields: 30, timestamps: 100, afterBatch: Self.levelChecks)
        #expect(failure == nil, "\(failure ?? "")")
        #expect(harness.levelCounts()[1] >= 2, "values reached several level-1 tables")
        #expect(harness.grid.statistics.readsFromStorage > 0, "lookups read tables from disk")
        #expect(harness.events.contains { $0.event == .remove && $0.level == 0 }, "flushes merged with level 0")
        #expect(harness.events.contains { $0.event == .remove && $0.level == 1 }, "level 0 merged into level 1")
    }

    @Test(arguments: [UInt64(11), 12])
    func objectsMatchModelThroughLevelZero(seed: UInt64) {
        let configuration = TreeHarness<TreeTestObject>.configuration(valuesPerBeatMax: 20, growthFactor: 64)
        let harness = TreeHarness<TreeTestObject>(storageSeed: seed, configuration: configuration)
        var prng = PRNG(seed: seed)
        var version: UInt64 = 0
        let ids: UInt64 = 400
        for _ in 0..<(30 * configuration.compactionOps) {
            for _ in 0..<prng.int(in: 1...20) {
                version += 1
                let id = prng.below(ids)
                harness.put(prng.chance(percent: 20) ? .tombstone(key: id) : TreeTestObject(id: id, version: version))
            }
            #expect(harness.commit(), "seed \(seed): beat finished")
            for _ in 0..<4 {
                let failure = harness.check(prng.below(ids))
                #expect(failure == nil, "seed \(seed) op \(harness.op): \(failure ?? "")")
                if failure != nil { return }
            }
        }
        for id in 0..<ids {
            let failure = harness.check(id)
            #expect(failure == nil, "seed \(seed) final: \(failure ?? "")")
            if failure != nil { return }
        }
        #expect(harness.levelCounts()[0] + harness.levelCounts()[1] >= 2, "objects reached tables in levels 0 and 1")
    }

    @Test func memtableAnswersFoundDeletedAndNotInMemory() {
        let configuration = TreeHarness<TreeTestObject>.configuration(valuesPerBeatMax: 20, growthFactor: 64)
        let harness = TreeHarness<TreeTestObject>(storageSeed: 5, configuration: configuration)
        harness.put(TreeTestObject(id: 1, version: 1))
        harness.put(TreeTestObject(id: 1, version: 2))
        harness.put(TreeTestObject(id: 2, version: 3))
        harness.put(.tombstone(key: 2))
        guard case .found(let value) = harness.tree.getCached(1) else {
            Issue.record("key 1 is in the memtable")
            return
        }
        #expect(value.version == 2, "the later put wins")
        guard case .deleted = harness.tree.getCached(2) else {
            Issue.record("key 2 is deleted")
            return
        }
        guard case .notInMemory = harness.tree.getCached(3) else {
            Issue.record("key 3 was never put")
            return
        }
        #expect(harness.check(1) == nil)
        #expect(harness.check(2) == nil)
        #expect(harness.check(3) == nil)
    }

    /// `keyBound` covers every key put (tombstones too) and every table an opened tree loads;
    /// a key above it is absent at once, without a search or a read.
    @Test func keyBoundAnswersKeysAboveEveryKeyAndCoversOpenedTables() throws {
        let configuration = TreeHarness<TreeTestObject>.configuration(valuesPerBeatMax: 20, growthFactor: 64)
        let harness = TreeHarness<TreeTestObject>(storageSeed: 7, configuration: configuration)
        #expect(harness.tree.keyBound == nil, "an empty tree bounds nothing")
        #expect(harness.tree.isAboveEveryKey(0))
        var id: UInt64 = 0
        // Six bars of ascending keys: tables on the grid, the last bar in the memtables.
        for _ in 0..<(6 * configuration.compactionOps) {
            for _ in 0..<20 {
                id += 3
                harness.put(TreeTestObject(id: id, version: id))
            }
            #expect(harness.commit())
        }
        harness.put(TreeTestObject(id: 1, version: 99))  // A lower key leaves the bound alone.
        #expect(harness.tree.keyBound == id)
        harness.put(.tombstone(key: id + 100))  // A tombstone's key counts.
        #expect(harness.tree.keyBound == id + 100)
        #expect(!harness.tree.isAboveEveryKey(id + 100))
        #expect(harness.tree.isAboveEveryKey(id + 101))
        let reads = harness.grid.statistics.readsFromStorage
        var answer: TreeLookupResult<TreeTestObject>?
        harness.tree.lookup(id + 101) { answer = $0 }
        guard case .notFound? = answer else {
            Issue.record("a key above the bound is absent before lookup returns: \(String(describing: answer))")
            return
        }
        #expect(harness.grid.statistics.readsFromStorage == reads, "and read nothing")

        // A tree opened on the tables bounds their keys.
        let tables = Array(harness.tree.manifest.levelsTables().joined())
        #expect(!tables.isEmpty, "keys reached tables")
        let tableMax = tables.map { $0.keyMax.load(as: UInt64.self) }.max() ?? 0
        let opened = Tree<TreeTestObject, SimulatedStorage>(
            treeId: 9, grid: harness.grid, freeSet: harness.freeSet, configuration: configuration)
        try opened.open(tables: tables)
        #expect(opened.keyBound == tableMax, "the opened tree's bound is its tables' largest key")
        var found: TreeLookupResult<TreeTestObject>?
        opened.lookup(tableMax) { found = $0 }
        _ = harness.storage.run(until: { found != nil })
        guard case .found(let value)? = found else {
            Issue.record("the largest key of the tables is found: \(String(describing: found))")
            return
        }
        #expect(value.id == tableMax)
    }

    /// The flush of one bar is spread over the beats of the second half-bar, and its tables
    /// appear only at its end.
    @Test func flushIsPacedOverTheSecondHalfBar() {
        let configuration = TreeHarness<CompositeKey64>.configuration(
            valuesPerBeatMax: 240, compactionOps: 8, growthFactor: 64)
        let harness = TreeHarness<CompositeKey64>(storageSeed: 3, configuration: configuration)
        // Ops 1…7: the first bar (op 7 is its last beat: the memtable becomes immutable).
        var timestamp: UInt64 = 0
        for _ in 1...7 {
            for _ in 0..<240 {
                harness.put(CompositeKey64(field: 1, timestamp: timestamp))
                timestamp += 1
            }
            #expect(harness.commit())
        }
        #expect(harness.tree.memtableCounts.immutable == 7 * 240)
        // Ops 8…11: first half of the next bar, nothing to compact.
        for _ in 8...11 {
            let before = harness.grid.statistics.writes
            #expect(harness.commit())
            #expect(harness.grid.statistics.writes == before, "no flush in the first half-bar")
        }
        // Ops 12…15: the flush, a part per beat: 7 value blocks and 1 index block in all.
        var writesPerBeat: [Int] = []
        for op in 12...15 {
            let before = harness.grid.statistics.writes
            #expect(harness.commit())
            writesPerBeat.append(harness.grid.statistics.writes - before)
            if op < 15 {
                #expect(harness.levelCounts()[0] == 0, "tables become visible at the half-bar's end")
                #expect(harness.check(CompositeKey64(field: 1, timestamp: 100)) == nil, "the immutable memtable answers")
            }
        }
        #expect(writesPerBeat.reduce(0, +) == 8, "\(writesPerBeat)")
        #expect(writesPerBeat.allSatisfy { $0 >= 1 && $0 <= 3 }, "every beat does a part: \(writesPerBeat)")
        #expect(harness.levelCounts()[0] == 1)
        #expect(harness.tree.memtableCounts.immutable == 0, "flushed")
        let inserted = harness.events.filter { $0.event == .insert }
        #expect(inserted.count == 1)
        #expect(inserted.first?.snapshotMin == 16, "visible from the op after the half-bar")
        #expect(inserted.first.map { Int($0.valueCount) } == 7 * 240)
        for probe in [UInt64(0), 500, 1679, 1680] {
            #expect(harness.check(CompositeKey64(field: 1, timestamp: probe)) == nil, "timestamp \(probe)")
        }
    }

    // MARK: Determinism

    /// Same op sequence, different IO completion orders: same addresses, same grid bytes.
    @Test(arguments: [UInt64(21), 22])
    func sameOpsGiveIdenticalGrids(seed: UInt64) {
        let configuration = TreeHarness<CompositeKey64>.configuration(
            valuesPerBeatMax: 120, levelCount: 4, growthFactor: 2)
        let a = TreeHarness<CompositeKey64>(storageSeed: 100, configuration: configuration, cacheBlocks: 64)
        let b = TreeHarness<CompositeKey64>(storageSeed: 200, configuration: configuration, cacheBlocks: 128)
        let failureA = Self.runCompositeModel(
            harness: a, seed: seed, bars: 20, fields: 100, timestamps: 100, finalChecks: 500)
        let failureB = Self.runCompositeModel(
            harness: b, seed: seed, bars: 20, fields: 100, timestamps: 100, finalChecks: 500)
        #expect(failureA == nil, "\(failureA ?? "")")
        #expect(failureB == nil, "\(failureB ?? "")")
        #expect(a.events == b.events, "same manifest events (addresses, checksums)")
        #expect(a.events.count > 10)
        let highest = max(a.freeSet.highestAcquiredAddress, b.freeSet.highestAcquiredAddress)
        #expect(highest > 0)
        let size = Int(highest) * a.layout.configuration.blockSize
        // A beat that is not its half-bar's last may end with writes in flight (TreeCompaction
        // "Writes across beats"): both runs finish them before the bytes are compared.
        _ = a.storage.runUntilIdle()
        _ = b.storage.runUntilIdle()
        let bytesA = a.storage.bytes(zone: .grid, offset: 0, count: size)
        let bytesB = b.storage.bytes(zone: .grid, offset: 0, count: size)
        #expect(bytesA.elementsEqual(bytesB), "byte-identical grids (seed \(seed))")
    }

    // MARK: Faults

    @Test func corruptBlocksAreFaultsNeverWrongValues() {
        let configuration = TreeHarness<CompositeKey64>.configuration(valuesPerBeatMax: 150, growthFactor: 64)
        let harness = TreeHarness<CompositeKey64>(storageSeed: 9, configuration: configuration)
        let failure = Self.runCompositeModel(harness: harness, seed: 9, bars: 12, fields: 30, timestamps: 100)
        #expect(failure == nil, "\(failure ?? "")")
        Self.finishHalfBar(harness)
        // The first level with two tables (the landing level 0 or level 1).
        let manifest = harness.tree.manifest
        let levelIndex = (0..<manifest.levelCount).first { manifest.level($0).count >= 2 }
        #expect(levelIndex != nil)
        guard let levelIndex else { return }
        let level = manifest.level(levelIndex)
        let layout = harness.layout
        let blockSize = layout.configuration.blockSize

        // Whether `table` holds `key`, read from the disk's bytes (not through the tree).
        func holds(_ table: TableInfo, _ key: CompositeKey64) -> Bool {
            let indexBytes = UnsafeRawBufferPointer(
                harness.storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: table.address), count: blockSize))
            guard let index = try? IndexBlock<CompositeKey64>.decode(block: indexBytes, treeId: 9),
                let entry = index.valueBlockIndex(for: key)
            else { return false }
            let valueBytes = UnsafeRawBufferPointer(harness.storage.bytes(
                zone: .grid, offset: layout.gridBlockOffset(address: index.reference(entry).address), count: blockSize))
            guard let values = try? ValueBlock<CompositeKey64>.decode(block: valueBytes, treeId: 9) else { return false }
            return values.find(key) != nil
        }

        // A key on disk only, in `table`, and in no table of a shallower level (which a lookup
        // would meet first).
        func diskKey(in table: TableInfo) -> CompositeKey64? {
            let keyMin = table.keyMin(as: CompositeKey64.self)
            let keyMax = table.keyMax(as: CompositeKey64.self)
            return harness.model.keys.sorted(by: <).first { key in
                guard keyMin <= key && key <= keyMax, holds(table, key) else { return false }
                for shallower in 0..<levelIndex {
                    let tables = manifest.level(shallower)
                    for position in 0..<tables.count where holds(tables.table(at: position), key) { return false }
                }
                if case .notInMemory = harness.tree.getCached(key) { return true }
                return false
            }
        }

        // A value block: the lookup reads the index, then meets the corrupt value block.
        let first = level.table(at: 0)
        guard let key = diskKey(in: first) else {
            Issue.record("a key lives in the first table only")
            return
        }
        let indexBytes = UnsafeRawBufferPointer(
            harness.storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: first.address), count: blockSize))
        guard let index = try? IndexBlock<CompositeKey64>.decode(block: indexBytes, treeId: 9),
            let entry = index.valueBlockIndex(for: key)
        else {
            Issue.record("the index block on disk decodes and names the key's value block")
            return
        }
        let valueAddress = index.reference(entry).address
        harness.storage.corruptSector(zone: .grid, offset: layout.gridBlockOffset(address: valueAddress))
        _ = harness.grid.cache.remove(valueAddress)
        guard case .fault = harness.lookup(key) else {
            Issue.record("a corrupt value block is a fault")
            return
        }

        // An index block of another table.
        let second = level.table(at: level.count - 1)
        guard let otherKey = diskKey(in: second) else {
            Issue.record("a key lives in the last table")
            return
        }
        harness.storage.corruptSector(zone: .grid, offset: layout.gridBlockOffset(address: second.address))
        _ = harness.grid.cache.remove(second.address)
        guard case .fault = harness.lookup(otherKey) else {
            Issue.record("a corrupt index block is a fault")
            return
        }
        #expect(harness.grid.statistics.readFaults == 2)
        #expect(harness.tree.lookupsPending == 0, "faulted lookups return their contexts")
    }

    /// A compaction that meets a corrupt input block stops the tree with a fault: no crash,
    /// no table built from it, and beats still end.
    @Test func corruptCompactionInputStopsTheTree() {
        let configuration = TreeHarness<CompositeKey64>.configuration(valuesPerBeatMax: 150, growthFactor: 64)
        let harness = TreeHarness<CompositeKey64>(storageSeed: 4, configuration: configuration)
        // Every bar flushed (no held tables): the puts below reach the corrupt table in time.
        harness.tree.holdsSmallImmutableTables = false
        let failure = Self.runCompositeModel(harness: harness, seed: 4, bars: 4, fields: 30, timestamps: 100)
        #expect(failure == nil, "\(failure ?? "")")
        Self.finishHalfBar(harness)
        // A table of level 1 (or of level 0 if none reached level 1 yet).
        let levelIndex = harness.tree.manifest.level(1).count > 0 ? 1 : 0
        let level = harness.tree.manifest.level(levelIndex)
        #expect(level.count >= 1)
        guard level.count >= 1 else { return }
        let table = level.table(at: 0)
        harness.storage.corruptSector(zone: .grid, offset: harness.layout.gridBlockOffset(address: table.address))
        _ = harness.grid.cache.remove(table.address)
        // Three bars of puts over the whole key range: the second bar's flush lands in level
        // 0 (merging with a level-0 table), the third bar's first half merges level 0 into
        // level 1, both over the whole key range.
        let eventsBefore = harness.events.count
        for _ in 0..<(3 * configuration.compactionOps) {
            for field in 0..<30 { harness.put(CompositeKey64(field: UInt64(field), timestamp: 7)) }
            #expect(harness.commit(), "beats end even after a fault")
        }
        #expect(harness.tree.fault != nil, "the tree reports the corrupt input")
        // Earlier half-bars of the three bars may apply their jobs; the failed one applies
        // nothing, so the corrupt table is never retired.
        #expect(!harness.events[eventsBefore...].contains { $0.event == .remove && $0.identity == table.identity },
                "nothing applied from a failed compaction")
        #expect(harness.tree.manifest.level(levelIndex).contains(table), "the input table is still there")
        #expect(!harness.freeSet.isReserving, "the failed half-bar forfeited its reservations")
    }

    // MARK: Stage 2: compaction between levels

    @Test(arguments: [UInt64(31), 32, 33])
    func compactionKeepsLevelsWithinLimitsAndLookupsCorrect(seed: UInt64) {
        let configuration = TreeHarness<CompositeKey64>.configuration(
            valuesPerBeatMax: 120, levelCount: 4, growthFactor: 2)
        let harness = TreeHarness<CompositeKey64>(
            storageSeed: seed &+ 1000, configuration: configuration, cacheBlocks: 64)
        let failure = Self.runCompositeModel(
            harness: harness, seed: seed, bars: 50, fields: 150, timestamps: 100, finalChecks: 1_500,
            afterBatch: Self.levelChecks)
        #expect(failure == nil, "\(failure ?? "")")
        let counts = harness.levelCounts()
        #expect(counts[1] > 0 && counts[2] > 0 && counts[3] > 0, "levels 1-3 filled: \(counts)")
        #expect(harness.events.contains { $0.event == .remove && $0.level >= 1 }, "levels merged")
        #expect(harness.tree.fault == nil)
    }
}

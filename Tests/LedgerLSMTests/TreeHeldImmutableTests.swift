import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

/// Small immutable tables are held back from their flush and absorb the next bar (Tree.swift,
/// "Small immutable tables"; storage spec §5 "Memtables"), except in a bar that ends at a
/// checkpoint trigger.
@Suite struct TreeHeldImmutableTests {
    /// 8 beats a bar, at most 240 puts a beat: a table is 1920 values; the tree holds the
    /// immutable table while it and the mutable one hold at most 960.
    static let configuration = TreeHarness<CompositeKey64>.configuration(
        valuesPerBeatMax: 240, compactionOps: 8, growthFactor: 8)

    /// Ten random keys per op: nothing reaches the grid until the held table passes half a
    /// table, then one flush writes it all; every key answers right throughout.
    @Test(arguments: [UInt64(1), 2, 3])
    func smallOpsFlushOnlyOnceHalfATableIsHeld(seed: UInt64) throws {
        let harness = TreeHarness<CompositeKey64>(storageSeed: seed, configuration: Self.configuration)
        var prng = PRNG(seed: seed)
        var timestamp: UInt64 = 0
        var firstFlushOp: UInt64?
        for _ in 0..<(25 * 8) {
            for _ in 0..<10 {
                timestamp += 1
                harness.put(CompositeKey64(field: prng.below(1_000), timestamp: timestamp))
            }
            let writes = harness.grid.statistics.writes
            #expect(harness.commit())
            if firstFlushOp == nil && harness.grid.statistics.writes > writes { firstFlushOp = harness.op }
            if let failure = TreeTests.levelChecks(harness) { Issue.record("seed \(seed) op \(harness.op): \(failure)") }
            for _ in 0..<3 {
                let key = CompositeKey64(field: prng.below(1_000), timestamp: 1 + prng.below(timestamp))
                if let failure = harness.check(key) { Issue.record("seed \(seed) op \(harness.op): \(failure)") }
            }
        }
        // Held while immutable + mutable ≤ 960 at a second half-bar's start (op ≡ 4 mod 8):
        // 80 puts a bar, so the first flush starts after about 11 bars, not after the first.
        let flushOp = try #require(firstFlushOp, "seed \(seed): the held table was flushed once over half")
        #expect(flushOp > 80, "seed \(seed): first grid write at op \(flushOp)")
        let inserts = harness.events.filter { $0.event == .insert }
        #expect(!inserts.isEmpty && inserts.count <= 3, "seed \(seed): \(inserts.count) tables written for 2000 puts")
        #expect(inserts.allSatisfy { $0.valueCount > 800 }, "seed \(seed): every flushed table was over half full")
        for key in harness.model.keys {
            if let failure = harness.check(key) { Issue.record("seed \(seed) final: \(failure)") }
        }
    }

    /// The bar that ends at a checkpoint trigger flushes the held table whatever its size: the
    /// table written holds exactly the values of the ops before that bar.
    @Test func barEndingAtATriggerFlushesTheHeldTable() {
        let harness = TreeHarness<CompositeKey64>(storageSeed: 9, configuration: Self.configuration)
        harness.tree.barEndsAtCheckpointTrigger = { $0 == 31 }
        var timestamp: UInt64 = 0
        for op in UInt64(1)...31 {
            for _ in 0..<10 {
                timestamp += 1
                harness.put(CompositeKey64(field: (timestamp &* 7_919) % 1_000, timestamp: timestamp))
            }
            #expect(harness.commit())
            if op < 27 { #expect(harness.grid.statistics.writes == 0, "op \(op): small tables are held") }
        }
        let inserts = harness.events.filter { $0.event == .insert }
        #expect(inserts.count == 1)
        // Ops 1…23 put 230 values (the bars ending at 7, 15 and 23); ops 24…31 are the mutable
        // table's, swapped in at op 31.
        #expect(inserts.first?.valueCount == 230)
        #expect(harness.tree.memtableCounts.immutable == 80)
        for key in harness.model.keys {
            if let failure = harness.check(key) { Issue.record("final: \(failure)") }
        }
    }

    /// After full bars of random keys (tables in levels 0 and 1), a held table flushed at a
    /// checkpoint trigger merges only with the landing level 0: level 1's tables are not
    /// rewritten, and the flush writes level 0's values plus the held ones, no more.
    @Test(arguments: [UInt64(4), 5])
    func aTriggerFlushAfterALoadRewritesOnlyTheLandingLevel(seed: UInt64) {
        let harness = TreeHarness<CompositeKey64>(storageSeed: seed, configuration: Self.configuration)
        var prng = PRNG(seed: seed)
        var timestamp: UInt64 = 0
        func put(_ count: Int) {
            for _ in 0..<count {
                timestamp += 1
                harness.put(CompositeKey64(field: prng.below(1_000), timestamp: timestamp))
            }
        }
        // Ops 1…47: six bars of full beats.
        for _ in 1...47 {
            put(240)
            #expect(harness.commit())
        }
        // Ops 48…67: light ops; the bar 64…71 ends at a trigger.
        harness.tree.barEndsAtCheckpointTrigger = { $0 == 71 }
        for _ in 48...67 {
            put(10)
            #expect(harness.commit())
        }
        #expect(harness.levelCounts()[1] > 0, "seed \(seed): the load reached level 1")
        #expect(harness.levelCounts()[1] < 8, "seed \(seed): level 1 has no job of its own this half-bar")
        let levelOneBefore = harness.tree.manifest.levelsTables()[1].map(\.identity)
        let landedBefore = harness.tree.manifest.visibleValueCount(level: 0, snapshot: TableInfo.snapshotLatest)
        let held = harness.tree.memtableCounts.immutable
        #expect(held > 0 && held < 960, "seed \(seed): a small held table (\(held))")
        harness.events.removeAll()
        // Ops 68…71: the trigger bar's second half flushes the held table.
        for _ in 68...71 {
            put(10)
            #expect(harness.commit())
        }
        let inserted = harness.events.filter { $0.event == .insert }
        #expect(inserted.allSatisfy { $0.level == 0 }, "seed \(seed): only the landing level was written")
        #expect(inserted.reduce(0) { $0 + Int($1.valueCount) } == landedBefore + held,
                "seed \(seed): the flush wrote level 0's values and the held ones")
        #expect(harness.tree.manifest.levelsTables()[1].map(\.identity) == levelOneBefore, "seed \(seed): level 1 untouched")
        for key in harness.model.keys where prng.chance(percent: 5) {
            if let failure = harness.check(key) { Issue.record("seed \(seed): \(failure)") }
        }
    }
}

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
}

// The LSM benchmark: one tree on a real data file through io_uring (production block size, 32-
// beat bars), fed batches of 8189 values with a compaction beat after each, then random point
// lookups of keys it holds. Two shapes: an object tree (128-byte transfers keyed by increasing
// timestamps: tables append, compaction mostly moves them) and an index tree (32-byte
// (account, timestamp) keys over 100 000 random accounts: every flush and compaction merges).
// Prints puts/s, per-beat latency (puts + beat) p50/p99/max, lookups/s and where reads were
// served from. The forest and the state machine on it come with step 3's grooves; this measures
// the tree alone.

import Glibc
import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerVSR

func runLSMBenchmark(directory: String, batches: Int) {
    let layout = DataFileLayout(.production)
    let path = createBenchmarkDataFile(directory: directory, name: "lsm", layout: layout)
    defer { _ = unlink(path) }
    print("lsm: \(batches) batches of 8189 values per tree, 512 KiB blocks, file \(path)")
    runTreeBenchmark(path: path, layout: layout, batches: batches, name: "object tree (transfers by timestamp)") {
        (op: UInt64, index: Int, prng: inout PRNG) -> Transfer in
        let timestamp = op * 10_000 + UInt64(index)
        return Transfer(id: UInt128(timestamp), debitAccountId: 1, creditAccountId: 2, amount: 1, ledger: 1, code: 1,
                        timestamp: timestamp)
    }
    runTreeBenchmark(path: path, layout: layout, batches: batches, name: "index tree (account, timestamp), 100k accounts") {
        (op: UInt64, index: Int, prng: inout PRNG) -> CompositeKey128 in
        CompositeKey128(field: UInt128(prng.below(100_000) + 1), timestamp: op * 10_000 + UInt64(index))
    }
}

private func runTreeBenchmark<Value: TreeValue>(
    path: String, layout: DataFileLayout, batches: Int, name: String,
    make: (UInt64, Int, inout PRNG) -> Value
) {
    let (file, io, storage) = openBenchmarkDataFile(path: path, layout: layout)
    defer { file.close() }
    let configuration = TreeConfiguration(
        valuesPerBeatMax: Constants.batchEventsMax, compactionOps: layout.configuration.lsmCompactionOps,
        manifest: ManifestConfiguration(tablesMax: 1024), blockSize: layout.configuration.blockSize,
        lookupsMax: 16)
    // 256 cached blocks = 128 MiB of grid cache.
    let grid = Grid(storage: storage, cacheBlocks: 256, readsMax: 16, writesMax: 16)
    let freeSet = FreeSet(blockCount: layout.configuration.gridBlockCountMax)
    let tree = Tree<Value, FileStorage>(treeId: 1, grid: grid, freeSet: freeSet, configuration: configuration)

    var prng = PRNG(seed: 7)
    var keys: [Value.Key] = []
    keys.reserveCapacity(batches * Constants.batchEventsMax)
    var beatLatencies: [UInt64] = []
    beatLatencies.reserveCapacity(batches)
    let begin = monotonicNs()
    for op in 1...UInt64(batches) {
        let start = monotonicNs()
        for index in 0..<Constants.batchEventsMax {
            let value = make(op, index, &prng)
            keys.append(value.key)
            tree.put(value)
        }
        var done = false
        tree.compact(op: op) { done = true }
        guard io.run(until: { done }, timeoutNs: 120 * 1_000_000_000) else {
            printError("ledger-benchmark: a compaction beat did not finish within 120 s")
            exit(1)
        }
        if let fault = tree.fault {
            printError("ledger-benchmark: the tree stopped: \(fault)")
            exit(1)
        }
        beatLatencies.append(monotonicNs() - start)
    }
    // Which beats of the bar are slow (op % compactionOps), to aim the pacing work.
    let ops = layout.configuration.lsmCompactionOps
    var slowest = Array(beatLatencies.enumerated()).sorted { $0.element > $1.element }.prefix(5)
        .map { "op \($0.offset + 1) (beat \(($0.offset + 1) % ops)) \(formatFixed(Double($0.element) / 1e6, digits: 1)) ms" }
    slowest = Array(slowest)
    let putSeconds = Double(monotonicNs() - begin) / 1e9
    let puts = Double(batches * Constants.batchEventsMax)
    beatLatencies.sort()
    func percentile(_ p: Double) -> String {
        let index = min(beatLatencies.count - 1, Int(Double(beatLatencies.count) * p))
        return formatFixed(Double(beatLatencies[index]) / 1e6, digits: 2)
    }
    let levels = (0..<configuration.manifest.levelCount).map { tree.manifest.tableCount(level: $0) }
    print("lsm \(name): \(formatFixed(puts / putSeconds / 1e6, digits: 2)) M puts/s; "
        + "beat (8189 puts + compaction) p50 \(percentile(0.5)) ms p99 \(percentile(0.99)) ms max \(percentile(1.0)) ms; "
        + "tables per level \(levels)")
    print("lsm \(name): slowest beats: \(slowest.joined(separator: ", "))")

    // Random lookups of keys the tree holds, 16 in flight.
    let lookupCount = 50_000
    var issued = 0
    var completed = 0
    var found = 0
    let statisticsBefore = grid.statistics
    var issue: (() -> Void)!
    issue = {
        while issued < lookupCount && tree.lookupsPending < configuration.lookupsMax {
            issued += 1
            let key = keys[Int(prng.below(UInt64(keys.count)))]
            tree.lookup(key) { result in
                completed += 1
                if case .found = result { found += 1 }
            }
        }
    }
    let lookupBegin = monotonicNs()
    while completed < lookupCount {
        issue()
        io.runOnce()
    }
    let lookupSeconds = Double(monotonicNs() - lookupBegin) / 1e9
    issue = nil
    let statistics = grid.statistics
    precondition(found == lookupCount, "every key put is found")
    print("lsm \(name): \(formatFixed(Double(lookupCount) / lookupSeconds / 1e3, digits: 0)) k lookups/s "
        + "(random keys, 16 in flight; block reads: \(statistics.readsFromCache - statisticsBefore.readsFromCache) cache, "
        + "\(statistics.readsFromStorage - statisticsBefore.readsFromStorage) disk)")
}

import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

/// Compaction writes its output blocks either through buffers borrowed from the grid
/// (`write(exchanging:)`, no copy) or, on a grid that lends none, by copy (`write(block:)`).
/// The bytes on disk, the addresses and the answers must not depend on which.
@Suite struct TreeCompactionExchangeTests {
    /// A tree on its own simulated disk, driven beat by beat with a fixed workload.
    final class Run {
        let layout = DataFileLayout(.testing)
        let storage: SimulatedStorage
        let grid: Grid<SimulatedStorage>
        let freeSet: FreeSet
        let tree: Tree<CompositeKey64, SimulatedStorage>
        var model: Set<CompositeKey64> = []
        var events: [TableInfo] = []
        var op: UInt64 = 0

        init(storageSeed: UInt64, configuration: TreeConfiguration, lendsBlocks: Bool) {
            var options = SimulatedStorage.Options()
            options.readLatencyTicks = 1...8
            options.writeLatencyTicks = 1...8
            storage = SimulatedStorage(layout: layout, seed: storageSeed, options: options)
            grid = Grid(
                storage: storage, cacheBlocks: 16, readsMax: 8, writesMax: 16, readQueueMax: 64,
                callerBlocks: lendsBlocks ? 2 * (configuration.manifest.levelCount / 2 + 1) : 0)
            freeSet = FreeSet(blockCount: layout.configuration.gridBlockCountMax)
            tree = Tree(treeId: 9, grid: grid, freeSet: freeSet, configuration: configuration)
        }

        /// Puts a batch, runs its beat to the end; false if the beat never finished.
        func commit(_ values: [CompositeKey64]) -> Bool {
            for value in values {
                tree.put(value)
                let key = CompositeKey64(field: value.field, timestamp: value.timestamp)
                if value.isTombstone { model.remove(key) } else { model.insert(key) }
            }
            op += 1
            var done = false
            tree.compact(op: op) { done = true }
            guard storage.run(until: { done }) else { return false }
            events.append(contentsOf: tree.takeManifestEvents())
            // A durable checkpoint at each bar's end frees released blocks for reuse.
            if (op + 1) % UInt64(tree.configuration.compactionOps) == 0 && !freeSet.isReserving {
                freeSet.markCheckpointNotDurable()
                freeSet.markCheckpointDurable()
            }
            return true
        }

        func lookup(_ key: CompositeKey64) -> TreeLookupResult<CompositeKey64>? {
            var answer: TreeLookupResult<CompositeKey64>?
            tree.lookup(key) { answer = $0 }
            _ = storage.run(until: { answer != nil })
            return answer
        }

        var gridBytes: [UInt8] {
            Array(storage.bytes(zone: .grid, offset: 0, count: Int(layout.size(of: .grid))))
        }
    }

    static let configuration = TreeHarness<CompositeKey64>.configuration(valuesPerBeatMax: 48, growthFactor: 4)

    /// The same batches for both runs, from `seed`: random keys, a quarter tombstones.
    static func batches(seed: UInt64, count: Int) -> [[CompositeKey64]] {
        var prng = PRNG(seed: seed)
        return (0..<count).map { _ in
            (0..<prng.int(in: 1...configuration.valuesPerBeatMax)).map { _ in
                let key = CompositeKey64(field: prng.below(24), timestamp: prng.below(96))
                return prng.chance(percent: 25) ? CompositeKey64.tombstone(key: key) : key
            }
        }
    }

    @Test(arguments: [UInt64(41), 42, 43])
    func exchangingWritesLeaveTheSameGridAsCopies(seed: UInt64) {
        let batches = Self.batches(seed: seed, count: 12 * Self.configuration.compactionOps)
        let copying = Run(storageSeed: seed, configuration: Self.configuration, lendsBlocks: false)
        let exchanging = Run(storageSeed: seed, configuration: Self.configuration, lendsBlocks: true)
        #expect(!copying.tree.compactionExchangesBlocks, "seed \(seed)")
        #expect(exchanging.tree.compactionExchangesBlocks, "seed \(seed)")
        for (index, batch) in batches.enumerated() {
            #expect(copying.commit(batch), "seed \(seed) batch \(index)")
            #expect(exchanging.commit(batch), "seed \(seed) batch \(index)")
        }
        #expect(copying.tree.fault == nil, "seed \(seed)")
        #expect(exchanging.tree.fault == nil, "seed \(seed)")
        // Compaction ran: tables were written (and so blocks were exchanged).
        #expect(exchanging.grid.statistics.writes > 10, "seed \(seed)")
        #expect(exchanging.grid.statistics.writes == copying.grid.statistics.writes, "seed \(seed)")
        #expect(exchanging.events == copying.events, "seed \(seed): same tables at the same addresses")
        #expect(exchanging.gridBytes == copying.gridBytes, "seed \(seed): same bytes on disk")
        // Every key answers as the model says, read back from the exchanged blocks.
        for field in UInt64(0)..<24 {
            for timestamp in UInt64(0)..<96 {
                let key = CompositeKey64(field: field, timestamp: timestamp)
                let answer = exchanging.lookup(key)
                switch answer {
                case .found(let found):
                    #expect(exchanging.model.contains(key), "seed \(seed) key \(key) found but deleted")
                    #expect(found == key, "seed \(seed) key \(key)")
                case .notFound:
                    #expect(!exchanging.model.contains(key), "seed \(seed) key \(key) not found")
                default:
                    Issue.record("seed \(seed) key \(key): \(String(describing: answer))")
                }
            }
        }
    }

    @Test func aForestGridLendsTwoBlocksPerCompactionJob() {
        let configuration = ForestConfiguration(trees: [
            TreeHarness<CompositeKey64>.configuration(valuesPerBeatMax: 32, growthFactor: 4),
            TreeHarness<CompositeKey64>.configuration(valuesPerBeatMax: 16, levelCount: 5, growthFactor: 4),
        ])
        // (7 / 2 + 1) + (5 / 2 + 1) jobs, two output blocks each.
        #expect(configuration.gridCallerBlocks == 2 * 4 + 2 * 3)
        let storage = SimulatedStorage(layout: DataFileLayout(.testing), seed: 1)
        let forest = Forest(storage: storage, configuration: configuration)
        #expect(forest.grid.callerBlocks == 14)
    }
}

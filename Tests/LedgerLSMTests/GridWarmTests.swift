import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

/// `Grid.warm`: a compaction job reads its next input blocks into the cache ahead of its turn
/// (TreeCompaction.swift "Reading ahead"). A warmed block is a cache hit later; a read of a
/// block whose warming read is in flight takes that read over (one storage read); warming
/// never takes the last read IO nor queues, and stops at its budget.
extension GridTests {
    /// Writes `addresses` and lets them land, then empties the cache by writing others over it.
    private func gridWithBlocksOnDisk(_ addresses: ClosedRange<UInt64>, readsMax: Int, warmReadsMax: Int)
        -> (SimulatedStorage, Grid<SimulatedStorage>)
    {
        let storage = makeStorage(seed: 9)
        let writer = makeGrid(storage, cacheBlocks: 64)
        let log = Log()
        for address in addresses { write(writer, sealedBlock(address: address).bytes, log: log) }
        #expect(storage.runUntilIdle())
        let grid = Grid(storage: storage, cacheBlocks: 64, readsMax: readsMax, writesMax: 2, readQueueMax: 8,
                        warmReadsMax: warmReadsMax)
        return (storage, grid)
    }

    @Test func aWarmedBlockIsACacheHitLater() {
        let (storage, grid) = gridWithBlocksOnDisk(1...3, readsMax: 4, warmReadsMax: 2)
        #expect(grid.warm(sealedBlock(address: 1).reference))
        #expect(grid.warm(sealedBlock(address: 2).reference))
        #expect(!grid.warm(sealedBlock(address: 3).reference), "the budget is 2 warming reads")
        #expect(storage.runUntilIdle())
        #expect(grid.statistics.readsWarmed == 2 && grid.statistics.readsFromStorage == 2)
        let log = Log()
        read(grid, sealedBlock(address: 1).reference, log: log)
        #expect(log.outcome(of: 1) == .block(sealedBlock(address: 1).bytes), "served before read returns")
        #expect(grid.statistics.readsFromStorage == 2, "no second storage read")
        #expect(grid.warm(sealedBlock(address: 2).reference), "a cached block counts as warm")
        #expect(grid.statistics.readsWarmed == 2)
    }

    @Test func aReadTakesOverAWarmingReadInFlight() {
        let (storage, grid) = gridWithBlocksOnDisk(1...2, readsMax: 4, warmReadsMax: 2)
        #expect(grid.warm(sealedBlock(address: 2).reference))
        let log = Log()
        var pinned: GridPin?
        grid.readPinned(sealedBlock(address: 2).reference) { result in
            if case .pinned(let bytes, let pin, _) = result {
                pinned = pin
                log.reads.append((2, .block(Array(bytes))))
            }
        }
        #expect(log.reads.isEmpty, "the block is still being read")
        #expect(storage.runUntilIdle())
        #expect(log.outcome(of: 2) == .block(sealedBlock(address: 2).bytes), "the warming read delivered it, pinned")
        #expect(grid.statistics.readsFromStorage == 1, "one storage read for both")
        if let pinned { grid.unpin(pinned) }
        // The warming budget is free again: both warm.
        #expect(grid.warm(sealedBlock(address: 1).reference))
    }

    @Test func warmingLeavesAReadIOAndNeverQueues() {
        let (storage, grid) = gridWithBlocksOnDisk(1...4, readsMax: 2, warmReadsMax: 1)
        let log = Log()
        read(grid, sealedBlock(address: 1).reference, log: log)
        #expect(grid.warm(sealedBlock(address: 2).reference), "one IO is idle and the budget is 1")
        #expect(grid.readsPending == 2, "the warming read holds the other IO")
        #expect(!grid.warm(sealedBlock(address: 3).reference), "no IO left, and warming never queues")
        read(grid, sealedBlock(address: 4).reference, log: log)
        #expect(storage.runUntilIdle())
        #expect(log.outcome(of: 1) == .block(sealedBlock(address: 1).bytes))
        #expect(log.outcome(of: 4) == .block(sealedBlock(address: 4).bytes), "a reader queued behind a warming read")
    }
}

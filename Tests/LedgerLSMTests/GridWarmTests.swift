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

/// `Grid.isAllIOCompaction` (ForestStore "Compaction during execute"): compaction's IO (pinned
/// reads, warming reads, writes it marks) is pollable; any other read or write in flight or
/// queued makes the grid's IO not all compaction's, and so does a plain read that takes over a
/// warming one. The storage runs exactly the completions the grid marked.
extension GridTests {
    @Test func onlyCompactionIOIsMarkedPollable() {
        let (storage, grid) = gridWithBlocksOnDiskForPolls(1...8)
        #expect(grid.isAllIOCompaction, "idle")
        var pins: [GridPin] = []
        let keepPin: Grid<SimulatedStorage>.PinnedReadCallback = { result in
            if case .pinned(_, let pin, _) = result { pins.append(pin) }
        }
        grid.readPinned(sealedBlock(address: 1).reference, callback: keepPin)
        #expect(grid.warm(sealedBlock(address: 2).reference))
        var compactionWrites = 0
        sealedBlock(address: 20).bytes.withUnsafeBytes { bytes in
            grid.write(block: bytes, compaction: true) { compactionWrites += 1 }
        }
        #expect(grid.isAllIOCompaction, "a pinned read, a warming read and a compaction write")
        // A plain read takes over the warming read of block 2.
        let log = Log()
        read(grid, sealedBlock(address: 2).reference, log: log)
        #expect(!grid.isAllIOCompaction, "a plain reader waits on a read in flight")
        storage.options.pollLookaheadTicks = 100
        storage.runPollableCompletions()
        #expect(pins.count == 1 && compactionWrites == 1, "the poll ran compaction's completions")
        #expect(log.reads.isEmpty, "but not the plain reader's")
        #expect(storage.runUntilIdle())
        #expect(log.outcome(of: 2) == .block(sealedBlock(address: 2).bytes))
        #expect(grid.isAllIOCompaction, "idle again")
        // A plain write, then a plain read queued behind pinned reads on every read IO.
        sealedBlock(address: 21).bytes.withUnsafeBytes { bytes in grid.write(block: bytes) {} }
        #expect(!grid.isAllIOCompaction, "a write not marked as compaction's")
        #expect(storage.runUntilIdle())
        for address in UInt64(3)...6 { grid.readPinned(sealedBlock(address: address).reference, callback: keepPin) }
        #expect(grid.isAllIOCompaction, "pinned reads only")
        read(grid, sealedBlock(address: 7).reference, log: log)
        #expect(grid.statistics.readsQueued == 1 && !grid.isAllIOCompaction, "a plain read queued")
        #expect(storage.runUntilIdle())
        #expect(log.outcome(of: 7) == .block(sealedBlock(address: 7).bytes))
        #expect(pins.count == 5)
        for pin in pins { grid.unpin(pin) }
    }

    /// Blocks on disk and not cached, under a grid with 4 read IOs, 2 of them for warming.
    private func gridWithBlocksOnDiskForPolls(_ addresses: ClosedRange<UInt64>) -> (SimulatedStorage, Grid<SimulatedStorage>) {
        let storage = makeStorage(seed: 12)
        let writer = makeGrid(storage, cacheBlocks: 64)
        let log = Log()
        for address in addresses { write(writer, sealedBlock(address: address).bytes, log: log) }
        #expect(storage.runUntilIdle())
        let grid = Grid(storage: storage, cacheBlocks: 64, readsMax: 4, writesMax: 4, readQueueMax: 8, warmReadsMax: 2)
        return (storage, grid)
    }
}

import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

/// `Grid.waitForWrite`: a forest runs its trees' beats side by side (Forest.swift "Beats"), so
/// a compaction job may find every write slot taken by other trees' writes and wait for one;
/// waiters are called in order, one per freed slot, before the completed write's own callback.
extension GridTests {
    @Test func writeWaitersAreCalledInOrderAsSlotsFree() {
        let storage = makeStorage(seed: 5)
        let grid = makeGrid(storage, writesMax: 2)
        let log = Log()
        write(grid, sealedBlock(address: 1).bytes, log: log)
        write(grid, sealedBlock(address: 2).bytes, log: log)
        #expect(grid.writesAvailable == 0)
        var woken: [Int] = []
        // Each waiter takes the slot it was woken for (as a job does: it writes at once).
        grid.waitForWrite {
            woken.append(1)
            self.write(grid, self.sealedBlock(address: 3).bytes, log: log)
        }
        grid.waitForWrite {
            woken.append(2)
            self.write(grid, self.sealedBlock(address: 4).bytes, log: log)
        }
        grid.waitForWrite { woken.append(3) }
        #expect(woken.isEmpty, "no slot is free before a write completes")
        #expect(grid.writeWaitersPending == 3)
        #expect(storage.runUntilIdle())
        #expect(grid.writeWaitersPending == 0)
        #expect(woken == [1, 2, 3], "every waiter was called, in order")
        #expect(Set(log.writes) == [1, 2, 3, 4], "the waiters' writes completed too")
        #expect(grid.writesAvailable == 2)
        // The blocks the waiters wrote are the ones on disk.
        for address in UInt64(1)...4 {
            var outcome: Outcome?
            grid.read(sealedBlock(address: address).reference) { result in
                switch result {
                case .block(let bytes): outcome = .block(Array(bytes))
                case .fault(let fault): outcome = .fault(fault)
                }
            }
            #expect(storage.runUntilIdle())
            #expect(outcome == .block(sealedBlock(address: address).bytes), "address \(address)")
        }
    }

    /// A waiter is served before the callback of the write whose slot it gets: a caller that
    /// waits is never overtaken by the writer that frees the slot, so outside a completion a
    /// free slot means nobody waits.
    @Test func aWaiterGetsTheSlotBeforeTheCompletedWritesCallback() {
        let storage = makeStorage(seed: 6)
        let grid = makeGrid(storage, writesMax: 1)
        var events: [String] = []
        sealedBlock(address: 1).bytes.withUnsafeBytes { bytes in
            grid.write(block: bytes) { events.append("write 1 done, \(grid.writesAvailable) slot free") }
        }
        grid.waitForWrite {
            events.append("waiter, \(grid.writesAvailable) slot free")
            self.sealedBlock(address: 2).bytes.withUnsafeBytes { bytes in
                grid.write(block: bytes) { events.append("write 2 done") }
            }
        }
        #expect(storage.runUntilIdle())
        #expect(events == ["waiter, 1 slot free", "write 1 done, 0 slot free", "write 2 done"])
    }
}

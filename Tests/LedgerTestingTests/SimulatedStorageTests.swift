import LedgerIO
import LedgerKit
import LedgerTesting
import Testing

/// The simulated disk keeps the `Storage` contract and injects exactly the faults it is told to.
@Suite struct SimulatedStorageTests {
    let layout = DataFileLayout(.testing)
    let sector = Constants.sectorSize

    /// Writes `count` sectors of `fill` at `offset` of `zone` and returns the completion record.
    final class Recorder {
        var order: [Int] = []
    }

    @Test func writeThenReadReturnsTheBytes() {
        let storage = SimulatedStorage(layout: layout, seed: 1)
        let source = AlignedBuffer(count: 2 * sector)
        source.bytes.initializeMemory(as: UInt8.self, repeating: 0xAB)
        var written = false
        let write = StorageCompletion { _ in written = true }
        storage.write(write, zone: .walPrepares, offset: UInt64(3 * sector), buffer: source.readOnlyPrefix(2 * sector))
        #expect(!written, "callbacks never run inside write")
        storage.runUntilIdle()
        #expect(written)

        let target = AlignedBuffer(count: 2 * sector)
        var read = false
        let completion = StorageCompletion { _ in read = true }
        storage.read(completion, zone: .walPrepares, offset: UInt64(3 * sector), buffer: target.bytes)
        storage.runUntilIdle()
        #expect(read)
        #expect(target.bytes.allSatisfy { $0 == 0xAB })
        #expect(storage.faults == SimulatedStorage.FaultCounts())
    }

    /// A poll completes, without moving the clock, the pollable IOs due within the lookahead,
    /// in their order: not turns, not unmarked IOs, not IOs due later; with no lookahead,
    /// nothing (a tick completed everything due already).
    @Test func pollsCompletePollableIOsDueWithinTheLookahead() {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...1
        options.writeLatencyTicks = 1...1
        let storage = SimulatedStorage(layout: layout, seed: 4, options: options)
        let source = AlignedBuffer(count: sector)
        source.bytes.initializeMemory(as: UInt8.self, repeating: 0x11)
        var events: [String] = []
        func completion(_ name: String, pollable: Bool) -> StorageCompletion {
            let completion = StorageCompletion { _ in events.append(name) }
            completion.isPollable = pollable
            return completion
        }
        let first = completion("first", pollable: true)
        let unmarked = completion("unmarked", pollable: false)
        let second = completion("second", pollable: true)
        let turn = completion("turn", pollable: true)
        storage.write(first, zone: .grid, offset: 0, buffer: source.readOnlyPrefix(sector))
        storage.write(unmarked, zone: .grid, offset: UInt64(sector), buffer: source.readOnlyPrefix(sector))
        storage.write(second, zone: .grid, offset: UInt64(2 * sector), buffer: source.readOnlyPrefix(sector))
        storage.nextTurn(turn)
        storage.runPollableCompletions()
        #expect(events.isEmpty, "no lookahead: nothing is due now")
        storage.options.pollLookaheadTicks = 1
        storage.runPollableCompletions()
        #expect(events == ["first", "second"])
        #expect(storage.ticks == 0 && storage.pendingCount == 2 && storage.pollCompletedCount == 2)
        #expect(storage.bytes(zone: .grid, offset: UInt64(2 * sector), count: sector).allSatisfy { $0 == 0x11 })
        storage.tick()
        #expect(events == ["first", "second", "unmarked", "turn"])
    }

    /// A turn completes at the next tick, after the IOs due at it, touches no bytes, and a
    /// crash drops it like any IO in flight.
    @Test func aTurnCompletesAtTheNextTick() {
        let storage = SimulatedStorage(layout: layout, seed: 3)
        var events: [String] = []
        let buffer = AlignedBuffer(count: sector)
        let read = StorageCompletion { _ in events.append("read") }
        let turn = StorageCompletion { _ in events.append("turn") }
        storage.read(read, zone: .walPrepares, offset: 0, buffer: buffer.bytes)
        storage.nextTurn(turn)
        #expect(events.isEmpty, "callbacks never run inside nextTurn")
        #expect(storage.pendingCount == 2)
        storage.tick()
        #expect(events.last == "turn" && !turn.isBusy)
        storage.runUntilIdle()
        #expect(events.count == 2)
        #expect(storage.faults == SimulatedStorage.FaultCounts())

        storage.nextTurn(turn)
        storage.crash()
        #expect(!turn.isBusy && storage.pendingCount == 0)
        storage.runUntilIdle()
        #expect(events.count == 2, "a crash drops a turn without its callback")
    }

    @Test func completionsAreReorderedDeterministically() {
        func completionOrder(seed: UInt64) -> [Int] {
            let storage = SimulatedStorage(layout: layout, seed: seed)
            let buffer = AlignedBuffer(count: sector)
            let recorder = Recorder()
            var completions: [StorageCompletion] = []
            for index in 0..<16 {
                let completion = StorageCompletion { recorder.order.append($0.tag) }
                completion.tag = index
                completions.append(completion)
                storage.read(completion, zone: .grid, offset: UInt64(index * sector), buffer: buffer.bytes)
            }
            storage.runUntilIdle()
            return recorder.order
        }
        let first = completionOrder(seed: 7)
        #expect(first.count == 16)
        #expect(first == completionOrder(seed: 7), "same seed, same order")
        #expect(first != Array(0..<16), "latencies reorder completions")
    }

    @Test func crashLosesPendingWritesAndKeepsCompletedOnes() {
        let storage = SimulatedStorage(layout: layout, seed: 3)
        let buffer = AlignedBuffer(count: sector)
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0x11)
        let first = StorageCompletion { _ in }
        storage.write(first, zone: .walHeaders, offset: 0, buffer: buffer.readOnlyPrefix(sector))
        storage.runUntilIdle()
        let second = StorageCompletion { _ in Issue.record("a crashed IO never completes") }
        storage.write(second, zone: .walHeaders, offset: UInt64(sector), buffer: buffer.readOnlyPrefix(sector))
        storage.crash()
        storage.runUntilIdle()
        #expect(storage.bytes(zone: .walHeaders, offset: 0, count: sector).allSatisfy { $0 == 0x11 })
        #expect(storage.bytes(zone: .walHeaders, offset: UInt64(sector), count: sector).allSatisfy { $0 == 0 })
        #expect(storage.faults.writesLost == 1)
        #expect(!second.isBusy)
    }

    @Test func tornWriteOnCrashWritesSomeSectors() {
        var options = SimulatedStorage.Options()
        options.faultyZones = [.walPrepares]
        options.crashTornWriteProbability = 1
        let storage = SimulatedStorage(layout: layout, seed: 5, options: options)
        let sectors = 64
        let buffer = AlignedBuffer(count: sectors * sector)
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0x22)
        storage.write(StorageCompletion { _ in }, zone: .walPrepares, offset: 0, buffer: buffer.readOnlyPrefix(sectors * sector))
        storage.crash()
        #expect(storage.faults.writesTorn == 1)
        var written = 0
        for index in 0..<sectors {
            let bytes = storage.bytes(zone: .walPrepares, offset: UInt64(index * sector), count: sector)
            if bytes.allSatisfy({ $0 == 0x22 }) { written += 1 } else { #expect(bytes.allSatisfy { $0 == 0 }) }
        }
        #expect(written > 0 && written < sectors, "torn: some sectors, not all (64 fair coins)")
    }

    @Test func faultsHitOnlyFaultyZones() {
        var options = SimulatedStorage.Options()
        options.faultyZones = [.walPrepares]
        options.writeBitFlipProbability = 1
        options.readFaultProbability = 1
        let storage = SimulatedStorage(layout: layout, seed: 9, options: options)
        let buffer = AlignedBuffer(count: sector)
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0x33)
        storage.write(StorageCompletion { _ in }, zone: .walHeaders, offset: 0, buffer: buffer.readOnlyPrefix(sector))
        storage.write(StorageCompletion { _ in }, zone: .walPrepares, offset: 0, buffer: buffer.readOnlyPrefix(sector))
        storage.runUntilIdle()
        #expect(storage.bytes(zone: .walHeaders, offset: 0, count: sector).allSatisfy { $0 == 0x33 })
        let flipped = storage.bytes(zone: .walPrepares, offset: 0, count: sector)
        #expect(flipped.reduce(0) { $0 + ($1 ^ 0x33).nonzeroBitCount } == 1, "exactly one bit flipped")
        #expect(storage.faults.writeBitFlips == 1)

        let target = AlignedBuffer(count: sector)
        storage.read(StorageCompletion { _ in }, zone: .walPrepares, offset: 0, buffer: target.bytes)
        storage.runUntilIdle()
        #expect(target.bytes.allSatisfy { $0 == 0 }, "an unreadable sector reads as zeros")
        #expect(storage.faults.readSectorsZeroed == 1)
    }

    @Test func misdirectedWriteLandsElsewhereInItsZone() {
        var options = SimulatedStorage.Options()
        options.faultyZones = [.walHeaders]
        options.writeMisdirectProbability = 1
        let storage = SimulatedStorage(layout: layout, seed: 11, options: options)
        let buffer = AlignedBuffer(count: sector)
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0x44)
        storage.write(StorageCompletion { _ in }, zone: .walHeaders, offset: 0, buffer: buffer.readOnlyPrefix(sector))
        storage.runUntilIdle()
        #expect(storage.faults.writesMisdirected == 1)
        #expect(storage.bytes(zone: .walHeaders, offset: 0, count: sector).allSatisfy { $0 == 0 })
        let zoneBytes = storage.bytes(zone: .walHeaders, offset: 0, count: Int(layout.size(of: .walHeaders)))
        #expect(zoneBytes.filter { $0 == 0x44 }.count == sector, "the bytes landed in the same zone")
    }
}

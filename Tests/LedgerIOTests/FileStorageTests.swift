import Glibc
@testable import LedgerIO
import LedgerKit
import Testing

/// FileStorage on a real data file (ext4, O_DIRECT, O_DSYNC): concurrent IO in every zone,
/// zeros past the end of the file, and EIO retried in halves down to the bad sector.
@Suite struct FileStorageTests {
    let layout = DataFileLayout(.testing)
    let sector = Constants.sectorSize

    /// One planned IO and its buffers.
    final class PlannedIO {
        let zone: Zone
        let offset: UInt64
        let source: AlignedBuffer
        let target: AlignedBuffer
        let completion = StorageCompletion()

        init(zone: Zone, offset: UInt64, length: Int, prng: inout PRNG) {
            self.zone = zone
            self.offset = offset
            source = AlignedBuffer(count: length)
            target = AlignedBuffer(count: length)
            fillRandom(source.bytes, &prng)
        }
    }

    /// Non-overlapping IOs in every zone but the padding, with random lengths.
    func plan(seed: UInt64) -> [PlannedIO] {
        var prng = PRNG(seed: seed)
        var ios: [PlannedIO] = []
        for copy in 0..<Constants.superblockCopies {
            let sectors = prng.int(in: 1...(Constants.superblockCopySize / sector))
            ios.append(PlannedIO(zone: .superblock, offset: layout.superblockCopyOffset(copy: copy),
                                 length: sectors * sector, prng: &prng))
        }
        for headerSector in 0..<layout.configuration.walHeaderSectorCount {
            ios.append(PlannedIO(zone: .walHeaders, offset: UInt64(headerSector * sector),
                                 length: sector, prng: &prng))
        }
        for slot in stride(from: 0, to: layout.configuration.journalSlotCount, by: 2) {
            let sectors = prng.int(in: 1...64)
            ios.append(PlannedIO(zone: .walPrepares, offset: layout.walPrepareOffset(slot: slot),
                                 length: sectors * sector, prng: &prng))
        }
        for slot in 0..<layout.configuration.clientsMax {
            let sectors = prng.int(in: 1...16)
            ios.append(PlannedIO(zone: .clientReplies, offset: layout.clientReplyOffset(slot: slot),
                                 length: sectors * sector, prng: &prng))
        }
        var address: UInt64 = 1
        for _ in 0..<20 {
            address += UInt64(prng.int(in: 1...40))
            ios.append(PlannedIO(zone: .grid, offset: layout.gridBlockOffset(address: address),
                                 length: layout.configuration.blockSize, prng: &prng))
        }
        return ios
    }

    @Test func concurrentWritesAndReadsRoundTripInEveryZone() throws {
        let seed: UInt64 = 0xF11E_5707
        let directory = try TemporaryDirectory()
        let path = directory.file("data")
        let file = try DataFile.create(path: path, sizeBytes: layout.sizeMin, layout: layout)
        // Fewer SQEs than IOs: full-queue flushes are part of the run.
        let io = try IOUring(entries: 16)
        let storage = FileStorage(io: io, file: file)
        let ios = plan(seed: seed)

        var written = 0
        for planned in ios {
            planned.completion.callback = { completion in
                written += 1
                #expect(completion.zone == planned.zone)
                #expect(completion.offset == planned.offset)
            }
            storage.write(planned.completion, zone: planned.zone, offset: planned.offset,
                          buffer: planned.source.readOnlyPrefix(planned.source.count))
        }
        #expect(written == 0, "callbacks never run inside write")
        #expect(io.run(until: { written == ios.count }, timeoutNs: 20_000_000_000), "seed \(seed)")

        var read = 0
        for planned in ios {
            planned.target.bytes.initializeMemory(as: UInt8.self, repeating: 0xAA)
            planned.completion.callback = { completion in
                read += 1
                #expect(completion.unreadableSectorCount == 0)
            }
            storage.read(planned.completion, zone: planned.zone, offset: planned.offset,
                         buffer: planned.target.bytes)
        }
        #expect(io.run(until: { read == ios.count }, timeoutNs: 20_000_000_000), "seed \(seed)")
        #expect(storage.inFlightCount == 0)
        for planned in ios {
            #expect(planned.source.bytes.elementsEqual(planned.target.bytes),
                    "\(planned.zone) offset \(planned.offset) reads back, seed \(seed)")
            // An independent view: the zone offsets of DataFileLayout, read with pread.
            let onDisk = readFileBytes(path, offset: layout.offset(of: planned.zone) + planned.offset,
                                       count: planned.source.count)
            #expect(planned.source.bytes.elementsEqual(onDisk),
                    "\(planned.zone) offset \(planned.offset) is where the layout says, seed \(seed)")
        }
    }

    @Test func readsPastTheEndOfTheFileReturnZeros() throws {
        let directory = try TemporaryDirectory()
        let file = try DataFile.create(path: directory.file("data"), sizeBytes: layout.sizeMin, layout: layout)
        #expect(file.sizeBytes == layout.sizeMin)
        let io = try IOUring()
        let storage = FileStorage(io: io, file: file)
        let block = layout.configuration.blockSize
        let target = AlignedBuffer(count: 3 * block)
        target.bytes.initializeMemory(as: UInt8.self, repeating: 0xAA)
        var done = false
        let completion = StorageCompletion { _ in done = true }

        // The grid starts exactly at the end of a minimal file.
        storage.read(completion, zone: .grid, offset: 0, buffer: target.bytes)
        #expect(io.run(until: { done }, timeoutNs: 5_000_000_000))
        #expect(target.bytes.allSatisfy { $0 == 0 })
        #expect(completion.unreadableSectorCount == 0)

        // One block written grows the file; a read across the new end gets it, then zeros.
        let source = AlignedBuffer(count: block)
        source.bytes.initializeMemory(as: UInt8.self, repeating: 0x5C)
        done = false
        storage.write(completion, zone: .grid, offset: 0, buffer: source.readOnlyPrefix(block))
        #expect(io.run(until: { done }, timeoutNs: 5_000_000_000))
        target.bytes.initializeMemory(as: UInt8.self, repeating: 0xAA)
        done = false
        storage.read(completion, zone: .grid, offset: 0, buffer: target.bytes)
        #expect(io.run(until: { done }, timeoutNs: 5_000_000_000))
        #expect(target.bytes[0..<block].allSatisfy { $0 == 0x5C })
        #expect(target.bytes[block...].allSatisfy { $0 == 0 })
    }

    /// A turn completes from the loop, after the IOs queued before it were handed to the
    /// kernel, and it takes a slot of the pool like any IO while in flight.
    @Test func aTurnCompletesOnALaterLoopTurn() throws {
        let directory = try TemporaryDirectory()
        let file = try DataFile.create(path: directory.file("data"), sizeBytes: layout.sizeMin, layout: layout)
        let io = try IOUring()
        let storage = FileStorage(io: io, file: file, operationCountMax: 2)
        var events: [String] = []
        let source = AlignedBuffer(count: sector)
        source.bytes.initializeMemory(as: UInt8.self, repeating: 0x3C)
        let write = StorageCompletion { _ in events.append("write") }
        let turn = StorageCompletion { _ in events.append("turn") }
        storage.write(write, zone: .walPrepares, offset: 0, buffer: source.readOnlyPrefix(sector))
        storage.nextTurn(turn)
        #expect(events.isEmpty, "callbacks never run inside nextTurn")
        #expect(turn.isBusy && storage.inFlightCount == 2)
        #expect(io.run(until: { events.contains("turn") }, timeoutNs: 5_000_000_000))
        #expect(!turn.isBusy)
        #expect(io.run(until: { events.count == 2 }, timeoutNs: 5_000_000_000))
        #expect(storage.inFlightCount == 0)
        // The slot is reusable, and a turn can be started again from its own callback.
        var again = 0
        let chained = StorageCompletion()
        chained.callback = { completion in
            again += 1
            if again < 3 { storage.nextTurn(completion) }
        }
        storage.nextTurn(chained)
        #expect(io.run(until: { again == 3 }, timeoutNs: 5_000_000_000))
        #expect(storage.inFlightCount == 0)
    }

    /// `runPollableCompletions` runs only the completions of IOs marked pollable (checked when it
    /// runs); turns, unmarked IOs and the ring's other completions wait for the loop, which
    /// then runs them all.
    @Test func pollsRunOnlyPollableCompletions() throws {
        let directory = try TemporaryDirectory()
        let file = try DataFile.create(path: directory.file("data"), sizeBytes: layout.sizeMin, layout: layout)
        let io = try IOUring()
        let storage = FileStorage(io: io, file: file, operationCountMax: 8)
        var events: [String] = []
        let block = AlignedBuffer(count: layout.configuration.blockSize)
        block.bytes.initializeMemory(as: UInt8.self, repeating: 0x5A)
        let target = AlignedBuffer(count: sector)
        let gridWrite = StorageCompletion { _ in events.append("grid write") }
        gridWrite.isPollable = true
        let walWrite = StorageCompletion { _ in events.append("wal write") }
        let gridRead = StorageCompletion { _ in events.append("grid read") }
        gridRead.isPollable = true
        let cleared = StorageCompletion { _ in events.append("cleared") }
        cleared.isPollable = true
        let turn = StorageCompletion { _ in events.append("turn") }
        turn.isPollable = true
        let nop = IOCompletion { _ in events.append("nop") }
        storage.write(gridWrite, zone: .grid, offset: layout.gridBlockOffset(address: 1),
                      buffer: block.readOnlyPrefix(block.count))
        storage.write(walWrite, zone: .walPrepares, offset: 0, buffer: block.readOnlyPrefix(sector))
        storage.read(gridRead, zone: .grid, offset: layout.gridBlockOffset(address: 9), buffer: target.prefix(sector))
        storage.read(cleared, zone: .grid, offset: layout.gridBlockOffset(address: 10), buffer: target.prefix(sector))
        cleared.isPollable = false
        storage.nextTurn(turn)
        io.nop(nop)
        #expect(events.isEmpty, "callbacks never run inside read, write or nextTurn")
        // Polls until both pollable IOs completed (the kernel finishes them in its own time).
        let deadline = SystemClock.readMonotonicNs() + 5_000_000_000
        while events.count < 2 && SystemClock.readMonotonicNs() < deadline {
            storage.runPollableCompletions()
        }
        #expect(Set(events) == ["grid write", "grid read"], "only the pollable IOs ran: \(events)")
        #expect(io.run(until: { events.count == 6 }, timeoutNs: 5_000_000_000))
        #expect(Set(events.suffix(4)) == ["wal write", "cleared", "turn", "nop"], "the loop ran the rest: \(events)")
        #expect(storage.inFlightCount == 0)
    }

    /// Writes `count` sectors of a per-sector pattern at `.walPrepares` offset 0 and returns it.
    func writePattern(_ storage: FileStorage, _ io: IOUring, sectors count: Int, seed: UInt64) -> AlignedBuffer {
        var prng = PRNG(seed: seed)
        let source = AlignedBuffer(count: count * sector)
        fillRandom(source.bytes, &prng)
        var done = false
        let completion = StorageCompletion { _ in done = true }
        storage.write(completion, zone: .walPrepares, offset: 0, buffer: source.readOnlyPrefix(source.count))
        let finished = io.run(until: { done }, timeoutNs: 5_000_000_000)
        precondition(finished, "pattern write completes")
        return source
    }

    @Test func eioIsRetriedInHalvesDownToTheBadSectors() throws {
        let directory = try TemporaryDirectory()
        let file = try DataFile.create(path: directory.file("data"), sizeBytes: layout.sizeMin, layout: layout)
        let io = try IOUring()
        let storage = FileStorage(io: io, file: file)
        let sectors = 32
        let source = writePattern(storage, io, sectors: sectors, seed: 7)

        let zoneStart = layout.offset(of: .walPrepares)
        let bad: Set<Int> = [13, 20]
        var transfers = 0
        storage.faultInjector = { isWrite, fileOffset, length, result in
            transfers += 1
            let first = Int(fileOffset - zoneStart) / Constants.sectorSize
            let last = first + length / Constants.sectorSize - 1
            return bad.contains(where: { $0 >= first && $0 <= last }) ? -EIO : result
        }
        let target = AlignedBuffer(count: sectors * sector)
        target.bytes.initializeMemory(as: UInt8.self, repeating: 0xAA)
        var done = false
        let completion = StorageCompletion { _ in done = true }
        storage.read(completion, zone: .walPrepares, offset: 0, buffer: target.bytes)
        #expect(io.run(until: { done }, timeoutNs: 5_000_000_000))
        #expect(completion.unreadableSectorCount == 2)
        for index in 0..<sectors {
            let range = (index * sector)..<((index + 1) * sector)
            if bad.contains(index) {
                #expect(target.bytes[range].allSatisfy { $0 == 0 }, "bad sector \(index) reads as zeros")
            } else {
                #expect(target.bytes[range].elementsEqual(source.bytes[range]), "good sector \(index) reads back")
            }
        }
        // Halving, not sector by sector: the whole IO, then per bad sector one failing node per
        // level (5 levels) and its good sibling per level.
        #expect(transfers <= 1 + bad.count * 2 * 5, "transfers: \(transfers)")
        #expect(transfers < sectors, "transfers: \(transfers)")
    }

    /// Random IO lengths, bad sectors, short transfers and EINTR, many rounds: the bytes and the
    /// count of unreadable sectors are always exact.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomFaultsNeverCorruptGoodSectors(seed: UInt64) throws {
        let directory = try TemporaryDirectory()
        let file = try DataFile.create(path: directory.file("data"), sizeBytes: layout.sizeMin, layout: layout)
        let io = try IOUring()
        let storage = FileStorage(io: io, file: file)
        var prng = PRNG(seed: seed)
        let zoneStart = layout.offset(of: .walPrepares)
        for round in 0..<10 {
            let sectors = prng.int(in: 1...64)
            var bad = Set<Int>()
            for _ in 0..<prng.int(in: 0...3) { bad.insert(prng.int(in: 0...(sectors - 1))) }

            // Writes see EINTR and short (sector-multiple) transfers too.
            var faults = PRNG(seed: seed &* 1_000 &+ UInt64(round))
            storage.faultInjector = { isWrite, fileOffset, length, result in
                let first = Int(fileOffset - zoneStart) / Constants.sectorSize
                let last = first + length / Constants.sectorSize - 1
                if !isWrite && bad.contains(where: { $0 >= first && $0 <= last }) { return -EIO }
                if result > 0 && faults.chance(percent: 10) { return -EINTR }
                if result > Int32(Constants.sectorSize) && faults.chance(percent: 30) {
                    let kept = faults.int(in: 1...(Int(result) / Constants.sectorSize - 1))
                    return Int32(kept * Constants.sectorSize)
                }
                return result
            }
            let source = AlignedBuffer(count: sectors * sector)
            fillRandom(source.bytes, &prng)
            var done = false
            let completion = StorageCompletion { _ in done = true }
            storage.write(completion, zone: .walPrepares, offset: 0, buffer: source.readOnlyPrefix(source.count))
            #expect(io.run(until: { done }, timeoutNs: 5_000_000_000), "seed \(seed) round \(round)")

            let target = AlignedBuffer(count: sectors * sector)
            target.bytes.initializeMemory(as: UInt8.self, repeating: 0xAA)
            done = false
            storage.read(completion, zone: .walPrepares, offset: 0, buffer: target.bytes)
            #expect(io.run(until: { done }, timeoutNs: 5_000_000_000), "seed \(seed) round \(round)")
            #expect(completion.unreadableSectorCount == bad.count, "seed \(seed) round \(round)")
            var mismatches = 0
            for index in 0..<sectors {
                let range = (index * sector)..<((index + 1) * sector)
                let expected = bad.contains(index)
                    ? target.bytes[range].allSatisfy { $0 == 0 }
                    : target.bytes[range].elementsEqual(source.bytes[range])
                if !expected { mismatches += 1 }
            }
            #expect(mismatches == 0, "seed \(seed) round \(round): \(sectors) sectors, bad \(bad.sorted())")
        }
        storage.faultInjector = nil
    }

    @Test func levelCoveringIsTheSmallestPowerOfTwo() {
        #expect(FileStorage.levelCovering(sectors: 1) == 0)
        #expect(FileStorage.levelCovering(sectors: 2) == 1)
        #expect(FileStorage.levelCovering(sectors: 3) == 2)
        #expect(FileStorage.levelCovering(sectors: 4) == 2)
        #expect(FileStorage.levelCovering(sectors: 5) == 3)
        #expect(FileStorage.levelCovering(sectors: 256) == 8)
        #expect(FileStorage.levelCovering(sectors: 257) == 9)
    }
}

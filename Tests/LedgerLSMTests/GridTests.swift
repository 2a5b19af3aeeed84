import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

@Suite struct GridTests {
    enum Outcome: Equatable {
        case block([UInt8])
        case fault(BlockFault)
    }

    /// Collects what callbacks delivered, in order.
    final class Log {
        var reads: [(address: UInt64, outcome: Outcome)] = []
        var writes: [UInt64] = []

        func outcome(of address: UInt64) -> Outcome? {
            reads.last { $0.address == address }?.outcome
        }
    }

    let layout = DataFileLayout(.testing)

    func makeStorage(seed: UInt64, latency: ClosedRange<Int> = 1...5) -> SimulatedStorage {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = latency
        options.writeLatencyTicks = latency
        return SimulatedStorage(layout: layout, seed: seed, options: options)
    }

    func makeGrid(_ storage: SimulatedStorage, cacheBlocks: Int = 64, readsMax: Int = 8, writesMax: Int = 8,
                  readQueueMax: Int = 64, callerBlocks: Int = 0) -> Grid<SimulatedStorage> {
        Grid(storage: storage, cacheBlocks: cacheBlocks, readsMax: readsMax, writesMax: writesMax,
             readQueueMax: readQueueMax, callerBlocks: callerBlocks)
    }

    /// A sealed block whose body depends on the address and the version.
    func sealedBlock(address: UInt64, version: Int = 0) -> (bytes: [UInt8], reference: BlockReference) {
        let block = AlignedBuffer(count: layout.configuration.blockSize)
        let bodySize = 100 + Int(address % 97) + version
        for index in 0..<bodySize {
            block.bytes[Constants.messageHeaderSize + index] = UInt8(truncatingIfNeeded: Int(address) &* 31 &+ index &+ version &* 7)
        }
        var metadata = BlockMetadata()
        metadata.store(UInt32(version), at: 4)
        let reference = BlockSealing.seal(
            block: block.bytes, address: address, snapshot: UInt64(version), type: .value,
            metadata: metadata, bodySize: bodySize)
        return (Array(block.bytes), reference)
    }

    func write(_ grid: Grid<SimulatedStorage>, _ block: [UInt8], log: Log) {
        block.withUnsafeBytes { bytes in
            let address = Header(from: bytes).asBlock.address
            grid.write(block: bytes) { log.writes.append(address) }
        }
    }

    func read(_ grid: Grid<SimulatedStorage>, _ reference: BlockReference, log: Log) {
        grid.read(reference) { result in
            switch result {
            case .block(let bytes): log.reads.append((reference.address, .block(Array(bytes))))
            case .fault(let fault): log.reads.append((reference.address, .fault(fault)))
            }
        }
    }

    /// Writes blocks `addresses` through a grid and waits until they are on disk.
    func writeAll(_ storage: SimulatedStorage, _ addresses: ClosedRange<UInt64>) -> [UInt64: (bytes: [UInt8], reference: BlockReference)] {
        let grid = makeGrid(storage, writesMax: 8)
        let log = Log()
        var blocks: [UInt64: (bytes: [UInt8], reference: BlockReference)] = [:]
        for address in addresses {
            let block = sealedBlock(address: address)
            blocks[address] = block
            if grid.writesAvailable == 0 { storage.run(until: { grid.writesAvailable > 0 }) }
            write(grid, block.bytes, log: log)
        }
        storage.runUntilIdle()
        #expect(log.writes.count == addresses.count)
        return blocks
    }

    @Test func writeThenReadFromWriteInFlightThenCache() {
        let storage = makeStorage(seed: 1)
        let grid = makeGrid(storage)
        let log = Log()
        let (bytes, reference) = sealedBlock(address: 3)
        write(grid, bytes, log: log)
        read(grid, reference, log: log)
        #expect(log.outcome(of: 3) == .block(bytes), "served from the write in flight, before read returns")
        #expect(grid.statistics.readsFromWrites == 1)
        #expect(log.writes.isEmpty, "the write is still in flight")
        #expect(storage.runUntilIdle())
        #expect(log.writes == [3])
        #expect(Array(storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: 3), count: bytes.count)) == bytes)
        log.reads.removeAll()
        read(grid, reference, log: log)
        #expect(log.outcome(of: 3) == .block(bytes))
        #expect(grid.statistics.readsFromCache == 1)
        #expect(grid.statistics.readsFromStorage == 0)
    }

    @Test func readFromStorageAfterEviction() {
        let storage = makeStorage(seed: 2)
        let blocks = writeAll(storage, 1...40)
        // A warm grid with a 16-block cache: after writing 40 blocks, most are evicted.
        let grid = makeGrid(storage, cacheBlocks: 16)
        let log = Log()
        for address in UInt64(1)...40 {
            if grid.writesAvailable == 0 { storage.run(until: { grid.writesAvailable > 0 }) }
            write(grid, blocks[address]!.bytes, log: log)
        }
        storage.runUntilIdle()
        for address in UInt64(1)...40 { read(grid, blocks[address]!.reference, log: log) }
        storage.runUntilIdle()
        #expect(log.reads.count == 40)
        for address in UInt64(1)...40 {
            #expect(log.outcome(of: address) == .block(blocks[address]!.bytes), "block \(address)")
        }
        #expect(grid.statistics.readsFromStorage >= 24, "at most 16 blocks were cached")
        #expect(grid.statistics.readsFromCache + grid.statistics.readsFromStorage == 40)
        #expect(grid.cache.count == 16)
        // A block read from storage is cached.
        let lastRead = log.reads.last!.address
        let cacheHits = grid.statistics.readsFromCache
        read(grid, blocks[lastRead]!.reference, log: log)
        #expect(grid.statistics.readsFromCache == cacheHits + 1)
    }

    @Test func corruptBlockIsAFault() {
        let storage = makeStorage(seed: 3)
        let blocks = writeAll(storage, 1...4)
        let grid = makeGrid(storage)
        let log = Log()
        storage.corruptSector(zone: .grid, offset: layout.gridBlockOffset(address: 3))
        let body = storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: 4), count: 4096)
        body[Constants.messageHeaderSize + 10] ^= 0x10
        read(grid, blocks[3]!.reference, log: log)
        read(grid, blocks[4]!.reference, log: log)
        read(grid, blocks[2]!.reference, log: log)
        storage.runUntilIdle()
        guard case .fault = log.outcome(of: 3) else {
            Issue.record("a flipped bit is a fault: \(String(describing: log.outcome(of: 3)))")
            return
        }
        #expect(log.outcome(of: 4) == .fault(.bodyChecksum))
        #expect(log.outcome(of: 2) == .block(blocks[2]!.bytes))
        #expect(grid.statistics.readFaults == 2)
        #expect(!grid.cache.contains(3), "a faulty block is not cached")
        #expect(!grid.cache.contains(4))
        #expect(grid.cache.contains(2))
    }

    @Test func misdirectedBlockIsAFault() {
        let storage = makeStorage(seed: 4)
        let blocks = writeAll(storage, 5...6)
        let five = storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: 5), count: 4096)
        storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: 6), count: 4096)
            .copyMemory(from: UnsafeRawBufferPointer(five))
        let grid = makeGrid(storage)
        let log = Log()
        read(grid, blocks[6]!.reference, log: log)
        storage.runUntilIdle()
        #expect(log.outcome(of: 6) == .fault(.misdirected(headerAddress: 5)))
    }

    @Test func wrongChecksumIsAFault() {
        let storage = makeStorage(seed: 5)
        let blocks = writeAll(storage, 1...2)
        let grid = makeGrid(storage)
        let log = Log()
        let wrong = BlockReference(address: 2, checksum: blocks[2]!.reference.checksum &+ 1)
        read(grid, wrong, log: log)
        storage.runUntilIdle()
        #expect(log.outcome(of: 2) == .fault(.checksumMismatch))
        // With the right block cached, a wrong reference still goes to storage and fails.
        read(grid, blocks[2]!.reference, log: log)
        storage.runUntilIdle()
        #expect(log.outcome(of: 2) == .block(blocks[2]!.bytes))
        let storageReads = grid.statistics.readsFromStorage
        read(grid, wrong, log: log)
        storage.runUntilIdle()
        #expect(log.outcome(of: 2) == .fault(.checksumMismatch))
        #expect(grid.statistics.readsFromStorage == storageReads + 1)
    }

    @Test func ioCompletesOutOfOrderAndEveryCallbackRuns() {
        let storage = makeStorage(seed: 6, latency: 1...40)
        let grid = makeGrid(storage, cacheBlocks: 16, readsMax: 4, writesMax: 32, readQueueMax: 64)
        let log = Log()
        var blocks: [UInt64: (bytes: [UInt8], reference: BlockReference)] = [:]
        for address in UInt64(1)...32 {
            blocks[address] = sealedBlock(address: address)
            write(grid, blocks[address]!.bytes, log: log)
        }
        #expect(grid.writesAvailable == 0)
        #expect(storage.runUntilIdle())
        #expect(log.writes.sorted() == Array(1...32))
        #expect(log.writes != Array(1...32), "latency reorders completions")

        // A cold grid with 4 read IOs: 28 reads wait in the queue.
        let cold = makeGrid(storage, cacheBlocks: 16, readsMax: 4, writesMax: 4, readQueueMax: 64)
        let coldLog = Log()
        for address in UInt64(1)...32 { read(cold, blocks[address]!.reference, log: coldLog) }
        #expect(cold.statistics.readsQueued == 28)
        #expect(cold.readsPending == 32)
        #expect(storage.runUntilIdle())
        #expect(coldLog.reads.count == 32)
        #expect(cold.readsPending == 0)
        for address in UInt64(1)...32 {
            #expect(coldLog.outcome(of: address) == .block(blocks[address]!.bytes), "block \(address)")
        }
        #expect(coldLog.reads.map(\.address) != Array(1...32), "latency reorders completions")
    }

    /// A read started from a read callback (the LSM walks index → value blocks this way).
    @Test func readFromACallback() {
        let storage = makeStorage(seed: 7)
        let blocks = writeAll(storage, 1...2)
        let grid = makeGrid(storage, readsMax: 1, readQueueMax: 1)
        let log = Log()
        grid.read(blocks[1]!.reference) { result in
            if case .block = result { log.reads.append((1, .block([]))) }
            self.read(grid, blocks[2]!.reference, log: log)
        }
        storage.runUntilIdle()
        #expect(log.reads.map(\.address) == [1, 2])
        #expect(log.outcome(of: 2) == .block(blocks[2]!.bytes))
    }

    /// Reads see the newest write of an address, and a stale reference never gets new bytes.
    @Test func overwriteIsCoherent() {
        let storage = makeStorage(seed: 8)
        let grid = makeGrid(storage)
        let log = Log()
        let old = sealedBlock(address: 9, version: 1)
        let new = sealedBlock(address: 9, version: 2)
        write(grid, old.bytes, log: log)
        storage.runUntilIdle()
        write(grid, new.bytes, log: log)
        read(grid, old.reference, log: log)
        #expect(log.outcome(of: 9) == .block(old.bytes), "the cache still holds the old block")
        read(grid, new.reference, log: log)
        #expect(log.outcome(of: 9) == .block(new.bytes), "the write in flight holds the new one")
        storage.runUntilIdle()
        read(grid, old.reference, log: log)
        storage.runUntilIdle()
        #expect(log.outcome(of: 9) == .fault(.checksumMismatch), "the old block is gone everywhere")
        read(grid, new.reference, log: log)
        #expect(log.outcome(of: 9) == .block(new.bytes))
    }

    /// A read that started before a write of its address does not put its (older) bytes in the
    /// cache.
    @Test func readOverlappingAWriteIsNotCached() {
        let storage = makeStorage(seed: 9)
        let old = writeAll(storage, 9...9)[9]!
        let new = sealedBlock(address: 9, version: 2)
        storage.options.readLatencyTicks = 3...3
        storage.options.writeLatencyTicks = 10...10
        let grid = makeGrid(storage)
        let log = Log()
        read(grid, old.reference, log: log)
        write(grid, new.bytes, log: log)
        storage.run(until: { !log.reads.isEmpty })
        #expect(log.outcome(of: 9) == .block(old.bytes))
        #expect(!grid.cache.contains(9), "older than the write in flight: not cached")
        storage.runUntilIdle()
        #expect(log.writes == [9])
        #expect(grid.cache.contains(9))
        read(grid, new.reference, log: log)
        #expect(log.outcome(of: 9) == .block(new.bytes))
        #expect(grid.statistics.readsFromCache == 1)
    }

    // MARK: Zero-copy buffers

    /// A block built in a borrowed buffer is written without a copy: the write in flight, then
    /// the cache, serve that very buffer, and the caller gets an idle one back.
    @Test func writeExchangingMovesTheBuffer() {
        let storage = makeStorage(seed: 10)
        let grid = makeGrid(storage, callerBlocks: 1)
        let log = Log()
        var buffer = grid.takeBlock()
        #expect(Int(bitPattern: buffer.baseAddress!) % 4096 == 0, "sector-aligned for direct IO")
        let (bytes, reference) = sealedBlock(address: 3)
        buffer.copyBytes(from: bytes)
        let written = buffer.baseAddress
        grid.write(exchanging: &buffer) { log.writes.append(3) }
        #expect(buffer.baseAddress != written, "the caller holds another buffer now")
        #expect(buffer.count == layout.configuration.blockSize)
        var served: UnsafeRawPointer?
        grid.read(reference) { result in
            if case .block(let block) = result { served = block.baseAddress }
        }
        #expect(served == UnsafeRawPointer(written), "the write in flight serves the caller's buffer")
        #expect(storage.runUntilIdle())
        #expect(log.writes == [3])
        #expect(Array(storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: 3), count: bytes.count)) == bytes)
        grid.read(reference) { result in
            if case .block(let block) = result { served = block.baseAddress }
        }
        #expect(grid.statistics.readsFromCache == 1)
        #expect(served == UnsafeRawPointer(written), "the cache took the buffer, no copy")
        // The buffer handed back is reusable for the next block.
        let next = sealedBlock(address: 4)
        buffer.copyBytes(from: next.bytes)
        grid.write(exchanging: &buffer) { log.writes.append(4) }
        #expect(storage.runUntilIdle())
        read(grid, next.reference, log: log)
        #expect(log.outcome(of: 4) == .block(next.bytes))
    }

    /// A block read from storage enters the cache without a copy: the callback sees the cache's
    /// buffer, which a later hit returns.
    @Test func readFromStorageIsCachedWithoutACopy() {
        let storage = makeStorage(seed: 11)
        let blocks = writeAll(storage, 1...3)
        let grid = makeGrid(storage, readsMax: 1)
        var first: UnsafeRawPointer?
        var second: UnsafeRawPointer?
        grid.read(blocks[2]!.reference) { result in
            if case .block(let block) = result { first = block.baseAddress }
        }
        #expect(storage.runUntilIdle())
        grid.read(blocks[2]!.reference) { result in
            if case .block(let block) = result { second = block.baseAddress }
        }
        #expect(first != nil)
        #expect(first == second, "the read's buffer became the cache slot's")
        #expect(grid.statistics.readsFromCache == 1)
        // The read IO got another buffer: the next read does not disturb block 2.
        let log = Log()
        read(grid, blocks[1]!.reference, log: log)
        #expect(storage.runUntilIdle())
        read(grid, blocks[2]!.reference, log: log)
        #expect(log.outcome(of: 1) == .block(blocks[1]!.bytes))
        #expect(log.outcome(of: 2) == .block(blocks[2]!.bytes))
    }

    @Test func writeExchangingChecksItsBuffer() async {
        await #expect(processExitsWith: .failure, "a buffer not from takeBlock() is refused") {
            let layout = DataFileLayout(.testing)
            let storage = SimulatedStorage(layout: layout, seed: 1, options: SimulatedStorage.Options())
            let grid = Grid(storage: storage, cacheBlocks: 16, readsMax: 1, writesMax: 1)
            var foreign = UnsafeMutableRawBufferPointer.allocate(byteCount: layout.configuration.blockSize, alignment: 4096)
            foreign.initializeMemory(as: UInt8.self, repeating: 0)
            _ = BlockSealing.seal(
                block: foreign, address: 1, snapshot: 0, type: .value, metadata: BlockMetadata(), bodySize: 0)
            grid.write(exchanging: &foreign) {}
        }
        await #expect(processExitsWith: .failure, "at most callerBlocks buffers are borrowed") {
            let storage = SimulatedStorage(layout: DataFileLayout(.testing), seed: 1, options: SimulatedStorage.Options())
            let grid = Grid(storage: storage, cacheBlocks: 16, readsMax: 1, writesMax: 1, callerBlocks: 1)
            _ = grid.takeBlock()
            _ = grid.takeBlock()
        }
    }

    /// Random writes (copied or exchanged, overwrites included) and reads through a small cache
    /// with reordered IO: every read of the newest reference of an address gets its bytes.
    @Test(arguments: 0..<8)
    func randomizedAgainstModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let storage = makeStorage(seed: 100 + seed, latency: 1...20)
        let grid = makeGrid(storage, cacheBlocks: 16, readsMax: 3, writesMax: 4, readQueueMax: 64, callerBlocks: 2)
        var borrowed = [grid.takeBlock(), grid.takeBlock()]
        let addressMax: UInt64 = 40
        var newest: [UInt64: (bytes: [UInt8], reference: BlockReference)] = [:]
        var writing = Set<UInt64>()
        // An overwrite makes older references unreadable (storage then holds the new block), so
        // the LSM never overwrites a block it still reads: neither does the model.
        var reading: [UInt64: Int] = [:]
        var version = 0
        var readsStarted = 0
        var readsDone = 0
        var wrong: [String] = []
        for _ in 0..<600 {
            let address = 1 + prng.below(addressMax)
            if prng.below(3) == 0 && grid.writesAvailable > 0 && !writing.contains(address) && reading[address, default: 0] == 0 {
                version += 1
                let block = sealedBlock(address: address, version: version % 50)
                newest[address] = block
                writing.insert(address)
                let done: Grid<SimulatedStorage>.WriteCallback = { writing.remove(address) }
                if prng.below(2) == 0 {
                    let index = Int(prng.below(2))
                    borrowed[index].copyBytes(from: block.bytes)
                    grid.write(exchanging: &borrowed[index], callback: done)
                } else {
                    block.bytes.withUnsafeBytes { grid.write(block: $0, callback: done) }
                }
            } else if let expected = newest[address], grid.readsAvailable > 0 {
                readsStarted += 1
                reading[address, default: 0] += 1
                grid.read(expected.reference) { result in
                    readsDone += 1
                    reading[address, default: 0] -= 1
                    switch result {
                    case .block(let bytes) where Array(bytes) == expected.bytes: break
                    default: wrong.append("block \(address): \(result)")
                    }
                }
            }
            for _ in 0..<prng.int(in: 0...3) { storage.tick() }
        }
        #expect(storage.runUntilIdle())
        #expect(wrong.isEmpty, "seed \(seed): \(wrong.prefix(3))")
        #expect(readsDone == readsStarted, "seed \(seed)")
        #expect(grid.statistics.readsFromStorage > 0, "seed \(seed): the cache is too small for all blocks")
        #expect(grid.statistics.readsFromCache > 0, "seed \(seed)")
        #expect(borrowed[0].baseAddress != borrowed[1].baseAddress, "seed \(seed)")
    }
}

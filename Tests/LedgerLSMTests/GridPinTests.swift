import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

/// Pinned reads (`Grid.readPinned`, `BlockCache.pin`) and trusted blocks (`trusted:` writes):
/// a compaction job merges input blocks in place in the cache instead of copying them, and skips
/// the order check of value blocks its own kind wrote in this process.
@Suite struct GridPinTests {
    let layout = DataFileLayout(.testing)

    // MARK: BlockCache

    /// One set of 16 ways: a pinned block survives any number of inserts, an unpinned one not.
    @Test func pinnedSlotIsNeverEvicted() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096)
        let slot = cache.insert(1)
        cache.block(slot: slot).initializeMemory(as: UInt8.self, repeating: 0xA5)
        cache.pin(slot: slot)
        #expect(cache.isPinned(slot: slot))
        #expect(cache.pinnedCount == 1)
        for address in UInt64(2)...200 { _ = cache.insert(address) }
        #expect(cache.lookup(1) == slot, "the pinned block stays in its slot")
        #expect(cache.block(slot: slot).allSatisfy { $0 == 0xA5 }, "its bytes are untouched")
        cache.unpin(slot: slot)
        #expect(cache.pinnedCount == 0)
        for address in UInt64(201)...400 { _ = cache.insert(address) }
        #expect(!cache.contains(1), "unpinned, it is evicted like any block")
    }

    @Test func tryInsertSkipsPinnedSlots() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096)
        var slots: [Int] = []
        for address in UInt64(1)...16 { slots.append(cache.insert(address)) }
        // Pin all but one way: every insert takes that way.
        for slot in slots.dropLast() { cache.pin(slot: slot) }
        let free = slots.last!
        for address in UInt64(17)...40 {
            #expect(cache.tryInsert(address) == free, "the only unpinned way is taken")
        }
        #expect(cache.tryInsert(1) == nil, "an address cached in a pinned slot is not replaced")
        cache.pin(slot: free)
        #expect(cache.tryInsert(41) == nil, "a set with every way pinned takes no block")
        #expect(cache.tryInsert(40) == nil, "nor replaces a pinned block of the same address")
        // Pins nest.
        cache.pin(slot: free)
        cache.unpin(slot: free)
        #expect(cache.isPinned(slot: free))
        cache.unpin(slot: free)
        #expect(cache.tryInsert(41) == free)
    }

    @Test func removeOfAPinnedBlockKeepsItsBytesUntilUnpinned() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096)
        for address in UInt64(1)...16 { _ = cache.insert(address) }
        let slot = cache.lookup(5)!
        cache.block(slot: slot).initializeMemory(as: UInt8.self, repeating: 7)
        cache.pin(slot: slot)
        #expect(cache.remove(5))
        #expect(!cache.contains(5))
        for address in UInt64(17)...100 { #expect(cache.tryInsert(address) != slot) }
        #expect(cache.block(slot: slot).allSatisfy { $0 == 7 })
        cache.unpin(slot: slot)
        var taken = false
        for address in UInt64(101)...200 where cache.tryInsert(address) == slot { taken = true }
        #expect(taken, "the freed slot is reused once unpinned")
    }

    @Test func trustLastsWhileTheSlotsBytesDo() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096, spareBlocks: 1)
        var spare = cache.takeSpare()
        let slot = cache.insert(3)
        spare = cache.exchange(slot: slot, with: spare)
        #expect(!cache.isTrusted(slot: slot), "an exchange leaves a slot untrusted")
        cache.markTrusted(slot: slot)
        #expect(cache.isTrusted(slot: slot))
        #expect(cache.insert(3) == slot)
        #expect(cache.isTrusted(slot: slot), "a hit changes nothing")
        spare = cache.exchange(slot: slot, with: spare)
        #expect(!cache.isTrusted(slot: slot), "new bytes are not trusted")
        cache.markTrusted(slot: slot)
        cache.remove(3)
        #expect(!cache.isTrusted(slot: slot))
        let other = cache.insert(4)
        #expect(!cache.isTrusted(slot: other), "a newly inserted address is not trusted")
    }

    // MARK: BlockSealing

    /// The padding check reads words: a single non-zero byte anywhere in the padding, at any
    /// alignment (body sizes shift where the padding starts), is still found.
    @Test func everyNonZeroPaddingByteIsFound() {
        let blockSize = layout.configuration.blockSize
        for bodySize in [0, 1, 7, 8, 13, 64, 333] {
            let block = AlignedBuffer(count: blockSize)
            for index in 0..<bodySize { block.bytes[Constants.messageHeaderSize + index] = UInt8(truncatingIfNeeded: index + 1) }
            let reference = BlockSealing.seal(
                block: block.bytes, address: 9, snapshot: 1, type: .value, metadata: BlockMetadata(), bodySize: bodySize)
            let bytes = UnsafeRawBufferPointer(block.bytes)
            #expect(BlockSealing.verify(block: bytes, expected: reference) == nil, "body \(bodySize): sealed is valid")
            let paddingStart = Constants.messageHeaderSize + bodySize
            var positions = Array(paddingStart..<min(blockSize, paddingStart + 80))
            positions += Array(stride(from: paddingStart + 80, to: blockSize - 80, by: 61))
            positions += Array((blockSize - 80)..<blockSize)
            for position in positions {
                block.bytes[position] = 0x10
                #expect(BlockSealing.verify(block: bytes, expected: reference) == .padding,
                        "body \(bodySize): a non-zero byte at \(position) is found")
                block.bytes[position] = 0
            }
        }
    }

    // MARK: Grid

    func makeStorage(seed: UInt64) -> SimulatedStorage {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...5
        options.writeLatencyTicks = 1...5
        return SimulatedStorage(layout: layout, seed: seed, options: options)
    }

    func sealedBlock(address: UInt64, version: Int = 0) -> (bytes: [UInt8], reference: BlockReference) {
        let block = AlignedBuffer(count: layout.configuration.blockSize)
        let bodySize = 64 + Int(address % 61) + version
        for index in 0..<bodySize {
            block.bytes[Constants.messageHeaderSize + index] = UInt8(truncatingIfNeeded: Int(address) &* 13 &+ index &+ version)
        }
        let reference = BlockSealing.seal(
            block: block.bytes, address: address, snapshot: 1, type: .value, metadata: BlockMetadata(), bodySize: bodySize)
        return (Array(block.bytes), reference)
    }

    final class PinnedRead {
        var bytes: [UInt8]?
        var pin: GridPin?
        var pointer: UnsafeRawPointer?
        var trusted: Bool?
        var fault: BlockFault?
        var isPinned: Bool { pin != nil }
    }

    func readPinned(_ grid: Grid<SimulatedStorage>, _ reference: BlockReference) -> PinnedRead {
        let read = PinnedRead()
        grid.readPinned(reference) { result in
            switch result {
            case .pinned(let block, let pin, let trusted):
                read.bytes = Array(block)
                read.pointer = block.baseAddress
                read.pin = pin
                read.trusted = trusted
            case .block(let block, let trusted):
                read.bytes = Array(block)
                read.trusted = trusted
            case .fault(let fault):
                read.fault = fault
            }
        }
        return read
    }

    func write(_ grid: Grid<SimulatedStorage>, _ bytes: [UInt8], trusted: Bool, done: @escaping () -> Void = {}) {
        bytes.withUnsafeBytes { grid.write(block: $0, trusted: trusted, callback: done) }
    }

    /// A pinned block stays readable, unchanged, in place while other IO churns the cache; the
    /// writer's trust is reported while the bytes stay in memory, never after a read from storage.
    @Test(arguments: [UInt64(1), 2, 3])
    func pinnedBlockStaysPutThroughChurn(seed: UInt64) {
        let storage = makeStorage(seed: seed)
        let grid = Grid(storage: storage, cacheBlocks: 16, readsMax: 4, writesMax: 4, readQueueMax: 64)
        let target = sealedBlock(address: 5)
        write(grid, target.bytes, trusted: true)
        let fromWrite = readPinned(grid, target.reference)
        #expect(fromWrite.bytes == target.bytes)
        #expect(!fromWrite.isPinned, "a write in flight's buffer is not pinned: valid during the callback")
        #expect(fromWrite.trusted == true)
        #expect(storage.runUntilIdle())

        let hit = readPinned(grid, target.reference)
        #expect(hit.isPinned, "a cache hit is pinned")
        #expect(hit.trusted == true, "the writer's trust survives into the cache")
        #expect(hit.pin?.address == 5)
        #expect(grid.cache.pinnedCount == 1)
        var prng = PRNG(seed: seed)
        // Churn: writes and reads of 60 other blocks through a 16-block cache.
        var others: [BlockReference] = []
        for address in UInt64(10)..<70 {
            let block = sealedBlock(address: address)
            others.append(block.reference)
            if grid.writesAvailable == 0 { storage.run(until: { grid.writesAvailable > 0 }) }
            write(grid, block.bytes, trusted: prng.chance(percent: 50))
        }
        #expect(storage.runUntilIdle())
        for reference in others where prng.chance(percent: 50) {
            var done = false
            grid.read(reference) { _ in done = true }
            #expect(storage.run(until: { done }))
        }
        #expect(grid.cache.contains(5), "the pinned block was never evicted")
        let pointer = hit.pointer!
        #expect(Array(UnsafeRawBufferPointer(start: pointer, count: target.bytes.count)) == target.bytes,
                "its bytes, where the pin said, are unchanged")
        let again = readPinned(grid, target.reference)
        #expect(again.pointer == pointer, "a second reader pins the same slot")
        grid.unpin(again.pin!)
        grid.unpin(hit.pin!)
        #expect(grid.cache.pinnedCount == 0)

        // Evicted now, then read from storage: pinned, but not trusted.
        for address in UInt64(100)..<140 {
            if grid.writesAvailable == 0 { storage.run(until: { grid.writesAvailable > 0 }) }
            write(grid, sealedBlock(address: address).bytes, trusted: true)
        }
        #expect(storage.runUntilIdle())
        #expect(!grid.cache.contains(5))
        let fromStorage = readPinned(grid, target.reference)
        #expect(storage.runUntilIdle())
        #expect(fromStorage.bytes == target.bytes)
        #expect(fromStorage.isPinned, "a block read from storage enters the cache pinned")
        #expect(fromStorage.trusted == false, "a block from storage is never trusted")
        grid.unpin(fromStorage.pin!)
        #expect(grid.cache.pinnedCount == 0)
    }

    /// With every way of the cache's only set pinned, writes and reads still complete: their
    /// blocks stay out of the cache and pinned readers get them unpinned.
    @Test func everyWayPinnedStillServesWritesAndReads() {
        let storage = makeStorage(seed: 9)
        let grid = Grid(storage: storage, cacheBlocks: 16, readsMax: 4, writesMax: 4, readQueueMax: 64)
        var pins: [GridPin] = []
        for address in UInt64(1)...16 {
            write(grid, sealedBlock(address: address).bytes, trusted: false)
            #expect(storage.runUntilIdle())
            let read = readPinned(grid, sealedBlock(address: address).reference)
            guard let pin = read.pin else {
                Issue.record("block \(address) is pinned")
                return
            }
            pins.append(pin)
        }
        #expect(grid.cache.pinnedCount == 16)
        let extra = sealedBlock(address: 40)
        var written = false
        write(grid, extra.bytes, trusted: true) { written = true }
        #expect(storage.run(until: { written }), "a write completes with no slot for its block")
        #expect(!grid.cache.contains(40), "kept out of the cache")
        let read = readPinned(grid, extra.reference)
        #expect(storage.runUntilIdle())
        #expect(read.bytes == extra.bytes, "read back from storage")
        #expect(!read.isPinned, "no slot to pin it in")
        #expect(read.trusted == false)
        var plain: [UInt8]?
        grid.read(extra.reference) { result in if case .block(let bytes) = result { plain = Array(bytes) } }
        #expect(storage.runUntilIdle())
        #expect(plain == extra.bytes)
        for pin in pins { grid.unpin(pin) }
        #expect(grid.cache.pinnedCount == 0)
        let cached = readPinned(grid, extra.reference)
        #expect(storage.runUntilIdle())
        #expect(cached.isPinned, "unpinned slots take blocks again")
        grid.unpin(cached.pin!)
    }

    @Test func pinnedReadOfACorruptBlockIsAFault() {
        let storage = makeStorage(seed: 4)
        let grid = Grid(storage: storage, cacheBlocks: 16, readsMax: 4, writesMax: 4, readQueueMax: 64)
        let block = sealedBlock(address: 7)
        write(grid, block.bytes, trusted: true)
        #expect(storage.runUntilIdle())
        grid.cache.remove(7)
        storage.corruptSector(zone: .grid, offset: layout.gridBlockOffset(address: 7))
        let read = readPinned(grid, block.reference)
        #expect(storage.runUntilIdle())
        #expect(read.fault != nil)
        #expect(read.bytes == nil)
        #expect(grid.cache.pinnedCount == 0, "a fault pins nothing")
    }

    // MARK: Compaction

    /// Jobs read their inputs pinned and leave nothing pinned when a half-bar ends; value blocks
    /// they write are trusted in the cache, index blocks not; answers match the model.
    @Test(arguments: [UInt64(61), 62])
    func compactionReleasesItsPinsAndTrustsItsValueBlocks(seed: UInt64) {
        let configuration = TreeHarness<CompositeKey64>.configuration(
            valuesPerBeatMax: 120, levelCount: 4, growthFactor: 2)
        let harness = TreeHarness<CompositeKey64>(storageSeed: seed, configuration: configuration, cacheBlocks: 32)
        var prng = PRNG(seed: seed)
        let ops = configuration.compactionOps
        var trustedValueBlocks = 0
        for op in 0..<(30 * ops) {
            for _ in 0..<prng.int(in: 1...configuration.valuesPerBeatMax) {
                let key = CompositeKey64(field: prng.below(150), timestamp: prng.below(100))
                harness.put(prng.chance(percent: 25) ? CompositeKey64.tombstone(key: key) : key)
            }
            guard harness.commit() else {
                Issue.record("seed \(seed) op \(op): the beat ended")
                return
            }
            for level in 0..<configuration.manifest.levelCount {
                let tables = harness.tree.manifest.level(level)
                for index in 0..<tables.count {
                    let table = tables.table(at: index)
                    if let slot = harness.grid.cache.lookup(table.address) {
                        #expect(!harness.grid.cache.isTrusted(slot: slot), "index blocks are not trusted")
                        let indexBytes = UnsafeRawBufferPointer(harness.grid.cache.block(slot: slot))
                        if let decoded = try? IndexBlock<CompositeKey64>.decode(block: indexBytes, treeId: 9) {
                            for entry in 0..<decoded.valueBlockCount {
                                if let valueSlot = harness.grid.cache.lookup(decoded.reference(entry).address),
                                    harness.grid.cache.isTrusted(slot: valueSlot)
                                {
                                    trustedValueBlocks += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        // Finish the bar: every half-bar is over, so no job holds a pin.
        while (harness.op + 1) % UInt64(ops) != 0 {
            guard harness.commit() else {
                Issue.record("seed \(seed): the beat ended")
                return
            }
        }
        #expect(harness.grid.cache.pinnedCount == 0, "seed \(seed): no pin outlives its half-bar")
        #expect(trustedValueBlocks > 0, "seed \(seed): value blocks a job wrote are trusted while cached")
        for (key, value) in harness.model {
            guard case .found(let found)? = harness.lookup(key) else {
                Issue.record("seed \(seed): \(key) found")
                return
            }
            #expect(found == value)
        }
    }
}

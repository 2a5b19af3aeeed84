import LedgerKit
import LedgerLSM
import Testing

@Suite struct BlockCacheTests {
    @Test func lookupAfterInsert() {
        let cache = BlockCache(capacityBlocks: 64, blockSize: 4096)
        #expect(cache.lookup(7) == nil)
        let slot = cache.insert(7)
        #expect(cache.lookup(7) == slot)
        #expect(cache.address(slot: slot) == 7)
        #expect(cache.count == 1)
        #expect(cache.insert(7) == slot, "inserting a cached address keeps its slot")
        #expect(cache.count == 1)
        // Each slot has its own bytes.
        let other = cache.insert(8)
        #expect(other != slot)
        cache.block(slot: slot).initializeMemory(as: UInt8.self, repeating: 1)
        cache.block(slot: other).initializeMemory(as: UInt8.self, repeating: 2)
        #expect(cache.block(slot: slot).allSatisfy { $0 == 1 })
        #expect(cache.block(slot: other).allSatisfy { $0 == 2 })
        #expect(cache.block(slot: slot).count == 4096)
    }

    @Test func remove() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096)
        _ = cache.insert(3)
        #expect(cache.remove(3))
        #expect(!cache.remove(3))
        #expect(cache.lookup(3) == nil)
        #expect(cache.count == 0)
    }

    @Test func capacityIsBounded() {
        let cache = BlockCache(capacityBlocks: 32, blockSize: 4096)
        for address in UInt64(1)...1000 {
            let slot = cache.insert(address)
            #expect(cache.address(slot: slot) == address)
            #expect(cache.lookup(address) == slot, "the block just inserted is cached")
            #expect(cache.count <= 32)
        }
        #expect(cache.count == 32, "a full cache stays full")
        let present = (UInt64(1)...1000).filter { cache.contains($0) }
        #expect(present.count == 32)
    }

    /// One set (16 ways): a block hit since the last sweep survives the next eviction.
    @Test func clockGivesASecondChance() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096)
        for address in UInt64(1)...16 { _ = cache.insert(address) }
        _ = cache.lookup(1)
        _ = cache.insert(17)
        #expect(cache.contains(1), "recently used: second chance")
        #expect(!cache.contains(2), "the oldest unused block goes")
        #expect(cache.contains(17))
        #expect(cache.count == 16)
        // Block 1 used its chance: the sweep lowered its count to zero; without new hits it
        // goes when the hand comes round, before block 17, which was inserted after it.
        for address in UInt64(18)...32 { _ = cache.insert(address) }
        #expect(!cache.contains(1), "no hit since: evicted")
        #expect(cache.contains(17))
    }

    @Test func hotBlocksSurviveAScan() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096)
        for address in UInt64(1)...16 { _ = cache.insert(address) }
        for address in UInt64(100)...200 {
            _ = cache.lookup(1)
            _ = cache.lookup(2)
            _ = cache.insert(address)
        }
        #expect(cache.contains(1))
        #expect(cache.contains(2))
    }

    /// Whatever the operations, a present block was inserted and not removed since, the count
    /// matches, and the last insert is present.
    @Test(arguments: 0..<20)
    func randomizedAgainstModel(seed: Int) {
        var prng = PRNG(seed: UInt64(seed))
        let capacity = 16 * prng.int(in: 1...8)
        let cache = BlockCache(capacityBlocks: capacity, blockSize: 4096)
        var inserted = Set<UInt64>()
        let addressMax = UInt64(capacity * 4)
        for _ in 0..<3000 {
            let address = 1 + prng.below(addressMax)
            switch prng.below(10) {
            case 0..<5:
                let slot = cache.insert(address)
                inserted.insert(address)
                #expect(cache.address(slot: slot) == address, "seed \(seed)")
            case 5..<8:
                if let slot = cache.lookup(address) {
                    #expect(inserted.contains(address), "seed \(seed)")
                    #expect(cache.address(slot: slot) == address, "seed \(seed)")
                }
            default:
                let removed = cache.remove(address)
                #expect(!removed || inserted.contains(address), "seed \(seed)")
                inserted.remove(address)
                #expect(!cache.contains(address), "seed \(seed)")
            }
        }
        let present = (1...addressMax).filter { cache.contains($0) }
        #expect(present.allSatisfy { inserted.contains($0) }, "seed \(seed)")
        #expect(present.count == cache.count, "seed \(seed)")
        #expect(cache.count <= capacity, "seed \(seed)")
        // Slots are distinct.
        let slots = Set(present.map { cache.lookup($0)! })
        #expect(slots.count == present.count, "seed \(seed)")
    }

    /// A lent buffer moves into a slot without a copy; the slot's former buffer is lent instead.
    @Test func exchangeMovesBuffers() {
        let cache = BlockCache(capacityBlocks: 16, blockSize: 4096, spareBlocks: 2)
        let spare = cache.takeSpare()
        let other = cache.takeSpare()
        #expect(spare.baseAddress != other.baseAddress)
        #expect(Int(bitPattern: spare.baseAddress!) % 4096 == 0, "IO buffers are sector-aligned")
        #expect(cache.isLent(UnsafeRawBufferPointer(spare)))
        let slot = cache.insert(5)
        cache.block(slot: slot).initializeMemory(as: UInt8.self, repeating: 1)
        let former = cache.block(slot: slot)
        #expect(!cache.isLent(UnsafeRawBufferPointer(former)), "a slot's buffer is not lent")
        spare.initializeMemory(as: UInt8.self, repeating: 7)
        let returned = cache.exchange(slot: slot, with: spare)
        #expect(returned.baseAddress == former.baseAddress, "the slot's former buffer comes back")
        #expect(cache.block(slot: slot).baseAddress == spare.baseAddress, "no copy: the slot names the buffer")
        #expect(cache.block(slot: slot).allSatisfy { $0 == 7 })
        #expect(cache.lookup(5) == slot)
        #expect(cache.isLent(UnsafeRawBufferPointer(returned)))
        #expect(!cache.isLent(UnsafeRawBufferPointer(spare)))
        // A buffer the cache does not own is not lent (and `exchange` would trap on it).
        let foreign = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { foreign.deallocate() }
        #expect(!cache.isLent(UnsafeRawBufferPointer(foreign)))
        #expect(!cache.isLent(UnsafeRawBufferPointer(rebasing: returned[1...])), "only whole buffers")
    }

    @Test func exchangeRejectsBuffersNotLent() async {
        await #expect(processExitsWith: .failure, "a buffer in a slot cannot be exchanged into another") {
            let cache = BlockCache(capacityBlocks: 16, blockSize: 4096, spareBlocks: 1)
            let first = cache.insert(1)
            let second = cache.insert(2)
            _ = cache.exchange(slot: second, with: cache.block(slot: first))
        }
        await #expect(processExitsWith: .failure, "a foreign buffer cannot be exchanged") {
            let cache = BlockCache(capacityBlocks: 16, blockSize: 4096, spareBlocks: 1)
            let foreign = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
            _ = cache.exchange(slot: cache.insert(1), with: foreign)
        }
        await #expect(processExitsWith: .failure, "a spare is lent once") {
            let cache = BlockCache(capacityBlocks: 16, blockSize: 4096, spareBlocks: 1)
            _ = cache.takeSpare()
            _ = cache.takeSpare()
        }
        await #expect(processExitsWith: .failure, "a buffer lent back is not exchanged twice") {
            let cache = BlockCache(capacityBlocks: 16, blockSize: 4096, spareBlocks: 1)
            let spare = cache.takeSpare()
            _ = cache.exchange(slot: cache.insert(1), with: spare)
            _ = cache.exchange(slot: cache.insert(2), with: spare)
        }
    }

    /// Randomized exchanges: buffers stay a permutation (each slot and each lent buffer distinct,
    /// every buffer in exactly one place), and a slot keeps the bytes last put in it.
    @Test(arguments: 0..<10)
    func randomizedExchangesKeepBuffersDistinct(seed: Int) {
        var prng = PRNG(seed: UInt64(seed))
        let capacity = 16 * prng.int(in: 1...4)
        let spareCount = prng.int(in: 1...6)
        let cache = BlockCache(capacityBlocks: capacity, blockSize: 4096, spareBlocks: spareCount)
        var lent = (0..<spareCount).map { _ in cache.takeSpare() }
        var marks: [UInt64: UInt8] = [:]
        for step in 0..<2000 {
            let address = 1 + prng.below(UInt64(capacity * 3))
            let slot = cache.insert(address)
            let index = prng.int(in: 0...(spareCount - 1))
            let mark = UInt8(truncatingIfNeeded: step)
            lent[index].storeBytes(of: mark, toByteOffset: 100, as: UInt8.self)
            lent[index] = cache.exchange(slot: slot, with: lent[index])
            marks[address] = mark
        }
        var starts = Set<UnsafeMutableRawPointer>()
        for slot in 0..<capacity { starts.insert(cache.block(slot: slot).baseAddress!) }
        for buffer in lent {
            starts.insert(buffer.baseAddress!)
            #expect(cache.isLent(UnsafeRawBufferPointer(buffer)), "seed \(seed)")
        }
        #expect(starts.count == capacity + spareCount, "seed \(seed): every buffer in one place")
        for (address, mark) in marks {
            guard let slot = cache.lookup(address) else { continue }
            #expect(cache.block(slot: slot)[100] == mark, "seed \(seed): block \(address)")
        }
    }
}

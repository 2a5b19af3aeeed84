import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

@Suite struct IndexBlockTests {
    @Test func capacityMath() {
        // CompositeKey64 keys: 16 + 16 + 8 + 16 = 56 bytes an entry.
        #expect(IndexBlock<CompositeKey64>.entrySize == 56)
        #expect(IndexBlock<CompositeKey64>.capacity(blockSize: smallBlockSize) == (4096 - 256) / 56)
        #expect(IndexBlock<CompositeKey64>.capacity(blockSize: productionBlockSize) == 9357)
        // u64 keys (object trees): 40 bytes an entry.
        #expect(IndexBlock<TestObject>.entrySize == 40)
        #expect(IndexBlock<TestObject>.capacity(blockSize: smallBlockSize) == 96)
        #expect(IndexBlock<TestObject>.capacity(blockSize: productionBlockSize) == 13_100)
        // CompositeKey128 keys: 24 + 24 + 8 + 16 = 72 bytes.
        #expect(IndexBlock<CompositeKey128>.capacity(blockSize: productionBlockSize) == (512 * 1024 - 256) / 72)
        // The transfers table (≈64 value blocks) fits many times over.
        #expect(IndexBlock<TestObject>.capacity(blockSize: productionBlockSize) >= 64)
    }

    /// `count` entries over ascending u64 keys: entry i spans two consecutive keys.
    struct Entries {
        var keysMin: [UInt64] = []
        var keysMax: [UInt64] = []
        var references: [BlockReference] = []
    }

    func entries(_ count: Int, prng: inout PRNG) -> Entries {
        let keys = ascendingKeys(2 * count, prng: &prng)
        var result = Entries()
        for index in 0..<count {
            result.keysMin.append(keys[2 * index])
            // Some value blocks hold one key (min == max).
            result.keysMax.append(prng.chance(percent: 20) ? keys[2 * index] : keys[2 * index + 1])
            result.references.append(BlockReference(address: 1 + prng.below(1000), checksum: prng.uint128()))
        }
        return result
    }

    func seal(_ entries: Entries, valueCount: Int, buffer: AlignedBuffer, address: UInt64 = 77) -> BlockReference {
        entries.keysMin.withUnsafeBufferPointer { keysMin in
            entries.keysMax.withUnsafeBufferPointer { keysMax in
                entries.references.withUnsafeBufferPointer { references in
                    IndexBlock<TestObject>.seal(
                        block: buffer.bytes, treeId: 18, keysMin: keysMin, keysMax: keysMax,
                        references: references, valueCount: valueCount, snapshotMin: 42, address: address,
                        snapshot: 40)
                }
            }
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func roundTripAndLookups(seed: UInt64) throws {
        var prng = PRNG(seed: seed)
        // Odd and even counts: an odd count leaves the checksums 8-byte aligned only.
        let count = prng.int(in: 1...IndexBlock<TestObject>.capacity(blockSize: smallBlockSize))
        let model = entries(count, prng: &prng)
        let buffer = AlignedBuffer(count: smallBlockSize)
        let reference = seal(model, valueCount: count * 7, buffer: buffer)
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        #expect(BlockSealing.verify(block: bytes, expected: reference) == nil, "seed \(seed)")
        let index = try IndexBlock<TestObject>.decode(block: bytes, treeId: 18)
        #expect(index.valueBlockCount == count, "seed \(seed)")
        #expect(index.valueCount == UInt32(count * 7))
        #expect(index.snapshotMin == 42)
        #expect(index.treeId == 18)
        #expect(index.keyMin == model.keysMin[0])
        #expect(index.keyMax == model.keysMax[count - 1])
        for entry in 0..<count {
            #expect(index.reference(entry) == model.references[entry], "seed \(seed) entry \(entry)")
            #expect(index.keysMin[entry] == model.keysMin[entry])
            #expect(index.keysMax[entry] == model.keysMax[entry])
        }
        // Every key from below the first to beyond the last, against a linear model.
        let last = model.keysMax[count - 1] + 2
        for key in 0...last {
            let holder = (0..<count).first { model.keysMin[$0] <= key && key <= model.keysMax[$0] }
            #expect(index.valueBlockIndex(for: key) == holder, "seed \(seed) key \(key)")
            let first = (0..<count).first { model.keysMax[$0] >= key } ?? count
            #expect(index.firstValueBlock(keyMaxAtLeast: key) == first, "seed \(seed) key \(key)")
            let lastBlock = (0..<count).last { model.keysMin[$0] <= key }
            #expect(index.lastValueBlock(keyMinAtMost: key) == lastBlock, "seed \(seed) key \(key)")
        }
    }

    @Test func flippedBitsAreFaults() {
        var prng = PRNG(seed: 8)
        let buffer = AlignedBuffer(count: smallBlockSize)
        let reference = seal(entries(33, prng: &prng), valueCount: 100, buffer: buffer)
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        for _ in 0..<512 {
            let offset = prng.int(in: 0...(smallBlockSize - 1))
            let bit = UInt8(1) << UInt8(prng.below(8))
            buffer.bytes[offset] ^= bit
            #expect(BlockSealing.verify(block: bytes, expected: reference) != nil, "offset \(offset)")
            buffer.bytes[offset] ^= bit
        }
        #expect(BlockSealing.verify(block: bytes, expected: reference) == nil)
    }

    @Test func mismatchesAreTypedErrors() {
        var prng = PRNG(seed: 9)
        let buffer = AlignedBuffer(count: smallBlockSize)
        _ = seal(entries(5, prng: &prng), valueCount: 5, buffer: buffer)
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        #expect(throws: TableBlockError.treeId(found: 18)) { try IndexBlock<TestObject>.decode(block: bytes, treeId: 7) }
        #expect(throws: TableBlockError.keySize(found: 8)) { try IndexBlock<CompositeKey64>.decode(block: bytes, treeId: 18) }
        #expect(throws: TableBlockError.blockType(found: BlockType.index.rawValue)) {
            try ValueBlock<TestObject>.decode(block: bytes, treeId: 18)
        }
    }

    /// An index block of u64 keys sealed from raw parts, checksums valid: what a buggy or
    /// hostile writer could leave.
    func forged(
        keysMin: [UInt64], keysMax: [UInt64], addresses: [UInt64], valueCount: UInt32? = nil,
        bodyEntries: Int? = nil, edit: (inout BlockMetadata) -> Void = { _ in }
    ) -> AlignedBuffer {
        let count = keysMin.count
        let buffer = AlignedBuffer(count: smallBlockSize)
        let body = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[256...])
        for index in 0..<count {
            body.storeBytes(of: keysMin[index], toByteOffset: index * 8, as: UInt64.self)
            body.storeBytes(of: keysMax[index], toByteOffset: (count + index) * 8, as: UInt64.self)
            body.storeBytes(of: addresses[index], toByteOffset: (2 * count + index) * 8, as: UInt64.self)
        }
        var metadata = BlockMetadata()
        metadata.store(UInt16(18), at: 0)
        metadata.store(UInt32(8), at: 4)
        metadata.store(UInt32(count), at: 8)
        metadata.store(valueCount ?? UInt32(count), at: 12)
        edit(&metadata)
        _ = BlockSealing.seal(
            block: buffer.bytes, address: 5, snapshot: 1, type: .index, metadata: metadata,
            bodySize: (bodyEntries ?? count) * 40)
        return buffer
    }

    @Test func forgedEntriesAreTypedErrors() throws {
        func decode(_ buffer: AlignedBuffer) throws(TableBlockError) {
            _ = try IndexBlock<TestObject>.decode(block: UnsafeRawBufferPointer(buffer.bytes), treeId: 18)
        }
        try decode(forged(keysMin: [1, 5, 9], keysMax: [3, 5, 12], addresses: [1, 2, 3]))
        #expect(throws: TableBlockError.order(index: 1)) {
            try decode(forged(keysMin: [1, 3, 9], keysMax: [3, 5, 12], addresses: [1, 2, 3]))
        }
        #expect(throws: TableBlockError.order(index: 2)) {
            try decode(forged(keysMin: [1, 5, 13], keysMax: [3, 5, 12], addresses: [1, 2, 3]))
        }
        #expect(throws: TableBlockError.nullAddress(index: 1)) {
            try decode(forged(keysMin: [1, 5, 9], keysMax: [3, 5, 12], addresses: [1, 0, 3]))
        }
        #expect(throws: TableBlockError.count(found: 0)) {
            try decode(forged(keysMin: [], keysMax: [], addresses: [], valueCount: 1))
        }
        #expect(throws: TableBlockError.count(found: 2)) {
            try decode(forged(keysMin: [1, 5, 9], keysMax: [3, 5, 12], addresses: [1, 2, 3], valueCount: 2))
        }
        #expect(throws: TableBlockError.count(found: 3 * 30 + 1)) {
            try decode(forged(keysMin: [1, 5, 9], keysMax: [3, 5, 12], addresses: [1, 2, 3], valueCount: 91))
        }
        #expect(throws: TableBlockError.count(found: 97)) {
            try decode(forged(keysMin: [1], keysMax: [3], addresses: [1]) { $0.store(UInt32(97), at: 8) })
        }
        #expect(throws: TableBlockError.size(found: 256 + 40)) {
            try decode(forged(keysMin: [1], keysMax: [3], addresses: [1], valueCount: 2) { $0.store(UInt32(2), at: 8) })
        }
        #expect(throws: TableBlockError.size(found: 256 + 80)) {
            try decode(forged(keysMin: [1], keysMax: [3], addresses: [1], bodyEntries: 2))
        }
        #expect(throws: TableBlockError.reserved) {
            try decode(forged(keysMin: [1], keysMax: [3], addresses: [1]) { $0.store(UInt8(1), at: 24) })
        }
        #expect(throws: TableBlockError.reserved) {
            try decode(forged(keysMin: [1], keysMax: [3], addresses: [1]) { $0.store(UInt16(1), at: 2) })
        }
    }
}

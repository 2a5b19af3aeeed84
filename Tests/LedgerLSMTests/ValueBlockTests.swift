import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

/// A 128-byte object-tree value, like `Account` and `Transfer`: keyed by timestamp.
struct TestObject: TreeValue {
    var timestamp: UInt64
    /// Bit 0: tombstone.
    var flags: UInt64
    var payload: (UInt128, UInt128, UInt128, UInt128, UInt128, UInt128, UInt128)

    init(timestamp: UInt64, payload: UInt128 = 0) {
        self.timestamp = timestamp
        self.flags = 0
        self.payload = (payload, 0, 0, 0, 0, 0, payload)
    }

    var key: UInt64 { timestamp }
    var isTombstone: Bool { flags & 1 != 0 }

    static func tombstone(key: UInt64) -> TestObject {
        var value = TestObject(timestamp: key)
        value.flags = 1
        return value
    }
}

/// Whether two values are the same bytes.
func sameBytes<T: BitwiseCopyable>(_ a: T, _ b: T) -> Bool {
    withUnsafeBytes(of: a) { x in withUnsafeBytes(of: b) { y in x.elementsEqual(y) } }
}

/// `count` strictly ascending u64 keys with gaps, so `key + 1` is never a key.
func ascendingKeys(_ count: Int, prng: inout PRNG) -> [UInt64] {
    var keys: [UInt64] = []
    keys.reserveCapacity(count)
    var key = 1 + prng.below(10)
    for _ in 0..<count {
        keys.append(key)
        key += 2 + prng.below(5)
    }
    return keys
}

let smallBlockSize = 4096
let productionBlockSize = 512 * 1024

@Suite struct ValueBlockTests {
    @Test func capacityMath() {
        #expect(TestObject.valueSize == 128)
        #expect(ValueBlock<TestObject>.capacity(blockSize: productionBlockSize) == 4094)
        #expect(ValueBlock<CompositeKey64>.capacity(blockSize: productionBlockSize) == (512 * 1024 - 256) / 16)
        #expect(ValueBlock<CompositeKey64>.capacity(blockSize: productionBlockSize) == 32_752)
        #expect(ValueBlock<CompositeKey128>.capacity(blockSize: productionBlockSize) == (512 * 1024 - 256) / 24)
        #expect(ValueBlock<IdTreeValue>.capacity(blockSize: productionBlockSize) == 16_376)
        #expect(ValueBlock<TestObject>.capacity(blockSize: smallBlockSize) == 30)
        #expect(ValueBlock<CompositeKey64>.capacity(blockSize: smallBlockSize) == 240)
    }

    /// A sealed block of `keys` as `CompositeKey64` values (field = key / 7).
    func sealedBlock(_ keys: [UInt64], treeId: UInt16 = 9, address: UInt64 = 3) -> (AlignedBuffer, BlockReference, [CompositeKey64]) {
        let buffer = AlignedBuffer(count: smallBlockSize)
        let body = ValueBlock<CompositeKey64>.body(of: buffer.bytes)
        #expect(body.count == 240)
        var values: [CompositeKey64] = []
        for (index, key) in keys.enumerated() {
            var value = CompositeKey64(field: key / 7, timestamp: key)
            if key % 5 == 0 { value = CompositeKey64.tombstone(key: value) }
            body[index] = value
            values.append(value)
        }
        let reference = ValueBlock<CompositeKey64>.seal(
            block: buffer.bytes, treeId: treeId, valueCount: keys.count, address: address, snapshot: 11)
        return (buffer, reference, values)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func roundTripAndLookups(seed: UInt64) throws {
        var prng = PRNG(seed: seed)
        let count = prng.int(in: 1...240)
        let keys = ascendingKeys(count, prng: &prng)
        let (buffer, reference, values) = sealedBlock(keys)
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        #expect(BlockSealing.verify(block: bytes, expected: reference) == nil, "seed \(seed)")
        let block = try ValueBlock<CompositeKey64>.decode(block: bytes, treeId: 9)
        #expect(block.values.count == count, "seed \(seed)")
        try block.checkOrder()
        #expect(block.keyMin == values[0].key)
        #expect(block.keyMax == values[count - 1].key)
        for (index, value) in values.enumerated() {
            let found = block.find(value.key)
            #expect(found.map { sameBytes($0, value) } == true, "seed \(seed) index \(index)")
            #expect(block.lowerBound(value.key) == index, "seed \(seed)")
            let absent = CompositeKey64(field: (keys[index] + 1) / 7, timestamp: keys[index] + 1)
            #expect(block.find(absent) == nil, "seed \(seed) absent \(keys[index] + 1)")
            #expect(block.lowerBound(absent) == index + 1, "seed \(seed)")
        }
        #expect(block.find(CompositeKey64(field: 0, timestamp: 0)) == nil)
        #expect(block.lowerBound(CompositeKey64(field: .max, timestamp: 1)) == count)
    }

    @Test func everyFlippedByteIsAFault() {
        var prng = PRNG(seed: 77)
        let (buffer, reference, _) = sealedBlock(ascendingKeys(100, prng: &prng))
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        for offset in 0..<smallBlockSize {
            let bit = UInt8(1) << UInt8(prng.below(8))
            buffer.bytes[offset] ^= bit
            #expect(BlockSealing.verify(block: bytes, expected: reference) != nil, "offset \(offset)")
            buffer.bytes[offset] ^= bit
        }
        #expect(BlockSealing.verify(block: bytes, expected: reference) == nil)
    }

    @Test func metadataMismatchesAreTypedErrors() {
        var prng = PRNG(seed: 5)
        let (buffer, _, _) = sealedBlock(ascendingKeys(20, prng: &prng))
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        #expect(throws: TableBlockError.treeId(found: 9)) {
            try ValueBlock<CompositeKey64>.decode(block: bytes, treeId: 10)
        }
        #expect(throws: TableBlockError.valueSize(found: 16)) {
            try ValueBlock<IdTreeValue>.decode(block: bytes, treeId: 9)
        }
        #expect(throws: TableBlockError.blockType(found: BlockType.value.rawValue)) {
            try IndexBlock<CompositeKey64>.decode(block: bytes, treeId: 9)
        }
        let zeros = AlignedBuffer(count: smallBlockSize)
        #expect(throws: TableBlockError.notABlock(command: 0)) {
            try ValueBlock<CompositeKey64>.decode(block: UnsafeRawBufferPointer(zeros.bytes), treeId: 9)
        }
    }

    /// Seals a value block of 20 values whose metadata is `edit`ed: checksums verify, content lies.
    func forgedBlock(bodyValues: Int = 20, _ edit: (inout BlockMetadata) -> Void) -> AlignedBuffer {
        let buffer = AlignedBuffer(count: smallBlockSize)
        let body = ValueBlock<CompositeKey64>.body(of: buffer.bytes)
        for index in 0..<bodyValues { body[index] = CompositeKey64(field: 1, timestamp: UInt64(index)) }
        var metadata = ValueBlock<CompositeKey64>.metadata(treeId: 9, valueCount: 20)
        edit(&metadata)
        _ = BlockSealing.seal(
            block: buffer.bytes, address: 4, snapshot: 1, type: .value, metadata: metadata,
            bodySize: bodyValues * 16)
        return buffer
    }

    @Test func forgedMetadataIsATypedError() throws {
        func decode(_ buffer: AlignedBuffer) throws(TableBlockError) {
            _ = try ValueBlock<CompositeKey64>.decode(block: UnsafeRawBufferPointer(buffer.bytes), treeId: 9)
        }
        try decode(forgedBlock { _ in })
        #expect(throws: TableBlockError.count(found: 0)) { try decode(forgedBlock { $0.store(UInt32(0), at: 8) }) }
        #expect(throws: TableBlockError.count(found: 241)) { try decode(forgedBlock { $0.store(UInt32(241), at: 8) }) }
        #expect(throws: TableBlockError.count(found: .max)) { try decode(forgedBlock { $0.store(UInt32.max, at: 8) }) }
        #expect(throws: TableBlockError.size(found: 256 + 20 * 16)) { try decode(forgedBlock { $0.store(UInt32(21), at: 8) }) }
        #expect(throws: TableBlockError.size(found: 256 + 19 * 16)) { try decode(forgedBlock(bodyValues: 19) { _ in }) }
        #expect(throws: TableBlockError.reserved) { try decode(forgedBlock { $0.store(UInt16(1), at: 2) }) }
        #expect(throws: TableBlockError.reserved) { try decode(forgedBlock { $0.store(UInt8(1), at: 95) }) }
        #expect(throws: TableBlockError.valueSize(found: 0)) { try decode(forgedBlock { $0.store(UInt32(0), at: 4) }) }
    }

    @Test func outOfOrderValuesAreFoundByCheckOrder() throws {
        let buffer = AlignedBuffer(count: smallBlockSize)
        let body = ValueBlock<CompositeKey64>.body(of: buffer.bytes)
        for index in 0..<10 { body[index] = CompositeKey64(field: 1, timestamp: UInt64(index)) }
        body[6] = CompositeKey64(field: 1, timestamp: 5)  // a duplicate key
        _ = BlockSealing.seal(
            block: buffer.bytes, address: 4, snapshot: 1, type: .value,
            metadata: ValueBlock<CompositeKey64>.metadata(treeId: 9, valueCount: 10), bodySize: 160)
        let block = try ValueBlock<CompositeKey64>.decode(block: UnsafeRawBufferPointer(buffer.bytes), treeId: 9)
        #expect(throws: TableBlockError.order(index: 6)) { try block.checkOrder() }
    }

    @Test func objectValuesRoundTrip() throws {
        let buffer = AlignedBuffer(count: smallBlockSize)
        let body = ValueBlock<TestObject>.body(of: buffer.bytes)
        for index in 0..<30 { body[index] = TestObject(timestamp: UInt64(10 + 3 * index), payload: UInt128(index) << 64) }
        let reference = ValueBlock<TestObject>.seal(
            block: buffer.bytes, treeId: 18, valueCount: 30, address: 1, snapshot: 1)
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        #expect(BlockSealing.verify(block: bytes, expected: reference) == nil)
        let block = try ValueBlock<TestObject>.decode(block: bytes, treeId: 18)
        #expect(block.find(13)?.payload.6 == UInt128(1) << 64)
        #expect(block.find(14) == nil)
        #expect(block.find(97)?.timestamp == 97)
        #expect(block.find(100) == nil)
    }
}

import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

@Suite struct BlockSealingTests {
    func sealedBlock(address: UInt64 = 5) -> (AlignedBuffer, BlockReference) {
        let block = AlignedBuffer(count: 4096)
        for index in 0..<100 { block.bytes[Constants.messageHeaderSize + index] = UInt8(index) }
        var metadata = BlockMetadata()
        metadata.store(UInt16(7), at: 0)
        metadata.store(UInt32(128), at: 4)
        let reference = BlockSealing.seal(
            block: block.bytes, address: address, snapshot: 3, type: .value, metadata: metadata, bodySize: 100)
        return (block, reference)
    }

    @Test func sealThenVerify() {
        let (block, reference) = sealedBlock()
        #expect(reference.address == 5)
        #expect(BlockSealing.verify(block: UnsafeRawBufferPointer(block.bytes), expected: reference) == nil)
        let header = Header(from: UnsafeRawBufferPointer(block.bytes)).asBlock
        #expect(header.snapshot == 3)
        #expect(header.blockType == BlockType.value.rawValue)
        #expect(BlockMetadata(header.metadata).load(UInt16.self, at: 0) == 7)
        #expect(BlockMetadata(header.metadata).load(UInt32.self, at: 4) == 128)
    }

    @Test func everyFaultIsNamed() {
        let (block, reference) = sealedBlock()
        let bytes = UnsafeRawBufferPointer(block.bytes)
        #expect(BlockSealing.verify(block: bytes, expected: BlockReference(address: 5, checksum: reference.checksum &+ 1)) == .checksumMismatch)
        #expect(BlockSealing.verify(block: bytes, expected: BlockReference(address: 6, checksum: reference.checksum)) == .misdirected(headerAddress: 5))
        block.bytes[Constants.messageHeaderSize + 3] ^= 1
        #expect(BlockSealing.verify(block: bytes, expected: reference) == .bodyChecksum)
        block.bytes[Constants.messageHeaderSize + 3] ^= 1
        block.bytes[4000] = 1
        #expect(BlockSealing.verify(block: bytes, expected: reference) == .padding)
        block.bytes[4000] = 0
        block.bytes[20] ^= 0x80
        #expect(BlockSealing.verify(block: bytes, expected: reference) == .headerChecksum)
        let zeros = AlignedBuffer(count: 4096)
        #expect(BlockSealing.verify(block: UnsafeRawBufferPointer(zeros.bytes), expected: reference) == .headerChecksum)
    }
}

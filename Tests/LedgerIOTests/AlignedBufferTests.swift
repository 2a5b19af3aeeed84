import LedgerIO
import Testing

@Suite struct AlignedBufferTests {
    @Test func bufferIsAlignedAndZeroed() {
        let buffer = AlignedBuffer(count: 3 * 4096)
        #expect(Int(bitPattern: buffer.bytes.baseAddress) % 4096 == 0)
        #expect(buffer.bytes.allSatisfy { $0 == 0 })
        buffer.bytes[5] = 7
        buffer.zero()
        #expect(buffer.bytes[5] == 0)
        #expect(buffer.prefix(4096).count == 4096)
    }
}

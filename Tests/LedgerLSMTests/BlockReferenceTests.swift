import LedgerLSM
import Testing

@Suite struct BlockReferenceTests {
    @Test func nullReference() {
        #expect(BlockReference.null.isNull)
        #expect(!BlockReference(address: 1, checksum: 0).isNull)
    }
}

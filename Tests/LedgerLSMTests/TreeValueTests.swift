import LedgerLSM
import Testing

@Suite struct TreeValueTests {
    @Test func sizesHaveNoHiddenPadding() {
        #expect(CompositeKey64.valueSize == 16)
        #expect(CompositeKey128.valueSize == 32)
        #expect(IdTreeValue.valueSize == 32)
        #expect(MemoryLayout<CompositeKey64>.size == MemoryLayout<CompositeKey64>.stride)
        #expect(MemoryLayout<CompositeKey128>.size == MemoryLayout<CompositeKey128>.stride)
    }

    @Test func compositeKeysOrderByFieldThenTimestampIgnoringTheTombstoneBit() {
        let a = CompositeKey64(field: 1, timestamp: 9)
        let b = CompositeKey64(field: 2, timestamp: 1)
        #expect(a < b)
        #expect(CompositeKey64(field: 1, timestamp: 1) < a)
        let dead = CompositeKey64.tombstone(key: a)
        #expect(dead.isTombstone)
        #expect(!a.isTombstone)
        #expect(dead.key == a)
        #expect(dead.timestamp == 9)
        #expect(!(dead < a) && !(a < dead), "a tombstone sorts with its key")
        let wide = CompositeKey128.tombstone(key: CompositeKey128(field: UInt128.max, timestamp: 3))
        #expect(wide.isTombstone)
        #expect(wide.key == CompositeKey128(field: UInt128.max, timestamp: 3))
    }

    @Test func idTreeValues() {
        let failed = IdTreeValue(id: 7, timestamp: 100, orphaned: true)
        #expect(failed.isOrphaned)
        #expect(!failed.isTombstone)
        #expect(failed.key == 7)
        #expect(IdTreeValue.tombstone(key: 7).isTombstone)
    }
}

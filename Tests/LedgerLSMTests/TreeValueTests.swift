import LedgerKit
import LedgerLSM
import Testing

@Suite struct TreeValueTests {
    @Test func sizesHaveNoHiddenPadding() {
        #expect(CompositeKey64.valueSize == 16)
        #expect(CompositeKey128.valueSize == 24)
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

    /// The u128 field is stored as two words (24-byte values): the order is still the u128's
    /// order then the timestamp's, across the word boundary, and the bytes are the u128's
    /// little-endian bytes followed by the timestamp word.
    @Test func compositeKey128OrdersAsItsU128AndStoresItLittleEndian() {
        var random = PRNG(seed: 128)
        var fields: [UInt128] = [0, 1, UInt128(UInt64.max), UInt128(UInt64.max) + 1, UInt128.max - 1, UInt128.max]
        for _ in 0..<200 {
            let high = random.below(3) == 0 ? UInt64(random.below(3)) : random.next()
            fields.append(UInt128(high) << 64 | UInt128(random.below(3) == 0 ? UInt64.max : random.next()))
        }
        let timestamps: [UInt64] = [0, 1, 7, CompositeKey64.tombstoneBit - 1]
        for a in fields {
            for b in fields.prefix(40) {
                for (ta, tb) in [(timestamps[1], timestamps[2]), (timestamps[3], timestamps[0]), (5, 5)] {
                    let left = CompositeKey128(field: a, timestamp: ta)
                    let right = CompositeKey128(field: b, timestamp: tb)
                    #expect((left < right) == ((a, ta) < (b, tb)))
                    #expect((left == right) == (a == b && ta == tb))
                }
            }
            let key = CompositeKey128(field: a, timestamp: 0x0102_0304_0506_0708)
            #expect(key.field == a)
            let dead = CompositeKey128.tombstone(key: key)
            #expect(dead.isTombstone && dead.field == a && dead.timestamp == key.timestamp && !key.isTombstone)
            withUnsafeBytes(of: key) { bytes in
                var expected = [UInt8](repeating: 0, count: 24)
                withUnsafeBytes(of: a.littleEndian) { expected.replaceSubrange(0..<16, with: $0) }
                withUnsafeBytes(of: UInt64(0x0102_0304_0506_0708).littleEndian) { expected.replaceSubrange(16..<24, with: $0) }
                #expect(Array(bytes) == expected)
            }
        }
    }

    @Test func idTreeValues() {
        let failed = IdTreeValue(id: 7, timestamp: 100, orphaned: true)
        #expect(failed.isOrphaned)
        #expect(!failed.isTombstone)
        #expect(failed.key == 7)
        #expect(IdTreeValue.tombstone(key: 7).isTombstone)
    }
}

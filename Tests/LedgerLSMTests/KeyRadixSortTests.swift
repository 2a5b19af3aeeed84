import LedgerKit
@testable import LedgerLSM
import Testing

/// The radix sort against a reference: indices sorted by (key, put position), which is what a
/// stable sort must give, over key distributions that leave different byte positions to sort
/// by (none, a few low bytes, every byte) and with many equal keys.
@Suite struct KeyRadixSortTests {
    enum Keys: CaseIterable {
        case allEqual, smallFields, wideFields, randomTimestamps, tombstonesOfFewKeys
    }

    static func values(_ keys: Keys, count: Int, prng: inout PRNG) -> [CompositeKey128] {
        (0..<count).map { index in
            switch keys {
            case .allEqual:
                return CompositeKey128(field: 7, timestamp: 9)
            case .smallFields:
                return CompositeKey128(field: UInt128(prng.below(300)), timestamp: 1_000_000 + UInt64(index))
            case .wideFields:
                let field = UInt128(prng.next()) << 64 | UInt128(prng.next())
                return CompositeKey128(field: field, timestamp: prng.below(1 << 62))
            case .randomTimestamps:
                return CompositeKey128(field: 5, timestamp: prng.below(1 << 40))
            case .tombstonesOfFewKeys:
                let key = CompositeKey128(field: UInt128(prng.below(4)) << 100, timestamp: prng.below(3))
                return prng.chance(percent: 40) ? .tombstone(key: key) : key
            }
        }
    }

    @Test(arguments: Keys.allCases, [1, 2, 129, 1000, 8189])
    func sortsStablyByKey(keys: Keys, count: Int) {
        var prng = PRNG(seed: UInt64(count) &* 31 &+ UInt64(Keys.allCases.firstIndex(of: keys)!))
        let input = Self.values(keys, count: count, prng: &prng)
        let expected = input.indices.sorted { (input[$0].key, $0) < (input[$1].key, $1) }.map { input[$0] }
        let values = UnsafeMutablePointer<CompositeKey128>.allocate(capacity: count)
        let scratch = UnsafeMutablePointer<CompositeKey128>.allocate(capacity: count)
        defer {
            values.deallocate()
            scratch.deallocate()
        }
        values.initialize(from: input, count: count)
        let sorted = KeyRadixSort<CompositeKey128>().sort(values, count, scratch: scratch)
        let result = Array(UnsafeBufferPointer(start: sorted, count: count))
        // Byte for byte: tombstone flags travel with their values, equal keys keep put order.
        #expect(result.map { [$0.field, UInt128($0.timestampAndFlag)] } == expected.map { [$0.field, UInt128($0.timestampAndFlag)] },
                "\(keys), \(count) values")
    }

    /// Every key type the forest's trees use splits into words whose order is the key order.
    @Test func keyWordsOrderLikeTheKeys() {
        var prng = PRNG(seed: 3)
        func words<V: TreeValue>(_ type: V.Type, _ key: V.Key) -> [UInt64] {
            (0..<V.keyWordCount).map { V.keyWord(key, $0) }
        }
        for _ in 0..<2000 {
            let a = CompositeKey128(field: UInt128(prng.next()) << UInt128(prng.below(64)), timestamp: prng.below(1 << 62))
            let b = CompositeKey128(field: UInt128(prng.next()) << UInt128(prng.below(64)), timestamp: prng.below(1 << 62))
            #expect((a.key < b.key) == words(CompositeKey128.self, a.key).lexicographicallyPrecedes(words(CompositeKey128.self, b.key)))
            let c = CompositeKey64(field: prng.below(4), timestamp: prng.below(1 << 62))
            let d = CompositeKey64(field: prng.below(4), timestamp: prng.below(1 << 62))
            #expect((c.key < d.key) == words(CompositeKey64.self, c.key).lexicographicallyPrecedes(words(CompositeKey64.self, d.key)))
            let e = UInt128(prng.next()) << 64 | UInt128(prng.next())
            let f = UInt128(prng.next()) << UInt128(prng.below(64))
            #expect((e < f) == words(IdTreeValue.self, e).lexicographicallyPrecedes(words(IdTreeValue.self, f)))
        }
        #expect(Account.keyWordCount == 1 && Transfer.keyWordCount == 1 && IdTreeValue.keyWordCount == 2)
    }
}

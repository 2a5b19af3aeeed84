import LedgerKit

/// A stable least-significant-digit radix sort of tree values by their keys' words
/// (`TreeValue.keyWord`), one byte per digit: the memtable's per-beat sort of a batch's puts.
///
/// Only the byte positions where the keys differ are sorted by. One pass over the values finds
/// them (each word's bits that differ from the first key's), one more counts every such
/// position's digits; then each position is a scatter of the values into the other buffer,
/// least significant first. A batch of 8189 transfers puts index keys `(account id, timestamp)`
/// that differ in a few low bytes of each word: 4-6 scatters of predictable code, where a merge
/// sort made ~13 passes of compares that mispredict half the time on random keys (the two
/// account-id index trees' sorts were ~10 % of the server's CPU under the client benchmark).
/// Keys that differ in every byte (random 128-bit ids) take up to 16 scatters: no slower than
/// the merge passes, which move every value as often.
///
/// Stable: equal keys keep their put order, so the memtable's dedup still keeps the last put.
/// Memory: a count table per digit position (8 KiB per key word), allocated at init; nothing
/// after.
final class KeyRadixSort<Value: TreeValue> {
    /// Digit positions a key has: 8 per word.
    private static var positionsMax: Int { Value.keyWordCount * 8 }

    /// `positionsMax` tables of 256 counts (then start offsets) each.
    private let counts: UnsafeMutablePointer<Int>
    /// The positions this sort scatters by, least significant first (`word * 8 + byte`, byte 0
    /// the word's lowest).
    private let positions: UnsafeMutablePointer<Int>
    /// Per key word: the bits in which some key differs from the first.
    private let differing: UnsafeMutablePointer<UInt64>

    init() {
        precondition(Value.keyWordCount > 0, "a radix sort needs keys split into words")
        counts = .allocate(capacity: Self.positionsMax * 256)
        positions = .allocate(capacity: Self.positionsMax)
        differing = .allocate(capacity: Value.keyWordCount)
    }

    deinit {
        counts.deallocate()
        positions.deallocate()
        differing.deallocate()
    }

    /// Sorts `values[0..<count]` by key, stably, using `scratch` (room for `count` values) as the
    /// other buffer; returns the one that holds the sorted values (`values` or `scratch`).
    func sort(
        _ values: UnsafeMutablePointer<Value>, _ count: Int, scratch: UnsafeMutablePointer<Value>
    ) -> UnsafeMutablePointer<Value> {
        guard count > 1 else { return values }
        let words = Value.keyWordCount
        let first = values[0].key
        differing.update(repeating: 0, count: words)
        for index in 1..<count {
            let key = values[index].key
            for word in 0..<words { differing[word] |= Value.keyWord(key, word) ^ Value.keyWord(first, word) }
        }
        var positionCount = 0
        for word in stride(from: words - 1, through: 0, by: -1) {
            for byte in 0..<8 where (differing[word] >> UInt64(8 * byte)) & 0xff != 0 {
                positions[positionCount] = word * 8 + byte
                positionCount += 1
            }
        }
        // Every key equal: put order is the sorted order.
        if positionCount == 0 { return values }
        counts.update(repeating: 0, count: positionCount * 256)
        for index in 0..<count {
            let key = values[index].key
            for slot in 0..<positionCount {
                counts[slot * 256 + Self.digit(key, positions[slot])] += 1
            }
        }
        var source = values
        var target = scratch
        // One scatter per position: bounded by positionsMax.
        for slot in 0..<positionCount {
            let table = counts + slot * 256
            var start = 0
            for digit in 0..<256 {
                let digitCount = table[digit]
                table[digit] = start
                start += digitCount
            }
            let position = positions[slot]
            for index in 0..<count {
                let value = source[index]
                let digit = Self.digit(value.key, position)
                (target + table[digit]).initialize(to: value)
                table[digit] += 1
            }
            swap(&source, &target)
        }
        return source
    }

    @inline(__always)
    private static func digit(_ key: Value.Key, _ position: Int) -> Int {
        Int(truncatingIfNeeded: (Value.keyWord(key, position >> 3) >> UInt64((position & 7) * 8)) & 0xff)
    }
}

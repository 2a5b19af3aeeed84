import LedgerKit
import LedgerLSM
import Testing

/// A value of source `source` for `key`: the timestamp tells which source it came from.
func sourceValue(key: UInt128, source: Int, tombstone: Bool) -> IdTreeValue {
    var value = IdTreeValue(id: key, timestamp: UInt64(source) * 1_000_000 + UInt64(key))
    if tombstone { value.flags = IdTreeValue.tombstoneFlag }
    return value
}

func same(_ a: IdTreeValue, _ b: IdTreeValue) -> Bool {
    a.id == b.id && a.timestamp == b.timestamp && a.flags == b.flags
}

/// Random sources: sorted unique keys each, overlapping, with tombstones; and the model's merge.
struct MergeCase {
    var sources: [[IdTreeValue]] = []
    var priorities: [Int] = []

    init(prng: inout PRNG) {
        let sourceCount = prng.int(in: 1...16)
        let keySpace = UInt64(prng.int(in: 1...80))
        priorities = Array(0..<sourceCount)
        priorities.shuffle(using: &prng)
        for source in 0..<sourceCount {
            let density = prng.int(in: 0...100)
            var values: [IdTreeValue] = []
            for key in 0..<keySpace where prng.chance(percent: density) {
                values.append(sourceValue(key: UInt128(key), source: source, tombstone: prng.chance(percent: 25)))
            }
            sources.append(values)
        }
    }

    /// Newest (lowest priority) value of each key, ascending; tombstones dropped if asked.
    func expected(dropTombstones: Bool) -> [IdTreeValue] {
        var newest: [UInt128: (priority: Int, value: IdTreeValue)] = [:]
        for (source, values) in sources.enumerated() {
            for value in values {
                if let held = newest[value.id], held.priority < priorities[source] { continue }
                newest[value.id] = (priorities[source], value)
            }
        }
        return newest.keys.sorted().map { newest[$0]!.value }.filter { !(dropTombstones && $0.isTombstone) }
    }
}

/// Owns copies of the sources' values for the merge's lifetime.
final class SourceBuffers {
    var buffers: [UnsafeMutableBufferPointer<IdTreeValue>] = []

    func copy(_ values: [IdTreeValue]) -> UnsafeBufferPointer<IdTreeValue> {
        let buffer = UnsafeMutableBufferPointer<IdTreeValue>.allocate(capacity: max(values.count, 1))
        _ = buffer.initialize(from: values)
        buffers.append(buffer)
        return UnsafeBufferPointer(rebasing: buffer[0..<values.count])
    }

    deinit { for buffer in buffers { buffer.deallocate() } }
}

/// Drains `merge`, refilling blocked sources from `pending` (chunks per source, in order).
func drain(
    _ merge: inout MergeIterator<BufferSource<IdTreeValue>>, pending: inout [[UnsafeBufferPointer<IdTreeValue>]],
    limit: Int
) -> (values: [IdTreeValue], blocks: Int) {
    var output: [IdTreeValue] = []
    var blocks = 0
    for _ in 0..<limit {
        switch merge.next() {
        case .value(let value): output.append(value)
        case .blocked(let source):
            blocks += 1
            let chunk = pending[source].removeFirst()
            merge[source: source].refill(chunk, isLast: pending[source].isEmpty)
        case .done: return (output, blocks)
        }
    }
    Issue.record("merge did not finish in \(limit) steps")
    return (output, blocks)
}

@Suite struct MergeIteratorTests {
    static let seeds = (UInt64(1)...40).map { $0 }

    @Test(arguments: seeds)
    func againstModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let model = MergeCase(prng: &prng)
        let buffers = SourceBuffers()
        for drop in [false, true] {
            for direction in [ScanDirection.ascending, .descending] {
                var merge = MergeIterator<BufferSource<IdTreeValue>>(direction: direction, dropTombstones: drop)
                for (source, values) in model.sources.enumerated() {
                    let index = merge.add(BufferSource(buffers.copy(values), direction: direction), priority: model.priorities[source])
                    #expect(index == source)
                }
                var none: [[UnsafeBufferPointer<IdTreeValue>]] = Array(repeating: [], count: model.sources.count)
                let (output, blocks) = drain(&merge, pending: &none, limit: 10_000)
                var expected = model.expected(dropTombstones: drop)
                if direction == .descending { expected.reverse() }
                #expect(blocks == 0)
                #expect(output.count == expected.count, "seed \(seed) drop \(drop) \(direction)")
                #expect(zip(output, expected).allSatisfy(same), "seed \(seed) drop \(drop) \(direction)")
                // Done stays done.
                if case .done = merge.next() {} else { Issue.record("seed \(seed): not done after done") }
            }
        }
    }

    /// Sources arrive in chunks (value blocks read one at a time): the merge blocks until the
    /// caller refills, and the output is the same.
    @Test(arguments: seeds)
    func refilledSources(seed: UInt64) {
        var prng = PRNG(seed: seed &+ 1000)
        let model = MergeCase(prng: &prng)
        let buffers = SourceBuffers()
        for direction in [ScanDirection.ascending, .descending] {
            let drop = prng.chance(percent: 50)
            var merge = MergeIterator<BufferSource<IdTreeValue>>(direction: direction, dropTombstones: drop)
            var pending: [[UnsafeBufferPointer<IdTreeValue>]] = []
            for (source, values) in model.sources.enumerated() {
                // Chunks of 0…6 values each (empty chunks happen: a source may still block).
                var chunks: [UnsafeBufferPointer<IdTreeValue>] = []
                var start = 0
                while start < values.count {
                    let end = min(values.count, start + prng.int(in: 0...6))
                    chunks.append(buffers.copy(Array(values[start..<end])))
                    start = end
                }
                if direction == .descending { chunks.reverse() }
                let first = chunks.isEmpty ? buffers.copy([]) : chunks.removeFirst()
                merge.add(BufferSource(first, direction: direction, isLast: chunks.isEmpty), priority: model.priorities[source])
                pending.append(chunks)
            }
            let (output, _) = drain(&merge, pending: &pending, limit: 100_000)
            var expected = model.expected(dropTombstones: drop)
            if direction == .descending { expected.reverse() }
            #expect(output.count == expected.count, "seed \(seed) \(direction)")
            #expect(zip(output, expected).allSatisfy(same), "seed \(seed) \(direction)")
            #expect(pending.allSatisfy { $0.isEmpty }, "seed \(seed): every chunk was used")
        }
    }

    @Test func newestWinsAndTombstonesShadow() {
        let buffers = SourceBuffers()
        let newest = buffers.copy([sourceValue(key: 1, source: 0, tombstone: true), sourceValue(key: 3, source: 0, tombstone: false)])
        let older = buffers.copy([sourceValue(key: 1, source: 1, tombstone: false), sourceValue(key: 2, source: 1, tombstone: false),
                                  sourceValue(key: 3, source: 1, tombstone: false)])
        for drop in [false, true] {
            // Added oldest first: priority, not position, decides.
            var merge = MergeIterator<BufferSource<IdTreeValue>>(dropTombstones: drop)
            merge.add(BufferSource(older), priority: 5)
            merge.add(BufferSource(newest), priority: 0)
            var none: [[UnsafeBufferPointer<IdTreeValue>]] = [[], []]
            let output = drain(&merge, pending: &none, limit: 100).values
            let expected = (drop ? [] : [newest[0]]) + [older[1], newest[1]]
            #expect(output.count == expected.count)
            #expect(zip(output, expected).allSatisfy(same), "drop \(drop)")
        }
    }

    @Test func noSourcesIsDone() {
        var merge = MergeIterator<BufferSource<IdTreeValue>>(dropTombstones: true)
        if case .done = merge.next() {} else { Issue.record("an empty merge is done") }
        #expect(merge.sourceCount == 0)
    }
}

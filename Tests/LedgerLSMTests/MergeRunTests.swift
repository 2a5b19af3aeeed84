import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

/// Drains `merge` by runs of at most `limits()` values (refilling blocked sources from
/// `pending`), checking each run's length; with `mixSteps`, every third call is a plain `next()`
/// (the two share the merge's state).
func drainRuns(
    _ merge: inout MergeIterator<BufferSource<IdTreeValue>>, pending: inout [[UnsafeBufferPointer<IdTreeValue>]],
    prng: inout PRNG, limitMax: Int, mixSteps: Bool, seed: UInt64
) -> (values: [IdTreeValue], runs: Int) {
    var output: [IdTreeValue] = []
    var runs = 0
    for call in 0..<100_000 {
        if mixSteps && call % 3 == 2 {
            switch merge.next() {
            case .value(let value): output.append(value)
            case .blocked(let source):
                let chunk = pending[source].removeFirst()
                merge[source: source].refill(chunk, isLast: pending[source].isEmpty)
            case .done: return (output, runs)
            }
            continue
        }
        let limit = prng.int(in: 1...limitMax)
        switch merge.nextRun(limit: limit) {
        case .run(let values):
            #expect(values.count >= 1, "seed \(seed): a run holds a value")
            #expect(values.count <= limit, "seed \(seed): a run respects its limit")
            output.append(contentsOf: values)
            runs += 1
        case .blocked(let source):
            let chunk = pending[source].removeFirst()
            merge[source: source].refill(chunk, isLast: pending[source].isEmpty)
        case .done: return (output, runs)
        }
    }
    Issue.record("seed \(seed): merge did not finish")
    return (output, runs)
}

@Suite struct MergeRunTests {
    static let seeds = (UInt64(1)...60).map { $0 }

    /// Runs emit exactly what value-by-value merging emits (the model), whatever the limits,
    /// chunking, tombstones and priorities, also when interleaved with `next()`.
    @Test(arguments: seeds)
    func runsAgainstModel(seed: UInt64) {
        var prng = PRNG(seed: seed &+ 5000)
        let model = MergeCase(prng: &prng)
        let buffers = SourceBuffers()
        for drop in [false, true] {
            for mixSteps in [false, true] {
                var merge = MergeIterator<BufferSource<IdTreeValue>>(dropTombstones: drop)
                var pending: [[UnsafeBufferPointer<IdTreeValue>]] = []
                for (source, values) in model.sources.enumerated() {
                    // Chunks of 0…12 values (value blocks read one at a time; empty ones block again).
                    var chunks: [UnsafeBufferPointer<IdTreeValue>] = []
                    var start = 0
                    while start < values.count {
                        let end = min(values.count, start + prng.int(in: 0...12))
                        chunks.append(buffers.copy(Array(values[start..<end])))
                        start = end
                    }
                    let first = chunks.isEmpty ? buffers.copy([]) : chunks.removeFirst()
                    merge.add(BufferSource(first, isLast: chunks.isEmpty), priority: model.priorities[source])
                    pending.append(chunks)
                }
                let limitMax = prng.int(in: 1...40)
                let (output, _) = drainRuns(
                    &merge, pending: &pending, prng: &prng, limitMax: limitMax, mixSteps: mixSteps, seed: seed)
                let expected = model.expected(dropTombstones: drop)
                #expect(output.count == expected.count, "seed \(seed) drop \(drop) mix \(mixSteps)")
                #expect(zip(output, expected).allSatisfy(same), "seed \(seed) drop \(drop) mix \(mixSteps)")
                #expect(pending.allSatisfy { $0.isEmpty }, "seed \(seed): every chunk was used")
                if case .done = merge.nextRun(limit: 1) {} else { Issue.record("seed \(seed): not done after done") }
            }
        }
    }

    /// Stretches of one source come out as one run each: the bulk path is taken.
    @Test func stretchesAreSingleRuns() {
        let buffers = SourceBuffers()
        // Newer: keys 10..<20 and 40..<50; older: 0..<10, 20..<40 and 45 (shadowed by the newer 45).
        let newer = buffers.copy((10..<20).map { sourceValue(key: UInt128($0), source: 0, tombstone: false) }
            + (40..<50).map { sourceValue(key: UInt128($0), source: 0, tombstone: false) })
        let older = buffers.copy((0..<10).map { sourceValue(key: UInt128($0), source: 1, tombstone: false) }
            + (20..<40).map { sourceValue(key: UInt128($0), source: 1, tombstone: false) }
            + [sourceValue(key: 45, source: 1, tombstone: false)])
        var merge = MergeIterator<BufferSource<IdTreeValue>>(dropTombstones: false)
        merge.add(BufferSource(older), priority: 1)
        merge.add(BufferSource(newer), priority: 0)
        var runs: [[IdTreeValue]] = []
        for _ in 0..<100 {
            guard case .run(let values) = merge.nextRun(limit: 1_000) else { break }
            runs.append(Array(values))
        }
        // 0..<10 | 10..<20 | 20..<40 | 40..<45 | 45 (newest, older skipped) | 46..<50.
        #expect(runs.map(\.count) == [10, 10, 20, 5, 1, 4])
        #expect(runs.joined().map(\.id) == (0..<50).map { UInt128($0) })
        #expect(runs[4][0].timestamp == 45, "the newer source's value of key 45 wins")
        if case .done = merge.nextRun(limit: 1) {} else { Issue.record("merge is done") }
    }

    /// A long stretch bounded by the other source's next key, found by galloping: every
    /// position of the bound inside the stretch gives the right run.
    @Test func gallopFindsEveryBound() {
        let buffers = SourceBuffers()
        let long = buffers.copy((0..<300).map { sourceValue(key: UInt128(2 * $0), source: 0, tombstone: false) })
        for boundKey in stride(from: 1, to: 601, by: 2) {
            var merge = MergeIterator<BufferSource<IdTreeValue>>(dropTombstones: false)
            merge.add(BufferSource(long), priority: 0)
            merge.add(BufferSource(buffers.copy([sourceValue(key: UInt128(boundKey), source: 1, tombstone: false)])), priority: 1)
            guard case .run(let values) = merge.nextRun(limit: 1_000) else {
                Issue.record("bound \(boundKey): a run")
                continue
            }
            #expect(values.count == (boundKey + 1) / 2, "bound \(boundKey)")
            #expect(values.last.map { $0.id < UInt128(boundKey) } == true, "bound \(boundKey)")
        }
    }

    /// Tombstones inside a stretch end the run when dropped, and are emitted when kept.
    @Test func tombstonesInAStretch() {
        let buffers = SourceBuffers()
        let values = buffers.copy((0..<20).map { sourceValue(key: UInt128($0), source: 0, tombstone: $0 % 5 == 4) })
        for drop in [false, true] {
            var merge = MergeIterator<BufferSource<IdTreeValue>>(dropTombstones: drop)
            merge.add(BufferSource(values), priority: 0)
            var runs: [Int] = []
            var output: [UInt128] = []
            for _ in 0..<100 {
                guard case .run(let run) = merge.nextRun(limit: 1_000) else { break }
                runs.append(run.count)
                output += run.map(\.id)
            }
            if drop {
                #expect(runs == [4, 4, 4, 4])
                #expect(output == (0..<20).filter { $0 % 5 != 4 }.map { UInt128($0) })
            } else {
                #expect(runs == [20])
            }
        }
    }

    /// A table built from runs is byte for byte the table built value by value.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func builderRunsMatchValues(seed: UInt64) throws {
        var prng = PRNG(seed: seed &+ 7000)
        let count = prng.int(in: 1...1_500)
        var values: [CompositeKey128] = []
        var field: UInt128 = 0
        var timestamp: UInt64 = 1
        for _ in 0..<count {
            if prng.chance(percent: 10) { field += UInt128(prng.int(in: 1...3)) }
            timestamp += UInt64(prng.int(in: 1...4))
            values.append(CompositeKey128(field: field, timestamp: timestamp))
        }
        let valueBlocksMax = 3
        let oneByOne = TestBlocks()
        let expected = buildTables(
            values, builder: TableBuilder(treeId: 4, blockSize: smallBlockSize, valueBlocksMax: valueBlocksMax),
            storage: oneByOne)

        let builder = TableBuilder<CompositeKey128>(treeId: 4, blockSize: smallBlockSize, valueBlocksMax: valueBlocksMax)
        let byRuns = TestBlocks()
        var tables: [BuiltTable<CompositeKey128>] = []
        var current: AlignedBuffer? = nil
        try values.withUnsafeBufferPointer { all in
            var next = 0
            while next < all.count {
                if !builder.hasValueBlock {
                    current = AlignedBuffer(count: smallBlockSize)
                    builder.attachValueBlock(current!.bytes)
                }
                let room = builder.valueBlockCapacity - builder.blockValueCount
                let length = min(prng.int(in: 1...300), room, all.count - next)
                builder.append(contentsOf: UnsafeBufferPointer(rebasing: all[next..<(next + length)]))
                next += length
                if builder.isValueBlockFull || next == all.count {
                    let address = byRuns.acquire()
                    builder.sealValueBlock(address: address, snapshot: 12)
                    byRuns.blocks[address] = current!
                    current = nil
                    if builder.isFull || next == all.count {
                        let index = AlignedBuffer(count: smallBlockSize)
                        let indexAddress = byRuns.acquire()
                        tables.append(builder.sealIndexBlock(index.bytes, address: indexAddress, snapshot: 12, snapshotMin: 13))
                        byRuns.blocks[indexAddress] = index
                    }
                }
            }
            try checkTables(
                tables, values: values, absent: [], storage: byRuns, treeId: 4, valueBlocksMax: valueBlocksMax,
                blockSize: smallBlockSize, seed: seed)
        }
        #expect(tables == expected, "seed \(seed)")
        #expect(byRuns.blocks.count == oneByOne.blocks.count, "seed \(seed)")
        for (address, block) in byRuns.blocks {
            #expect(Array(block.bytes) == Array(oneByOne.blocks[address]!.bytes), "seed \(seed) block \(address)")
        }
    }
}

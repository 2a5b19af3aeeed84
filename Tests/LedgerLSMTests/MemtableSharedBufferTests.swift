import LedgerKit
import LedgerLSM
import Testing

/// Two memtables sharing one merge buffer with beat-sized sort scratch, as a tree holds them
/// (Memtable.swift, "Memory"): the swaps between storage and the shared buffer never mix up
/// the tables' values, and a table that needs the buffer while the other merges finishes that
/// merge first.
@Suite struct MemtableSharedBufferTests {
    /// Bars of beats over two tables (mutable, immutable) like `Tree`: the immutable one merges
    /// in random steps while the mutable one takes puts; some beats put more than the sort
    /// scratch holds and some sort twice (a scan between beats), so the mutable table borrows
    /// the buffer, sometimes mid-merge. Gets match the model (mutable first, then immutable)
    /// all along; each flushed table equals its bar's model.
    @Test(arguments: (UInt64(1)...40).map { $0 })
    func alternatingTablesAgainstModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let beatsPerBar = 2 * prng.int(in: 1...6)
        let putsPerBeatMax = prng.int(in: 1...40)
        let scratch = max(1, putsPerBeatMax / prng.int(in: 1...4))
        let capacity = beatsPerBar * putsPerBeatMax
        let keySpace = UInt64(prng.int(in: 1...200))
        let ascending = prng.chance(percent: 30)
        let buffer = MemtableMergeBuffer<IdTreeValue>(capacity: capacity)
        var mutable = Memtable<IdTreeValue>(
            capacity: capacity, runsMax: beatsPerBar, sortScratchCapacity: scratch, mergeBuffer: buffer)
        var immutable = Memtable<IdTreeValue>(
            capacity: capacity, runsMax: beatsPerBar, sortScratchCapacity: scratch, mergeBuffer: buffer)
        var mutableModel: [UInt128: IdTreeValue] = [:]
        var immutableModel: [UInt128: IdTreeValue] = [:]
        var stamp: UInt64 = 0
        func check(_ what: String) {
            for _ in 0..<8 {
                let key = UInt128(prng.below(keySpace + 3))
                let found = mutable.get(key) ?? immutable.get(key)
                let expected = mutableModel[key] ?? immutableModel[key]
                #expect(found?.timestamp == expected?.timestamp, "seed \(seed) \(what) key \(key)")
                #expect(found?.isTombstone == expected?.isTombstone, "seed \(seed) \(what) key \(key)")
            }
        }
        for bar in 0..<prng.int(in: 2...6) {
            for beat in 0..<beatsPerBar {
                for _ in 0..<prng.int(in: 0...putsPerBeatMax) where mutable.count < capacity {
                    stamp += 1
                    let key = ascending ? UInt128(stamp) : UInt128(prng.below(keySpace))
                    var value = IdTreeValue(id: key, timestamp: stamp)
                    if prng.chance(percent: 10) { value.flags = IdTreeValue.tombstoneFlag }
                    mutable.put(value)
                    mutableModel[key] = value
                    // A scan between beats sorts the suffix too (one more run).
                    if prng.chance(percent: 2) { mutable.sortSuffix() }
                }
                mutable.sortSuffix()
                if immutable.isImmutable && !immutable.isMerged && beat < beatsPerBar / 2 {
                    immutable.mergeStep(inputsMax: prng.int(in: 1...max(1, immutable.mergeInputsRemaining)))
                }
                check("bar \(bar) beat \(beat)")
            }
            // Bar end: flush the immutable table (merged by now), then swap.
            if immutable.isImmutable {
                immutable.finishMerge()
                let expected = immutableModel.keys.sorted().map { immutableModel[$0]! }
                #expect(immutable.values.map(\.timestamp) == expected.map(\.timestamp), "seed \(seed) bar \(bar)")
                immutable.reset()
                immutableModel = [:]
            }
            mutable.makeImmutable()
            swap(&mutable, &immutable)
            swap(&mutableModel, &immutableModel)
            check("bar \(bar) swapped")
        }
    }

    /// A table of one run (ascending puts) is merged as it is: no pass over the buffer.
    @Test func oneRunIsMergedWithoutAPass() {
        let table = Memtable<IdTreeValue>(capacity: 100, runsMax: 4, sortScratchCapacity: 10)
        for beat in 0..<5 {
            for index in 0..<10 { table.put(IdTreeValue(id: UInt128(beat * 10 + index), timestamp: UInt64(beat))) }
            table.sortSuffix()
        }
        #expect(table.runCount == 1, "ascending beats extend one run")
        table.makeImmutable()
        #expect(table.isMerged, "one run needs no merge")
        #expect(table.mergeInputsRemaining == 0)
        #expect(table.values.map(\.id) == (0..<50).map { UInt128($0) })
    }

    /// A sort of more puts than the scratch holds borrows the shared buffer; the other table's
    /// paced merge is finished first and its values are intact.
    @Test func oversizeSortFinishesTheOtherTablesMerge() {
        let buffer = MemtableMergeBuffer<IdTreeValue>(capacity: 60)
        let first = Memtable<IdTreeValue>(capacity: 60, runsMax: 8, sortScratchCapacity: 4, mergeBuffer: buffer)
        let second = Memtable<IdTreeValue>(capacity: 60, runsMax: 8, sortScratchCapacity: 4, mergeBuffer: buffer)
        // Three runs of descending keys 0..<10, newer runs winning.
        for run in 0..<3 {
            for key in (0..<10).reversed() { first.put(IdTreeValue(id: UInt128(key), timestamp: UInt64(run * 100 + key))) }
            first.sortSuffix()
        }
        first.makeImmutable()
        #expect(!first.isMerged)
        first.mergeStep(inputsMax: 5)
        #expect(!first.isMerged, "a partial merge")
        // 20 descending puts: more than the 4-value scratch.
        for key in (0..<20).reversed() { second.put(IdTreeValue(id: UInt128(1000 + key), timestamp: UInt64(key))) }
        second.sortSuffix()
        #expect(first.isMerged, "the other table's merge finished before the buffer was borrowed")
        #expect(first.values.map(\.id) == (0..<10).map { UInt128($0) })
        #expect(first.values.map(\.timestamp) == (0..<10).map { UInt64(200 + $0) })
        #expect(second.runCount == 1)
        for key in 0..<20 { #expect(second.get(UInt128(1000 + key))?.timestamp == UInt64(key), "key \(key)") }
        for key in 0..<10 { #expect(first.get(UInt128(key))?.timestamp == UInt64(200 + key), "key \(key)") }
    }
}

import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

@Suite struct MemtableTests {
    /// Puts over a small key space (many overwrites, tombstones), gets at random moments, beats
    /// sorted in between; then the immutable table equals the model.
    /// `ascending`: keys mostly follow the put order (time-based keys), so most beats are
    /// already sorted (the sort's fast path, runs extending the previous run), with an
    /// occasional earlier key that sends a beat through the full sort.
    /// `putsPerBeat` bounds a beat's puts (from 128 on, beats take the radix sort).
    func run(
        seed: UInt64, runsMax: Int, memtable: Memtable<IdTreeValue>? = nil, ascending: Bool = false,
        putsPerBeat: ClosedRange<Int> = 0...60
    ) {
        var prng = PRNG(seed: seed)
        let beats = prng.int(in: 1...40)
        let putsPerBeatMax = prng.int(in: putsPerBeat)
        let keySpace = UInt64(prng.int(in: 1...300))
        let table = memtable ?? Memtable<IdTreeValue>(capacity: max(1, beats * putsPerBeatMax), runsMax: runsMax)
        var model: [UInt128: IdTreeValue] = [:]
        var stamp: UInt64 = 0
        func checkGets(_ count: Int) {
            for _ in 0..<count {
                let key = UInt128(prng.below(keySpace + 5))
                let found = table.get(key)
                let expected = model[key]
                #expect(found.map { value in expected.map { same(value, $0) } ?? false } ?? (expected == nil),
                        "seed \(seed) key \(key)")
            }
        }
        for _ in 0..<beats {
            for _ in 0..<prng.int(in: 0...putsPerBeatMax) {
                stamp += 1
                let key = ascending && !prng.chance(percent: 3) ? UInt128(stamp) : UInt128(prng.below(keySpace))
                var value = IdTreeValue(id: key, timestamp: stamp)
                if prng.chance(percent: 15) { value.flags = IdTreeValue.tombstoneFlag }
                table.put(value)
                model[value.id] = value
                if prng.chance(percent: 10) { checkGets(3) }
            }
            checkGets(10)
            table.sortSuffix()
            #expect(table.runCount <= runsMax, "seed \(seed)")
            checkGets(10)
        }
        // Puts after the last sort stay in the suffix until makeImmutable.
        for _ in 0..<min(5, table.capacity - table.count) {
            stamp += 1
            let value = IdTreeValue(id: ascending ? UInt128(stamp) : UInt128(prng.below(keySpace)), timestamp: stamp)
            table.put(value)
            model[value.id] = value
        }
        checkGets(20)
        table.makeImmutable()
        #expect(table.isImmutable)
        #expect(table.runCount <= runsMax, "seed \(seed): makeImmutable keeps the runs")
        // The merge in random bounded steps, lookups answering from the runs in between.
        var steps = 0
        while !table.isMerged {
            let remaining = table.mergeInputsRemaining
            let step = prng.int(in: 1...max(1, remaining / 3))
            table.mergeStep(inputsMax: step)
            #expect(table.mergeInputsRemaining == remaining - min(step, remaining), "seed \(seed): a step merges its quota")
            checkGets(5)
            steps += 1
            if steps > table.capacity + 1 { break }
        }
        #expect(table.isMerged, "seed \(seed)")
        #expect(table.mergeInputsRemaining == 0)
        table.finishMerge()
        let expected = model.keys.sorted().map { model[$0]! }
        let values = table.values
        #expect(values.count == expected.count, "seed \(seed)")
        #expect(zip(values, expected).allSatisfy(same), "seed \(seed)")
        #expect(table.runCount <= 1)
        checkGets(50)
    }

    @Test(arguments: (UInt64(1)...30).map { $0 })
    func againstModel(seed: UInt64) {
        run(seed: seed, runsMax: 32)
    }

    /// Beats of hundreds of puts: the radix sort (KeyRadixSort), over key spaces of a few
    /// values (long runs of equal keys, tombstones among them) up to hundreds.
    @Test(arguments: (UInt64(1)...12).map { $0 })
    func againstModelWithRadixSortedBeats(seed: UInt64) {
        run(seed: seed, runsMax: 32, putsPerBeat: 128...600)
    }

    @Test(arguments: (UInt64(1)...30).map { $0 })
    func againstModelWithAscendingKeys(seed: UInt64) {
        run(seed: seed, runsMax: 32, ascending: true)
        run(seed: seed, runsMax: 1 + Int(seed % 4), ascending: true)
    }

    /// Beats whose keys ascend past the previous run extend it: one run for the whole bar.
    @Test func ascendingBeatsExtendOneRun() {
        let table = Memtable<IdTreeValue>(capacity: 100, runsMax: 4)
        var key: UInt128 = 0
        for _ in 0..<10 {
            for _ in 0..<10 {
                key += 1
                table.put(IdTreeValue(id: key, timestamp: UInt64(key)))
            }
            table.sortSuffix()
            #expect(table.runCount == 1, "an ascending beat extends the run")
        }
        #expect(table.get(37)?.timestamp == 37)
        #expect(table.get(101) == nil)
        // A beat that starts below the run's last key is a run of its own.
        let fresh = Memtable<IdTreeValue>(capacity: 10, runsMax: 4)
        fresh.put(IdTreeValue(id: 5, timestamp: 1))
        fresh.sortSuffix()
        fresh.put(IdTreeValue(id: 3, timestamp: 2))
        fresh.put(IdTreeValue(id: 9, timestamp: 3))
        fresh.sortSuffix()
        #expect(fresh.runCount == 2)
        #expect(fresh.get(3)?.timestamp == 2 && fresh.get(5)?.timestamp == 1 && fresh.get(9)?.timestamp == 3)
    }

    /// Fewer runs than beats: runs are merged when full, results are the same.
    @Test(arguments: (UInt64(1)...30).map { $0 })
    func againstModelWithFewRuns(seed: UInt64) {
        run(seed: seed, runsMax: 1 + Int(seed % 4))
    }

    @Test func resetReusesTheTable() {
        let table = Memtable<IdTreeValue>(capacity: 2400, runsMax: 3)
        for seed in UInt64(100)..<UInt64(110) {
            table.reset()
            #expect(table.count == 0)
            #expect(!table.isImmutable)
            run(seed: seed, runsMax: 3, memtable: table)
        }
    }

    @Test func latestPutWinsWithinABeat() {
        let table = Memtable<IdTreeValue>(capacity: 16, runsMax: 4)
        table.put(IdTreeValue(id: 5, timestamp: 1))
        table.put(IdTreeValue(id: 5, timestamp: 2))
        table.put(IdTreeValue(id: 4, timestamp: 3))
        table.put(IdTreeValue(id: 5, timestamp: 4))
        #expect(table.get(5)?.timestamp == 4)
        table.sortSuffix()
        #expect(table.count == 2, "a run holds each key once")
        #expect(table.get(5)?.timestamp == 4)
        #expect(table.get(4)?.timestamp == 3)
        table.put(IdTreeValue.tombstone(key: 4))
        #expect(table.get(4)?.isTombstone == true)
        table.sortSuffix()
        #expect(table.get(4)?.isTombstone == true, "a newer run shadows an older one")
        table.put(IdTreeValue(id: 4, timestamp: 9))
        table.makeImmutable()
        #expect(!table.isMerged, "three runs to merge")
        #expect(table.get(4)?.timestamp == 9, "the runs answer before the merge")
        table.mergeStep(inputsMax: 1)
        #expect(table.get(4)?.timestamp == 9, "and during it")
        #expect(table.get(5)?.timestamp == 4)
        table.finishMerge()
        #expect(table.isMerged)
        #expect(table.values.map(\.timestamp) == [9, 4])
        #expect(table.get(6) == nil)
    }

    /// Equal keys across many runs: the newest run's value wins, tombstones included, and the
    /// merge keeps each key once whatever the step sizes.
    @Test(arguments: [1, 2, 7, 1000])
    func newestRunWinsInTheMerge(step: Int) {
        let table = Memtable<IdTreeValue>(capacity: 200, runsMax: 32)
        for beat in 0..<20 {
            for key in 0..<10 where (key + beat) % 3 != 0 {
                var value = IdTreeValue(id: UInt128(key), timestamp: UInt64(beat * 100 + key))
                if beat == 19 && key == 1 { value.flags = IdTreeValue.tombstoneFlag }
                table.put(value)
            }
            table.sortSuffix()
        }
        table.makeImmutable()
        #expect(table.runCount == 20, "the runs are kept")
        #expect(table.mergeInputsRemaining == table.count)
        while !table.isMerged { table.mergeStep(inputsMax: step) }
        let values = table.values
        #expect(values.map(\.id) == (0..<10).map { UInt128($0) })
        for value in values {
            let key = Int(value.id)
            // The last beat that put `key`: (key + beat) % 3 != 0.
            let beat = (0..<20).last { (key + $0) % 3 != 0 }!
            #expect(value.timestamp == UInt64(beat * 100 + key), "key \(key)")
            #expect(value.isTombstone == (key == 1 && beat == 19), "key \(key)")
        }
        #expect(table.runCount == 1)
    }

    /// A tree swaps in the immutable memtable with its runs unmerged (no whole-bar merge in the
    /// bar's last beat) and merges it over the next first half-bar, lookups right all along;
    /// the flush then writes each key once.
    @Test func treeMergesTheImmutableMemtableOverTheFirstHalfBar() {
        let configuration = TreeHarness<TreeTestObject>.configuration(
            valuesPerBeatMax: 60, compactionOps: 8, growthFactor: 64)
        let harness = TreeHarness<TreeTestObject>(storageSeed: 5, configuration: configuration)
        // 60 values would be held back from the flush as a small table (Tree.swift, "Small
        // immutable tables"); a checkpoint trigger at the bar's end flushes them.
        harness.tree.barEndsAtCheckpointTrigger = { $0 == 15 }
        // Ops 1…7 (op 7 is the bar's last beat): the same 60 keys every beat, newer versions.
        for op in UInt64(1)...7 {
            for key in UInt64(0)..<60 { harness.put(TreeTestObject(id: key, version: op)) }
            #expect(harness.commit())
        }
        #expect(harness.tree.memtableCounts.immutable == 7 * 60, "the swap kept the 7 runs")
        // Ops 8…11: the first half-bar, a quarter of the merge each.
        for op in UInt64(8)...11 {
            #expect(harness.commit())
            let merged = op == 11
            #expect(harness.tree.memtableCounts.immutable == (merged ? 60 : 7 * 60), "op \(op)")
            for key in UInt64(0)..<60 where key % 7 == op % 7 {
                #expect(harness.check(key) == nil, "op \(op) key \(key)")
            }
        }
        for _ in 12...15 { #expect(harness.commit()) }
        #expect(harness.tree.memtableCounts.immutable == 0, "flushed")
        let inserted = harness.events.filter { $0.event == .insert }
        #expect(inserted.map { Int($0.valueCount) } == [60], "one table, each key once")
        for key in UInt64(0)..<60 { #expect(harness.check(key) == nil, "key \(key)") }
    }

    @Test func fillsToCapacity() {
        let table = Memtable<IdTreeValue>(capacity: 100, runsMax: 2)
        // Descending keys sorted in beats of 7: the last beat is partial.
        for index in 0..<100 {
            table.put(IdTreeValue(id: UInt128(1000 - index), timestamp: UInt64(index)))
            if index % 7 == 6 { table.sortSuffix() }
        }
        #expect(table.isFull)
        table.makeImmutable()
        table.finishMerge()
        #expect(table.values.count == 100)
        #expect(table.values.first?.id == 901)
        #expect(table.values.last?.id == 1000)
        #expect(zip(table.values.dropFirst(), table.values).allSatisfy { $0.id > $1.id })
    }
}

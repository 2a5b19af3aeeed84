import LedgerKit
import LedgerLSM
import Testing

/// A held immutable memtable absorbing the mutable one at a bar's end (Memtable.absorb;
/// Tree.swift "Small immutable tables"), and the merge's bulk stretches that make absorbing a
/// few values into a large run cheap.
@Suite struct MemtableAbsorbTests {
    /// Several bars of random puts (overwrites, tombstones), each bar's mutable table absorbed
    /// by the immutable one, the merge run in random steps with lookups in between: the
    /// immutable table always equals the model, newest put winning.
    @Test(arguments: (UInt64(1)...40).map { $0 })
    func absorbedBarsMatchTheModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let runsMax = prng.int(in: 1...8)
        let capacity = 4_000
        let mergeBuffer = MemtableMergeBuffer<IdTreeValue>(capacity: capacity)
        var immutable = Memtable<IdTreeValue>(capacity: capacity, runsMax: runsMax, mergeBuffer: mergeBuffer)
        var mutable = Memtable<IdTreeValue>(capacity: capacity, runsMax: runsMax, mergeBuffer: mergeBuffer)
        let keySpace = UInt64(prng.int(in: 5...2_000))
        let ascending = prng.chance(percent: 30)
        var model: [UInt128: IdTreeValue] = [:]
        var stamp: UInt64 = 0
        func checkGets(_ count: Int) {
            for _ in 0..<count {
                let key = ascending ? UInt128(prng.below(stamp + 2)) : UInt128(prng.below(keySpace + 3))
                let found = mutable.get(key) ?? immutable.get(key)
                let expected = model[key]
                #expect(found.map { value in expected.map { same(value, $0) } ?? false } ?? (expected == nil),
                        "seed \(seed) key \(key)")
            }
        }
        let bars = prng.int(in: 1...12)
        for bar in 0..<bars {
            // Each bar puts at most capacity / (bars + 1): the absorbed total always fits.
            let beats = prng.int(in: 1...runsMax)
            for _ in 0..<beats {
                for _ in 0..<prng.int(in: 0...(capacity / (bars + 1) / beats)) {
                    stamp += 1
                    let key = ascending ? UInt128(stamp) : UInt128(prng.below(keySpace))
                    var value = IdTreeValue(id: key, timestamp: stamp)
                    if prng.chance(percent: 10) { value.flags = IdTreeValue.tombstoneFlag }
                    mutable.put(value)
                    model[key] = value
                }
                mutable.sortSuffix()
                checkGets(5)
            }
            if bar == 0 {
                mutable.makeImmutable()
                swap(&mutable, &immutable)
            } else {
                let runsBefore = immutable.runCount
                immutable.absorb(mutable)
                #expect(mutable.count == 0 && !mutable.isImmutable, "seed \(seed): the absorbed table is empty")
                #expect(immutable.runCount <= runsBefore + runsMax, "seed \(seed)")
            }
            #expect(immutable.isImmutable)
            checkGets(20)
            // The merge in random steps, each consuming exactly its quota.
            var steps = 0
            while !immutable.isMerged && steps <= capacity {
                let remaining = immutable.mergeInputsRemaining
                let step = prng.int(in: 1...max(1, remaining / 2))
                immutable.mergeStep(inputsMax: step)
                #expect(immutable.mergeInputsRemaining == remaining - min(step, remaining), "seed \(seed)")
                checkGets(3)
                steps += 1
            }
            #expect(immutable.isMerged, "seed \(seed)")
            let expected = model.keys.sorted().map { model[$0]! }
            #expect(immutable.values.count == expected.count, "seed \(seed) bar \(bar)")
            #expect(zip(immutable.values, expected).allSatisfy(same), "seed \(seed) bar \(bar)")
        }
    }

    /// Keys that grow with time extend the held table's run: no merge, no copy but the append.
    @Test func ascendingKeysExtendTheHeldRun() {
        let mergeBuffer = MemtableMergeBuffer<IdTreeValue>(capacity: 100)
        let held = Memtable<IdTreeValue>(capacity: 100, runsMax: 4, mergeBuffer: mergeBuffer)
        let mutable = Memtable<IdTreeValue>(capacity: 100, runsMax: 4, mergeBuffer: mergeBuffer)
        for key in UInt128(1)...10 { held.put(IdTreeValue(id: key, timestamp: UInt64(key))) }
        held.makeImmutable()
        #expect(held.isMerged)
        for key in UInt128(11)...20 { mutable.put(IdTreeValue(id: key, timestamp: UInt64(key))) }
        held.absorb(mutable)
        #expect(held.isMerged, "one run: merged as it is")
        #expect(held.runCount == 1)
        #expect(held.mergeInputsRemaining == 0)
        #expect(held.values.map(\.id) == (1...20).map { UInt128($0) })
        // A key below the held run's last one starts a run of its own, merged later.
        mutable.put(IdTreeValue(id: 5, timestamp: 99))
        held.absorb(mutable)
        #expect(!held.isMerged)
        #expect(held.runCount == 2)
        #expect(held.get(5)?.timestamp == 99, "the absorbed put is newer")
        held.finishMerge()
        #expect(held.values.count == 20)
        #expect(held.values[4].timestamp == 99)
    }

    /// One large run and a few small ones: the merge copies the large run in stretches between
    /// the small runs' keys; equal keys still go newest first, and the output equals a
    /// value-by-value merge.
    @Test(arguments: [1, 3, 64, 100_000])
    func stretchesKeepNewestFirst(step: Int) {
        let capacity = 10_000
        let mergeBuffer = MemtableMergeBuffer<IdTreeValue>(capacity: capacity)
        let held = Memtable<IdTreeValue>(capacity: capacity, runsMax: 8, mergeBuffer: mergeBuffer)
        let mutable = Memtable<IdTreeValue>(capacity: capacity, runsMax: 8, mergeBuffer: mergeBuffer)
        var model: [UInt128: UInt64] = [:]
        // Even keys 0, 2, … 7998 (timestamp 1).
        for key in stride(from: UInt128(0), to: 8_000, by: 2) {
            held.put(IdTreeValue(id: key, timestamp: 1))
            model[key] = 1
        }
        held.makeImmutable()
        // Three beats of sparse keys: some new (odd), some overwriting even keys, one past the end.
        for (beat, keys) in [[UInt128(1), 100, 101, 4000], [100, 2001, 7998], [0, 8001, 8002]].enumerated() {
            for key in keys {
                mutable.put(IdTreeValue(id: key, timestamp: UInt64(10 + beat)))
                model[key] = UInt64(10 + beat)
            }
            mutable.sortSuffix()
        }
        held.absorb(mutable)
        #expect(held.runCount == 4)
        while !held.isMerged { held.mergeStep(inputsMax: step) }
        let expected = model.keys.sorted()
        #expect(held.values.map(\.id) == expected)
        #expect(held.values.allSatisfy { model[$0.id] == $0.timestamp }, "newest put wins on every key")
    }
}

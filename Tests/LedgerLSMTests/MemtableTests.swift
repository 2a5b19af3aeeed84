import LedgerKit
import LedgerLSM
import Testing

@Suite struct MemtableTests {
    /// Puts over a small key space (many overwrites, tombstones), gets at random moments, beats
    /// sorted in between; then the immutable table equals the model.
    func run(seed: UInt64, runsMax: Int, memtable: Memtable<IdTreeValue>? = nil) {
        var prng = PRNG(seed: seed)
        let beats = prng.int(in: 1...40)
        let putsPerBeatMax = prng.int(in: 0...60)
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
                var value = IdTreeValue(id: UInt128(prng.below(keySpace)), timestamp: stamp)
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
            let value = IdTreeValue(id: UInt128(prng.below(keySpace)), timestamp: stamp)
            table.put(value)
            model[value.id] = value
        }
        checkGets(20)
        table.makeImmutable()
        #expect(table.isImmutable)
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
        #expect(table.values.map(\.timestamp) == [9, 4])
        #expect(table.get(6) == nil)
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
        #expect(table.values.count == 100)
        #expect(table.values.first?.id == 901)
        #expect(table.values.last?.id == 1000)
        #expect(zip(table.values.dropFirst(), table.values).allSatisfy { $0.id > $1.id })
    }
}

import LedgerKit
@testable import LedgerLSM
import LedgerStateMachine
import Testing

@Suite struct GrooveBatchMapTests {
    @Test func putGetRemoveAndContains() {
        // Results go through locals: `#expect` cannot borrow a noncopyable map.
        var map = GrooveBatchMap<UInt128, UInt64>(capacity: 8)
        let slotCount = map.slotCount
        #expect(slotCount == 16, "at least 2 × capacity slots, a power of two")
        let absent = map.get(1)
        #expect(absent == nil)
        let first = map.put(1, 10)
        #expect(first == nil, "a new key has no previous value")
        let second = map.put(1, 11)
        #expect(second == 10, "a put returns the previous value")
        let reinserted = map.insert(1, 12)
        #expect(!reinserted, "insert keeps a present key")
        let kept = map.get(1)
        #expect(kept == 11)
        let zeroInserted = map.insert(0, 5)
        #expect(zeroInserted, "0 is an ordinary key (no empty-slot sentinel)")
        let zero = map.get(0)
        #expect(zero == 5)
        var count = map.count
        #expect(count == 2)
        let removed = map.remove(1)
        #expect(removed == 11)
        let removedAgain = map.remove(1)
        #expect(removedAgain == nil, "removing an absent key changes nothing")
        let hasOne = map.contains(1)
        let hasZero = map.contains(0)
        #expect(!hasOne)
        #expect(hasZero)
        count = map.count
        #expect(count == 1)
    }

    @Test func removeAllForgetsEveryKeyAndTheMapIsReusable() {
        var map = GrooveBatchMap<UInt64, Bool>(capacity: 100)
        for batch in UInt64(0)..<50 {
            var inserted = 0
            for key in 0..<100 where map.insert(batch * 7 + UInt64(key), key % 2 == 0) { inserted += 1 }
            #expect(inserted == 100, "every key of a cleared map is new")
            var count = map.count
            #expect(count == 100)
            let odd = map.get(batch * 7 + 1)
            #expect(odd == false)
            map.removeAll()
            count = map.count
            #expect(count == 0)
            let first = map.contains(batch * 7)
            let last = map.contains(batch * 7 + 99)
            #expect(!first, "a cleared key is gone")
            #expect(!last, "a cleared key is gone")
        }
    }

    /// The generation wraps after 2³² − 1 clears: slots of old generations must not come back.
    @Test func generationWrapResetsTheSlots() {
        var map = GrooveBatchMap<UInt64, UInt64>(capacity: 16, generation: UInt32.max - 1)
        for key in UInt64(0)..<16 { map.put(key, key) }
        map.removeAll()  // → UInt32.max
        for key in UInt64(0)..<8 { map.put(key, key + 100) }
        map.removeAll()  // wraps: every slot reset, generation 1
        var generation = map.generation
        #expect(generation == 1)
        var stale = (UInt64(0)..<16).filter { map.contains($0) }
        #expect(stale.isEmpty, "keys stay cleared across the wrap")
        map.removeAll()
        generation = map.generation
        #expect(generation == 2)
        stale = (UInt64(0)..<16).filter { map.contains($0) }
        #expect(stale.isEmpty, "keys of generation 1 stay cleared")
        map.put(3, 33)
        let value = map.get(3)
        let count = map.count
        #expect(value == 33)
        #expect(count == 1)
    }

    enum KeyPattern: CaseIterable { case sequential, random, highBitsOnly, stridedByTableSize, fewKeys }

    static func key(_ pattern: KeyPattern, _ index: Int, _ prng: inout PRNG, slotCount: Int) -> UInt128 {
        switch pattern {
        case .sequential: UInt128(index + 1)
        case .random: prng.uint128()
        // Ids that differ only in their high half (a counter in the high bits).
        case .highBitsOnly: UInt128(index) << 64 | 0xABCD
        // Low halves that all land on the same slot before mixing.
        case .stridedByTableSize: UInt128(index * slotCount)
        case .fewKeys: UInt128(prng.int(in: 0...20))
        }
    }

    /// Random puts, inserts, removes and clears against a Dictionary, for key patterns that
    /// break weak hashes; also checks that probe chains stay short (the hash spreads them).
    @Test(arguments: KeyPattern.allCases, [UInt64(1), 2, 3])
    func randomOperationsMatchTheModel(pattern: KeyPattern, seed: UInt64) {
        var prng = PRNG(seed: seed)
        let capacity = prng.int(in: 1...600)
        var map = GrooveBatchMap<UInt128, UInt64>(capacity: capacity)
        let slotCount = map.slotCount
        var model: [UInt128: UInt64] = [:]
        var keys: [UInt128] = []
        var index = 0
        var countMax = 0
        for step in 0..<20_000 {
            let roll = prng.int(in: 0...99)
            if roll < 1 && prng.chance(percent: 20) {
                map.removeAll()
                model.removeAll()
                keys.removeAll()
            } else if roll < 20, !keys.isEmpty {
                let key = keys[prng.int(in: 0...(keys.count - 1))]
                guard map.remove(key) == model.removeValue(forKey: key) else {
                    Issue.record("seed \(seed) \(pattern) step \(step): remove of \(key) disagrees")
                    return
                }
            } else if model.count < capacity || roll < 40 {
                let key = roll < 40 && !keys.isEmpty
                    ? keys[prng.int(in: 0...(keys.count - 1))]
                    : Self.key(pattern, index, &prng, slotCount: slotCount)
                index += 1
                guard model.count < capacity || model[key] != nil else { continue }
                let value = prng.next()
                guard map.put(key, value) == model.updateValue(value, forKey: key) else {
                    Issue.record("seed \(seed) \(pattern) step \(step): put of \(key) disagrees")
                    return
                }
                keys.append(key)
            }
            countMax = max(countMax, model.count)
            guard map.count == model.count else {
                Issue.record("seed \(seed) \(pattern) step \(step): count \(map.count) vs \(model.count)")
                return
            }
        }
        if pattern != .fewKeys {
            #expect(countMax == capacity, "seed \(seed) \(pattern): the map was filled (\(countMax) of \(capacity))")
        }
        for key in keys where map.get(key) != model[key] {
            Issue.record("seed \(seed) \(pattern): final get of \(key) disagrees")
            return
        }
    }

    /// Keys that collide in weak hashes still spread: filling to capacity, the mean probe
    /// length stays near linear probing's 1.5 at load 1/2.
    @Test(arguments: KeyPattern.allCases.filter { $0 != .fewKeys })
    func structuredKeysSpreadOverTheTable(pattern: KeyPattern) {
        let capacity = 8192
        var map = GrooveBatchMap<UInt128, UInt64>(capacity: capacity)
        var prng = PRNG(seed: 7)
        var keys: [UInt128] = []
        let slotCount = map.slotCount
        for index in 0..<capacity {
            let key = Self.key(pattern, index, &prng, slotCount: slotCount)
            let inserted = map.insert(key, UInt64(index))
            #expect(inserted, "the pattern's keys are distinct")
            keys.append(key)
        }
        var probes = 0
        for key in keys { probes += map.probeLength(key) }
        let mean = Double(probes) / Double(capacity)
        #expect(mean < 3, "\(pattern): mean probe length \(mean) (a clustering hash)")
        for (index, key) in keys.enumerated() where map.get(key) != UInt64(index) {
            Issue.record("\(pattern): key \(key) lost")
            return
        }
    }

    @Test func u64KeysSpreadToo() {
        var map = GrooveBatchMap<UInt64, Bool>(capacity: 4096)
        // Timestamps are sequential nanoseconds, often strided.
        var inserted = 0
        for index in UInt64(0)..<4096 where map.insert(1_700_000_000_000_000_000 + index * 8192, true) { inserted += 1 }
        #expect(inserted == 4096)
        var probes = 0
        for index in UInt64(0)..<4096 { probes += map.probeLength(1_700_000_000_000_000_000 + index * 8192) }
        #expect(Double(probes) / 4096 < 3, "mean probe length \(Double(probes) / 4096)")
    }

    // MARK: The groove's use: scope undo removes, a new batch forgets

    /// An id first named by an insert in a discarded scope is removed from the batch's map:
    /// asking for it again is asking for an id not prefetched (a trap), as with `Dictionary`.
    @Test func aDiscardedInsertOfAnUnprefetchedIdIsForgotten() async {
        await #expect(processExitsWith: .failure, "get(id:) of an id the discarded scope named") {
            let harness = GrooveHarness(storageSeed: 5, wal: [], configuration: GrooveScopeTests.configuration())
            let groove = harness.node.groove
            groove.prefetchStart()
            groove.prefetchEnqueue(id: 10)
            var prefetched: Result<Void, GrooveFault>?
            groove.prefetch { prefetched = $0 }
            _ = harness.storage.run(until: { prefetched != nil })
            groove.scopeOpen()
            groove.insert(Account(id: 77, ledger: 1, code: 1, timestamp: 1))
            groove.scopeClose(persist: false)
            _ = groove.get(id: 77)
        }
        // The same steps without the final get run to the end: the trap above is the get's.
        let harness = GrooveHarness(storageSeed: 5, wal: [], configuration: GrooveScopeTests.configuration())
        let groove = harness.node.groove
        groove.prefetchStart()
        groove.prefetchEnqueue(id: 10)
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        #expect(harness.storage.run(until: { prefetched != nil }))
        groove.scopeOpen()
        let account = Account(id: 77, ledger: 1, code: 1, timestamp: 1)
        groove.insert(account)
        #expect(groove.get(id: 77) == account, "seen inside the scope")
        groove.scopeClose(persist: false)
        #expect(groove.get(id: 10) == nil, "the prefetched id keeps its answer")
        // Re-inserted after the undo: the id is back, at its new state.
        groove.insert(account)
        #expect(groove.get(id: 77) == account)
    }

    /// The next batch's prefetchStart forgets the previous batch's ids and timestamps (the
    /// O(1) clear): asking for them without prefetching them again traps.
    @Test func aNewBatchForgetsThePreviousBatchsAnswers() async {
        await #expect(processExitsWith: .failure, "get(id:) of the previous batch's id") {
            let harness = GrooveHarness(storageSeed: 6, wal: [], configuration: GrooveScopeTests.configuration())
            let groove = harness.node.groove
            for _ in 0..<2 {
                groove.prefetchStart()
                groove.prefetchEnqueue(id: 10)
                var prefetched: Result<Void, GrooveFault>?
                groove.prefetch { prefetched = $0 }
                _ = harness.storage.run(until: { prefetched != nil })
            }
            _ = groove.get(id: 10)  // Fine: prefetched this batch.
            groove.prefetchStart()
            var prefetched: Result<Void, GrooveFault>?
            groove.prefetch { prefetched = $0 }
            _ = harness.storage.run(until: { prefetched != nil })
            _ = groove.get(id: 10)
        }
        await #expect(processExitsWith: .failure, "get(timestamp:) of the previous batch's timestamp") {
            let harness = GrooveHarness(storageSeed: 6, wal: [], configuration: GrooveScopeTests.configuration())
            let groove = harness.node.groove
            groove.prefetchStart()
            groove.prefetchEnqueue(timestamp: 5)
            var first: Result<Void, GrooveFault>?
            groove.prefetch { first = $0 }
            _ = harness.storage.run(until: { first != nil })
            _ = groove.get(timestamp: 5)  // Fine: absent, and prefetched.
            groove.prefetchStart()
            var second: Result<Void, GrooveFault>?
            groove.prefetch { second = $0 }
            _ = harness.storage.run(until: { second != nil })
            _ = groove.get(timestamp: 5)
        }
        // The steps before each final get run to the end (so the traps above are the gets').
        let harness = GrooveHarness(storageSeed: 6, wal: [], configuration: GrooveScopeTests.configuration())
        let groove = harness.node.groove
        for batch in 0..<3 {
            groove.prefetchStart()
            if batch < 2 {
                groove.prefetchEnqueue(id: 10)
                groove.prefetchEnqueue(timestamp: 5)
            }
            var prefetched: Result<Void, GrooveFault>?
            groove.prefetch { prefetched = $0 }
            #expect(harness.storage.run(until: { prefetched != nil }), "batch \(batch) prefetched")
            if batch < 2 {
                #expect(groove.get(id: 10) == nil, "a missing id, prefetched")
                #expect(groove.get(timestamp: 5) == nil, "a missing timestamp, prefetched")
            }
        }
    }

    @Test func overCapacityIsAPrecondition() async {
        await #expect(processExitsWith: .failure, "a third key in a map of two") {
            var map = GrooveBatchMap<UInt64, Bool>(capacity: 2)
            for key in UInt64(1)...3 { map.put(key, true) }
        }
    }
}

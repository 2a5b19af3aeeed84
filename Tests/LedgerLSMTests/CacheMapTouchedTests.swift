import LedgerKit
@testable import LedgerLSM
import Testing

/// `CacheMap(stashesOnlyTouched: true)` (a groove's object cache): a value touched since the
/// last `compact()` (found, put, replaced, updated) survives evictions until the next
/// `compact()`; an untouched one is forgotten when evicted; answers are never stale. Also the
/// fast path for keys above every key put (`put` skips the set search and the stash probe).
@Suite struct CacheMapTouchedTests {
    @Test func untouchedEvictionsAreForgottenTouchedOnesStashed() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 64, stashesOnlyTouched: true)
        for key in UInt64(1)...16 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        #expect(map.cacheCount == 16, "one set of 16 ways holds the first 16")
        map.compact()
        // A new batch touches 3 and 7, then inserts 16 new keys: every old way is evicted.
        #expect(map.get(3)?.payload == 3)
        #expect(map.peek(7)?.payload == 7, "a peek touches too (prefetch checks presence with it)")
        for key in UInt64(101)...116 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        #expect(map.get(3)?.payload == 3, "a touched value survives its eviction (stash)")
        #expect(map.get(7)?.payload == 7, "a touched value survives its eviction (stash)")
        #expect(map.stashCount >= 2, "the touched values moved into the stash")
        let untouchedFound = (UInt64(1)...16).filter { $0 != 3 && $0 != 7 && map.peek($0) != nil }
        #expect(untouchedFound.count < 14, "untouched values were forgotten, not stashed: \(untouchedFound)")
        for key in UInt64(101)...116 {
            #expect(map.get(key)?.payload == key, "the batch's inserts are all found")
        }
    }

    @Test func aRetainingCacheStashesEveryEviction() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 64)
        for key in UInt64(1)...16 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        map.compact()
        for key in UInt64(101)...116 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        #expect(map.stashCount == 16, "without stashesOnlyTouched every evicted value moves")
        for key in UInt64(1)...16 { #expect(map.get(key)?.payload == key) }
    }

    @Test func ascendingInsertsAfterADiscardedScopeStayExact() {
        // Keys above every key put take the fast path; a discarded scope removes them, and a
        // later put of the same key (no longer above all) must not leave two copies.
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 32, stashCapacity: 64, stashesOnlyTouched: true)
        for key in UInt64(1)...20 { map.upsert(CacheMapTestObject(timestamp: key, payload: 1)) }
        map.scopeOpen()
        for key in UInt64(21)...30 { map.upsert(CacheMapTestObject(timestamp: key, payload: 2)) }
        map.scopeClose(persist: false)
        for key in UInt64(21)...30 { #expect(map.peek(key) == nil, "the discarded inserts are gone") }
        for key in UInt64(21)...30 { map.upsert(CacheMapTestObject(timestamp: key, payload: 3)) }
        for key in UInt64(21)...30 { map.upsert(CacheMapTestObject(timestamp: key, payload: 4)) }
        #expect(map.cacheCount + map.stashCount == 30, "each key is held once")
        for key in UInt64(21)...30 { #expect(map.remove(key)?.payload == 4) }
        for key in UInt64(21)...30 { #expect(map.peek(key) == nil, "one remove leaves no second copy") }
    }

    @Test(arguments: [16, 32, 128])
    func model(cacheCapacity: Int) {
        for seed in UInt64(1)...25 {
            // Keys mostly ascend (a groove's new objects): half new, half older ones, so the
            // fast path for new keys runs with scopes and removes around it.
            var prng = PRNG(seed: seed)
            let batchChangesMax = 24 + Int(prng.below(40))
            let map = CacheMap<CacheMapTestObject>(
                cacheCapacity: cacheCapacity, stashCapacity: batchChangesMax, stashesOnlyTouched: true)
            let failures = CacheMapModel.run(
                map: map, prng: &prng, changesPerBatch: batchChangesMax - 1, sweepKeyEnd: 0
            ) { prng, keyNext in
                prng.chance(percent: 50) || keyNext == 1 ? keyNext : 1 + prng.below(keyNext - 1)
            }
            #expect(failures.isEmpty, "seed \(seed), cacheCapacity \(cacheCapacity): \(failures.prefix(5))")
        }
    }

    @Test func clockSweepMatchesAReferenceSweep() {
        // `evictWay` sweeps in a register; the reference lowers each count through `store`.
        var prng = PRNG(seed: 7)
        let clock = ClockSets(setCount: 4)
        let reference = ClockSets(setCount: 4)
        defer {
            clock.deallocate()
            reference.deallocate()
        }
        var hands = [Int](repeating: 0, count: 4)
        for turn in 0..<2000 {
            let set = Int(prng.below(4))
            let way = Int(prng.below(16))
            if prng.chance(percent: 60) {
                let count = UInt32(prng.below(4))
                clock.store(set: set, way: way, count)
                reference.store(set: set, way: way, count)
                continue
            }
            // The reference sweep.
            var sweep = hands[set]
            var expected = -1
            for _ in 0..<64 {
                let current = reference.count(set: set, way: sweep)
                if current == 0 {
                    expected = sweep
                    break
                }
                reference.store(set: set, way: sweep, current - 1)
                sweep = (sweep + 1) % 16
            }
            hands[set] = (expected + 1) % 16
            let evicted = clock.evictWay(set: set)
            #expect(evicted == expected, "turn \(turn): evicted way \(evicted), the reference \(expected)")
            for way in 0..<16 where clock.count(set: set, way: way) != reference.count(set: set, way: way) {
                Issue.record("turn \(turn): set \(set) way \(way) count differs after the sweep")
            }
        }
    }
}

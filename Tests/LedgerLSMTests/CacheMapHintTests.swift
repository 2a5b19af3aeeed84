import CLedgerHints
import LedgerKit
import LedgerLSM
import Testing

/// The execute-time speedups of the object and id caches: software prefetch hints change
/// nothing observable, and a cache that forgets evictions (the groove's id cache) never stashes.
@Suite struct CacheMapHintTests {
    @Test func prefetchHintsChangeNothing() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 32, stashCapacity: 64)
        for key in UInt64(1)...60 { map.upsert(CacheMapTestObject(timestamp: key, payload: key * 10)) }
        let counters = (map.hitsCache, map.hitsStash, map.misses, map.evictions, map.cacheCount, map.stashCount)
        for key in UInt64(0)...80 {
            map.prefetchPlacement(of: key, stash: true)
            map.prefetchPlacement(of: key, stash: false)
            map.prefetchValue(of: key)
            // Slot hints of every kind: current, stale, stash, out of range, none.
            map.prefetchSlot(map.slotHint(of: key))
            map.prefetchSlot(Int(key))
            map.prefetchSlot(~Int(key))
        }
        map.prefetchSlot(CacheMap<CacheMapTestObject>.slotHintNone)
        map.prefetchSlot(Int.max)
        map.prefetchSlot(~Int(1 << 40))
        #expect(map.hitsCache == counters.0)
        #expect(map.hitsStash == counters.1)
        #expect(map.misses == counters.2)
        #expect(map.evictions == counters.3)
        #expect(map.cacheCount == counters.4)
        #expect(map.stashCount == counters.5)
        for key in UInt64(1)...60 {
            #expect(map.peek(key) == CacheMapTestObject(timestamp: key, payload: key * 10), "key \(key) kept its value")
        }
    }

    @Test func forgettingEvictionsNeverStashes() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 32, stashCapacity: 8, retainsEvictions: false)
        // 200 distinct keys into 32 ways: a stashing map would overflow its 8-value stash.
        for key in UInt64(1)...200 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        #expect(map.stashCount == 0, "evictions are forgotten")
        #expect(map.evictions == 200 - UInt64(map.cacheCount), "every insert past the cache evicted one")
        var present = 0
        for key in UInt64(1)...200 {
            if let item = map.peek(key) {
                #expect(item.payload == key, "a cached key keeps its own value")
                present += 1
            }
        }
        #expect(present == map.cacheCount)
        // A discarded scope still restores the keys it changed, evicted or not.
        map.scopeOpen()
        for key in UInt64(201)...208 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        map.scopeClose(persist: false)
        for key in UInt64(201)...208 { #expect(map.peek(key) == nil, "key \(key) was discarded") }
        #expect(map.stashCount == 0)
    }
}

/// The vector tag compare of the set-associative caches against a plain loop.
@Suite struct TagMatchTests {
    @Test func matchesEveryWayWhoseTagIsEqual() {
        var prng = PRNG(seed: 77)
        var tags = [UInt16](repeating: 0, count: 16)
        for round in 0..<2_000 {
            // Small tag domains make repeats (several matching ways) common; 0xffff and 0x8000
            // check that no lane is read as signed.
            let domain: UInt64 = round % 3 == 0 ? 4 : 65_536
            for way in 0..<16 { tags[way] = UInt16(prng.below(domain)) }
            if round % 7 == 0 { tags[Int(prng.below(16))] = 0xffff }
            if round % 11 == 0 { tags[Int(prng.below(16))] = 0x8000 }
            let tag = round % 2 == 0 ? tags[Int(prng.below(16))] : UInt16(prng.below(domain))
            var expected: UInt32 = 0
            for way in 0..<16 where tags[way] == tag { expected |= 1 << UInt32(way) }
            let matches = tags.withUnsafeBufferPointer { ledger_tag_matches16($0.baseAddress!, tag) }
            #expect(matches == expected, "round \(round): tags \(tags) tag \(tag)")
        }
    }
}

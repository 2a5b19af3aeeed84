import LedgerKit
@testable import LedgerLSM
import Testing

/// A value of these tests: a u64 key and a payload that tells versions apart.
private struct Item: TreeValue, Equatable {
    var timestamp: UInt64
    var payload: UInt64

    var key: UInt64 { timestamp }
    var isTombstone: Bool { false }
    static func tombstone(key: UInt64) -> Item {
        preconditionFailure("test items are never deleted")
    }
}

/// `CacheMap(stashesOnlyTouched: true)` (a groove's object cache): a value touched since the
/// last `compact()` (found, put, replaced, updated) survives evictions until the next
/// `compact()`; an untouched one is forgotten when evicted; answers are never stale. Also the
/// fast path for keys above every key put (`put` skips the set search and the stash probe).
@Suite struct Exec2CacheMapTouchedTests {
    @Test func untouchedEvictionsAreForgottenTouchedOnesStashed() {
        let map = CacheMap<Item>(cacheCapacity: 16, stashCapacity: 64, stashesOnlyTouched: true)
        for key in UInt64(1)...16 { map.upsert(Item(timestamp: key, payload: key)) }
        #expect(map.cacheCount == 16, "one set of 16 ways holds the first 16")
        map.compact()
        // A new batch touches 3 and 7, then inserts 16 new keys: every old way is evicted.
        #expect(map.get(3)?.payload == 3)
        #expect(map.peek(7)?.payload == 7, "a peek touches too (prefetch checks presence with it)")
        for key in UInt64(101)...116 { map.upsert(Item(timestamp: key, payload: key)) }
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
        let map = CacheMap<Item>(cacheCapacity: 16, stashCapacity: 64)
        for key in UInt64(1)...16 { map.upsert(Item(timestamp: key, payload: key)) }
        map.compact()
        for key in UInt64(101)...116 { map.upsert(Item(timestamp: key, payload: key)) }
        #expect(map.stashCount == 16, "without stashesOnlyTouched every evicted value moves")
        for key in UInt64(1)...16 { #expect(map.get(key)?.payload == key) }
    }

    @Test func ascendingInsertsAfterADiscardedScopeStayExact() {
        // Keys above every key put take the fast path; a discarded scope removes them, and a
        // later put of the same key (no longer above all) must not leave two copies.
        let map = CacheMap<Item>(cacheCapacity: 32, stashCapacity: 64, stashesOnlyTouched: true)
        for key in UInt64(1)...20 { map.upsert(Item(timestamp: key, payload: 1)) }
        map.scopeOpen()
        for key in UInt64(21)...30 { map.upsert(Item(timestamp: key, payload: 2)) }
        map.scopeClose(persist: false)
        for key in UInt64(21)...30 { #expect(map.peek(key) == nil, "the discarded inserts are gone") }
        for key in UInt64(21)...30 { map.upsert(Item(timestamp: key, payload: 3)) }
        for key in UInt64(21)...30 { map.upsert(Item(timestamp: key, payload: 4)) }
        #expect(map.cacheCount + map.stashCount == 30, "each key is held once")
        for key in UInt64(21)...30 { #expect(map.remove(key)?.payload == 4) }
        for key in UInt64(21)...30 { #expect(map.peek(key) == nil, "one remove leaves no second copy") }
    }

    @Test(arguments: [16, 32, 128])
    func model(cacheCapacity: Int) {
        for seed in UInt64(1)...25 {
            let failures = TouchedModel.run(seed: seed, cacheCapacity: cacheCapacity)
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

/// A randomized run against a dictionary, batch by batch: a key upserted, updated or found
/// since the last `compact()` must be found with its latest value; a removed key never; any
/// other key is found with its latest value or missing. Keys mostly ascend (a groove's new
/// objects), so the fast path for new keys is exercised with scopes and removes around it.
private enum TouchedModel {
    static func run(seed: UInt64, cacheCapacity: Int) -> [String] {
        var prng = PRNG(seed: seed)
        let batchChangesMax = 24 + Int(prng.below(40))
        let map = CacheMap<Item>(cacheCapacity: cacheCapacity, stashCapacity: batchChangesMax, stashesOnlyTouched: true)
        var latest: [UInt64: UInt64] = [:]
        var guaranteed: Set<UInt64> = []
        var failures: [String] = []
        var version: UInt64 = 0
        var keyNext: UInt64 = 1

        func check(_ key: UInt64, _ found: Item?, _ context: String) {
            if let found, found.key != key { failures.append("\(context): \(key) gave key \(found.key)") }
            switch (latest[key], found) {
            case (nil, nil): break
            case (nil, .some): failures.append("\(context): removed key \(key) found")
            case (.some, nil) where guaranteed.contains(key):
                failures.append("\(context): guaranteed key \(key) missing")
            case (.some, nil): break
            case (.some(let expected), .some(let value)):
                if value.payload != expected {
                    failures.append("\(context): key \(key) has \(value.payload), expected \(expected)")
                }
                guaranteed.insert(key)
            }
        }

        for batch in 0..<60 where failures.isEmpty {
            map.compact()
            guaranteed.removeAll()
            var changes = 0
            var scope: (latest: [UInt64: UInt64], guaranteed: Set<UInt64>)?
            // Each turn makes at most one change; bounded by batchChangesMax.
            while changes < batchChangesMax - 1 {
                let roll = prng.below(100)
                // Half the keys are new (ascending), half old (random below the next).
                let key = prng.chance(percent: 50) || keyNext == 1 ? keyNext : 1 + prng.below(keyNext - 1)
                if roll < 40 {
                    version += 1
                    map.upsert(Item(timestamp: key, payload: version))
                    latest[key] = version
                    guaranteed.insert(key)
                    if key == keyNext { keyNext += 1 }
                    changes += 1
                } else if roll < 50 {
                    let removed = map.remove(key)
                    if removed != nil { check(key, removed, "remove") }
                    latest[key] = nil
                    guaranteed.remove(key)
                    changes += 1
                } else if roll < 60 {
                    version += 1
                    let newVersion = version
                    let updated = map.update(key) { $0.payload = newVersion }
                    if updated {
                        if latest[key] == nil { failures.append("update found removed key \(key)") }
                        latest[key] = newVersion
                        guaranteed.insert(key)
                    } else {
                        check(key, nil, "update")
                    }
                    changes += 1
                } else if roll < 64, scope == nil {
                    map.scopeOpen()
                    scope = (latest, guaranteed)
                } else if roll < 68, let saved = scope {
                    let persist = prng.chance(percent: 50)
                    map.scopeClose(persist: persist)
                    if !persist {
                        latest = saved.latest
                        guaranteed = saved.guaranteed
                    }
                    scope = nil
                } else {
                    check(key, map.get(key), "get")
                }
            }
            if let saved = scope {
                map.scopeClose(persist: false)
                latest = saved.latest
                guaranteed = saved.guaranteed
            }
            var present = 0
            for key in 1..<keyNext {
                let found = map.peek(key)
                check(key, found, "batch \(batch) sweep")
                if found != nil { present += 1 }
            }
            if present != map.cacheCount + map.stashCount {
                failures.append("batch \(batch): \(present) present, counts say \(map.cacheCount + map.stashCount)")
            }
        }
        return failures
    }
}

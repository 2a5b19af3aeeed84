import LedgerKit
import LedgerLSM
import Testing

/// A value of the cache-map tests: a u64 key and a payload that tells versions apart.
struct CacheMapTestObject: TreeValue, Equatable {
    var timestamp: UInt64
    var payload: UInt64

    var key: UInt64 { timestamp }
    var isTombstone: Bool { false }
    static func tombstone(key: UInt64) -> CacheMapTestObject {
        preconditionFailure("test objects are never deleted")
    }
}

@Suite struct CacheMapTests {
    @Test func upsertGetReplaceRemove() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 32, stashCapacity: 8)
        #expect(map.get(1) == nil)
        #expect(map.misses == 1)
        map.upsert(CacheMapTestObject(timestamp: 1, payload: 10))
        #expect(map.get(1) == CacheMapTestObject(timestamp: 1, payload: 10))
        #expect(map.hitsCache == 1)
        map.upsert(CacheMapTestObject(timestamp: 1, payload: 11))
        #expect(map.get(1)?.payload == 11, "an upsert replaces")
        #expect(map.cacheCount == 1)
        #expect(map.remove(1)?.payload == 11)
        #expect(map.remove(1) == nil)
        #expect(map.get(1) == nil)
        #expect(map.cacheCount == 0)
        #expect(map.hitsCache == 2)
        #expect(map.misses == 2)
        #expect(map.evictions == 0)
    }

    @Test func updateInPlace() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 64)
        #expect(!map.update(5) { $0.payload = 1 }, "an absent key is not updated")
        for key in UInt64(1)...40 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        #expect(map.stashCount == 24, "16 in the cache, the rest evicted to the stash")
        for key in UInt64(1)...40 {
            #expect(map.update(key) { $0.payload += 100 })
        }
        for key in UInt64(1)...40 { #expect(map.peek(key)?.payload == key + 100) }
        #expect(map.hitsCache + map.hitsStash == 40)
    }

    @Test func wideKeys() {
        let map = CacheMap<IdTreeValue>(cacheCapacity: 16, stashCapacity: 256)
        for index in UInt128(0)..<200 {
            map.upsert(IdTreeValue(id: index << 64 | 7, timestamp: UInt64(index) + 1))
        }
        for index in UInt128(0)..<200 {
            #expect(map.get(index << 64 | 7)?.timestamp == UInt64(index) + 1)
            #expect(map.get((index + 1000) << 64 | 7) == nil, "keys differing in the high word are distinct")
        }
    }

    @Test func stashOnly() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 0, stashCapacity: 100)
        for key in UInt64(1)...100 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        #expect(map.stashCount == 100)
        #expect(map.cacheCount == 0)
        map.upsert(CacheMapTestObject(timestamp: 50, payload: 0))
        #expect(map.stashCount == 100, "replacing a stashed key takes no room")
        for key in UInt64(1)...100 { #expect(map.get(key)?.payload == (key == 50 ? 0 : key)) }
        #expect(map.hitsStash == 100)
        #expect(map.evictions == 0)
        // Removing from the middle of probe chains keeps every other key reachable.
        for key in stride(from: UInt64(1), through: 100, by: 3) { #expect(map.remove(key) != nil) }
        for key in UInt64(1)...100 {
            #expect((map.peek(key) != nil) == (key % 3 != 1))
        }
        map.compact()
        #expect(map.stashCount == 0)
        for key in UInt64(1)...100 { #expect(map.peek(key) == nil, "no cache: compact drops all") }
    }

    @Test func heavyEvictionKeepsTheBatch() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 1000)
        for key in UInt64(1)...1000 { map.upsert(CacheMapTestObject(timestamp: key, payload: key * 2)) }
        for key in UInt64(1)...1000 { #expect(map.get(key)?.payload == key * 2) }
        #expect(map.cacheCount == 16)
        #expect(map.stashCount == 984)
        #expect(map.evictions == 984)
        map.compact()
        #expect(map.stashCount == 0)
        var found = 0
        for key in UInt64(1)...1000 {
            if let value = map.peek(key) {
                #expect(value.payload == key * 2, "a surviving value is its latest version")
                found += 1
            }
        }
        #expect(found == 16, "after compact only the cache's values remain")
    }

    /// A full set (16 ways) where one key is read repeatedly: a scan of 15 new keys evicts the
    /// others and keeps it, because each read bought it another pass of the CLOCK hand.
    @Test func clockSecondChance() {
        func scan(reading hot: Int?) -> (hotSurvived: Bool, coldSurvivors: Int) {
            // One set: every key lands in it.
            let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 64)
            let first = (UInt64(1)...16).map { $0 }
            for key in first { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
            #expect(map.cacheCount == 16)
            #expect(map.evictions == 0)
            if let hot {
                for _ in 0..<3 { #expect(map.get(first[hot]) != nil) }
            }
            map.compact()
            for key in UInt64(101)...115 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
            #expect(map.evictions == 15)
            map.compact()
            let coldSurvivors = first.indices.filter { $0 != (hot ?? 0) && map.peek(first[$0]) != nil }
            return (map.peek(first[hot ?? 0]) != nil, coldSurvivors.count)
        }
        for hot in 0..<16 {
            let result = scan(reading: hot)
            #expect(result.hotSurvived, "key \(hot) read 3 times survives the scan")
            #expect(result.coldSurvivors == 0, "the unread keys were evicted instead")
        }
        // Control: unread, the first key inserted is the first evicted.
        #expect(!scan(reading: nil).hotSurvived)
    }

    @Test func scopeDiscardRestoresExactly() {
        // A tiny cache so the scope's inserts evict into the stash.
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 128)
        for key in UInt64(1)...30 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        _ = map.remove(7)
        let before = (UInt64(0)...80).map { map.peek($0) }

        map.scopeOpen()
        map.upsert(CacheMapTestObject(timestamp: 1, payload: 500))  // Replace.
        map.upsert(CacheMapTestObject(timestamp: 1, payload: 501))  // Replace twice.
        map.upsert(CacheMapTestObject(timestamp: 7, payload: 700))  // Re-insert a removed key.
        _ = map.remove(2)  // Remove.
        map.upsert(CacheMapTestObject(timestamp: 2, payload: 200))  // Remove, then re-insert.
        _ = map.remove(3)  // Remove only.
        #expect(map.update(4) { $0.payload = 400 })  // In place.
        for key in UInt64(40)...80 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }  // New keys.
        _ = map.remove(45)  // Insert, then remove.
        #expect(map.peek(1)?.payload == 501)
        #expect(map.peek(3) == nil)
        map.scopeClose(persist: false)

        let after = (UInt64(0)...80).map { map.peek($0) }
        #expect(after == before, "a discarded scope restores values and presence")
        #expect(map.cacheCount + map.stashCount == 29)
    }

    @Test func scopePersistKeepsChanges() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 32, stashCapacity: 16)
        map.upsert(CacheMapTestObject(timestamp: 1, payload: 1))
        map.scopeOpen()
        map.upsert(CacheMapTestObject(timestamp: 1, payload: 2))
        map.upsert(CacheMapTestObject(timestamp: 2, payload: 2))
        map.scopeClose(persist: true)
        #expect(map.peek(1)?.payload == 2)
        #expect(map.peek(2)?.payload == 2)
        // The next scope's undo log starts empty: discarding it keeps the persisted changes.
        map.scopeOpen()
        _ = map.remove(1)
        map.scopeClose(persist: false)
        #expect(map.peek(1)?.payload == 2)
        #expect(map.peek(2)?.payload == 2)
    }

    @Test func deterministic() {
        func run() -> [UInt64] {
            let map = CacheMap<CacheMapTestObject>(cacheCapacity: 64, stashCapacity: 64)
            var prng = PRNG(seed: 42)
            for batch in 0..<50 {
                map.compact()
                for _ in 0..<64 {
                    let key = prng.below(500)
                    if prng.chance(percent: 50) {
                        map.upsert(CacheMapTestObject(timestamp: key, payload: UInt64(batch)))
                    } else {
                        _ = map.get(key)
                    }
                }
            }
            return [map.hitsCache, map.hitsStash, map.misses, map.evictions, UInt64(map.cacheCount)]
        }
        let first = run()
        #expect(first == run(), "the same calls give the same hits, misses and evictions")
        // Pinned: a hash with a per-process seed (Swift's `Hasher`) would change these from run
        // to run, and any change to the hash or to CLOCK changes them, so a replay would differ.
        #expect(first == [209, 37, 1386, 1317, 64], "hits cache, hits stash, misses, evictions, count")
    }

    @Test func stashOverflowIsAPrecondition() async {
        await #expect(processExitsWith: .failure, "no cache: the third value overflows") {
            let map = CacheMap<CacheMapTestObject>(cacheCapacity: 0, stashCapacity: 2)
            for key in UInt64(1)...3 { map.upsert(CacheMapTestObject(timestamp: key, payload: 0)) }
        }
        await #expect(processExitsWith: .failure, "the second eviction overflows") {
            let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 1)
            for key in UInt64(1)...18 { map.upsert(CacheMapTestObject(timestamp: key, payload: 0)) }
        }
        await #expect(processExitsWith: .failure, "a scope logs at most undoCapacity changes") {
            let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 2)
            map.scopeOpen()
            for key in UInt64(1)...3 { map.upsert(CacheMapTestObject(timestamp: key, payload: 0)) }
        }
    }

    @Test(arguments: [0, 16, 32, 128])
    func model(cacheCapacity: Int) {
        for seed in UInt64(1)...25 {
            let failures = CacheMapModel.run(seed: seed, cacheCapacity: cacheCapacity)
            #expect(failures.isEmpty, "seed \(seed), cacheCapacity \(cacheCapacity): \(failures.prefix(5))")
        }
    }
}

/// A randomized run against a dictionary: every key upserted, updated or found since the last
/// `compact()` must be found with its latest value; a removed key never; any other key is
/// either found with its latest value or missing (it was evicted and its stash entry dropped).
/// Shared by the plain cache's tests and the touched-only stash's (CacheMapTouchedTests).
enum CacheMapModel {
    static func run(seed: UInt64, cacheCapacity: Int) -> [String] {
        var prng = PRNG(seed: seed)
        let keySpace = UInt64(cacheCapacity * 3 + 40)
        let batchChangesMax = 24 + Int(prng.below(40))
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: cacheCapacity, stashCapacity: batchChangesMax)
        return run(map: map, prng: &prng, changesPerBatch: batchChangesMax, sweepKeyEnd: keySpace) { prng, _ in
            prng.below(keySpace)
        }
    }

    /// Runs 60 batches of up to `changesPerBatch` changes (upserts, removes, updates; gets and
    /// scopes in between) on `map`, each op's key chosen by `chooseKey` (given one past the
    /// largest key upserted so far), then sweeps keys `0..<max(sweepKeyEnd, that)` after each
    /// batch. Returns the failures.
    static func run(
        map: CacheMap<CacheMapTestObject>, prng: inout PRNG, changesPerBatch: Int, sweepKeyEnd: UInt64,
        chooseKey: (inout PRNG, _ keyNext: UInt64) -> UInt64
    ) -> [String] {
        var latest: [UInt64: UInt64] = [:]
        var guaranteed: Set<UInt64> = []  // Keys that must be present.
        var failures: [String] = []
        var version: UInt64 = 0
        var keyNext: UInt64 = 1

        func check(_ key: UInt64, _ found: CacheMapTestObject?, _ context: String) {
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
                guaranteed.insert(key)  // Found once, it stays until the next compact.
            }
        }

        for batch in 0..<60 where failures.isEmpty {
            map.compact()
            guaranteed = []
            var changes = 0
            var scope: (latest: [UInt64: UInt64], guaranteed: Set<UInt64>)? = nil
            for _ in 0..<400 where changes < changesPerBatch {
                let key = chooseKey(&prng, keyNext)
                let roll = prng.below(100)
                if roll < 40 {
                    version += 1
                    map.upsert(CacheMapTestObject(timestamp: key, payload: version))
                    latest[key] = version
                    guaranteed.insert(key)
                    keyNext = max(keyNext, key + 1)
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
                        // Only keys guaranteed at scope open are known present again.
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
            // Every present value is a model key with its latest value, and the counts agree.
            var present = 0
            for key in 0..<max(sweepKeyEnd, keyNext) {
                let found = map.peek(key)
                check(key, found, "batch \(batch) sweep")
                if found != nil { present += 1 }
            }
            if present != map.cacheCount + map.stashCount {
                failures.append("batch \(batch): \(present) present, counts say \(map.cacheCount + map.stashCount)")
            }
            if map.cacheCount > map.cacheCapacity { failures.append("cache over capacity") }
        }
        return failures
    }
}

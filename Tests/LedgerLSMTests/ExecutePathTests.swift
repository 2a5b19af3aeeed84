import LedgerKit
@testable import LedgerLSM
import Testing

/// The execute path's shortcuts (ForestStore.swift header, CacheMap slot hints): a hint is only
/// a guess, so every stale, foreign or garbage hint must give the same answers as no hint.
@Suite struct ExecutePathTests {
    @Test func hintedGetFindsAndReportsTheSlot() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 32, stashCapacity: 64)
        for key in UInt64(1)...20 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        var hint = CacheMap<CacheMapTestObject>.slotHintNone
        #expect(map.get(7, hint: &hint)?.payload == 7)
        #expect(hint == map.slotHint(of: 7), "the hint names the value's slot")
        let misses = map.misses
        let hits = map.hitsCache + map.hitsStash
        #expect(map.get(7, hint: &hint)?.payload == 7)
        #expect(map.hitsCache + map.hitsStash == hits, "a good hint skips the lookup")
        var absent = CacheMap<CacheMapTestObject>.slotHintNone
        #expect(map.get(999, hint: &absent) == nil)
        #expect(absent == CacheMap<CacheMapTestObject>.slotHintNone, "an absent key leaves no hint")
        #expect(map.misses == misses + 1)
    }

    @Test func foreignAndGarbageHintsFallBack() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 64)
        for key in UInt64(1)...40 { map.upsert(CacheMapTestObject(timestamp: key, payload: key * 10)) }
        #expect(map.stashCount > 0, "some values live in the stash")
        let garbage = [Int.max, Int.min, -1, ~Int(1 << 40), 15, 16, 1 << 40, map.slotHint(of: 3), map.slotHint(of: 39)]
        for key in UInt64(1)...41 {
            for bad in garbage {
                var hint = bad
                #expect(map.get(key, hint: &hint) == map.peek(key), "key \(key), hint \(bad)")
            }
        }
        // A replace through a foreign hint changes the right key only.
        map.replace(CacheMapTestObject(timestamp: 5, payload: 555), hint: map.slotHint(of: 6))
        #expect(map.peek(5)?.payload == 555)
        #expect(map.peek(6)?.payload == 60)
        // Through a garbage hint, a replace of an absent key inserts it (upsert semantics).
        #expect(map.replace(CacheMapTestObject(timestamp: 77, payload: 1), hint: Int.max) == nil)
        #expect(map.peek(77)?.payload == 1)
    }

    @Test func staleHintsAfterEvictionAndStashMoves() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 256)
        map.upsert(CacheMapTestObject(timestamp: 1, payload: 1))
        let hint = map.slotHint(of: 1)
        #expect(hint >= 0, "first in the cache")
        // Fill the single set: key 1 is evicted to the stash, another key takes its slot.
        for key in UInt64(2)...100 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        var stale = hint
        #expect(map.get(1, hint: &stale)?.payload == 1, "a stale cache hint falls back to the lookup")
        let previous = map.replace(CacheMapTestObject(timestamp: 1, payload: 2), hint: hint)
        #expect(previous?.payload == 1)
        #expect(map.peek(1)?.payload == 2)
        for key in UInt64(2)...100 { #expect(map.peek(key)?.payload == key, "no other key was overwritten") }
    }

    @Test func hintedReplaceIsUndoneWithItsScope() {
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 16, stashCapacity: 64)
        for key in UInt64(1)...30 { map.upsert(CacheMapTestObject(timestamp: key, payload: key)) }
        let hints = (UInt64(1)...30).map { map.slotHint(of: $0) }
        map.scopeOpen()
        for key in UInt64(1)...30 {
            map.replace(CacheMapTestObject(timestamp: key, payload: key + 1000), hint: hints[Int(key) - 1])
        }
        map.replace(CacheMapTestObject(timestamp: 31, payload: 31), hint: hints[0])
        for key in UInt64(1)...30 { #expect(map.peek(key)?.payload == key + 1000) }
        map.scopeClose(persist: false)
        for key in UInt64(1)...30 { #expect(map.peek(key)?.payload == key, "discarded: key \(key) restored") }
        #expect(map.peek(31) == nil, "discarded: the inserted key is gone")
        map.scopeOpen()
        map.replace(CacheMapTestObject(timestamp: 2, payload: 22), hint: map.slotHint(of: 2))
        map.scopeClose(persist: true)
        #expect(map.peek(2)?.payload == 22, "persisted")
    }

    /// Random upserts, removes, hinted gets and hinted replaces with hints kept across changes
    /// (as execute keeps them across other inserts) agree with a dictionary.
    @Test(arguments: [UInt64(1), 2, 3, 0xC0FFEE])
    func hintedOperationsMatchTheModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let map = CacheMap<CacheMapTestObject>(cacheCapacity: 32, stashCapacity: 4096)
        var model: [UInt64: UInt64] = [:]
        var hints: [UInt64: Int] = [:]
        for step in 0..<3000 {
            let key = prng.below(80) + 1
            let payload = prng.next()
            switch prng.below(4) {
            case 0:
                map.upsert(CacheMapTestObject(timestamp: key, payload: payload))
                model[key] = payload
            case 1:
                var hint = hints[key] ?? CacheMap<CacheMapTestObject>.slotHintNone
                let got = map.get(key, hint: &hint)
                hints[key] = hint
                if got?.payload != model[key] { Issue.record("seed \(seed) step \(step): get of \(key) disagrees") }
            case 2:
                let previous = map.replace(CacheMapTestObject(timestamp: key, payload: payload), hint: hints[key] ?? Int(prng.below(64)))
                if previous?.payload != model[key] { Issue.record("seed \(seed) step \(step): replace of \(key) disagrees") }
                model[key] = payload
            default:
                if prng.chance(percent: 20) {
                    map.remove(key)
                    model[key] = nil
                }
            }
        }
        for key in UInt64(1)...81 where map.peek(key)?.payload != model[key] {
            Issue.record("seed \(seed): final value of \(key) disagrees")
        }
    }

    /// `accountsUnchanged` must agree with the accounts' index list: it may say "unchanged" only
    /// when every index derives the same field from both versions.
    @Test(arguments: [UInt64(11), 12, 13])
    func accountsUnchangedAgreesWithTheIndexes(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let indexes = GrooveIndex<Account>.accounts()
        var unchangedSeen = 0
        var changedSeen = 0
        for step in 0..<2000 {
            let a = Self.randomAccount(&prng)
            var b = a
            // Change a few fields, indexed or not, each with small values so changes often
            // coincide with the old value.
            for _ in 0..<Int(prng.below(3)) {
                switch prng.below(9) {
                case 0: b.userData128 = UInt128(prng.below(2))
                case 1: b.userData64 = prng.below(2)
                case 2: b.userData32 = UInt32(prng.below(2))
                case 3: b.ledger = UInt32(prng.below(2))
                case 4: b.code = UInt16(prng.below(2))
                case 5: b.flags = AccountFlags(rawValue: UInt16(truncatingIfNeeded: prng.below(64)))
                case 6: b.debitsPosted += 1
                case 7: b.creditsPending = UInt128(prng.below(5))
                default: break
                }
            }
            let derivedSame = indexes.allSatisfy { $0.field(of: a) == $0.field(of: b) }
            let unchanged = GrooveIndex<Account>.accountsUnchanged(a, b)
            if unchanged != derivedSame {
                Issue.record("seed \(seed) step \(step): accountsUnchanged \(unchanged), indexes say \(derivedSame)")
            }
            if unchanged { unchangedSeen += 1 } else { changedSeen += 1 }
        }
        #expect(unchangedSeen > 100, "seed \(seed): both answers are exercised")
        #expect(changedSeen > 100, "seed \(seed): both answers are exercised")
    }

    private static func randomAccount(_ prng: inout PRNG) -> Account {
        Account(
            id: prng.uint128() | 1, debitsPosted: UInt128(prng.below(100)), userData128: UInt128(prng.below(2)),
            userData64: prng.below(2), userData32: UInt32(prng.below(2)), ledger: UInt32(prng.below(2)),
            code: UInt16(prng.below(2)), flags: AccountFlags(rawValue: UInt16(truncatingIfNeeded: prng.below(64))),
            timestamp: prng.below(1000) + 1)
    }
}

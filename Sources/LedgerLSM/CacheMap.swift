import CLedgerHints
import LedgerKit

// A groove's object cache (storage spec §5, "Caches" and "Prefetch, then execute"): a 16-way
// set-associative CLOCK cache of values stored inline, over a "stash" that catches the values
// the cache evicts during the current batch.
//
// Why the stash: the groove prefetches every object a batch may touch into this map, then
// executes synchronously, trusting that each prefetched object is still here. A plain cache
// cannot promise that: inserting the batch's later objects may evict its earlier ones. Every
// value evicted from the cache therefore moves into the stash, which is emptied only by
// `compact()` at the start of the next batch's prefetch (by then the groove has put every
// changed object into its tree, so dropping the stash loses nothing). A key lives in at most
// one of the two: the cache or the stash.
//
// Invariant the caller keeps: the stash holds at most `stashCapacity` values. Each stash entry
// was evicted by one insert of a new key into the cache (or, with no cache, is such an insert),
// so the most upserts one batch makes bounds it (plus its removes, if a discarded scope
// re-inserts removed keys); overflow is a precondition failure, not an error, because it is a
// bug in the caller's arithmetic. A scope's undo log is bounded the same way: one entry per
// upsert, update or remove inside the scope.
//
// Scopes (linked chains): between `scopeOpen()` and `scopeClose(persist:)` every change logs the
// key's previous version (its value, or its absence) in a fixed undo log; a discarded scope
// replays the log backwards, restoring exactly the previous values and presence. CLOCK counts,
// the placement of a key (cache or stash) and the counters are not rolled back: they are not
// observable through `get`.
//
// Cache layout as in `BlockCache`: a key hashes (a fixed hash of its bytes, no per-process seed,
// so runs replay exactly) to one set of 16 ways; a lookup compares 16 16-bit tags, then keys.
// Per set, a u16 occupancy mask, a u32 of 2-bit CLOCK counts and a hand. Empty ways are filled
// before CLOCK evicts anything.
//
// Stash layout: open addressing with linear probing over 2 × stashCapacity slots rounded up to
// a power of two (load ≤ 1/2, so a probe ends at an empty slot after about 1.5 slots); deletion
// shifts later entries back (no tombstones), so probe chains never degrade within a batch.
//
// Sketch: 128 MiB of accounts (128 B) = 1 Mi values = 64 Ki sets; metadata is 3 bytes per value
// plus 7 per set. A lookup costs one hash and two or three cache lines (tags, value, mask).
// The stash of one batch (8189 objects) costs 16 Ki slots × (value + 1 B): 2 MiB for accounts.
// Nothing allocates after init.
//
// Keys are hashed by their bytes: a key type must have no padding bytes and `==` must mean
// bytewise equality (true of the u64 timestamps and u128 ids the grooves use).

public final class CacheMap<Value: TreeValue> {
    public typealias Key = Value.Key

    /// Ways per set.
    public static var ways: Int { ClockSets.ways }
    /// Largest CLOCK count (2 bits).

    /// Values the cache holds (0: stash only).
    public let cacheCapacity: Int
    /// Values the stash holds: the most upserts between two `compact()`s.
    public let stashCapacity: Int
    /// Whether a value evicted from the cache moves into the stash (the batch guarantee above).
    /// False for a pure cache whose answers the caller copies out when it reads them (a
    /// groove's id cache: prefetch copies each answer into the batch's id map, and execute never
    /// reads the id cache), so an eviction just forgets the value: it saves the stash insert
    /// (a miss in a table of MiBs and a copy) per eviction.
    public let retainsEvictions: Bool
    /// With `retainsEvictions`: whether only values touched since the last `compact()` move
    /// into the stash when evicted (a groove's object cache). The batch guarantee is about
    /// values the batch reads, and a groove reads only what it prefetched (found, or upserted
    /// from its tree) or changed since `compact()` (Groove.swift, "Prefetch, then execute"):
    /// each of those is a touch. Every found, put, replaced or updated cache value is touched,
    /// so a value the batch may read is never dropped; an untouched one (a transfer of an
    /// earlier batch, evicted by this batch's new transfers) is forgotten instead of being read
    /// and copied into the stash: ~3 misses per new transfer. False: every eviction moves.
    public let stashesOnlyTouched: Bool
    /// Changes one scope can log.
    public var undoCapacity: Int { stashCapacity }
    let setCount: Int

    // Cache: slot `set × ways + way`.
    private let cacheValues: UnsafeMutableBufferPointer<Value>
    private let cacheTags: UnsafeMutableBufferPointer<UInt16>
    /// Per set: bit `way` set when the way holds a value.
    private let cacheOccupied: UnsafeMutableBufferPointer<UInt16>
    /// Per set: the `touchGeneration` of its touches (high 32 bits) and the ways touched in it
    /// (bit `way`); marks of an older generation read as none, so `compact()` clears them all
    /// by one increment. 8 bytes per 16 values, maintained only with `stashesOnlyTouched`.
    private let cacheTouched: UnsafeMutableBufferPointer<UInt64>
    /// The current touch generation (0: never current; slots start zeroed).
    private var touchGeneration: UInt32 = 1
    /// Per set: the 2-bit CLOCK count of each way, way `w` at bits `2w…2w+1`.
    private let clock: ClockSets

    // Stash: a power-of-two table, `stashMask` = slots - 1.
    private let stashValues: UnsafeMutableBufferPointer<Value>
    private let stashUsed: UnsafeMutableBufferPointer<UInt8>
    private let stashMask: Int

    // Undo log of the open scope: entry `i` restores `undoValues[i]` if `undoPresent[i]`, else
    // removes `undoKeys[i]`.
    private let undoValues: UnsafeMutableBufferPointer<Value>
    private let undoKeys: UnsafeMutableBufferPointer<Key>
    private let undoPresent: UnsafeMutableBufferPointer<Bool>
    private var undoCount = 0
    public private(set) var scopeIsActive = false

    /// The largest key ever put (nil: none yet); never lowered, so every key present is at
    /// most this (`put`'s fast path for new keys).
    private var keyMax: Key?

    /// Values in the cache.
    public private(set) var cacheCount = 0
    /// Values in the stash.
    public private(set) var stashCount = 0

    // Counters (for tests and metrics; never rolled back, never reset).
    /// Lookups found in the cache.
    public private(set) var hitsCache: UInt64 = 0
    /// Lookups found in the stash.
    public private(set) var hitsStash: UInt64 = 0
    /// Lookups found nowhere.
    public private(set) var misses: UInt64 = 0
    /// Values the cache evicted into the stash.
    public private(set) var evictions: UInt64 = 0

    public init(
        cacheCapacity: Int, stashCapacity: Int, retainsEvictions: Bool = true, stashesOnlyTouched: Bool = false
    ) {
        precondition(cacheCapacity >= 0, "a cache capacity is a count of values")
        precondition(retainsEvictions || cacheCapacity > 0, "a cache that forgets evictions has a cache part")
        precondition(retainsEvictions || !stashesOnlyTouched, "only a retaining cache chooses what it stashes")
        self.retainsEvictions = retainsEvictions
        self.stashesOnlyTouched = stashesOnlyTouched
        precondition(cacheCapacity % Self.ways == 0, "the cache capacity is whole sets of 16 ways")
        precondition(stashCapacity > 0, "the stash holds at least one batch's values")
        precondition(Self.ways == UInt16.bitWidth, "a set's occupancy fills one u16")
        self.cacheCapacity = cacheCapacity
        self.stashCapacity = stashCapacity
        setCount = cacheCapacity / Self.ways
        clock = ClockSets(setCount: setCount)
        if cacheCapacity > 0 {
            cacheValues = LargeAllocation.allocate(Value.self, capacity: cacheCapacity)
            cacheTags = LargeAllocation.allocate(UInt16.self, capacity: cacheCapacity)
            cacheOccupied = LargeAllocation.allocate(UInt16.self, capacity: setCount)
        } else {
            cacheValues = UnsafeMutableBufferPointer(start: nil, count: 0)
            cacheTags = UnsafeMutableBufferPointer(start: nil, count: 0)
            cacheOccupied = UnsafeMutableBufferPointer(start: nil, count: 0)
        }
        cacheTouched = stashesOnlyTouched && setCount > 0
            ? LargeAllocation.allocate(UInt64.self, capacity: setCount)
            : UnsafeMutableBufferPointer(start: nil, count: 0)
        var stashSlots = 2
        while stashSlots < 2 * stashCapacity { stashSlots *= 2 }
        stashMask = stashSlots - 1
        stashValues = LargeAllocation.allocate(Value.self, capacity: stashSlots)
        stashUsed = LargeAllocation.allocate(UInt8.self, capacity: stashSlots)
        undoValues = LargeAllocation.allocate(Value.self, capacity: stashCapacity)
        undoKeys = LargeAllocation.allocate(Key.self, capacity: stashCapacity)
        undoPresent = LargeAllocation.allocate(Bool.self, capacity: stashCapacity)
    }

    deinit {
        if cacheCapacity > 0 {
            LargeAllocation.deallocate(cacheValues)
            LargeAllocation.deallocate(cacheTags)
            LargeAllocation.deallocate(cacheOccupied)
        }
        if cacheTouched.count > 0 { LargeAllocation.deallocate(cacheTouched) }
        clock.deallocate()
        LargeAllocation.deallocate(stashValues)
        LargeAllocation.deallocate(stashUsed)
        LargeAllocation.deallocate(undoValues)
        LargeAllocation.deallocate(undoKeys)
        LargeAllocation.deallocate(undoPresent)
    }

    // MARK: Lookups and changes

    /// The value of `key` from the cache, else the stash; a cache hit raises its CLOCK count.
    public func get(_ key: Key) -> Value? {
        switch locate(key, countingUse: true) {
        case .cache(let slot): return cacheValues[slot]
        case .stash(let slot): return stashValues[slot]
        case .absent: return nil
        }
    }

    /// The value of `key` without counting a use: no CLOCK raise, no counter (for assertions
    /// and tests; execute uses `get`).
    public func peek(_ key: Key) -> Value? {
        switch locate(key, countingUse: false) {
        case .cache(let slot): return cacheValues[slot]
        case .stash(let slot): return stashValues[slot]
        case .absent: return nil
        }
    }

    /// Changes the value of `key` in place, wherever it lives, and returns whether it was
    /// present (a lookup for the counters, like `get`). This saves the groove a second lookup
    /// for the common "read, change a balance, write back" of execute; `body` must not change
    /// the key. Logged in an open scope like `upsert`.
    @discardableResult
    public func update(_ key: Key, _ body: (inout Value) -> Void) -> Bool {
        let location = locate(key, countingUse: true)
        switch location {
        case .cache(let slot):
            logChange(key: key, previous: cacheValues[slot])
            body(&cacheValues[slot])
            precondition(cacheValues[slot].key == key, "an update keeps the value's key")
            return true
        case .stash(let slot):
            logChange(key: key, previous: stashValues[slot])
            body(&stashValues[slot])
            precondition(stashValues[slot].key == key, "an update keeps the value's key")
            return true
        case .absent:
            return false
        }
    }

    // MARK: Software prefetch (execute's hints, ForestStore.hint)

    /// Starts loading the cache lines a lookup of `key` reads first: its set's tags, occupancy,
    /// CLOCK word and touch marks, and with `stash` (an insert follows) the set's CLOCK hand
    /// and the stash's home slot if the insert will probe it.
    /// A hint only: it never faults and changes nothing, so a wrong or stale key costs a wasted
    /// load, never a wrong answer.
    @inline(__always)
    public func prefetchPlacement(of key: Key, stash: Bool) {
        let hash = Self.hash(key)
        if cacheCapacity > 0 {
            let set = placement(hash).set
            ledger_prefetch_read(UnsafeRawPointer(cacheTags.baseAddress! + set * Self.ways))
            ledger_prefetch_read(UnsafeRawPointer(cacheOccupied.baseAddress! + set))
            // The set's CLOCK word (a hit raises it; with `stash`, an insert's eviction also
            // reads the hand) and its touch marks: small arrays, but random lines of them.
            clock.prefetch(set: set, hand: stash)
            if stashesOnlyTouched { ledger_prefetch_read(UnsafeRawPointer(cacheTouched.baseAddress! + set)) }
        }
        // With a cache part, an insert probes the stash only when it holds something and the
        // key is not above every key put (`put`'s fast path); without one, always.
        if stash && (cacheCapacity == 0 || (stashCount > 0 && !(keyMax.map { key > $0 } ?? true))) {
            let home = stashHome(hash)
            ledger_prefetch_read(UnsafeRawPointer(stashUsed.baseAddress! + home))
            ledger_prefetch_read(UnsafeRawPointer(stashValues.baseAddress! + home))
        }
    }

    /// Starts loading the value lines of the cache ways whose tag matches `key`'s (the set's
    /// tags should be loaded already, by `prefetchPlacement`). Reads tags, changes nothing.
    @inline(__always)
    public func prefetchValue(of key: Key) {
        guard cacheCapacity > 0 else { return }
        let (set, tag) = placement(Self.hash(key))
        let base = set * Self.ways
        var matches = tagMatches(set: set, tag: tag)
        // Bounded by the 16 ways: one bit cleared per turn.
        while matches != 0 {
            let value = UnsafeRawPointer(cacheValues.baseAddress! + base + matches.trailingZeroBitCount)
            ledger_prefetch_read(value)
            if MemoryLayout<Value>.stride > 64 { ledger_prefetch_read(value + 64) }
            matches &= matches - 1
        }
    }

    /// Starts loading the value lines of the slot `hint` names, and its set's occupancy and
    /// touch marks (what a hinted `get` reads). Loads only: a stale or foreign hint costs a
    /// wasted load; an out-of-range one loads nothing.
    @inline(__always)
    public func prefetchSlot(_ hint: SlotHint) {
        let value: UnsafeRawPointer
        if hint >= 0 {
            guard hint < cacheCapacity else { return }
            let set = hint / Self.ways
            ledger_prefetch_read(UnsafeRawPointer(cacheOccupied.baseAddress! + set))
            if stashesOnlyTouched { ledger_prefetch_read(UnsafeRawPointer(cacheTouched.baseAddress! + set)) }
            value = UnsafeRawPointer(cacheValues.baseAddress! + hint)
        } else {
            guard hint != Self.slotHintNone, ~hint <= stashMask else { return }
            ledger_prefetch_read(UnsafeRawPointer(stashUsed.baseAddress! + ~hint))
            value = UnsafeRawPointer(stashValues.baseAddress! + ~hint)
        }
        for offset in stride(from: 0, to: MemoryLayout<Value>.stride, by: 64) { ledger_prefetch_read(value + offset) }
    }

    // MARK: Slot hints (execute's "find once, then read and write in place")

    /// Where a value was found: a cache slot (≥ 0) or a stash slot (`~slot`, < 0); `none`
    /// names nothing. A hint is only ever a guess: slots move (evictions, stash removals, a
    /// discarded scope's restores), so every hinted access checks that the slot is in use and
    /// holds the key before trusting it, and falls back to a full lookup otherwise.
    public typealias SlotHint = Int
    public static var slotHintNone: SlotHint { Int.min }

    /// The hint for `key`'s current place (a lookup that does not count a use), `slotHintNone`
    /// when absent.
    public func slotHint(of key: Key) -> SlotHint {
        switch locate(key, countingUse: false) {
        case .cache(let slot): return slot
        case .stash(let slot): return ~slot
        case .absent: return Self.slotHintNone
        }
    }

    /// The location `hint` names if it still holds `key`; a stale or foreign hint yields nil.
    @inline(__always)
    private func checkHint(_ hint: SlotHint, _ key: Key) -> Location? {
        if hint >= 0 {
            guard hint < cacheCapacity else { return nil }
            let set = hint / Self.ways
            let way = hint % Self.ways
            guard cacheOccupied[set] & (UInt16(1) << UInt16(way)) != 0 else { return nil }
            guard cacheValues[hint].key == key else { return nil }
            touch(set: set, way: way)
            return .cache(hint)
        }
        guard hint != Self.slotHintNone else { return nil }
        let slot = ~hint
        guard slot <= stashMask else { return nil }
        guard stashUsed[slot] != 0 else { return nil }
        guard stashValues[slot].key == key else { return nil }
        return .stash(slot)
    }

    /// `get` that first tries `hint` (no hash, no tag scan when it still holds `key`) and
    /// leaves in `hint` where the value is now (`slotHintNone` when absent).
    public func get(_ key: Key, hint: inout SlotHint) -> Value? {
        let location = checkHint(hint, key) ?? locate(key, countingUse: true)
        switch location {
        case .cache(let slot):
            hint = slot
            return cacheValues[slot]
        case .stash(let slot):
            hint = ~slot
            return stashValues[slot]
        case .absent:
            hint = Self.slotHintNone
            return nil
        }
    }

    /// Replaces the value of `value.key` where `hint` says it is (checked), else as `upsert`;
    /// returns the previous value (nil: the key was absent and `value` was inserted). Logged in
    /// an open scope like `upsert`.
    @discardableResult
    public func replace(_ value: Value, hint: SlotHint) -> Value? {
        let key = value.key
        switch checkHint(hint, key) {
        case .cache(let slot):
            let previous = cacheValues[slot]
            logChange(key: key, previous: previous)
            cacheValues[slot] = value
            return previous
        case .stash(let slot):
            let previous = stashValues[slot]
            logChange(key: key, previous: previous)
            stashValues[slot] = value
            return previous
        case .absent, nil:
            if scopeIsActive {
                precondition(undoCount < undoCapacity, "a scope logs at most undoCapacity changes")
            }
            let previous = put(value)
            logChange(key: key, previous: previous)
            return previous
        }
    }

    /// Inserts `value`, or replaces the value of its key. Inserting a key into a full cache
    /// set evicts another value into the stash; with no cache the value goes to the stash.
    public func upsert(_ value: Value) {
        if scopeIsActive {
            precondition(undoCount < undoCapacity, "a scope logs at most undoCapacity changes")
        }
        let previous = put(value)
        logChange(key: value.key, previous: previous)
    }

    /// Removes `key` from the cache or the stash; returns the value it had.
    @discardableResult
    public func remove(_ key: Key) -> Value? {
        if scopeIsActive {
            precondition(undoCount < undoCapacity, "a scope logs at most undoCapacity changes")
        }
        guard let removed = take(key) else { return nil }
        logChange(key: key, previous: removed)
        return removed
    }

    /// Starts a new batch's prefetch: empties the stash. Its values were put into the tree by the
    /// groove when they changed; values in the cache stay.
    public func compact() {
        precondition(!scopeIsActive, "compact between batches, not inside a scope")
        // A new touch generation: every way reads as untouched. At the wrap (every 2³² − 1
        // compacts) the marks are reset, so no stale mark matches a reused generation.
        if touchGeneration == UInt32.max {
            if cacheTouched.count > 0 { cacheTouched.update(repeating: 0) }
            touchGeneration = 1
        } else {
            touchGeneration += 1
        }
        if stashCount > 0 {
            stashUsed.update(repeating: 0)
            stashCount = 0
        }
    }

    // MARK: Scopes

    /// Opens a scope: later changes can be discarded together (one linked chain).
    public func scopeOpen() {
        precondition(!scopeIsActive, "scopes do not nest")
        precondition(undoCount == 0, "a closed scope left no undo log")
        scopeIsActive = true
    }

    /// Closes the scope; with `persist: false`, restores every key changed in it to its value
    /// (or absence) at `scopeOpen()`, replaying the undo log newest first.
    public func scopeClose(persist: Bool) {
        precondition(scopeIsActive, "scopeClose follows scopeOpen")
        scopeIsActive = false  // Restoring must not log.
        if !persist {
            for offset in 0..<undoCount {
                let entry = undoCount - 1 - offset
                if undoPresent[entry] {
                    _ = put(undoValues[entry])
                } else {
                    _ = take(undoKeys[entry])
                }
            }
        }
        undoCount = 0
    }

    // MARK: Internals: both tables

    private enum Location {
        case cache(Int)
        case stash(Int)
        case absent
    }

    private func locate(_ key: Key, countingUse: Bool) -> Location {
        let hash = Self.hash(key)
        if cacheCapacity > 0 {
            let (set, tag) = placement(hash)
            if let way = cacheFind(key, set: set, tag: tag) {
                if countingUse {
                    clock.raise(set: set, way: way)
                    hitsCache += 1
                }
                touch(set: set, way: way)
                return .cache(set * Self.ways + way)
            }
        }
        // An empty stash (always, for a cache that forgets evictions) is not probed: its home
        // slot is a random line of a table of MiBs.
        if stashCount > 0, let slot = stashFind(key, hash: hash) {
            if countingUse { hitsStash += 1 }
            return .stash(slot)
        }
        if countingUse { misses += 1 }
        return .absent
    }

    /// Upsert without logging; returns the previous value of the key.
    private func put(_ value: Value) -> Value? {
        let key = value.key
        let hash = Self.hash(key)
        // A key above every key ever put is in neither table (every key present was put, and
        // `keyMax` never decreases): a groove's new object (timestamps grow) skips the set
        // search and the stash probe.
        let isAboveAll = keyMax.map { key > $0 } ?? true
        if isAboveAll { keyMax = key }
        guard cacheCapacity > 0 else {
            if isAboveAll {
                stashInsert(value, hash: hash)
                return nil
            }
            return stashUpsert(value, hash: hash)
        }
        let (set, tag) = placement(hash)
        var previous: Value?
        if !isAboveAll {
            if let way = cacheFind(key, set: set, tag: tag) {
                let slot = set * Self.ways + way
                let previous = cacheValues[slot]
                cacheValues[slot] = value
                clock.raise(set: set, way: way)
                touch(set: set, way: way)
                return previous
            }
            // Take the key out of the stash before a possible eviction into it: the stash never
            // holds the key twice, nor more than it must.
            previous = stashRemove(key, hash: hash)
        }
        let way = freeWay(set: set) ?? evictWay(set: set)
        let slot = set * Self.ways + way
        let bit = UInt16(1) << UInt16(way)
        if cacheOccupied[set] & bit != 0 {
            // Read only when stashed: a forgetting cache (the id caches) saves a miss on the
            // victim's line. The victim is not `key`: `key` was not in the set (searched above,
            // or above every key).
            if retainsEvictions && (!stashesOnlyTouched || isTouched(set: set, way: way)) {
                let evicted = cacheValues[slot]
                precondition(evicted.key != key, "a key evicted by its own insert was found first")
                stashInsert(evicted, hash: Self.hash(evicted.key))
            }
            evictions += 1
        } else {
            cacheOccupied[set] |= bit
            cacheCount += 1
        }
        cacheValues[slot] = value
        cacheTags[slot] = tag
        clock.store(set: set, way: way, 1)
        touch(set: set, way: way)
        return previous
    }

    /// Remove without logging; returns the removed value.
    private func take(_ key: Key) -> Value? {
        let hash = Self.hash(key)
        if cacheCapacity > 0 {
            let (set, tag) = placement(hash)
            if let way = cacheFind(key, set: set, tag: tag) {
                let slot = set * Self.ways + way
                cacheOccupied[set] &= ~(UInt16(1) << UInt16(way))
                clock.store(set: set, way: way, 0)
                cacheCount -= 1
                return cacheValues[slot]
            }
        }
        return stashRemove(key, hash: hash)
    }

    private func logChange(key: Key, previous: Value?) {
        guard scopeIsActive else { return }
        precondition(undoCount < undoCapacity, "a scope logs at most undoCapacity changes")
        if let previous {
            undoValues[undoCount] = previous
            undoPresent[undoCount] = true
        } else {
            undoKeys[undoCount] = key
            undoPresent[undoCount] = false
        }
        undoCount += 1
    }

    /// A fixed hash of the key's bytes (MurmurHash3's 64-bit finalizer over each word), the same
    /// in every process, so placement, evictions and counters replay exactly.
    static func hash(_ key: Key) -> UInt64 {
        withUnsafeBytes(of: key) { bytes in
            // Wrapping arithmetic throughout: it is the hash.
            var hash = UInt64(truncatingIfNeeded: bytes.count) &* 0x9e37_79b9_7f4a_7c15
            var offset = 0
            while offset + 8 <= bytes.count {
                hash = mix(hash ^ bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                offset += 8
            }
            var tail: UInt64 = 0
            while offset < bytes.count {
                tail = (tail << 8) | UInt64(bytes[offset])
                offset += 1
            }
            return mix(hash ^ tail)
        }
    }

    private static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x = x &* 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x = x &* 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }

    // MARK: Internals: the cache

    /// The set from the hash's high bits (multiply-shift), the tag from its low bits.
    private func placement(_ hash: UInt64) -> (set: Int, tag: UInt16) {
        let set = Int(hash.multipliedFullWidth(by: UInt64(setCount)).high)
        return (set, UInt16(truncatingIfNeeded: hash))
    }

    private func cacheFind(_ key: Key, set: Int, tag: UInt16) -> Int? {
        let base = set * Self.ways
        var matches = tagMatches(set: set, tag: tag)
        // Bounded by the 16 ways: one bit cleared per turn.
        while matches != 0 {
            let way = matches.trailingZeroBitCount
            if cacheValues[base + way].key == key { return way }
            matches &= matches - 1
        }
        return nil
    }

    /// The occupied ways of `set` whose tag is `tag` (bit `way`).
    @inline(__always)
    private func tagMatches(set: Int, tag: UInt16) -> UInt32 {
        ledger_tag_matches16(cacheTags.baseAddress! + set * Self.ways, tag) & UInt32(cacheOccupied[set])
    }

    /// Marks the way as touched in the current generation (`stashesOnlyTouched`).
    @inline(__always)
    private func touch(set: Int, way: Int) {
        guard stashesOnlyTouched else { return }
        let word = cacheTouched[set]
        let generation = UInt64(touchGeneration) << 32
        let marks = word & ~UInt64(UInt32.max) == generation ? word & UInt64(UInt16.max) : 0
        cacheTouched[set] = generation | marks | (UInt64(1) << UInt64(way))
    }

    @inline(__always)
    private func isTouched(set: Int, way: Int) -> Bool {
        let word = cacheTouched[set]
        return word >> 32 == UInt64(touchGeneration) && word & (UInt64(1) << UInt64(way)) != 0
    }

    /// The lowest empty way of the set, if any.
    private func freeWay(set: Int) -> Int? {
        let occupied = cacheOccupied[set]
        if occupied == UInt16.max { return nil }
        return (~occupied).trailingZeroBitCount
    }

    /// CLOCK eviction from a full set.
    private func evictWay(set: Int) -> Int {
        precondition(cacheOccupied[set] == UInt16.max, "CLOCK evicts only from a full set")
        return clock.evictWay(set: set)
    }

    // MARK: Internals: the stash

    private func stashHome(_ hash: UInt64) -> Int {
        // The high bits: the cache's tag uses the low ones.
        Int(truncatingIfNeeded: hash >> 32) & stashMask
    }

    /// The slot holding `key`. The table is at most half full, so the probe meets an empty slot.
    private func stashFind(_ key: Key, hash: UInt64) -> Int? {
        var slot = stashHome(hash)
        for _ in 0...stashMask {
            if stashUsed[slot] == 0 { return nil }
            if stashValues[slot].key == key { return slot }
            slot = (slot + 1) & stashMask
        }
        preconditionFailure("the stash is at most half full, so a probe ends at an empty slot")
    }

    /// The first empty slot of `hash`'s probe sequence.
    private func stashEmptySlot(hash: UInt64) -> Int {
        var slot = stashHome(hash)
        for _ in 0...stashMask {
            if stashUsed[slot] == 0 { return slot }
            slot = (slot + 1) & stashMask
        }
        preconditionFailure("the stash is at most half full, so a probe ends at an empty slot")
    }

    /// Inserts a key known to be absent from the stash.
    private func stashInsert(_ value: Value, hash: UInt64) {
        precondition(
            stashCount < stashCapacity,
            "stash overflow: a batch upserted more values than stashCapacity (the caller bounds it)")
        let slot = stashEmptySlot(hash: hash)
        stashValues[slot] = value
        stashUsed[slot] = 1
        stashCount += 1
    }

    private func stashUpsert(_ value: Value, hash: UInt64) -> Value? {
        if let slot = stashFind(value.key, hash: hash) {
            let previous = stashValues[slot]
            stashValues[slot] = value
            return previous
        }
        stashInsert(value, hash: hash)
        return nil
    }

    /// Removes `key`, shifting later entries of the probe chain back into the hole so every
    /// remaining key stays reachable from its home slot without tombstones.
    private func stashRemove(_ key: Key, hash: UInt64) -> Value? {
        guard stashCount > 0, let found = stashFind(key, hash: hash) else { return nil }
        let removed = stashValues[found]
        var hole = found
        var slot = found
        for _ in 0...stashMask {
            slot = (slot + 1) & stashMask
            if stashUsed[slot] == 0 { break }
            let home = stashHome(Self.hash(stashValues[slot].key))
            // The entry may fill the hole if the hole lies on its probe path (home … slot).
            let distanceFromHome = (slot - home) & stashMask
            let distanceFromHole = (slot - hole) & stashMask
            if distanceFromHome >= distanceFromHole {
                stashValues[hole] = stashValues[slot]
                hole = slot
            }
        }
        stashUsed[hole] = 0
        stashCount -= 1
        return removed
    }
}

import CLedgerHints
import LedgerKit

// A groove's per-batch map (Groove.swift, "Prefetch, then execute"): what prefetch learned
// about each id (u128) or enqueued timestamp (u64) of the current batch. It replaces Swift's
// `Dictionary` / `Set`, which cost ~20 % of a forest batch's execute (SipHash per probe, a
// resilient generic path, and `removeAll(keepingCapacity:)` touching every bucket).
//
// Open addressing with linear probing over a power-of-two table of at least 2 × `capacity`
// slots (load ≤ 1/2 at the configured maximum: a probe ends after about 1.5 slots on random
// keys). Each slot holds its key, value and a generation: a slot is in use only when its
// generation equals the map's, so `removeAll()` is one increment, O(1), whatever the batch
// used (the per-batch clear of a 16 Ki-key table would otherwise write 0.5–1 MiB). Removal
// (a discarded scope's undo) shifts later entries of the probe chain back into the hole, so
// there are no tombstones and probe chains never degrade within a batch.
//
// The hash is fixed (no per-process seed): a multiply-mix of both halves of a u128 then
// MurmurHash3's 64-bit finalizer (as `IdIndex`), so sequential, strided or shared-prefix ids
// spread over the table. Nothing observable depends on slot order (the map is never iterated),
// so only speed depends on the hash. Crafted ids that collide after the (invertible) mixer
// degrade a batch to quadratic probing, bounded by `capacity`² / 2 probes: slow, never wrong.
//
// Sketch: production transfers (8189 prefetches + 8189 changes ≈ 16 Ki ids) → 32 Ki slots of
// 32 B = 1 MiB for ids; 16 Ki slots of 16 B = 256 KiB for timestamps. Allocated at init;
// nothing allocates afterwards.

/// A key of a `GrooveBatchMap`: a fixed-width integer with a fixed, well-mixed hash.
protocol GrooveBatchKey: Equatable, BitwiseCopyable {
    /// A 64-bit hash whose low bits are uniform for sequential and structured keys.
    static func batchHash(_ key: Self) -> UInt64
}

extension UInt64: GrooveBatchKey {
    @inline(__always)
    static func batchHash(_ key: UInt64) -> UInt64 { GrooveBatchHash.finalize(key) }
}

extension UInt128: GrooveBatchKey {
    @inline(__always)
    static func batchHash(_ key: UInt128) -> UInt64 {
        // Wrapping arithmetic: it is the hash. The high half is multiplied first so ids that
        // differ only there (a shared low half, e.g. a client's counter in the high bits) still
        // differ after the xor.
        let low = UInt64(truncatingIfNeeded: key)
        let high = UInt64(truncatingIfNeeded: key >> 64)
        return GrooveBatchHash.finalize(low ^ (high &* 0x9E37_79B9_7F4A_7C15))
    }
}

enum GrooveBatchHash {
    /// MurmurHash3's fmix64: every input bit affects every output bit.
    @inline(__always)
    static func finalize(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }
}

/// A fixed-capacity hash map for one batch: `capacity` keys at most, cleared in O(1).
struct GrooveBatchMap<Key: GrooveBatchKey, Value: BitwiseCopyable>: ~Copyable {
    private struct Slot {
        var key: Key
        var value: Value
        /// In use when equal to the map's `generation`; 0 is never current.
        var generation: UInt32
    }

    private let slots: UnsafeMutableBufferPointer<Slot>
    private let mask: Int
    /// Keys the map holds at most.
    let capacity: Int
    private(set) var count = 0
    /// The generation of the slots in use; `removeAll()` moves to the next one.
    private(set) var generation: UInt32

    /// A map for up to `capacity` keys. `generation` is where the clearing counter starts (tests
    /// start it near `UInt32.max` to cross the wrap-around).
    init(capacity: Int, generation: UInt32 = 1) {
        precondition(capacity > 0, "a batch map holds something")
        precondition(generation != 0, "generation 0 marks slots never used")
        var size = 16
        while size < 2 * capacity { size <<= 1 }
        // Zeroed memory: every slot has generation 0, so none is in use.
        slots = LargeAllocation.allocate(Slot.self, capacity: size)
        mask = size - 1
        self.capacity = capacity
        self.generation = generation
    }

    deinit { LargeAllocation.deallocate(slots) }

    /// Slots in the table (a power of two, at least 2 × capacity).
    var slotCount: Int { mask + 1 }

    @inline(__always)
    private func home(_ key: Key) -> Int {
        Int(truncatingIfNeeded: Key.batchHash(key)) & mask
    }

    @inline(__always)
    private func isUsed(_ slot: Int) -> Bool { slots[slot].generation == generation }

    /// The slot holding `key`, or the empty slot where it would go. The load is at most 1/2,
    /// so the probe meets an empty slot within `slotCount` steps.
    @inline(__always)
    private func probe(_ key: Key) -> (slot: Int, found: Bool) {
        var slot = home(key)
        for _ in 0...mask {
            guard isUsed(slot) else { return (slot, false) }
            if slots[slot].key == key { return (slot, true) }
            slot = (slot &+ 1) & mask
        }
        preconditionFailure("a batch map is at most half full, so a probe ends at an empty slot")
    }

    /// Starts loading the slot where a probe of `key` begins (a hint: never faults, changes
    /// nothing). At load ≤ 1/2 most probes end in that slot's cache line.
    @inline(__always)
    func prefetch(_ key: Key) {
        ledger_prefetch_read(UnsafeRawPointer(slots.baseAddress! + home(key)))
    }

    /// The value of `key`, nil if absent.
    @inline(__always)
    func get(_ key: Key) -> Value? {
        let (slot, found) = probe(key)
        return found ? slots[slot].value : nil
    }

    func contains(_ key: Key) -> Bool { probe(key).found }

    /// Slots a lookup of `key` reads (statistics for tests: how well the hash spreads keys).
    func probeLength(_ key: Key) -> Int {
        let (slot, _) = probe(key)
        return ((slot &- home(key)) & mask) + 1
    }

    /// Sets the value of `key`; returns its previous value (nil: it was inserted).
    @discardableResult
    mutating func put(_ key: Key, _ value: Value) -> Value? {
        let (slot, found) = probe(key)
        if found {
            let previous = slots[slot].value
            slots[slot].value = value
            return previous
        }
        precondition(count < capacity, "a batch map holds at most its capacity of keys")
        slots[slot] = Slot(key: key, value: value, generation: generation)
        count += 1
        return nil
    }

    /// Inserts `key` with `value` unless present; returns whether it inserted.
    mutating func insert(_ key: Key, _ value: Value) -> Bool {
        let (slot, found) = probe(key)
        guard !found else { return false }
        precondition(count < capacity, "a batch map holds at most its capacity of keys")
        slots[slot] = Slot(key: key, value: value, generation: generation)
        count += 1
        return true
    }

    /// Removes `key`; returns its value (nil: absent). Later entries of the probe chain move
    /// back into the hole when it lies on their probe path, so each stays reachable.
    @discardableResult
    mutating func remove(_ key: Key) -> Value? {
        let (found, isPresent) = probe(key)
        guard isPresent else { return nil }
        let removed = slots[found].value
        var hole = found
        var slot = found
        // Bounded: the chain ends at an empty slot (load ≤ 1/2).
        for _ in 0...mask {
            slot = (slot &+ 1) & mask
            guard isUsed(slot) else { break }
            let distanceFromHome = (slot &- home(slots[slot].key)) & mask
            let distanceFromHole = (slot &- hole) & mask
            if distanceFromHome >= distanceFromHole {
                slots[hole] = slots[slot]
                hole = slot
            }
        }
        slots[hole].generation = 0
        count -= 1
        return removed
    }

    /// Forgets every key: O(1), except once every 2³² − 1 clears, when the generation wraps
    /// and every slot is reset (a stale slot must never match a reused generation).
    mutating func removeAll() {
        count = 0
        if generation == UInt32.max {
            for slot in 0...mask { slots[slot].generation = 0 }
            generation = 1
        } else {
            generation += 1
        }
    }
}

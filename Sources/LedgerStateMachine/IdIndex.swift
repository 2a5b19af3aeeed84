import CLedgerHints
import LedgerKit

/// A fixed-capacity open-addressing hash table from a non-zero `UInt128` id to an `Int32`
/// value, with linear probing. Allocated once; never grows; never uses `Dictionary` (4× slower
/// and its iteration order is random per process).
///
/// Key 0 marks an empty slot (0 is never a valid id). Removal is supported only in LIFO order
/// of insertion (`removeLast`): undoing the most recent insertion restores the table exactly,
/// which is all that rollback of a linked chain needs.
struct IdIndex: ~Copyable {
    private struct Slot {
        var key: UInt128
        var value: Int32
    }

    private let slots: UnsafeMutableBufferPointer<Slot>
    private let mask: Int
    let capacity: Int
    private(set) var count = 0

    /// A table for up to `capacity` keys, with at most 50% load.
    init(capacity: Int) {
        precondition(capacity > 0, "an index holds something")
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = LargeAllocation.allocate(Slot.self, capacity: size)
        slots.initialize(repeating: Slot(key: 0, value: -1))
        mask = size - 1
        self.capacity = capacity
    }

    deinit { LargeAllocation.deallocate(slots) }

    @inline(__always)
    private static func hash(_ key: UInt128) -> Int {
        // Mix both halves (ids are often sequential or share a prefix), then fmix64.
        var h = UInt64(truncatingIfNeeded: key) ^ (UInt64(truncatingIfNeeded: key >> 64) &* 0x9E37_79B9_7F4A_7C15)
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return Int(truncatingIfNeeded: h)
    }

    @inline(__always)
    func find(_ key: UInt128) -> Int32? {
        precondition(key != 0, "0 is never a key")
        var position = Self.hash(key) & mask
        while true {  // Terminates: the load is at most 50%, so an empty slot exists.
            let slot = slots[position]
            if slot.key == key { return slot.value }
            if slot.key == 0 { return nil }
            position = (position &+ 1) & mask
        }
    }

    /// Starts loading the cache line where a probe for `key` begins.
    @inline(__always)
    func prefetch(_ key: UInt128) {
        ledger_prefetch_read(slots.baseAddress! + (Self.hash(key) & mask))
    }

    /// Inserts a key that is not present.
    mutating func insert(_ key: UInt128, value: Int32) {
        precondition(key != 0, "0 is never a key")
        precondition(count < capacity, "id index capacity exceeded (configure a larger store)")
        var position = Self.hash(key) & mask
        while slots[position].key != 0 {
            precondition(slots[position].key != key, "the key is not present yet")
            position = (position &+ 1) & mask
        }
        slots[position] = Slot(key: key, value: value)
        count += 1
    }

    /// Removes `key`, which must be the most recently inserted key still present.
    mutating func removeLast(_ key: UInt128) {
        var position = Self.hash(key) & mask
        while slots[position].key != key {
            precondition(slots[position].key != 0, "the removed key is present")
            position = (position &+ 1) & mask
        }
        slots[position] = Slot(key: 0, value: -1)
        count -= 1
    }
}

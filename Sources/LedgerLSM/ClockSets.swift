import CLedgerHints
import LedgerKit

/// The CLOCK eviction state of a 16-way set-associative cache (storage spec §5 "Caches"), shared
/// by `BlockCache` (blocks by address) and `CacheMap` (values inline): per set, a 2-bit use
/// count per way packed in one u32, and a hand. A hit raises the way's count (saturating at 3);
/// eviction sweeps the hand, lowering counts, to the first way at zero. Allocated once.
struct ClockSets {
    static let ways = 16
    static let countMax: UInt32 = 3

    private let counts: UnsafeMutableBufferPointer<UInt32>
    private let hands: UnsafeMutableBufferPointer<UInt8>

    init(setCount: Int) {
        precondition(Self.ways * 2 == UInt32.bitWidth, "a set's counts fill one u32")
        if setCount > 0 {
            counts = LargeAllocation.allocate(UInt32.self, capacity: setCount)
            hands = LargeAllocation.allocate(UInt8.self, capacity: setCount)
        } else {
            counts = UnsafeMutableBufferPointer(start: nil, count: 0)
            hands = UnsafeMutableBufferPointer(start: nil, count: 0)
        }
    }

    /// Frees the memory; the owner calls it from its `deinit`.
    func deallocate() {
        guard counts.count > 0 else { return }
        LargeAllocation.deallocate(counts)
        LargeAllocation.deallocate(hands)
    }

    /// Starts loading the set's counts and, with `hand` (an insert may evict), its hand: each
    /// is a random line of its array, read by a hit's raise or an eviction's sweep. Loads only.
    @inline(__always)
    func prefetch(set: Int, hand: Bool) {
        guard counts.count > 0 else { return }
        ledger_prefetch_read(UnsafeRawPointer(counts.baseAddress! + set))
        if hand { ledger_prefetch_read(UnsafeRawPointer(hands.baseAddress! + set)) }
    }

    @inline(__always)
    func count(set: Int, way: Int) -> UInt32 {
        (counts[set] >> UInt32(2 * way)) & Self.countMax
    }

    @inline(__always)
    func store(set: Int, way: Int, _ value: UInt32) {
        precondition(value <= Self.countMax, "a CLOCK count fits two bits")
        let shift = UInt32(2 * way)
        counts[set] = (counts[set] & ~(Self.countMax << shift)) | (value << shift)
    }

    @inline(__always)
    func raise(set: Int, way: Int) {
        let current = count(set: set, way: way)
        if current < Self.countMax { store(set: set, way: way, current + 1) }
    }

    /// Sweeps the set's hand to the first way with count zero, lowering the others, and leaves
    /// the hand after it. Every sweep lowers every count, so at most `countMax + 1` sweeps.
    func evictWay(set: Int) -> Int {
        // The sweep works on the set's word in a register and stores it once.
        var counts = self.counts[set]
        var way = Int(hands[set])
        for _ in 0..<(Self.ways * (Int(Self.countMax) + 1)) {
            let shift = UInt32(2 * way)
            let current = (counts >> shift) & Self.countMax
            if current == 0 {
                self.counts[set] = counts
                hands[set] = UInt8((way + 1) % Self.ways)
                return way
            }
            counts -= 1 << shift  // current ≥ 1: no borrow into the next way.
            way = (way + 1) % Self.ways
        }
        preconditionFailure("a CLOCK sweep finds a zero count within countMax + 1 turns")
    }
}

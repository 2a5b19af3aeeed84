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

    func count(set: Int, way: Int) -> UInt32 {
        (counts[set] >> UInt32(2 * way)) & Self.countMax
    }

    func store(set: Int, way: Int, _ value: UInt32) {
        precondition(value <= Self.countMax, "a CLOCK count fits two bits")
        let shift = UInt32(2 * way)
        counts[set] = (counts[set] & ~(Self.countMax << shift)) | (value << shift)
    }

    func raise(set: Int, way: Int) {
        let current = count(set: set, way: way)
        if current < Self.countMax { store(set: set, way: way, current + 1) }
    }

    /// Sweeps the set's hand to the first way with count zero, lowering the others, and leaves
    /// the hand after it. Every sweep lowers every count, so at most `countMax + 1` sweeps.
    func evictWay(set: Int) -> Int {
        var way = Int(hands[set])
        for _ in 0..<(Self.ways * (Int(Self.countMax) + 1)) {
            let current = count(set: set, way: way)
            if current == 0 {
                hands[set] = UInt8((way + 1) % Self.ways)
                return way
            }
            store(set: set, way: way, current - 1)
            way = (way + 1) % Self.ways
        }
        preconditionFailure("a CLOCK sweep finds a zero count within countMax + 1 turns")
    }
}

import LedgerKit

// The grid's block cache (storage spec §4: "a 16-way CLOCK set-associative cache"): a fixed
// number of block-sized slots, keyed by address, allocated once.
//
// An address hashes to one set of 16 ways; it can live only there, so a lookup compares 16
// 16-bit tags (one cache line) and then at most a few addresses. Eviction is CLOCK per set: each
// way has a 2-bit use count (16 ways × 2 bits = one u32 per set), set to 1 on insert and raised
// (up to 3) on every hit; to insert, the set's hand sweeps the ways, decrementing non-zero
// counts and taking the first way at zero. A block hit since the hand last passed survives one
// more sweep per hit: a second chance, without the linked lists of LRU.
//
// Sketch: 1 GiB of cache = 2048 blocks of 512 KiB = 128 sets; metadata is 10 bytes per slot plus
// 5 bytes per set. A lookup costs one hash and two cache lines; insert at most 3 sweeps of 16.
// Nothing allocates after init.

public final class BlockCache {
    /// Ways per set.
    public static let ways = ClockSets.ways

    /// Blocks the cache holds.
    public let capacityBlocks: Int
    public let blockSize: Int
    let setCount: Int

    /// Address of each slot, 0 when the slot is empty.
    private let addresses: UnsafeMutableBufferPointer<UInt64>
    /// A 16-bit hash of each slot's address, compared before the address.
    private let tags: UnsafeMutableBufferPointer<UInt16>
    /// Per set: the CLOCK use counts and hand.
    private let clock: ClockSets
    /// `capacityBlocks × blockSize` bytes; slot `s` at `s × blockSize`.
    private let blocks: UnsafeMutableBufferPointer<UInt8>

    /// Occupied slots.
    public private(set) var count = 0

    public init(capacityBlocks: Int, blockSize: Int) {
        precondition(capacityBlocks > 0, "a cache holds at least one set")
        precondition(capacityBlocks % Self.ways == 0, "the capacity is whole sets of 16 ways")
        precondition(blockSize > 0, "blocks hold bytes")
        self.capacityBlocks = capacityBlocks
        self.blockSize = blockSize
        setCount = capacityBlocks / Self.ways
        addresses = LargeAllocation.allocate(UInt64.self, capacity: capacityBlocks)
        tags = LargeAllocation.allocate(UInt16.self, capacity: capacityBlocks)
        clock = ClockSets(setCount: setCount)
        blocks = LargeAllocation.allocate(UInt8.self, capacity: capacityBlocks * blockSize)
    }

    deinit {
        LargeAllocation.deallocate(addresses)
        LargeAllocation.deallocate(tags)
        clock.deallocate()
        LargeAllocation.deallocate(blocks)
    }

    /// The slot holding `address`, or nil; a hit raises the block's CLOCK count.
    public func lookup(_ address: UInt64) -> Int? {
        precondition(address != 0, "address 0 is null")
        let (set, tag) = placement(of: address)
        guard let way = find(address, tag: tag, set: set) else { return nil }
        clock.raise(set: set, way: way)
        return set * Self.ways + way
    }

    /// Whether `address` is cached, without touching its CLOCK count.
    public func contains(_ address: UInt64) -> Bool {
        precondition(address != 0, "address 0 is null")
        let (set, tag) = placement(of: address)
        return find(address, tag: tag, set: set) != nil
    }

    /// The slot for `address`: its current slot if cached (the hit counts as a use), else a slot
    /// taken by CLOCK, evicting its block. The caller then fills the slot's bytes.
    public func insert(_ address: UInt64) -> Int {
        precondition(address != 0, "address 0 is null")
        let (set, tag) = placement(of: address)
        if let way = find(address, tag: tag, set: set) {
            clock.raise(set: set, way: way)
            return set * Self.ways + way
        }
        let way = clock.evictWay(set: set)
        let slot = set * Self.ways + way
        if addresses[slot] == 0 { count += 1 }
        addresses[slot] = address
        tags[slot] = tag
        clock.store(set: set, way: way, 1)
        return slot
    }

    /// Drops `address` from the cache; returns whether it was there.
    @discardableResult
    public func remove(_ address: UInt64) -> Bool {
        precondition(address != 0, "address 0 is null")
        let (set, tag) = placement(of: address)
        guard let way = find(address, tag: tag, set: set) else { return false }
        let slot = set * Self.ways + way
        addresses[slot] = 0
        tags[slot] = 0
        clock.store(set: set, way: way, 0)
        count -= 1
        return true
    }

    /// The bytes of `slot` (valid until the slot is evicted or reused).
    public func block(slot: Int) -> UnsafeMutableRawBufferPointer {
        precondition(slot >= 0, "slot inside the cache")
        precondition(slot < capacityBlocks, "slot inside the cache")
        return UnsafeMutableRawBufferPointer(
            start: blocks.baseAddress! + slot * blockSize, count: blockSize)
    }

    /// The address cached in `slot`, 0 when empty.
    public func address(slot: Int) -> UInt64 {
        precondition(slot >= 0, "slot inside the cache")
        precondition(slot < capacityBlocks, "slot inside the cache")
        return addresses[slot]
    }

    // MARK: Internals

    /// The set and tag of an address: the set from the hash's high bits (multiply-shift range
    /// reduction), the tag from its low bits, so the two are independent.
    private func placement(of address: UInt64) -> (set: Int, tag: UInt16) {
        let hash = Self.hash(address)
        let set = Int(hash.multipliedFullWidth(by: UInt64(setCount)).high)
        return (set, UInt16(truncatingIfNeeded: hash))
    }

    /// MurmurHash3's 64-bit finalizer: consecutive addresses spread over all sets.
    static func hash(_ address: UInt64) -> UInt64 {
        var x = address
        x ^= x >> 33
        x = x &* 0xff51_afd7_ed55_8ccd  // Wrapping multiplication is the hash.
        x ^= x >> 33
        x = x &* 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }

    private func find(_ address: UInt64, tag: UInt16, set: Int) -> Int? {
        let base = set * Self.ways
        for way in 0..<Self.ways where tags[base + way] == tag && addresses[base + way] == address {
            return way
        }
        return nil
    }

}

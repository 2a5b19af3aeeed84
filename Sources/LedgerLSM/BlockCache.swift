import CLedgerHints
import LedgerIO
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
// Slots name buffers, they do not own fixed bytes: the cache allocates `capacityBlocks +
// spareBlocks` sector-aligned block buffers, slot `s` starts on buffer `s`, and the spares are
// lent to the grid's IO slots and to compaction jobs. The slots' buffers are touched at init
// (huge pages, no page faults in the first bars); the spares are a separate mapping, resident
// only as they are used (an idle compaction job's output buffers cost no memory). A completed
// IO puts its block in the cache by exchanging buffers with the slot it takes (`exchange`): the
// IO's buffer becomes the slot's, the evicted block's buffer becomes the IO's. A 512 KiB block then enters the cache without a memcpy (the copy was
// 11 % of the server's CPU under load). The cache checks that every buffer handed to it is one
// of its own and lent out, so a buffer is never in two places.
//
// Pins (`pin`/`unpin`): a reader that keeps using a cached block across IO (a compaction job
// merging a value block; see `Grid.readPinned`) pins its slot instead of copying the block out.
// A pinned slot is never evicted and never exchanged, so its bytes stay put until the last
// unpin. `tryInsert` skips pinned ways (nil when the address's own slot, or every way of its
// set, is pinned: the caller then keeps the block out of the cache); `insert` is for callers
// that pin nothing. `remove` of a pinned slot only hides the address: the bytes stay until the
// last unpin frees the slot. Pins are counted per slot (u16) and per set.
//
// Trust (`markTrusted`): the grid marks a slot whose bytes are a block its own caller wrote
// and vouched for (`Grid.write(…, trusted: true)`); the mark lasts until the slot's bytes may
// change (an exchange, an insert of another address, a remove). See `Grid.readPinned`.
//
// Sketch: 1 GiB of cache = 2048 blocks of 512 KiB = 128 sets; metadata is 21 bytes per slot plus
// 6 bytes per set plus 1 byte per buffer. A lookup costs one hash and two cache lines; insert at
// most 3 sweeps of 16; an exchange a few loads and stores. Nothing allocates after init.

public final class BlockCache {
    /// Ways per set.
    public static let ways = ClockSets.ways

    /// Blocks the cache holds.
    public let capacityBlocks: Int
    /// Buffers beyond the slots', lent out with `takeSpare` (IO buffers of the grid).
    public let spareBlocks: Int
    public let blockSize: Int
    let setCount: Int

    /// Address of each slot, 0 when the slot is empty.
    private let addresses: UnsafeMutableBufferPointer<UInt64>
    /// A 16-bit hash of each slot's address, compared before the address.
    private let tags: UnsafeMutableBufferPointer<UInt16>
    /// Per set: the CLOCK use counts and hand.
    private let clock: ClockSets
    /// `capacityBlocks × blockSize` bytes: buffer `b < capacityBlocks` at `b × blockSize`.
    private let buffers: UnsafeMutableRawBufferPointer
    /// `spareBlocks × blockSize` bytes: buffer `capacityBlocks + i` at `i × blockSize`.
    private let spares: UnsafeMutableRawBufferPointer
    private let sparesBuffer: AlignedBuffer?
    /// The first is set when `buffers` came from `LargeAllocation` (huge pages), the second
    /// otherwise (a sector-aligned allocation: small caches in tests).
    private let buffersLarge: UnsafeMutableBufferPointer<UInt8>?
    private let buffersSmall: AlignedBuffer?
    /// The buffer each slot's bytes are in.
    private let slotBuffers: UnsafeMutableBufferPointer<Int>
    /// Per buffer: held by a slot (true) or lent out (false).
    private let bufferInSlot: UnsafeMutableBufferPointer<Bool>
    /// Spares lent so far by `takeSpare`.
    private var sparesTaken = 0
    /// Pins per slot, and pinned slots per set (a set with every way pinned takes no insert).
    private let pins: UnsafeMutableBufferPointer<UInt16>
    private let pinnedWays: UnsafeMutableBufferPointer<UInt8>
    /// Per slot: whether the grid marked its block trusted (`markTrusted`).
    private let trusted: UnsafeMutableBufferPointer<Bool>

    /// Slots pinned now (for tests and metrics).
    public private(set) var pinnedCount = 0

    /// Occupied slots.
    public private(set) var count = 0

    /// A cache of `capacityBlocks` blocks, plus `spareBlocks` buffers to lend (`takeSpare`).
    /// Every buffer is sector-aligned (direct IO reads into and writes from them).
    public init(capacityBlocks: Int, blockSize: Int, spareBlocks: Int = 0) {
        precondition(capacityBlocks > 0, "a cache holds at least one set")
        precondition(capacityBlocks % Self.ways == 0, "the capacity is whole sets of 16 ways")
        precondition(blockSize > 0, "blocks hold bytes")
        precondition(blockSize % Constants.sectorSize == 0, "blocks are whole sectors (direct IO)")
        precondition(spareBlocks >= 0, "a spare count is not negative")
        self.capacityBlocks = capacityBlocks
        self.spareBlocks = spareBlocks
        self.blockSize = blockSize
        setCount = capacityBlocks / Self.ways
        addresses = LargeAllocation.allocate(UInt64.self, capacity: capacityBlocks)
        tags = LargeAllocation.allocate(UInt16.self, capacity: capacityBlocks)
        clock = ClockSets(setCount: setCount)
        let bufferCount = capacityBlocks + spareBlocks
        let bufferBytes = capacityBlocks * blockSize
        if spareBlocks > 0 {
            let mapped = AlignedBuffer(count: spareBlocks * blockSize, alignment: Constants.sectorSize)
            sparesBuffer = mapped
            spares = mapped.bytes
        } else {
            sparesBuffer = nil
            spares = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        }
        if bufferBytes >= LargeAllocation.hugePageThresholdBytes {
            // Mapped at a huge-page boundary, so sector-aligned; every page touched at init.
            let large = LargeAllocation.allocate(UInt8.self, capacity: bufferBytes)
            buffersLarge = large
            buffersSmall = nil
            buffers = UnsafeMutableRawBufferPointer(large)
        } else {
            let small = AlignedBuffer(count: bufferBytes, alignment: Constants.sectorSize)
            buffersLarge = nil
            buffersSmall = small
            buffers = small.bytes
        }
        precondition(Int(bitPattern: buffers.baseAddress!) % Constants.sectorSize == 0,
                     "cache buffers are sector-aligned: IO goes straight into them")
        pins = LargeAllocation.allocate(UInt16.self, capacity: capacityBlocks)
        pinnedWays = LargeAllocation.allocate(UInt8.self, capacity: setCount)
        trusted = LargeAllocation.allocate(Bool.self, capacity: capacityBlocks)
        slotBuffers = LargeAllocation.allocate(Int.self, capacity: capacityBlocks)
        bufferInSlot = LargeAllocation.allocate(Bool.self, capacity: bufferCount)
        for slot in 0..<capacityBlocks {
            slotBuffers[slot] = slot
            bufferInSlot[slot] = true
        }
    }

    deinit {
        LargeAllocation.deallocate(addresses)
        LargeAllocation.deallocate(tags)
        clock.deallocate()
        LargeAllocation.deallocate(pins)
        LargeAllocation.deallocate(pinnedWays)
        LargeAllocation.deallocate(trusted)
        LargeAllocation.deallocate(slotBuffers)
        LargeAllocation.deallocate(bufferInSlot)
        if let buffersLarge { LargeAllocation.deallocate(buffersLarge) }
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
    /// taken by CLOCK, evicting its block. The caller then fills the slot's bytes. For caches
    /// with pins, `tryInsert` (this traps where that returns nil).
    public func insert(_ address: UInt64) -> Int {
        guard let slot = tryInsert(address) else {
            preconditionFailure("insert into a set with an unpinned way (else tryInsert)")
        }
        return slot
    }

    /// As `insert`, but never takes a pinned slot: nil when `address` is cached in a pinned slot
    /// (its bytes must not change) or every way of its set is pinned. The caller then leaves
    /// the block out of the cache.
    public func tryInsert(_ address: UInt64) -> Int? {
        precondition(address != 0, "address 0 is null")
        let (set, tag) = placement(of: address)
        let base = set * Self.ways
        if let way = find(address, tag: tag, set: set) {
            if pins[base + way] > 0 { return nil }
            clock.raise(set: set, way: way)
            return base + way
        }
        if Int(pinnedWays[set]) == Self.ways { return nil }
        var victim: Int? = nil
        if pinnedWays[set] == 0 {
            victim = clock.evictWay(set: set)
        } else {
            // CLOCK may land on pinned ways: give each a full count (it is in use) and sweep
            // again. Bounded by the pinned ways; should CLOCK still land on one, the first
            // unpinned way goes (there is one: the set is not all pinned).
            for _ in 0...Int(pinnedWays[set]) {
                let way = clock.evictWay(set: set)
                if pins[base + way] == 0 {
                    victim = way
                    break
                }
                clock.store(set: set, way: way, ClockSets.countMax)
            }
            if victim == nil {
                for way in 0..<Self.ways where pins[base + way] == 0 {
                    victim = way
                    break
                }
            }
        }
        guard let way = victim else { preconditionFailure("a set not all pinned has an unpinned way") }
        let slot = base + way
        precondition(pins[slot] == 0, "a pinned slot is never evicted")
        if addresses[slot] == 0 { count += 1 }
        addresses[slot] = address
        tags[slot] = tag
        trusted[slot] = false
        clock.store(set: set, way: way, 1)
        return slot
    }

    /// Drops `address` from the cache; returns whether it was there. A pinned slot's bytes stay
    /// (its pinners still read them) until the last `unpin`; only the address is forgotten.
    @discardableResult
    public func remove(_ address: UInt64) -> Bool {
        precondition(address != 0, "address 0 is null")
        let (set, tag) = placement(of: address)
        guard let way = find(address, tag: tag, set: set) else { return false }
        let slot = set * Self.ways + way
        addresses[slot] = 0
        tags[slot] = 0
        trusted[slot] = false
        clock.store(set: set, way: way, 0)
        count -= 1
        return true
    }

    /// Keeps `slot`'s bytes where they are until `unpin(slot:)`: the slot is neither evicted nor
    /// exchanged meanwhile. Pins nest.
    public func pin(slot: Int) {
        precondition(slot >= 0 && slot < capacityBlocks, "slot inside the cache")
        precondition(addresses[slot] != 0, "a pinned slot holds a block")
        precondition(pins[slot] < UInt16.max, "pins of one slot fit u16")
        if pins[slot] == 0 {
            pinnedWays[slot / Self.ways] += 1
            pinnedCount += 1
        }
        pins[slot] += 1
    }

    /// Ends one `pin(slot:)`.
    public func unpin(slot: Int) {
        precondition(slot >= 0 && slot < capacityBlocks, "slot inside the cache")
        precondition(pins[slot] > 0, "unpin a pinned slot")
        pins[slot] -= 1
        if pins[slot] == 0 {
            pinnedWays[slot / Self.ways] -= 1
            pinnedCount -= 1
        }
    }

    /// Marks the block in `slot` (just exchanged in) as vouched for by its writer, until the
    /// slot's bytes may change.
    public func markTrusted(slot: Int) {
        precondition(slot >= 0 && slot < capacityBlocks, "slot inside the cache")
        precondition(addresses[slot] != 0, "a trusted slot holds a block")
        trusted[slot] = true
    }

    /// Whether the block in `slot` is marked trusted (`markTrusted`).
    public func isTrusted(slot: Int) -> Bool {
        precondition(slot >= 0 && slot < capacityBlocks, "slot inside the cache")
        return trusted[slot]
    }

    /// Whether `slot` is pinned.
    public func isPinned(slot: Int) -> Bool {
        precondition(slot >= 0 && slot < capacityBlocks, "slot inside the cache")
        return pins[slot] > 0
    }

    /// The bytes of `slot` (valid until the slot is evicted, reused or exchanged).
    public func block(slot: Int) -> UnsafeMutableRawBufferPointer {
        precondition(slot >= 0, "slot inside the cache")
        precondition(slot < capacityBlocks, "slot inside the cache")
        return buffer(slotBuffers[slot])
    }

    /// Lends the next spare buffer (at init: the grid's IO buffers). It stays valid as long as
    /// the cache, and is the borrower's until it hands it back through `exchange`.
    public func takeSpare() -> UnsafeMutableRawBufferPointer {
        precondition(sparesTaken < spareBlocks, "a spare buffer is lent once")
        let index = capacityBlocks + sparesTaken
        sparesTaken += 1
        precondition(!bufferInSlot[index], "spares start lent out")
        return buffer(index)
    }

    /// Puts the lent buffer `block` (holding the block just stored in `slot`, e.g. by `insert`)
    /// in `slot`, and lends the slot's former buffer to the caller instead: the block moves into
    /// the cache without a copy. The returned buffer's bytes are stale.
    public func exchange(slot: Int, with block: UnsafeMutableRawBufferPointer) -> UnsafeMutableRawBufferPointer {
        precondition(slot >= 0, "slot inside the cache")
        precondition(slot < capacityBlocks, "slot inside the cache")
        precondition(pins[slot] == 0, "a pinned slot's buffer stays in the slot")
        let incoming = bufferIndex(of: UnsafeRawBufferPointer(block))
        precondition(!bufferInSlot[incoming], "a buffer exchanged into the cache is lent out, not in a slot")
        let outgoing = slotBuffers[slot]
        precondition(bufferInSlot[outgoing], "a slot's buffer is marked as in a slot")
        slotBuffers[slot] = incoming
        trusted[slot] = false
        bufferInSlot[incoming] = true
        bufferInSlot[outgoing] = false
        return buffer(outgoing)
    }

    /// Whether `block` is one of the cache's buffers, lent out (so it may go to `exchange`).
    public func isLent(_ block: UnsafeRawBufferPointer) -> Bool {
        guard let index = bufferIndexIfOwned(block) else { return false }
        return !bufferInSlot[index]
    }

    /// The address cached in `slot`, 0 when empty.
    public func address(slot: Int) -> UInt64 {
        precondition(slot >= 0, "slot inside the cache")
        precondition(slot < capacityBlocks, "slot inside the cache")
        return addresses[slot]
    }

    // MARK: Internals

    private func buffer(_ index: Int) -> UnsafeMutableRawBufferPointer {
        if index < capacityBlocks {
            return UnsafeMutableRawBufferPointer(start: buffers.baseAddress! + index * blockSize, count: blockSize)
        }
        precondition(index < capacityBlocks + spareBlocks, "buffer index inside the cache")
        return UnsafeMutableRawBufferPointer(
            start: spares.baseAddress! + (index - capacityBlocks) * blockSize, count: blockSize)
    }

    private func bufferIndexIfOwned(_ block: UnsafeRawBufferPointer) -> Int? {
        guard block.count == blockSize, let start = block.baseAddress else { return nil }
        let offset = start - UnsafeRawPointer(buffers.baseAddress!)
        if offset >= 0, offset < buffers.count {
            return offset % blockSize == 0 ? offset / blockSize : nil
        }
        guard let sparesStart = spares.baseAddress else { return nil }
        let spareOffset = start - UnsafeRawPointer(sparesStart)
        guard spareOffset >= 0, spareOffset < spares.count, spareOffset % blockSize == 0 else { return nil }
        return capacityBlocks + spareOffset / blockSize
    }

    private func bufferIndex(of block: UnsafeRawBufferPointer) -> Int {
        guard let index = bufferIndexIfOwned(block) else {
            preconditionFailure("a buffer exchanged into the cache is one of its own whole buffers")
        }
        return index
    }

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
        var matches = ledger_tag_matches16(tags.baseAddress! + base, tag)
        // Bounded by the 16 ways: one bit cleared per turn.
        while matches != 0 {
            let way = matches.trailingZeroBitCount
            if addresses[base + way] == address { return way }
            matches &= matches - 1
        }
        return nil
    }

}

import LedgerKit

// The free set of the grid (storage spec §4, docs/lsm.md "Free set and determinism"): which
// block addresses hold data a checkpoint may need (acquired), and which of those are released
// and wait for a durable checkpoint to become free again.
//
// Block `index` is address `index + 1` (address 0 is null). Three flat bitsets, one bit per
// block, allocated at init:
//   acquired          set: the block is in use (or released but not yet free);
//   released          set: released, freed when the *current* checkpoint becomes durable;
//   releasedPending   set: released while the current checkpoint is not yet durable; freed when
//                     the *next* checkpoint becomes durable.
// plus the shard index: one bit per 4096 blocks, set when the shard has a free block, so that
// "lowest free block from here" skips full shards (33.5 M blocks → 8192 shards → 1 KiB index).
//
// ## Release protocol (spec §13 item 5, TigerBeetle #2600)
//
// A block released during checkpoint interval N (after checkpoint C(N), before C(N+1)) is still
// referenced by C(N): a lagging replica may fetch it until C(N+1) is durable on a quorum. So:
//
//   1. `release(address)` while C(N) is durable   → `released` (the block stays acquired).
//   2. The replica writes C(N+1): `beginEncoding`/`encode` store `acquired` and `released`
//      (released blocks are still acquired in C(N+1), and freed once it is durable); then it
//      calls `markCheckpointNotDurable()`.
//   3. `release(address)` until C(N+1) is durable  → `releasedPending`.
//   4. `markCheckpointDurable()` when C(N+1) is durable on a quorum: every `released` block
//      becomes free, `releasedPending` moves to `released`; later releases go to `released`.
//
// After a restart from C(N+1), `decode` restores `acquired` and `released` with the checkpoint
// not durable, and `markReleasedAtOpen` adds the blocks of C(N+1)'s own trailers (acquired after
// the encoding, so listed as free in it) as acquired and pending: the state a replica that never
// crashed has after step 2 and releasing its trailer blocks.
//
// ## Reservations (determinism)
//
// Blocks are acquired while IO completes in any order, yet every replica must pick the same
// addresses. So jobs `reserve(count:)` their worst case in a fixed order inside a reservation
// session; each reservation is the range after the previous one that holds `count` free blocks;
// `acquire` takes the lowest free block inside its own range, which nothing else touches.
//
//   openReservations()
//     reserve × n                 (in a deterministic order, before any forfeit)
//     acquire … / forfeit × n     (in any order: IO decides)
//   closeReservations()           (all forfeited; the unused rest of every range is free again)
//
// Blocks are freed only outside a session (`markCheckpointDurable`), so a range never gains a
// free block behind the reserver's back.
//
// Sketch: production has 33.5 M blocks: three 4 MiB bitsets. `acquire` and `reserve` touch the
// index word and a few bitset words per shard they cross (a shard is 64 words, 8 cache lines);
// `markCheckpointDurable`, `decode` and `highestAcquiredAddress` are one pass over the bitsets
// (~1 ms), once per checkpoint.

/// A range of block indexes a job acquires from (see `FreeSet`). Opaque for the job.
public struct Reservation: Equatable, Sendable {
    /// First block index (address − 1) of the range.
    public let blockBase: Int
    /// Blocks in the range, free and already acquired ones alike.
    public let blockCount: Int
    /// The session it belongs to: a reservation never outlives its session.
    let session: UInt64

    /// The addresses the range covers.
    public var addresses: ClosedRange<UInt64> {
        UInt64(blockBase + 1)...UInt64(blockBase + blockCount)
    }
}

/// Why an encoded free set cannot be loaded. The encoding comes from a checkpoint trailer
/// (checksummed, but possibly written by a buggy or foreign release).
public enum FreeSetDecodeError: Error, Equatable, Sendable {
    case acquired(EWAHError)
    case released(EWAHError)
    /// A bit is set for a block past `blockCount`.
    case bitPastBlockCount
    /// A block is released but not acquired.
    case releasedNotAcquired
}

public final class FreeSet {
    /// Blocks per shard of the index: 64 words, 8 cache lines of bitset.
    public static let shardBlocks = 4096

    /// The two bitsets a checkpoint stores.
    public enum Bitset: Sendable {
        case acquired
        case released
    }

    /// Blocks this free set covers: addresses `1...blockCount`.
    public let blockCount: Int
    /// 64-bit words per bitset.
    public let wordCount: Int
    let shardCount: Int

    private let acquired: UnsafeMutableBufferPointer<UInt64>
    private let released: UnsafeMutableBufferPointer<UInt64>
    private let releasedPending: UnsafeMutableBufferPointer<UInt64>
    /// Bit `s` set: shard `s` has a free block.
    private let shardsFree: UnsafeMutableBufferPointer<UInt64>

    /// Acquired blocks, released ones included.
    public private(set) var acquiredCount = 0
    private var releasedNowCount = 0
    private var releasedPendingCount = 0
    /// Whether the current checkpoint is durable (see the release protocol above). A new free
    /// set starts durable (a formatted grid is the same on every replica); a decoded one does
    /// not.
    public private(set) var isCheckpointDurable = true

    /// Whether a reservation session is open.
    public private(set) var isReserving = false
    /// Reservations not yet forfeited.
    public private(set) var reservationCount = 0
    /// Whether a reservation of this session was forfeited (no more may be made).
    private var isForfeiting = false
    private var session: UInt64 = 1
    /// The first block index not covered by a reservation of this session.
    private var reservedBlocks = 0

    public init(blockCount: Int) {
        precondition(blockCount >= 1, "a free set covers at least one block")
        precondition(blockCount <= EWAH.wordCountMax, "the bitsets fit an EWAH encoding")
        self.blockCount = blockCount
        wordCount = (blockCount + 63) / 64
        shardCount = (blockCount + Self.shardBlocks - 1) / Self.shardBlocks
        acquired = LargeAllocation.allocate(UInt64.self, capacity: wordCount)
        released = LargeAllocation.allocate(UInt64.self, capacity: wordCount)
        releasedPending = LargeAllocation.allocate(UInt64.self, capacity: wordCount)
        shardsFree = LargeAllocation.allocate(UInt64.self, capacity: (shardCount + 63) / 64)
        rebuildShardIndex()
    }

    deinit {
        LargeAllocation.deallocate(acquired)
        LargeAllocation.deallocate(released)
        LargeAllocation.deallocate(releasedPending)
        LargeAllocation.deallocate(shardsFree)
    }

    // MARK: Queries

    /// Blocks neither acquired nor released.
    public var freeCount: Int { blockCount - acquiredCount }

    /// Released blocks not yet free (both generations).
    public var releasedCount: Int { releasedNowCount + releasedPendingCount }

    public func isFree(_ address: UInt64) -> Bool {
        !Self.bit(acquired, index(of: address))
    }

    /// Whether the block is released and waits for a durable checkpoint.
    public func isReleased(_ address: UInt64) -> Bool {
        let index = index(of: address)
        return Self.bit(released, index) || Self.bit(releasedPending, index)
    }

    /// The highest acquired address, 0 when none is: the grid's used extent, for
    /// `CheckpointState.storageSize`. One pass over the bitset from the top.
    public var highestAcquiredAddress: UInt64 {
        var word = wordCount
        while word > 0 {
            word -= 1
            let bits = acquired[word]
            if bits != 0 { return UInt64(word * 64 + (63 - bits.leadingZeroBitCount) + 1) }
        }
        return 0
    }

    // MARK: Reservations

    /// Starts a reservation session.
    public func openReservations() {
        precondition(!isReserving, "one reservation session at a time")
        precondition(reservationCount == 0, "a new session has no reservations")
        precondition(reservedBlocks == 0, "a new session reserves from the first block")
        isReserving = true
    }

    /// Ends the session: every reservation was forfeited; their unacquired blocks are free for
    /// the next session.
    public func closeReservations() {
        precondition(isReserving, "closing an open reservation session")
        precondition(reservationCount == 0, "every reservation is forfeited before the session closes")
        isReserving = false
        isForfeiting = false
        reservedBlocks = 0
        session += 1
    }

    /// Reserves the range after the previous reservation of this session that holds `count`
    /// free blocks. Nil when the grid does not have that many (the state is then unchanged).
    public func reserve(count: Int) -> Reservation? {
        precondition(isReserving, "reservations are made inside a session")
        precondition(!isForfeiting,
                     "a session reserves before it forfeits, so ranges do not depend on job order")
        precondition(count > 0, "a reservation covers at least one block")
        guard let end = endOfFreeBlocks(from: reservedBlocks, count: count) else { return nil }
        let reservation = Reservation(blockBase: reservedBlocks, blockCount: end - reservedBlocks, session: session)
        reservedBlocks = end
        reservationCount += 1
        return reservation
    }

    /// Acquires the lowest free block of `reservation`; nil when it has none left.
    public func acquire(_ reservation: Reservation) -> UInt64? {
        precondition(isReserving, "blocks are acquired inside a session")
        precondition(reservation.session == session, "the reservation belongs to this session")
        precondition(reservationCount > 0, "the reservation was not forfeited")
        precondition(reservation.blockBase + reservation.blockCount <= reservedBlocks, "the reservation is this session's")
        let end = reservation.blockBase + reservation.blockCount
        guard let index = lowestFreeBlock(from: reservation.blockBase, to: end) else { return nil }
        precondition(!Self.bit(released, index), "a free block is not released")
        precondition(!Self.bit(releasedPending, index), "a free block is not pending release")
        Self.setBit(acquired, index, true)
        acquiredCount += 1
        updateShard(containing: index)
        return UInt64(index + 1)
    }

    /// Ends a job's use of its reservation; its unacquired blocks stay reserved until the
    /// session closes.
    public func forfeit(_ reservation: Reservation) {
        precondition(isReserving, "reservations are forfeited inside their session")
        precondition(reservation.session == session, "the reservation belongs to this session")
        precondition(reservationCount > 0, "each reservation is forfeited once")
        reservationCount -= 1
        isForfeiting = true
    }

    // MARK: Release and checkpoints

    /// Releases an acquired block: it stays acquired until a durable checkpoint frees it (see
    /// the release protocol in the file header).
    public func release(_ address: UInt64) {
        let index = index(of: address)
        precondition(Self.bit(acquired, index), "only an acquired block is released")
        precondition(!Self.bit(released, index), "a block is released once")
        precondition(!Self.bit(releasedPending, index), "a block is released once")
        if isCheckpointDurable {
            Self.setBit(released, index, true)
            releasedNowCount += 1
        } else {
            Self.setBit(releasedPending, index, true)
            releasedPendingCount += 1
        }
    }

    /// The replica wrote a new checkpoint (after encoding this free set into it): until it is
    /// durable, releases are kept apart from those the checkpoint recorded.
    public func markCheckpointNotDurable() {
        precondition(isCheckpointDurable, "a checkpoint is written only once the previous one is durable")
        precondition(releasedPendingCount == 0, "no pending releases while the checkpoint is durable")
        isCheckpointDurable = false
    }

    /// The current checkpoint is durable on a quorum: blocks released before it are free, and
    /// blocks released since become the ones the next checkpoint frees.
    public func markCheckpointDurable() {
        precondition(!isCheckpointDurable, "a checkpoint becomes durable once")
        precondition(!isReserving, "blocks are not freed under open reservations (determinism)")
        var freed = 0
        for word in 0..<wordCount {
            let freeing = released[word]
            if freeing != 0 {
                precondition(acquired[word] & freeing == freeing, "released blocks are acquired")
                acquired[word] &= ~freeing
                freed += freeing.nonzeroBitCount
                Self.setBit(shardsFree, word * 64 / Self.shardBlocks, true)
            }
            released[word] = releasedPending[word]
            releasedPending[word] = 0
        }
        precondition(freed == releasedNowCount, "the released count matches the bitset")
        acquiredCount -= freed
        releasedNowCount = releasedPendingCount
        releasedPendingCount = 0
        isCheckpointDurable = true
    }

    /// After `decode`: marks a block of the checkpoint's own trailers (free in the encoding,
    /// which was made before they were acquired) as acquired and released, to be freed with the
    /// checkpoint after this one.
    public func markReleasedAtOpen(_ address: UInt64) {
        precondition(!isCheckpointDurable, "trailer blocks are marked right after decode")
        precondition(!isReserving, "trailer blocks are marked before any reservation")
        let index = index(of: address)
        precondition(!Self.bit(acquired, index), "the encoding lists its own blocks as free")
        Self.setBit(acquired, index, true)
        acquiredCount += 1
        Self.setBit(releasedPending, index, true)
        releasedPendingCount += 1
        updateShard(containing: index)
    }

    // MARK: Encoding

    /// Bytes that always hold one bitset's encoding in one chunk.
    public var encodedSizeMax: Int { EWAH.encodedSizeMax(wordCount: wordCount) }

    /// Where the encoding of one bitset has got to (no pointer into the set: see `encode`).
    public struct Encoding: Sendable {
        public let bitset: Bitset
        fileprivate var encoder: EWAH.Encoder
        /// Whether the whole bitset is encoded.
        public var isDone: Bool { encoder.isDone }
    }

    /// Starts encoding one bitset for a checkpoint (step 2 of the release protocol). The free
    /// set must not change until the encoding is done.
    public func beginEncoding(_ bitset: Bitset) -> Encoding {
        precondition(isCheckpointDurable, "a checkpoint is encoded while the previous one is durable")
        precondition(!isReserving, "a checkpoint is encoded outside reservation sessions")
        precondition(releasedPendingCount == 0, "no pending releases while the checkpoint is durable")
        return Encoding(bitset: bitset, encoder: EWAH.Encoder(words: UnsafeBufferPointer(words(of: bitset))))
    }

    /// Encodes the next part of the bitset into `chunk` (a trailer block's body: whole words,
    /// at least two); returns the bytes written, 0 once done.
    public func encode(_ encoding: inout Encoding, into chunk: UnsafeMutableRawBufferPointer) -> Int {
        precondition(isCheckpointDurable, "the free set does not change while it is encoded")
        precondition(!isReserving, "the free set does not change while it is encoded")
        return encoding.encoder.encode(UnsafeBufferPointer(words(of: encoding.bitset)), into: chunk)
    }

    private func words(of bitset: Bitset) -> UnsafeMutableBufferPointer<UInt64> {
        switch bitset {
        case .acquired: acquired
        case .released: released
        }
    }

    /// Replaces the whole free set with a checkpoint's encoding (the chunks of each bitset, in
    /// order). The checkpoint is not durable yet. On error the free set is left empty.
    public func decode(acquired acquiredChunks: [UnsafeRawBufferPointer],
                       released releasedChunks: [UnsafeRawBufferPointer]) throws(FreeSetDecodeError) {
        precondition(!isReserving, "a free set is decoded outside reservation sessions")
        do {
            try Self.decode(acquiredChunks, into: acquired)
        } catch {
            reset()
            throw .acquired(error)
        }
        do {
            try Self.decode(releasedChunks, into: released)
        } catch {
            reset()
            throw .released(error)
        }
        releasedPending.update(repeating: 0)
        var acquiredTotal = 0
        var releasedTotal = 0
        for word in 0..<wordCount {
            guard released[word] & ~acquired[word] == 0 else {
                reset()
                throw .releasedNotAcquired
            }
            acquiredTotal += acquired[word].nonzeroBitCount
            releasedTotal += released[word].nonzeroBitCount
        }
        let paddingMask = Self.paddingMask(blockCount: blockCount)
        guard acquired[wordCount - 1] & paddingMask == 0 else {
            reset()
            throw .bitPastBlockCount
        }
        acquiredCount = acquiredTotal
        releasedNowCount = releasedTotal
        releasedPendingCount = 0
        isCheckpointDurable = false
        rebuildShardIndex()
    }

    /// Empties the free set (a fresh grid, durable).
    public func reset() {
        precondition(!isReserving, "a free set is reset outside reservation sessions")
        acquired.update(repeating: 0)
        released.update(repeating: 0)
        releasedPending.update(repeating: 0)
        acquiredCount = 0
        releasedNowCount = 0
        releasedPendingCount = 0
        isCheckpointDurable = true
        rebuildShardIndex()
    }

    // MARK: Checks

    /// Whether every derived structure agrees with the bitsets: the shard index, the counts,
    /// released ⊆ acquired, the two release generations disjoint. O(blocks): for tests and the
    /// simulator.
    public func verifyInvariants() -> Bool {
        var acquiredTotal = 0
        var releasedTotal = 0
        var pendingTotal = 0
        for word in 0..<wordCount {
            if released[word] & ~acquired[word] != 0 { return false }
            if releasedPending[word] & ~acquired[word] != 0 { return false }
            if released[word] & releasedPending[word] != 0 { return false }
            acquiredTotal += acquired[word].nonzeroBitCount
            releasedTotal += released[word].nonzeroBitCount
            pendingTotal += releasedPending[word].nonzeroBitCount
        }
        if acquired[wordCount - 1] & Self.paddingMask(blockCount: blockCount) != 0 { return false }
        if acquiredTotal != acquiredCount || releasedTotal != releasedNowCount { return false }
        if pendingTotal != releasedPendingCount { return false }
        if isCheckpointDurable && pendingTotal != 0 { return false }
        for shard in 0..<shardCount where Self.bit(shardsFree, shard) != shardHasFreeBlock(shard) {
            return false
        }
        return true
    }

    // MARK: Internals

    private func index(of address: UInt64) -> Int {
        precondition(address >= 1, "address 0 is null")
        precondition(address <= UInt64(blockCount), "address inside the free set")
        return Int(address - 1)
    }

    /// Bits of the last word past `blockCount`.
    private static func paddingMask(blockCount: Int) -> UInt64 {
        let used = blockCount % 64
        return used == 0 ? 0 : ~UInt64(0) << used
    }

    @inline(__always)
    private static func bit(_ bits: UnsafeMutableBufferPointer<UInt64>, _ index: Int) -> Bool {
        bits[index >> 6] & (1 << UInt64(index & 63)) != 0
    }

    @inline(__always)
    private static func setBit(_ bits: UnsafeMutableBufferPointer<UInt64>, _ index: Int, _ value: Bool) {
        let mask: UInt64 = 1 << UInt64(index & 63)
        if value { bits[index >> 6] |= mask } else { bits[index >> 6] &= ~mask }
    }

    /// The lowest index in `lower..<upper` whose bit is `value`, nil if none.
    private static func findBit(
        _ bits: UnsafeMutableBufferPointer<UInt64>, from lower: Int, to upper: Int, value: Bool
    ) -> Int? {
        guard lower < upper else { return nil }
        let first = lower >> 6
        let last = (upper - 1) >> 6
        for word in first...last {
            var candidates = value ? bits[word] : ~bits[word]
            if word == first { candidates &= ~UInt64(0) << UInt64(lower & 63) }
            if word == last && upper & 63 != 0 { candidates &= ~(~UInt64(0) << UInt64(upper & 63)) }
            if candidates != 0 { return word * 64 + candidates.trailingZeroBitCount }
        }
        return nil
    }

    private func shardHasFreeBlock(_ shard: Int) -> Bool {
        let lower = shard * Self.shardBlocks
        let upper = min(blockCount, lower + Self.shardBlocks)
        return Self.findBit(acquired, from: lower, to: upper, value: false) != nil
    }

    private func updateShard(containing index: Int) {
        let shard = index / Self.shardBlocks
        Self.setBit(shardsFree, shard, shardHasFreeBlock(shard))
    }

    private func rebuildShardIndex() {
        shardsFree.update(repeating: 0)
        for shard in 0..<shardCount where shardHasFreeBlock(shard) {
            Self.setBit(shardsFree, shard, true)
        }
    }

    /// The lowest free block index in `lower..<upper`, skipping full shards.
    private func lowestFreeBlock(from lower: Int, to upper: Int) -> Int? {
        precondition(upper <= blockCount, "search inside the free set")
        guard lower < upper else { return nil }
        var shard = lower / Self.shardBlocks
        let shardEnd = (upper - 1) / Self.shardBlocks + 1
        // Each turn moves past one shard: bounded by the shard count.
        while shard < shardEnd {
            guard let next = Self.findBit(shardsFree, from: shard, to: shardEnd, value: true) else { return nil }
            let start = max(lower, next * Self.shardBlocks)
            let end = min(upper, (next + 1) * Self.shardBlocks)
            if let index = Self.findBit(acquired, from: start, to: end, value: false) { return index }
            // The shard's free blocks lie before `lower`.
            shard = next + 1
        }
        return nil
    }

    /// The index just past the `count`-th free block at or after `lower`; nil if there are
    /// fewer.
    private func endOfFreeBlocks(from lower: Int, count: Int) -> Int? {
        var remaining = count
        var shard = lower / Self.shardBlocks
        // Each turn moves past one shard: bounded by the shard count.
        while shard < shardCount {
            guard let next = Self.findBit(shardsFree, from: shard, to: shardCount, value: true) else { return nil }
            let start = max(lower, next * Self.shardBlocks)
            let end = min(blockCount, (next + 1) * Self.shardBlocks)
            if let found = countFree(from: start, to: end, remaining: &remaining) { return found }
            shard = next + 1
        }
        return nil
    }

    /// Counts free blocks in `lower..<upper` down from `remaining`; returns the index after the
    /// block that brings it to zero, or nil (with `remaining` reduced) if the range runs out.
    private func countFree(from lower: Int, to upper: Int, remaining: inout Int) -> Int? {
        guard lower < upper else { return nil }
        let first = lower >> 6
        let last = (upper - 1) >> 6
        for word in first...last {
            var free = ~acquired[word]
            if word == first { free &= ~UInt64(0) << UInt64(lower & 63) }
            if word == last && upper & 63 != 0 { free &= ~(~UInt64(0) << UInt64(upper & 63)) }
            let available = free.nonzeroBitCount
            if available < remaining {
                remaining -= available
                continue
            }
            // The `remaining`-th set bit of `free`: drop the lower ones (at most 63 turns).
            for _ in 1..<remaining { free &= free - 1 }
            remaining = 0
            return word * 64 + free.trailingZeroBitCount + 1
        }
        return nil
    }

    private static func decode(_ chunks: [UnsafeRawBufferPointer], into words: UnsafeMutableBufferPointer<UInt64>) throws(EWAHError) {
        var decoder = EWAH.Decoder(wordCount: words.count)
        for chunk in chunks { try decoder.decode(chunk: chunk, into: words) }
        decoder.finish(words)
    }
}

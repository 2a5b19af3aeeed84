import LedgerIO
import LedgerKit

// The manifest log on the grid (storage spec §5 "Manifest", §6; docs/lsm.md): `TableInfo`
// events appended in the order the trees make them, packed into `ManifestLogBlock`s, each block
// back-linked to the one before (address and checksum in its metadata). The superblock keeps
// the newest and oldest block references and the block count; open replays the chain newest to
// oldest (`ManifestLogReplay`) into the live tables.
//
// ## Addresses (determinism)
//
// A block gets its address when it is sealed, from a reservation the log holds inside the
// caller's reservation session (FreeSet header, "Reservations"). At the beat's fixed
// reservation point the caller calls `reserve(appendsMax:snapshot:)`, which reserves the worst
// case: the full blocks already waiting for an address, the blocks `appendsMax` more events can
// fill, and one for a flush; at the end of the beat (before `closeReservations`) `forfeit()`.
// A block that fills while no reservation is held waits, in memory, for the next `reserve`.
// Since appends come in a deterministic order and blocks are sealed in append order, the
// addresses and bytes do not depend on IO order.
//
// ## Blocks in memory
//
// A ring of `queueBlocksMax` block buffers, allocated at init, holds (oldest first) sealed
// blocks waiting for a grid write IO, full blocks waiting for an address, and the open block.
// The grid copies a block when the write starts, so a buffer is free again as soon as its write
// is issued. Writes are issued on append, reserve, flush and each of the log's own write
// completions; at most `writesMax` are in flight (the caller budgets the grid's write pool).
//
// ## Checkpoint
//
// `flush(callback:)` (inside a reservation) seals the open block even if partial and calls back
// once every sealed block is durable: `newest`, `oldest` and `blockCount` then describe a chain
// that is entirely on disk, for the superblock. The flush acquires its blocks before the free
// set is encoded, so the encoding lists them as acquired.
//
// ## Log compaction
//
// Without it the log would grow by a block per `entriesPerBlock` events forever. The log keeps,
// in memory, where each table's latest event sits (block sequence number, entry index: the
// "extents"), and the chain's block references oldest first. Compacting the oldest block
// re-appends the events that are still their table's latest (a `remove` that is the latest is
// dropped: every older event of its table was in this block or older ones), releases the block
// and makes the next one the oldest. Determinism: the read is asynchronous
// (`compactBegin(callback:)`), but the re-appends happen in `compactFinish()`, which the caller
// calls at a fixed point of the beat under a reservation whose `appendsMax` counts a block of
// events. The newest block is never compacted (the superblock names it). Scheduling (the spec
// compacts at least as many blocks per half-bar as were appended, plus one) is the caller's.
//
// Sketch: production blocks hold 4,094 events; a compaction beat appends a few events per tree
// (inputs updated or removed, outputs inserted), so a block fills every few beats and the log
// costs one 512 KiB write per filled block plus one per checkpoint. Open reads the whole chain
// once, one block at a time (each block names the previous one).

/// Why the manifest log cannot be opened (or its oldest block read for compaction). Every cause
/// is bad bytes or a broken chain; none is trapped on.
public enum ManifestLogOpenError: Error, Equatable, Sendable {
    /// A block of the chain decodes wrong, or the chain does not hold together.
    case log(ManifestLogError)
    /// The grid could not read the block the chain names.
    case block(address: UInt64, BlockFault)
    /// The chain names an address outside the grid.
    case address(UInt64)
    /// The chain's length is not the superblock's block count.
    case blockCount(expected: UInt32, found: Int)
    /// The free set does not hold a block of the chain as acquired (and not yet released): the
    /// checkpoint's free set and manifest disagree.
    case blockNotAcquired(UInt64)
}

public final class ManifestLog<S: Storage> {
    public typealias OpenCallback = (Result<[TableInfo], ManifestLogOpenError>) -> Void

    public let grid: Grid<S>
    public let freeSet: FreeSet
    public let levelCount: Int
    /// Distinct tables (live, or removed but with events still in the log) the log tracks at
    /// most: the replay at open and the extents.
    public let tablesMax: Int
    /// Events per block.
    public let entriesPerBlock: Int
    /// Block buffers: sealed blocks waiting for a write, full ones waiting for an address, and
    /// the open block.
    public let queueBlocksMax: Int
    public let writesMax: Int
    /// Blocks the chain may span (compaction keeps the log below it).
    public let blocksMax: Int

    /// The newest sealed block (null while the log is empty): the superblock's newest.
    public private(set) var newest = BlockReference.null
    /// The oldest block of the chain (null while the log is empty).
    public private(set) var oldest = BlockReference.null
    /// Sealed blocks in the chain.
    public private(set) var blockCount: UInt32 = 0

    private let blockSize: Int
    private let buffers: AlignedBuffer
    /// Entries of each ring slot's block (sealed and full blocks).
    private var entryCounts: [Int]
    /// The ring slot of the oldest waiting block.
    private var queueHead = 0
    /// Sealed blocks waiting for a write, from `queueHead`.
    private var sealedCount = 0
    /// Full blocks waiting for an address, after the sealed ones.
    private var closedCount = 0
    /// Entries in the open block (the slot after the full ones).
    public private(set) var openEntryCount = 0
    private var writesInFlight = 0

    private var reservation: Reservation?
    private var reservedSnapshot: UInt64 = 0
    /// Appends left under the current reservation's worst case.
    private var appendsReserved = 0
    private var flushCallback: (() -> Void)?
    private var writeDoneCallback: Grid<S>.WriteCallback = {}

    // The chain, oldest first: a ring of `blocksMax` references from `chainHead`; its oldest
    // block has sequence number `chainFirstSequence`, and every later block (sealed, full, open)
    // the next number.
    private var chainReferences: [BlockReference]
    private var chainHead = 0
    private var chainFirstSequence: UInt64 = 0
    private var extents: ManifestLogExtents

    // Compaction.
    private let compactBuffer: AlignedBuffer
    private var compactState = CompactState.idle
    private var compactCallback: ((ManifestLogOpenError?) -> Void)?
    private var compactReadCallback: Grid<S>.ReadCallback = { _ in }
    private enum CompactState { case idle, reading, ready }

    // Open.
    private var replay: ManifestLogReplay?
    private var openCallback: OpenCallback?
    private var openBlockCount: UInt32 = 0
    private var openNewest = BlockReference.null
    private var openOldest = BlockReference.null
    private var readIsSynchronous = false
    private var readCompletedSynchronously = false
    private var readError: ManifestLogOpenError?
    private var readDoneCallback: Grid<S>.ReadCallback = { _ in }

    public init(
        grid: Grid<S>, freeSet: FreeSet, levelCount: Int, tablesMax: Int, blocksMax: Int = 1024, queueBlocksMax: Int = 4,
        writesMax: Int = 1
    ) {
        precondition(queueBlocksMax >= 2, "the ring holds the open block and a waiting one")
        precondition(blocksMax >= 2, "the chain holds the newest block and one to compact")
        precondition(writesMax >= 1, "the log writes")
        precondition(tablesMax >= 1, "the log may name a table")
        self.grid = grid
        self.freeSet = freeSet
        self.levelCount = levelCount
        self.tablesMax = tablesMax
        self.queueBlocksMax = queueBlocksMax
        self.writesMax = writesMax
        blockSize = grid.blockSize
        entriesPerBlock = ManifestLogBlock.entryCountMax(blockSize: grid.blockSize)
        buffers = AlignedBuffer(count: queueBlocksMax * grid.blockSize)
        entryCounts = Array(repeating: 0, count: queueBlocksMax)
        self.blocksMax = blocksMax
        chainReferences = Array(repeating: .null, count: blocksMax)
        extents = ManifestLogExtents(capacity: tablesMax)
        compactBuffer = AlignedBuffer(count: grid.blockSize)
        writeDoneCallback = { [unowned self] in self.writeDone() }
        readDoneCallback = { [unowned self] result in self.readDone(result) }
        compactReadCallback = { [unowned self] result in self.compactReadDone(result) }
    }

    /// Full blocks waiting for an address or a grid write: a caller that appends much between
    /// storage ticks keeps this below `queueBlocksMax − 1`.
    public var blocksWaiting: Int { sealedCount + closedCount }

    /// Whether every appended event is in a durable block (after a flush completes).
    public var isFlushed: Bool {
        openEntryCount == 0 && closedCount == 0 && sealedCount == 0 && writesInFlight == 0
    }

    // MARK: Appending

    /// Records one event in the open block; a block that fills is sealed (when a reservation is
    /// held) and written.
    public func append(_ event: TableInfo) {
        precondition(flushCallback == nil, "no appends while a flush is in progress")
        precondition(replay == nil, "no appends while opening")
        if reservation != nil {
            precondition(appendsReserved > 0, "appends stay within the reservation's appendsMax")
            appendsReserved -= 1
        }
        let openSequence = chainFirstSequence + UInt64(blockCount) + UInt64(closedCount)
        precondition(extents.record(event.identity, block: openSequence, entry: UInt32(openEntryCount)),
                     "the log tracks at most tablesMax tables")
        ManifestLogBlock.storeEntry(event, at: openEntryCount, in: slotBuffer(openSlot))
        openEntryCount += 1
        if openEntryCount == entriesPerBlock { closeOpenBlock() }
        progress()
    }

    /// Reserves, inside the caller's open session, the blocks this beat may seal: waiting full
    /// blocks, the blocks `appendsMax` events fill, and one for a flush. Blocks sealed under it
    /// record `snapshot`. Returns false (reserving nothing) when the grid is full.
    public func reserve(appendsMax: Int, snapshot: UInt64) -> Bool {
        precondition(freeSet.isReserving, "the log reserves inside the caller's session")
        precondition(reservation == nil, "one reservation at a time")
        precondition(appendsMax >= 0, "an append count is not negative")
        let count = closedCount + (openEntryCount + appendsMax) / entriesPerBlock + 1
        guard let reserved = freeSet.reserve(count: count) else { return false }
        reservation = reserved
        reservedSnapshot = snapshot
        appendsReserved = appendsMax
        progress()
        return true
    }

    /// Gives the reservation back (before the caller closes the session).
    public func forfeit() {
        guard let reserved = reservation else { preconditionFailure("forfeiting a held reservation") }
        freeSet.forfeit(reserved)
        reservation = nil
        appendsReserved = 0
    }

    /// Seals the open block (if it has events) and calls back once every sealed block is
    /// durable (before `flush` returns when nothing is waiting). Under a reservation when a
    /// block is sealed (the flush takes an address).
    public func flush(callback: @escaping () -> Void) {
        precondition(flushCallback == nil, "one flush at a time")
        precondition(replay == nil, "no flush while opening")
        if openEntryCount > 0 { closeOpenBlock() }
        precondition(closedCount == 0 || reservation != nil, "a flush that seals blocks holds a reservation")
        flushCallback = callback
        progress()
    }

    private var openSlot: Int { (queueHead + sealedCount + closedCount) % queueBlocksMax }

    private func closeOpenBlock() {
        precondition(sealedCount + closedCount + 2 <= queueBlocksMax,
                     "at most queueBlocksMax manifest log blocks wait for an address or a grid write")
        entryCounts[openSlot] = openEntryCount
        closedCount += 1
        openEntryCount = 0
    }

    /// Seals what can be sealed, writes what can be written, and ends a flush that is complete.
    private func progress() {
        sealClosedBlocks()
        pumpWrites()
        if let callback = flushCallback, closedCount == 0, sealedCount == 0, writesInFlight == 0 {
            flushCallback = nil
            callback()
        }
    }

    private func sealClosedBlocks() {
        guard let reserved = reservation else { return }
        // Each turn seals one waiting block: bounded by the ring.
        while closedCount > 0 {
            guard let address = freeSet.acquire(reserved) else {
                preconditionFailure("the log's reservation covers every block it seals")
            }
            let slot = (queueHead + sealedCount) % queueBlocksMax
            newest = ManifestLogBlock.seal(
                block: slotBuffer(slot), entryCount: entryCounts[slot], previous: newest, address: address,
                snapshot: reservedSnapshot)
            if oldest.isNull { oldest = newest }
            precondition(Int(blockCount) < blocksMax, "compaction keeps the log within blocksMax blocks")
            chainReferences[(chainHead + Int(blockCount)) % blocksMax] = newest
            blockCount += 1
            sealedCount += 1
            closedCount -= 1
        }
    }

    private func pumpWrites() {
        // Each turn issues one sealed block: bounded by the ring.
        while sealedCount > 0 && writesInFlight < writesMax && grid.writesAvailable > 0 {
            grid.write(block: UnsafeRawBufferPointer(slotBuffer(queueHead)), callback: writeDoneCallback)
            // The grid copied the block: its buffer is free.
            queueHead = (queueHead + 1) % queueBlocksMax
            sealedCount -= 1
            writesInFlight += 1
        }
    }

    private func writeDone() {
        precondition(writesInFlight > 0, "a log write completes while one is in flight")
        writesInFlight -= 1
        progress()
    }

    private func slotBuffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[(slot * blockSize)..<((slot + 1) * blockSize)])
    }

    // MARK: Open

    /// Reads the chain the superblock names, newest to oldest, each block verified against the
    /// reference its successor (or the superblock) holds, and calls back with the live tables
    /// (ordered by tree id, level and address) or the error. The log then continues the chain.
    /// Runs before `open` returns when every block is in memory.
    public func open(newest: BlockReference, oldest: BlockReference, blockCount: UInt32, callback: @escaping OpenCallback) {
        precondition(self.blockCount == 0, "a log opens before anything is appended")
        precondition(isFlushed, "a log opens before anything is appended")
        precondition(replay == nil, "one open at a time")
        guard Int(blockCount) <= blocksMax else { return callback(.failure(.log(.chainTooLong))) }
        guard newest.isNull == (blockCount == 0) else {
            return callback(.failure(.blockCount(expected: blockCount, found: newest.isNull ? 0 : 1)))
        }
        do {
            replay = try ManifestLogReplay(
                newest: newest, oldest: oldest, blocksMax: max(1, Int(blockCount)), tablesMax: tablesMax,
                levelCount: levelCount)
        } catch {
            return callback(.failure(.log(error)))
        }
        extents.reset()
        openNewest = newest
        openOldest = oldest
        openBlockCount = blockCount
        openCallback = callback
        readError = nil
        readLoop()
    }

    /// Reads one block at a time; a read served from memory calls back inside `grid.read`, so
    /// this loop (not the callback) moves on: no recursion.
    private func readLoop() {
        // Each turn replays one block; the replay stops at blocksMax.
        while true {
            guard let next = replay?.nextBlock, readError == nil else { return finishOpen() }
            guard next.address <= UInt64(grid.storage.layout.configuration.gridBlockCountMax) else {
                readError = .address(next.address)
                return finishOpen()
            }
            readIsSynchronous = true
            readCompletedSynchronously = false
            grid.read(next, callback: readDoneCallback)
            readIsSynchronous = false
            guard readCompletedSynchronously else { return }
        }
    }

    private func readDone(_ result: GridReadResult) {
        precondition(replay != nil, "a log read completes while opening")
        switch result {
        case .fault(let fault):
            readError = .block(address: replay!.nextBlock!.address, fault)
        case .block(let block):
            let reference = replay!.nextBlock!
            let position = replay!.blockCount
            do throws(ManifestLogError) {
                try replay!.replay(block: block)
                // Newest first: the chain's positions fill from the back. The replay stops at
                // `blockCount` blocks, so the position is inside the chain.
                let sequence = Int(openBlockCount) - 1 - position
                precondition(sequence >= 0, "the replay reads at most blockCount blocks")
                chainReferences[sequence] = reference
                try recordExtents(block: block, sequence: UInt64(sequence))
            } catch {
                readError = .log(error)
            }
        }
        if readIsSynchronous {
            readCompletedSynchronously = true
        } else {
            readLoop()
        }
    }

    /// The block's events, newest first: the first seen of a table is its latest (blocks are
    /// replayed newest first too).
    private func recordExtents(block: UnsafeRawBufferPointer, sequence: UInt64) throws(ManifestLogError) {
        let view = try ManifestLogBlock.decode(block: block, levelCount: levelCount)
        var index = view.entryCount
        while index > 0 {
            index -= 1
            let identity = view[index].identity
            if extents.contains(identity) { continue }
            guard extents.record(identity, block: sequence, entry: UInt32(index)) else { throw .tooManyTables }
        }
    }

    private func finishOpen() {
        guard let callback = openCallback, let finished = replay else { preconditionFailure("an open has a callback") }
        openCallback = nil
        replay = nil
        if let error = readError { return failOpen(error, callback) }
        guard finished.blockCount == Int(openBlockCount) else {
            return failOpen(.blockCount(expected: openBlockCount, found: finished.blockCount), callback)
        }
        let tables: [TableInfo]
        do throws(ManifestLogError) {
            tables = try finished.liveTables()
        } catch {
            return failOpen(.log(error), callback)
        }
        chainHead = 0
        chainFirstSequence = 0
        // The chain goes on from the superblock's newest block.
        newest = openNewest
        oldest = openOldest
        blockCount = openBlockCount
        callback(.success(tables))
    }

    private func failOpen(_ error: ManifestLogOpenError, _ callback: OpenCallback) {
        extents.reset()
        callback(.failure(error))
    }

    // MARK: Compaction

    /// Whether the oldest block may be compacted now: the chain has a block besides the newest,
    /// and no compaction is under way.
    public var canCompact: Bool { blockCount >= 2 && compactState == .idle && replay == nil }

    /// Reads the oldest block (verified against the chain); `callback` gets nil when it is ready
    /// for `compactFinish`, or the error (the log is then unchanged).
    public func compactBegin(callback: @escaping (ManifestLogOpenError?) -> Void) {
        precondition(canCompact, "compaction starts when the chain has a block besides the newest")
        // Checked, not assumed: compactFinish releases the block, which must be acquired.
        guard !freeSet.isFree(oldest.address), !freeSet.isReleased(oldest.address) else {
            return callback(.blockNotAcquired(oldest.address))
        }
        compactState = .reading
        compactCallback = callback
        grid.read(oldest, callback: compactReadCallback)
    }

    private var compactEntryCount = 0

    private func compactReadDone(_ result: GridReadResult) {
        precondition(compactState == .reading, "a compaction read completes while reading")
        guard let callback = compactCallback else { preconditionFailure("a compaction has a callback") }
        compactCallback = nil
        switch result {
        case .fault(let fault):
            compactState = .idle
            callback(.block(address: oldest.address, fault))
        case .block(let block):
            compactBuffer.bytes.copyMemory(from: block)
            do throws(ManifestLogError) {
                let view = try ManifestLogBlock.decode(block: UnsafeRawBufferPointer(compactBuffer.bytes), levelCount: levelCount)
                compactEntryCount = view.entryCount
                compactState = .ready
                callback(nil)
            } catch {
                compactState = .idle
                callback(.log(error))
            }
        }
    }

    /// At a fixed point of the beat (under a reservation counting `entriesPerBlock` appends):
    /// re-appends the oldest block's events that are still their table's latest, releases the
    /// block, and makes the next one the oldest.
    public func compactFinish() {
        precondition(compactState == .ready, "compactFinish after compactBegin called back without error")
        precondition(flushCallback == nil, "no compaction while a flush is in progress")
        precondition(blockCount >= 2, "the newest block is never compacted")
        compactState = .idle
        let sequence = chainFirstSequence
        let view = ManifestLogBlockView(
            block: UnsafeRawBufferPointer(compactBuffer.bytes), entryCount: compactEntryCount, previous: .null)
        for index in 0..<view.entryCount {
            let entry = view[index]
            guard extents.isLatest(entry.identity, block: sequence, entry: UInt32(index)) else { continue }
            if entry.event == .remove {
                // Every older event of the table was in this block or an older one: all gone.
                extents.remove(entry.identity)
            } else {
                append(entry)
            }
        }
        freeSet.release(oldest.address)
        chainReferences[chainHead] = .null
        chainHead = (chainHead + 1) % blocksMax
        chainFirstSequence += 1
        blockCount -= 1
        oldest = chainReferences[chainHead]
        precondition(!oldest.isNull, "the chain keeps its newest block")
    }
}

/// Where each table's latest event sits in the manifest log: (block sequence number, entry
/// index), keyed by the table's identity. Open addressing with linear probing and backward-shift
/// deletion (no tombstones, deterministic: no `Dictionary`), `2 × capacity` slots rounded up to a
/// power of two, allocated at init.
struct ManifestLogExtents {
    let capacity: Int
    private(set) var count = 0
    private var identities: [TableIdentity]
    /// `UInt64.max`: the slot is empty.
    private var blocks: [UInt64]
    private var entries: [UInt32]
    private let mask: Int

    init(capacity: Int) {
        precondition(capacity >= 1, "the log may name a table")
        var slots = 1
        while slots < 2 * capacity { slots *= 2 }
        self.capacity = capacity
        identities = Array(repeating: TableIdentity(treeId: 0, address: 0, checksum: 0), count: slots)
        blocks = Array(repeating: UInt64.max, count: slots)
        entries = Array(repeating: 0, count: slots)
        mask = slots - 1
    }

    mutating func reset() {
        for slot in 0..<blocks.count { blocks[slot] = UInt64.max }
        count = 0
    }

    func contains(_ identity: TableIdentity) -> Bool { find(identity) != nil }

    func isLatest(_ identity: TableIdentity, block: UInt64, entry: UInt32) -> Bool {
        guard let slot = find(identity) else { return false }
        return blocks[slot] == block && entries[slot] == entry
    }

    /// Sets the table's latest event; false when it is new and `capacity` tables are tracked.
    mutating func record(_ identity: TableIdentity, block: UInt64, entry: UInt32) -> Bool {
        precondition(block != UInt64.max, "a block sequence number is not the empty marker")
        var slot = home(identity)
        // At most `capacity` of the 2 × capacity slots are used: an empty slot comes first.
        for _ in 0..<blocks.count {
            if blocks[slot] == UInt64.max { break }
            if identities[slot] == identity {
                blocks[slot] = block
                entries[slot] = entry
                return true
            }
            slot = (slot + 1) & mask
        }
        guard count < capacity else { return false }
        precondition(blocks[slot] == UInt64.max, "the extents always have an empty slot")
        identities[slot] = identity
        blocks[slot] = block
        entries[slot] = entry
        count += 1
        return true
    }

    mutating func remove(_ identity: TableIdentity) {
        guard var hole = find(identity) else { preconditionFailure("removing a tracked table") }
        var next = (hole + 1) & mask
        // Shift back every entry of the probe run that may fill the hole: bounded by the slots.
        for _ in 0..<blocks.count {
            if blocks[next] == UInt64.max { break }
            let homeSlot = home(identities[next])
            // `next` may move to `hole` when the hole lies on its probe path [home, next).
            if (next - homeSlot) & mask >= (next - hole) & mask {
                identities[hole] = identities[next]
                blocks[hole] = blocks[next]
                entries[hole] = entries[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        blocks[hole] = UInt64.max
        count -= 1
    }

    private func find(_ identity: TableIdentity) -> Int? {
        var slot = home(identity)
        for _ in 0..<blocks.count {
            if blocks[slot] == UInt64.max { return nil }
            if identities[slot] == identity { return slot }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Fibonacci hashing of the address mixed with the tree id (wrapping multiply is the hash).
    private func home(_ identity: TableIdentity) -> Int {
        let key = identity.address ^ (UInt64(identity.treeId) << 48) ^ UInt64(truncatingIfNeeded: identity.checksum)
        return Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }
}

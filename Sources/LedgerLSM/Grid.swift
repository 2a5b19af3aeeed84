import LedgerIO
import LedgerKit

// The grid (storage spec §4, docs/lsm.md "Blocks"): the block store under the LSM. A read names
// a `BlockReference` (address and the checksum its referrer holds) and gets exactly that block,
// verified, or a `BlockFault`; a write stores a sealed block at its own address.
//
// Reads look in memory first:
//   1. a write in flight for the address with the same checksum (its buffer is the newest copy);
//   2. the block cache, if the cached block has the referrer's checksum;
//   3. storage, into a read IO's buffer; a verified block goes into the cache.
// A memory hit calls back before `read` returns; a storage read calls back from the storage's
// completion. Nothing inserts into the cache except those completions, which never run inside
// `read` or `write`, so a block handed to a callback stays put until the callback returns.
//
// Faults are reported, never trapped on: the LSM decides (a solo replica stops with a clear
// error; step 5 repairs from peers). A block whose header is intact but is another address's
// (a misdirected write or read) is reported as `.misdirected` even when its checksum also
// differs from the referrer's, since that is the more useful diagnosis.
//
// Pools, all allocated at init: `readsMax` read IOs (completion + block buffer), a FIFO of
// `readQueueMax` reads waiting for one, `writesMax` write IOs (completion + block buffer). Every
// block buffer is one of the cache's (`BlockCache` lends its spares), so a completed read or
// write enters the cache by exchanging buffers with the slot it takes, not by a copy: the IO
// keeps the evicted block's buffer for its next block. `write(block:)` copies the caller's
// block into its IO buffer, so the caller's buffer is free as soon as `write` returns;
// `write(exchanging:)` takes a buffer the caller borrowed with `takeBlock()` and hands back the
// IO's idle one instead, so a block built in place reaches the cache with no copy at all.
// Callbacks are stored, not created: callers pass closures they made once (e.g.
// `{ [unowned self] in … }` at init) and the read/write path allocates nothing.
//
// Pinned reads (`readPinned`): a compaction job merges each block it reads over many turns,
// across other IO. Rather than copy the block out of the cache (a 512 KiB memcpy per block read,
// ~10 % of the server's CPU under load), it asks for the block pinned: a cache hit pins the
// block's slot, a storage read enters the cache as usual (by exchange) and is pinned there. The
// block then stays put, readable by anyone, until the reader calls `unpin`. Ownership is
// explicit in the result: `.pinned` bytes are valid until `unpin(pin)` and never written by
// anyone; `.block` bytes (served from a write in flight, or a block that could not enter the
// cache: a write of its address overlapped the read, or its set is all pinned) are valid only
// until the callback returns, and the reader copies them. Pinned slots are never evicted nor
// exchanged (`BlockCache`): a completed read or write that would need one leaves its block out
// of the cache instead (the IO keeps its buffer).
//
// Trusted blocks: a writer may vouch for more than the checksums prove (`write(…, trusted:
// true)`; a compaction job vouches that its value block's keys strictly ascend, which it checked
// as it built the block). The grid remembers it while the bytes stay in its memory (the write
// buffer, then the cache slot the buffer is exchanged into, until that slot's bytes may change)
// and tells pinned readers (`trusted:` in the result), who may then skip re-checking what the
// writer vouched for. A block read from storage is never trusted: another process, maybe of
// another release, may have written it; its checksums prove only that it is what was written.
//
// Sketch: production blocks are 512 KiB; a cache hit costs a hash and a 16-byte compare; a
// write costs one memcpy (~50 µs at 10 GB/s) through `write(block:)`, none through
// `write(exchanging:)`, besides the device write; a read from storage costs no copy. 32 reads +
// 32 writes in flight hold 32 MiB of IO buffers.

/// The outcome of a grid read.
/// A read callback held in a concrete type, for a caller's array of per-slot callbacks: a bare
/// function stored in an array (a generic container) sits at the most general abstraction, and
/// passing it on as a `Grid.ReadCallback` converts it back with a thunk allocation per read.
struct GridReadHandler {
    let callback: (GridReadResult) -> Void
}

/// `GridReadHandler` for pinned reads.
struct GridPinnedReadHandler {
    let callback: (GridPinnedReadResult) -> Void
}

public enum GridReadResult {
    /// The block, `blockSize` bytes, verified against the reference. Valid until the callback
    /// returns: copy what must outlive it.
    case block(UnsafeRawBufferPointer)
    /// The block could not be read as the reference names it.
    case fault(BlockFault)
}

/// The outcome of a pinned grid read (`Grid.readPinned`).
public enum GridPinnedReadResult {
    /// The block, verified, pinned in the cache: valid, and unchanged, until `Grid.unpin(pin)`.
    /// `trusted`: its writer, in this process, vouched for it (`Grid.write(…, trusted: true)`).
    case pinned(UnsafeRawBufferPointer, GridPin, trusted: Bool)
    /// The block, verified, but not pinned: valid until the callback returns (copy it).
    case block(UnsafeRawBufferPointer, trusted: Bool)
    /// The block could not be read as the reference names it.
    case fault(BlockFault)
}

/// A block a reader holds pinned in the grid's cache (`Grid.readPinned`); `Grid.unpin` ends it.
public struct GridPin: Equatable, Sendable {
    let slot: Int
    /// The block's address.
    public let address: UInt64
}

/// Where grid reads were served from, and what went wrong (for metrics and tests).
public struct GridStatistics: Equatable, Sendable {
    public var readsFromWrites = 0
    public var readsFromCache = 0
    public var readsFromStorage = 0
    public var readsQueued = 0
    /// Storage reads started by `warm` (also counted in `readsFromStorage`).
    public var readsWarmed = 0
    public var readFaults = 0
    public var writes = 0

    public init() {}
}

public final class Grid<S: Storage> {
    public typealias ReadCallback = (GridReadResult) -> Void
    public typealias WriteCallback = () -> Void
    public typealias PinnedReadCallback = (GridPinnedReadResult) -> Void

    /// Who waits for a read: a plain reader (a block valid during the callback) or one that
    /// keeps the block pinned.
    private enum Reader {
        case plain(ReadCallback)
        case pinned(PinnedReadCallback)

        /// `readPinned`'s reader: compaction's (see "Compaction IO during execute").
        var isPinned: Bool {
            if case .pinned = self { return true }
            return false
        }
    }

    /// A write's callback, held in a concrete type: a bare function stored in an array (a
    /// generic container) is converted to the most general abstraction on every store, which
    /// allocates a thunk per write (measured: 8–18 allocations per compacting batch request).
    private struct Writer {
        let callback: WriteCallback
    }

    public let storage: S
    public let blockSize: Int
    public let cache: BlockCache
    public let readsMax: Int
    public let writesMax: Int
    public let readQueueMax: Int
    /// Reads `warm` may keep in flight.
    public let warmReadsMax: Int
    public private(set) var statistics = GridStatistics()

    private let gridBlockCountMax: UInt64

    // Read IOs: slot `s` uses `readCompletions[s]` and the buffer `readBlocks[s]` (one of the
    // cache's, exchanged with a cache slot's when the read completes).
    private let readCompletions: [StorageCompletion]
    private var readBlocks: [UnsafeMutableRawBufferPointer]
    private var readReferences: [BlockReference]
    /// Non-nil while the slot's read is in flight (or its callback runs).
    private var readCallbacks: [Reader?]
    /// Cleared when a write of the same address starts: the bytes read may then be older than
    /// the cache's, and must not replace them.
    private var readCacheable: [Bool]
    /// The slot's read is a warming one (`warm`): nobody waits for it yet.
    private var readIsWarm: [Bool]
    private var readSlotsFree: [Int]
    /// Warming reads in flight, at most `warmReadsMax`.
    private var warmReadsInFlight = 0
    private let warmCallback: ReadCallback = { _ in }

    // Reads waiting for a read IO: a ring of `readQueueMax + warmReadsMax` entries (warming
    // reads hold IOs, never queue entries: the extra room keeps `readsMax + readQueueMax`
    // reads possible while they do).
    private var queueCapacity: Int { readQueueMax + warmReadsMax }
    private var queuedReferences: [BlockReference]
    private var queuedCallbacks: [Reader?]
    private var queueHead = 0
    private var queueCount = 0

    // Write IOs: slot `s` uses `writeCompletions[s]` and the buffer `writeBlocks[s]` (one of the
    // cache's, exchanged with a cache slot's when the write completes, or with the caller's by
    // `write(exchanging:)`).
    private let writeCompletions: [StorageCompletion]
    private var writeBlocks: [UnsafeMutableRawBufferPointer]
    /// The address being written, 0 when the slot is idle.
    private var writeAddresses: [UInt64]
    private var writeChecksums: [UInt128]
    /// Whether the writer vouched for the block (`trusted:` of the write).
    private var writeTrusted: [Bool]
    private var writeCallbacks: [Writer?]
    private var writeSlotsFree: [Int]
    /// Callers waiting for a write slot (`waitForWrite`), first come first served: a ring of
    /// `writeWaitersMax`, each called once a write completes and frees a slot. A forest runs
    /// its trees' beats side by side (Forest.swift "Beats"), so a job may find every slot taken
    /// by other trees' writes.
    private var writeWaiters: [Writer?]
    private var writeWaitersHead = 0
    private var writeWaitersCount = 0

    /// Block buffers callers may borrow with `takeBlock()` (for `write(exchanging:)`).
    public let callerBlocks: Int
    private var callerBlocksTaken = 0

    /// `callerBlocks`: buffers the grid's users borrow at init (`takeBlock()`) to build blocks
    /// in place and write them with `write(exchanging:)`.
    public init(
        storage: S, cacheBlocks: Int, readsMax: Int, writesMax: Int, readQueueMax: Int = 256, callerBlocks: Int = 0,
        warmReadsMax: Int = 0
    ) {
        precondition(warmReadsMax >= 0 && warmReadsMax < readsMax, "warming leaves a read IO for the readers")
        precondition(readsMax >= 1, "the grid reads")
        precondition(callerBlocks >= 0, "a buffer count is not negative")
        precondition(writesMax >= 1, "the grid writes")
        precondition(readQueueMax >= 0, "a queue length is not negative")
        precondition(MemoryLayout<HeaderFrame>.offset(of: \HeaderFrame.checksum) == 0,
                     "a block's checksum is its first 16 bytes")
        let configuration = storage.layout.configuration
        self.storage = storage
        blockSize = configuration.blockSize
        gridBlockCountMax = UInt64(configuration.gridBlockCountMax)
        self.readsMax = readsMax
        self.writesMax = writesMax
        self.readQueueMax = readQueueMax
        self.warmReadsMax = warmReadsMax
        self.callerBlocks = callerBlocks
        let cache = BlockCache(
            capacityBlocks: cacheBlocks, blockSize: blockSize, spareBlocks: readsMax + writesMax + callerBlocks)
        self.cache = cache

        readCompletions = (0..<readsMax).map { _ in StorageCompletion() }
        readBlocks = (0..<readsMax).map { _ in cache.takeSpare() }
        readReferences = Array(repeating: .null, count: readsMax)
        readCallbacks = Array(repeating: nil, count: readsMax)
        readCacheable = Array(repeating: false, count: readsMax)
        readIsWarm = Array(repeating: false, count: readsMax)
        readSlotsFree = Array((0..<readsMax).reversed())

        queuedReferences = Array(repeating: .null, count: readQueueMax + warmReadsMax)
        queuedCallbacks = Array(repeating: nil, count: readQueueMax + warmReadsMax)

        writeCompletions = (0..<writesMax).map { _ in StorageCompletion() }
        writeBlocks = (0..<writesMax).map { _ in cache.takeSpare() }
        writeAddresses = Array(repeating: 0, count: writesMax)
        writeChecksums = Array(repeating: 0, count: writesMax)
        writeTrusted = Array(repeating: false, count: writesMax)
        writeCallbacks = Array(repeating: nil, count: writesMax)
        writeSlotsFree = Array((0..<writesMax).reversed())
        writeWaiters = Array(repeating: nil, count: Self.writeWaitersMax)

        for (slot, completion) in readCompletions.enumerated() {
            completion.tag = slot
            completion.callback = { [unowned self] completion in self.readDone(slot: completion.tag) }
        }
        for (slot, completion) in writeCompletions.enumerated() {
            completion.tag = slot
            completion.callback = { [unowned self] completion in self.writeDone(slot: completion.tag) }
        }
    }

    /// Reads that can be issued now without exceeding the pools (free IOs plus queue room).
    public var readsAvailable: Int { readSlotsFree.count + readQueueMax - queueCount }
    /// Writes that can be issued now.
    public var writesAvailable: Int { writeSlotsFree.count }

    /// Calls `callback` once a write slot is free (after a write completes), for a caller that
    /// found `writesAvailable == 0`; it runs inside another write's completion. `callback`
    /// should be a closure made once (stored until then, not copied per call). At most
    /// `writeWaitersMax` callers wait at once (a compaction job waits for one slot at a time).
    public func waitForWrite(_ callback: @escaping WriteCallback) {
        precondition(writesAvailable == 0, "a caller waits only when every write slot is taken")
        precondition(writeWaitersCount < Self.writeWaitersMax, "at most writeWaitersMax waiters")
        writeWaiters[(writeWaitersHead + writeWaitersCount) % Self.writeWaitersMax] = Writer(callback: callback)
        writeWaitersCount += 1
    }

    /// Callers that may wait for a write slot at once (`waitForWrite`).
    public static var writeWaitersMax: Int { Constants.gridWriteWaitersMax }

    /// Callers waiting for a write slot.
    public var writeWaitersPending: Int { writeWaitersCount }

    /// Calls the first waiter for a write slot while a slot is free. Bounded: each turn
    /// removes a waiter, and one that does not take the slot leaves it to the next.
    private func wakeWriteWaiters() {
        while writesAvailable > 0 && writeWaitersCount > 0 {
            guard let waiter = writeWaiters[writeWaitersHead] else { preconditionFailure("a queued waiter") }
            writeWaiters[writeWaitersHead] = nil
            writeWaitersHead = (writeWaitersHead + 1) % Self.writeWaitersMax
            writeWaitersCount -= 1
            waiter.callback()
        }
    }

    /// Storage reads in flight plus reads waiting for an IO.
    public var readsPending: Int { readsMax - readSlotsFree.count + queueCount }
    /// Writes in flight.
    public var writesPending: Int { writesMax - writeSlotsFree.count }

    /// Lends one of the `callerBlocks` buffers (at init): sector-aligned, `blockSize` bytes,
    /// valid as long as the grid. The caller builds blocks in it and passes it to
    /// `write(exchanging:)`, which swaps it for another such buffer.
    public func takeBlock() -> UnsafeMutableRawBufferPointer {
        precondition(callerBlocksTaken < callerBlocks, "at most callerBlocks buffers are borrowed")
        callerBlocksTaken += 1
        return cache.takeSpare()
    }

    // MARK: Compaction IO during execute

    /// Whether every grid IO in flight or queued is a compaction job's (`readPinned`, `warm`,
    /// `write(exchanging:)`, `write(block:compaction: true)`); their completions are marked
    /// pollable. Then `Storage.runPollableCompletions` runs only compaction's callbacks here:
    /// a completion also serves queued reads and wakes write waiters, which are then
    /// compaction's too. The forest store polls only when this holds (ForestStore.swift,
    /// "Compaction during execute"); it does during a create batch's execute, whose prefetch
    /// reads are all done.
    public var isAllIOCompaction: Bool {
        for slot in 0..<readsMax where readCallbacks[slot] != nil && !readCompletions[slot].isPollable {
            return false
        }
        for slot in 0..<writesMax where writeCallbacks[slot] != nil && !writeCompletions[slot].isPollable {
            return false
        }
        for position in 0..<queueCount {
            let reader = queuedCallbacks[(queueHead + position) % queueCapacity]
            guard let reader, reader.isPinned else { return false }
        }
        return true
    }

    // MARK: Read

    /// Reads the block `reference` names; `callback` gets it verified, or the fault. Runs before
    /// `read` returns when the block is in memory (a write in flight or the cache).
    public func read(_ reference: BlockReference, callback: @escaping ReadCallback) {
        read(reference, reader: .plain(callback))
    }

    /// Reads the block `reference` names, as `read`, but hands it over pinned in the cache when
    /// it can (`.pinned`: valid until `unpin`), so the reader may keep using it across IO
    /// without a copy; else `.block` (valid during the callback) or the fault. The reader must
    /// `unpin` every pin it got, before the grid is torn down or not, it is never released
    /// otherwise.
    public func readPinned(_ reference: BlockReference, callback: @escaping PinnedReadCallback) {
        read(reference, reader: .pinned(callback))
    }

    /// Starts reading the block `reference` names into the cache, for a reader that will ask
    /// for it soon (a compaction job's next input blocks): nobody is called back; a later
    /// `read` or `readPinned` of it finds it cached, or takes over the read if it is still in
    /// flight. Only on an idle read IO and within `warmReadsMax`, so readers never wait
    /// behind it; returns false when it cannot start (the caller stops warming), true when it
    /// started or the block is in memory or being read already. A fault is left for the
    /// reader's own read to report.
    @discardableResult
    public func warm(_ reference: BlockReference) -> Bool {
        precondition(!reference.isNull, "a read names a block")
        precondition(reference.address <= gridBlockCountMax, "the address is inside the grid")
        if blockInMemory(reference, counts: false) != nil { return true }
        for slot in 0..<readsMax where readCallbacks[slot] != nil && readReferences[slot] == reference { return true }
        guard warmReadsInFlight < warmReadsMax, queueCount == 0, let slot = readSlotsFree.popLast() else { return false }
        warmReadsInFlight += 1
        readIsWarm[slot] = true
        statistics.readsWarmed += 1
        startRead(slot: slot, reference: reference, reader: .plain(warmCallback))
        return true
    }

    /// The slot of a warming read of `reference` in flight, if any.
    private func warmingSlot(_ reference: BlockReference) -> Int? {
        guard warmReadsInFlight > 0 else { return nil }
        for slot in 0..<readsMax where readIsWarm[slot] && readReferences[slot] == reference { return slot }
        return nil
    }

    /// Ends a pin from `readPinned`: the block may be evicted again.
    public func unpin(_ pin: GridPin) {
        cache.unpin(slot: pin.slot)
    }

    private func read(_ reference: BlockReference, reader: Reader) {
        precondition(!reference.isNull, "a read names a block")
        precondition(reference.address <= gridBlockCountMax, "the address is inside the grid")
        if let (block, cacheSlot, trusted) = blockInMemory(reference) {
            deliver(block, cacheSlot: cacheSlot, trusted: trusted, to: reader)
            return
        }
        if let slot = warmingSlot(reference) {
            // A warming read of the block is in flight: it becomes this reader's.
            readIsWarm[slot] = false
            warmReadsInFlight -= 1
            readCallbacks[slot] = reader
            readCompletions[slot].isPollable = reader.isPinned
            return
        }
        if let slot = readSlotsFree.popLast() {
            startRead(slot: slot, reference: reference, reader: reader)
            return
        }
        precondition(queueCount < queueCapacity, "at most readsMax + readQueueMax grid reads wait for storage")
        let tail = (queueHead + queueCount) % queueCapacity
        queuedReferences[tail] = reference
        queuedCallbacks[tail] = reader
        queueCount += 1
        statistics.readsQueued += 1
    }

    /// Calls the reader back with a verified block: pinned if the reader asks and the block is
    /// in cache slot `cacheSlot`, else valid for the callback.
    private func deliver(_ block: UnsafeRawBufferPointer, cacheSlot: Int?, trusted: Bool, to reader: Reader) {
        switch reader {
        case .plain(let callback):
            callback(.block(block))
        case .pinned(let callback):
            guard let cacheSlot else {
                callback(.block(block, trusted: trusted))
                return
            }
            precondition(
                UnsafeRawPointer(cache.block(slot: cacheSlot).baseAddress) == block.baseAddress,
                "a pinned block is its slot's")
            cache.pin(slot: cacheSlot)
            callback(.pinned(block, GridPin(slot: cacheSlot, address: cache.address(slot: cacheSlot)), trusted: trusted))
        }
    }

    /// The newest in-memory copy of the block, if it is the one `reference` names, its cache
    /// slot (nil for a write's buffer) and whether its writer vouched for it. `counts`: a
    /// reader's hit, for the statistics (not `warm`'s look).
    private func blockInMemory(
        _ reference: BlockReference, counts: Bool = true
    ) -> (UnsafeRawBufferPointer, Int?, Bool)? {
        for slot in 0..<writesMax where writeAddresses[slot] == reference.address {
            // A write with other bytes for this address: the cache may still hold the block
            // the referrer names (the one being overwritten), so look there too.
            if writeChecksums[slot] == reference.checksum {
                if counts { statistics.readsFromWrites += 1 }
                return (UnsafeRawBufferPointer(writeBlocks[slot]), nil, writeTrusted[slot])
            }
        }
        guard let slot = cache.lookup(reference.address) else { return nil }
        let block = UnsafeRawBufferPointer(cache.block(slot: slot))
        // Not the referrer's block: storage decides (it may hold it, or report the fault).
        guard block.loadUnaligned(fromByteOffset: 0, as: UInt128.self) == reference.checksum else { return nil }
        assert(BlockSealing.verify(block: block, expected: reference) == nil, "cached blocks were verified")
        if counts { statistics.readsFromCache += 1 }
        return (block, slot, cache.isTrusted(slot: slot))
    }

    private func startRead(slot: Int, reference: BlockReference, reader: Reader) {
        precondition(readCallbacks[slot] == nil, "a read IO serves one read at a time")
        readReferences[slot] = reference
        readCallbacks[slot] = reader
        readCacheable[slot] = !isWriting(reference.address)
        readCompletions[slot].isPollable = reader.isPinned || readIsWarm[slot]
        statistics.readsFromStorage += 1
        storage.read(
            readCompletions[slot], zone: .grid,
            offset: storage.layout.gridBlockOffset(address: reference.address), buffer: readBlocks[slot])
    }

    private func readDone(slot: Int) {
        if readIsWarm[slot] {
            readIsWarm[slot] = false
            warmReadsInFlight -= 1
        }
        let reference = readReferences[slot]
        guard let reader = readCallbacks[slot] else { preconditionFailure("a completed read has a callback") }
        let buffer = UnsafeRawBufferPointer(readBlocks[slot])
        if let fault = Self.fault(of: buffer, expected: reference) {
            statistics.readFaults += 1
            switch reader {
            case .plain(let callback): callback(.fault(fault))
            case .pinned(let callback): callback(.fault(fault))
            }
        } else if readCacheable[slot], let cacheSlot = cache.tryInsert(reference.address) {
            // The read's buffer becomes the cache slot's; the read IO takes the evicted one.
            // From storage: not trusted (the exchange leaves the slot unmarked).
            readBlocks[slot] = cache.exchange(slot: cacheSlot, with: readBlocks[slot])
            let cached = UnsafeRawBufferPointer(cache.block(slot: cacheSlot))
            precondition(cached.baseAddress == buffer.baseAddress, "the block read is the block cached")
            deliver(cached, cacheSlot: cacheSlot, trusted: false, to: reader)
        } else {
            // Not cached (a write of the address overlapped the read, or no unpinned slot):
            // the read IO's buffer, valid during the callback.
            deliver(buffer, cacheSlot: nil, trusted: false, to: reader)
        }
        // Only now: the callback may have used the slot's buffer.
        readCallbacks[slot] = nil
        readSlotsFree.append(slot)
        pumpReadQueue()
    }

    /// Serves waiting reads from memory or starts them on free IOs, oldest first.
    ///
    /// Each turn removes one waiting read or stops. A callback may queue reads only while every
    /// IO is busy (so the next miss ends the loop), and a queued read turns into a memory hit
    /// only through a write a callback started: `2 × queueCapacity + readsMax` turns are enough,
    /// and anything left is served at the next completion.
    private func pumpReadQueue() {
        for _ in 0..<(2 * queueCapacity + readsMax) {
            guard queueCount > 0 else { return }
            let reference = queuedReferences[queueHead]
            if let (block, cacheSlot, trusted) = blockInMemory(reference) {
                let reader = dequeue()
                deliver(block, cacheSlot: cacheSlot, trusted: trusted, to: reader)
                continue
            }
            guard let slot = readSlotsFree.popLast() else { return }
            let reader = dequeue()
            startRead(slot: slot, reference: reference, reader: reader)
        }
    }

    private func dequeue() -> Reader {
        precondition(queueCount > 0, "dequeuing a waiting read")
        guard let callback = queuedCallbacks[queueHead] else { preconditionFailure("a queued read has a callback") }
        queuedCallbacks[queueHead] = nil
        queueHead = (queueHead + 1) % queueCapacity
        queueCount -= 1
        return callback
    }

    /// Why `block`, read for `expected`, is not it; nil when it is.
    static func fault(of block: UnsafeRawBufferPointer, expected: BlockReference) -> BlockFault? {
        guard let fault = BlockSealing.verify(block: block, expected: expected) else { return nil }
        if fault == .checksumMismatch {
            // An intact block of another address: name the misdirection, not just the checksum.
            let header = Header(from: block)
            if header.frame.command == Command.block.rawValue && header.asBlock.address != expected.address {
                return .misdirected(headerAddress: header.asBlock.address)
            }
        }
        return fault
    }

    // MARK: Write

    /// Writes a sealed block (`blockSize` bytes, from `BlockSealing.seal`) at its header's
    /// address. The bytes are copied: `block` is the caller's again when `write` returns.
    /// `callback` runs when the block is durable and in the cache (unless pins keep it out, see
    /// `readPinned`). One write per address at a time, at most `writesMax` at once. `trusted`:
    /// the caller vouches for the block beyond its checksums (see "Trusted blocks" above).
    /// `compaction`: the writer is a compaction job (see "Compaction IO during execute").
    public func write(
        block: UnsafeRawBufferPointer, trusted: Bool = false, compaction: Bool = false,
        callback: @escaping WriteCallback
    ) {
        let address = Self.writeAddress(of: block, blockSize: blockSize)
        precondition(address <= gridBlockCountMax, "the address is inside the grid")
        precondition(!isWriting(address), "one write per address at a time")
        let checksum = block.loadUnaligned(fromByteOffset: 0, as: UInt128.self)
        guard let slot = writeSlotsFree.popLast() else { preconditionFailure("at most writesMax grid writes in flight") }
        writeBlocks[slot].copyMemory(from: block)
        startWrite(slot: slot, address: address, checksum: checksum, trusted: trusted, compaction: compaction,
                   callback: callback)
    }

    /// Writes the sealed block in `block`, a buffer from `takeBlock()` (or handed back by an
    /// earlier call), without copying it: the grid keeps that buffer, and `block` is set to an
    /// idle one of the same kind (stale bytes) for the caller's next block. Otherwise as
    /// `write(block:)`.
    public func write(
        exchanging block: inout UnsafeMutableRawBufferPointer, trusted: Bool = false, callback: @escaping WriteCallback
    ) {
        let address = Self.writeAddress(of: UnsafeRawBufferPointer(block), blockSize: blockSize)
        precondition(address <= gridBlockCountMax, "the address is inside the grid")
        precondition(!isWriting(address), "one write per address at a time")
        precondition(cache.isLent(UnsafeRawBufferPointer(block)), "an exchanged write buffer comes from takeBlock()")
        for slot in 0..<writesMax {
            precondition(writeBlocks[slot].baseAddress != block.baseAddress, "an exchanged write buffer is not a write IO's")
        }
        for slot in 0..<readsMax {
            precondition(readBlocks[slot].baseAddress != block.baseAddress, "an exchanged write buffer is not a read IO's")
        }
        let checksum = UnsafeRawBufferPointer(block).loadUnaligned(fromByteOffset: 0, as: UInt128.self)
        guard let slot = writeSlotsFree.popLast() else { preconditionFailure("at most writesMax grid writes in flight") }
        swap(&writeBlocks[slot], &block)
        startWrite(slot: slot, address: address, checksum: checksum, trusted: trusted, compaction: true,
                   callback: callback)
    }

    /// The address of a block passed to a write, after checking it is a whole sealed block.
    private static func writeAddress(of block: UnsafeRawBufferPointer, blockSize: Int) -> UInt64 {
        precondition(block.count == blockSize, "a grid write is one whole block")
        let header = Header(from: block)
        precondition(header.isChecksumValid, "a grid write is a sealed block")
        precondition(header.frame.command == Command.block.rawValue, "a grid write is a block")
        let address = header.asBlock.address
        precondition(address >= 1, "a block has an address")
        assert(BlockSealing.verify(block: block, expected: BlockReference(address: address, checksum: header.frame.checksum)) == nil,
               "a grid write is a valid block")
        return address
    }

    private func startWrite(
        slot: Int, address: UInt64, checksum: UInt128, trusted: Bool, compaction: Bool,
        callback: @escaping WriteCallback
    ) {
        precondition(writeCallbacks[slot] == nil, "a write IO serves one write at a time")
        writeAddresses[slot] = address
        writeChecksums[slot] = checksum
        writeTrusted[slot] = trusted
        writeCallbacks[slot] = Writer(callback: callback)
        writeCompletions[slot].isPollable = compaction
        for read in 0..<readsMax where readCallbacks[read] != nil && readReferences[read].address == address {
            readCacheable[read] = false
        }
        statistics.writes += 1
        storage.write(
            writeCompletions[slot], zone: .grid, offset: storage.layout.gridBlockOffset(address: address),
            buffer: UnsafeRawBufferPointer(writeBlocks[slot]))
    }

    private func writeDone(slot: Int) {
        let address = writeAddresses[slot]
        guard let callback = writeCallbacks[slot]?.callback else { preconditionFailure("a completed write has a callback") }
        precondition(address != 0, "a completed write has an address")
        // The written buffer becomes the cache slot's; the write IO takes the evicted one. With
        // no unpinned slot for it (the set is all pinned, or an older block of the address is
        // pinned: a reader still merges it), the block stays out of the cache and the IO keeps
        // its buffer: a later read goes to storage.
        if let cacheSlot = cache.tryInsert(address) {
            writeBlocks[slot] = cache.exchange(slot: cacheSlot, with: writeBlocks[slot])
            // The bytes the writer vouched for are the slot's now, unchanged.
            if writeTrusted[slot] { cache.markTrusted(slot: cacheSlot) }
        }
        writeTrusted[slot] = false
        writeAddresses[slot] = 0
        writeCallbacks[slot] = nil
        writeSlotsFree.append(slot)
        // Waiters first (first come, first served), then the writer. So outside this function a
        // free slot means no waiter: a caller waiting for a slot is resumed only by its wake.
        wakeWriteWaiters()
        callback()
        // A waiting read of this block can now be served from the cache.
        pumpReadQueue()
    }

    private func isWriting(_ address: UInt64) -> Bool {
        for slot in 0..<writesMax where writeAddresses[slot] == address { return true }
        return false
    }
}

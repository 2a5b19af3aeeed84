import LedgerIO
import LedgerKit

// The client-replies zone (storage spec §1, §8; wire spec §5.7–5.8): one 1 MiB slot per client
// session (the session's index in `ClientSessions`). The sessions table keeps every client's
// latest reply *header*; the reply *body*, when it has one, lives here, so that a retried
// request can get the very same reply back. Slot format (what `ledger-inspect replies` reads):
// the whole reply message, header then body, zero-padded to a sector multiple.
//
// Sketch (production: 64 slots, replies up to 1 MiB, typically a few KiB):
// - Write: one O_DSYNC write per reply, sector-rounded (a 8189-transfer create reply is
//   ~130 KiB: ~20 µs + bandwidth on NVMe). Off the commit's critical path: the commit copies the
//   reply (memcpy, ~10 GB/s) and moves on; the write completes in the background.
// - Read: only for a retried request whose reply is no longer in memory: one read of the
//   sector-rounded message, then two checksums (header, body).
// - Memory, allocated at init: (clientsMax + writesMax) write buffers of 1 MiB plus one 1 MiB
//   read buffer: 67 MiB in production (64 + 2 + 1), 7 MiB with the `.testing` geometry (4 + 2 + 1).
//
// Why a buffer per slot rather than `writesMax` buffers and a `canWrite` back-pressure flag:
// with at most one pending reply per slot (coalescing) plus `writesMax` in flight, every
// buffer a `write` can need exists, so `write` never refuses and the caller (DurableLedger)
// never has to stall commits on reply IO or hold a reply it cannot place: no reply can be
// lost and no commit path needs a retry branch. The price is RAM equal to the zone's size,
// ~1–2 % of a production replica's memory.
//
// Invariants:
// - At most one write per slot in flight (a later reply is written after the earlier one
//   completes): writes to one slot reach the disk in commit order, so the latest wins.
// - A slot's write waits while a disk read of that slot is in flight, so a read never sees a
//   half-written slot it would count as corrupt.
// - A disk read hands out a message only if its stored header verifies, equals the asked-for
//   header, and its body verifies: torn, misdirected, lost or flipped writes give nil.

/// The client-replies zone of one replica over a `Storage`: stores each session's latest reply
/// (when it has a body), serves it back for retried requests, and is the checkpoint's barrier
/// for replies (`flush`).
///
/// Callbacks: disk reads and flushes that wait for writes call back from a storage completion.
/// **Three cases call back synchronously, inside the call**: a `read` served from memory (the
/// reply is still being written), a `read` answered nil without IO (the slot is being rewritten
/// with another reply, or the one read buffer is busy), and a `flush` with nothing left to
/// write. A caller must be ready to be re-entered from its own `read`/`flush` call.
public final class ClientReplies<S: Storage> {
    /// Gets the whole reply message (header + body, `header.size` bytes), valid only during
    /// the callback (and only until the callback calls `write` for the same slot), or nil.
    public typealias ReadCallback = (_ message: UnsafeRawBufferPointer?) -> Void

    public let storage: S
    public let clientsMax: Int
    public let writesMax: Int

    // MARK: Counters

    /// Writes started on the disk (a coalesced reply is never written).
    public private(set) var writes = 0
    /// Replies replaced by a newer reply for their slot before their write started.
    public private(set) var coalesced = 0
    /// Reads served from a pending or in-flight write buffer.
    public private(set) var readsFromMemory = 0
    /// Reads served from the disk, verified.
    public private(set) var readsFromDisk = 0
    /// Reads answered nil because the slot holds (or is being rewritten with) another reply.
    public private(set) var readMismatches = 0
    /// Reads answered nil because the slot's bytes do not verify (including a never-written,
    /// all-zero slot, which looks exactly like a sector the device could not read).
    public private(set) var readCorrupt = 0
    /// Reads answered nil because the read buffer was busy with another read.
    public private(set) var readsBusy = 0

    // MARK: State

    /// Replies accepted but not yet started (at most one per slot, so `clientsMax`).
    public private(set) var pendingCount = 0
    public private(set) var writesInFlight = 0
    public var isReading: Bool { readSlot != nil }
    /// No reply waits or is being written, and no read is in flight.
    public var isIdle: Bool { pendingCount == 0 && writesInFlight == 0 && readSlot == nil }

    /// A reply waiting for its write: which buffer holds it, its header, and the sequence of
    /// the oldest reply it stands for (kept when a newer reply coalesces into it, so a flush
    /// that was waiting for the older reply waits for its replacement).
    private struct Pending {
        var buffer: Int
        var header: ReplyHeader
        var sequence: UInt64
    }

    /// One write IO: its completion and what it writes.
    private final class WriteIO {
        let completion = StorageCompletion()
        var slot: Int?
        var buffer = 0
        var header = ReplyHeader()
        var sequence: UInt64 = 0
    }

    /// `clientsMax + writesMax` message buffers, each `Constants.messageSizeMax`.
    private let buffers: AlignedBuffer
    /// Indexes of unused buffers (a stack; capacity reserved at init).
    private var buffersFree: [Int]
    /// Per slot: the reply waiting for its write.
    private var pending: [Pending?]
    /// Per slot: the index in `writeIOs` of the write in flight.
    private var slotWriting: [Int?]
    private let writeIOs: [WriteIO]

    private let readBuffer: AlignedBuffer
    private let readCompletion = StorageCompletion()
    /// The slot being read from disk (nil: no read in flight).
    private var readSlot: Int?
    private var readHeader = ReplyHeader()
    private var readCallback: ReadCallback?

    /// Sequence number of the next reply passed to `write` (from 1).
    private var sequenceNext: UInt64 = 1
    /// A flush waits until every reply up to this sequence is durable.
    private var flushSequence: UInt64 = 0
    private var flushCallback: (() -> Void)?

    /// `clientsMax` is the sessions table's capacity (its slot index is the reply slot);
    /// `writesMax` bounds the writes in flight.
    public init(storage: S, clientsMax: Int, writesMax: Int = Constants.clientRepliesWritesMax) {
        precondition(clientsMax >= 1, "a reply zone has a slot")
        precondition(clientsMax <= storage.layout.configuration.clientsMax,
                     "every session's reply slot lies inside the client-replies zone")
        precondition(writesMax >= 1, "replies can be written")
        self.storage = storage
        self.clientsMax = clientsMax
        self.writesMax = writesMax
        let bufferCount = clientsMax + writesMax
        buffers = AlignedBuffer(count: bufferCount * Constants.messageSizeMax)
        buffersFree = []
        buffersFree.reserveCapacity(bufferCount)
        for index in (0..<bufferCount).reversed() { buffersFree.append(index) }
        pending = [Pending?](repeating: nil, count: clientsMax)
        slotWriting = [Int?](repeating: nil, count: clientsMax)
        var writeIOs: [WriteIO] = []
        for _ in 0..<writesMax { writeIOs.append(WriteIO()) }
        self.writeIOs = writeIOs
        readBuffer = AlignedBuffer(count: Constants.messageSizeMax)
        for (index, write) in writeIOs.enumerated() {
            write.completion.callback = { [unowned self] _ in self.writeCompleted(index) }
        }
        readCompletion.callback = { [unowned self] _ in self.readCompleted() }
    }

    // MARK: Write

    /// Stores the reply of a committed op in `slot` (asynchronous; the bytes are copied, so
    /// `body` may be reused on return). Only replies with a body take a slot: a header-only
    /// reply is wholly in the sessions table. Never refuses (see the file's header comment).
    public func write(slot: Int, header: ReplyHeader, body: UnsafeRawBufferPointer) {
        precondition(slot >= 0 && slot < clientsMax, "client reply slot in range")
        precondition(!body.isEmpty, "only replies with a body take a slot")
        precondition(Int(header.frame.size) == Constants.messageHeaderSize + body.count,
                     "the body matches the header's size")
        precondition(Int(header.frame.size) <= Constants.messageSizeMax, "a reply fits a slot")
        precondition(header.frame.command == Command.reply.rawValue, "a reply slot holds a reply")
        precondition(header.isChecksumValid, "a stored reply header is sealed")
        assert(header.isBodyValid(body), "a stored reply body matches its header")

        let sequence = sequenceNext
        sequenceNext += 1
        let buffer: Int
        if var entry = pending[slot] {
            // Not started yet: the newer reply takes its place (and its place in line).
            coalesced += 1
            buffer = entry.buffer
            entry.header = header
            pending[slot] = entry
        } else {
            precondition(!buffersFree.isEmpty, "a buffer per pending slot plus one per write in flight")
            buffer = buffersFree.removeLast()
            pending[slot] = Pending(buffer: buffer, header: header, sequence: sequence)
            pendingCount += 1
        }
        fill(buffer: buffer, header: header, body: body)
        startWrites()
    }

    /// Header, body, then zeros up to the sector boundary: the slot's exact disk image.
    private func fill(buffer: Int, header: ReplyHeader, body: UnsafeRawBufferPointer) {
        let message = bufferBytes(buffer)
        let size = Int(header.frame.size)
        message.storeBytes(of: header, toByteOffset: 0, as: ReplyHeader.self)
        UnsafeMutableRawBufferPointer(rebasing: message[Constants.messageHeaderSize..<size]).copyMemory(from: body)
        let end = Self.sectorCeil(size)
        UnsafeMutableRawBufferPointer(rebasing: message[size..<end]).initializeMemory(as: UInt8.self, repeating: 0)
    }

    /// Starts writes while a write IO is free and a pending slot may be written. Bounded: each
    /// round starts one write, and there are `writesMax` write IOs.
    private func startWrites() {
        for index in 0..<writesMax where writeIOs[index].slot == nil {
            guard let slot = slotToWriteNext() else { return }
            startWrite(index, slot: slot)
        }
    }

    /// The pending slot whose reply has waited longest, among slots not being written or read.
    private func slotToWriteNext() -> Int? {
        var best: Int?
        var bestSequence = UInt64.max
        for slot in 0..<clientsMax {
            guard let entry = pending[slot], slotWriting[slot] == nil, readSlot != slot else { continue }
            if entry.sequence < bestSequence {
                best = slot
                bestSequence = entry.sequence
            }
        }
        return best
    }

    private func startWrite(_ index: Int, slot: Int) {
        let write = writeIOs[index]
        let entry = pending[slot]!
        precondition(slotWriting[slot] == nil, "one write per slot in flight, so the latest wins")
        precondition(readSlot != slot, "a slot is not written while it is read")
        pending[slot] = nil
        pendingCount -= 1
        slotWriting[slot] = index
        write.slot = slot
        write.buffer = entry.buffer
        write.header = entry.header
        write.sequence = entry.sequence
        writesInFlight += 1
        writes += 1
        let size = Self.sectorCeil(Int(entry.header.frame.size))
        storage.write(
            write.completion, zone: .clientReplies, offset: storage.layout.clientReplyOffset(slot: slot),
            buffer: UnsafeRawBufferPointer(rebasing: bufferBytes(entry.buffer)[0..<size]))
    }

    private func writeCompleted(_ index: Int) {
        let write = writeIOs[index]
        guard let slot = write.slot else { preconditionFailure("a completed write was started") }
        precondition(slotWriting[slot] == index, "the slot's write in flight is this one")
        slotWriting[slot] = nil
        write.slot = nil
        writesInFlight -= 1
        buffersFree.append(write.buffer)
        startWrites()
        flushIfDone()
    }

    // MARK: Flush

    /// Calls back once every reply passed to `write` so far is durable (or superseded by a
    /// newer reply for its slot that is durable): the checkpoint's barrier, since the
    /// superblock must not name a checkpoint whose replies are not on disk. Replies written
    /// after this call are not waited for, unless one replaces a reply the flush waits for.
    /// One flush at a time. **With nothing left to write, calls back synchronously.**
    public func flush(callback: @escaping () -> Void) {
        precondition(flushCallback == nil, "one flush at a time")
        flushSequence = sequenceNext - 1
        flushCallback = callback
        flushIfDone()
    }

    private func flushIfDone() {
        guard let callback = flushCallback else { return }
        guard sequenceOldestUnwritten() > flushSequence else { return }
        flushCallback = nil
        callback()
    }

    /// The sequence of the oldest reply not yet durable (`UInt64.max`: none).
    private func sequenceOldestUnwritten() -> UInt64 {
        var oldest = UInt64.max
        for entry in pending {
            if let entry, entry.sequence < oldest { oldest = entry.sequence }
        }
        for write in writeIOs where write.slot != nil && write.sequence < oldest {
            oldest = write.sequence
        }
        return oldest
    }

    // MARK: Read

    /// Gets the reply message in `slot` whose header is `header` (compared by checksum): from
    /// memory when that reply is still being written (**synchronous callback**), else from the
    /// disk, verified. Nil when the slot holds another reply (older, newer, an evicted
    /// session's) or damaged bytes (counted: the replica repairs with `get_reply`), and nil
    /// **synchronously** when the slot is being rewritten with another reply or the one read
    /// buffer is busy (the replica drops the request; the client retries).
    /// A read started inside a read's callback finds the buffer busy.
    public func read(slot: Int, header: ReplyHeader, callback: @escaping ReadCallback) {
        precondition(slot >= 0 && slot < clientsMax, "client reply slot in range")
        precondition(Int(header.frame.size) > Constants.messageHeaderSize, "only replies with a body take a slot")
        precondition(Int(header.frame.size) <= Constants.messageSizeMax, "a reply fits a slot")
        let size = Int(header.frame.size)
        let checksum = header.frame.checksum
        if let entry = pending[slot], entry.header.frame.checksum == checksum {
            readsFromMemory += 1
            callback(UnsafeRawBufferPointer(rebasing: bufferBytes(entry.buffer)[0..<size]))
            return
        }
        if let index = slotWriting[slot], writeIOs[index].header.frame.checksum == checksum {
            readsFromMemory += 1
            callback(UnsafeRawBufferPointer(rebasing: bufferBytes(writeIOs[index].buffer)[0..<size]))
            return
        }
        if pending[slot] != nil || slotWriting[slot] != nil {
            // The slot is being rewritten with another (newer) reply: the asked-for one is gone.
            readMismatches += 1
            callback(nil)
            return
        }
        guard readSlot == nil else {
            readsBusy += 1
            callback(nil)
            return
        }
        readSlot = slot
        readHeader = header
        readCallback = callback
        storage.read(
            readCompletion, zone: .clientReplies, offset: storage.layout.clientReplyOffset(slot: slot),
            buffer: readBuffer.prefix(Self.sectorCeil(size)))
    }

    private func readCompleted() {
        guard readSlot != nil, let callback = readCallback else {
            preconditionFailure("a completed read was started")
        }
        readCallback = nil
        let size = Int(readHeader.frame.size)
        let message = UnsafeRawBufferPointer(readBuffer.prefix(size))
        let verdict = Self.verify(message: message, header: readHeader)
        switch verdict {
        case .valid: readsFromDisk += 1
        case .mismatch: readMismatches += 1
        case .corrupt: readCorrupt += 1
        }
        // The read stays busy during the callback: the buffer it hands out must not be
        // refilled by a read the callback starts.
        callback(verdict == .valid ? message : nil)
        readSlot = nil
        // A write held back by this read may start now.
        startWrites()
    }

    enum Verdict: Equatable {
        case valid
        /// A valid reply header, but not the one asked for.
        case mismatch
        case corrupt
    }

    /// Checks a slot's bytes read from disk against the header asked for (`message` is that
    /// header's size). Pure: hostile bytes give a verdict, never a trap.
    static func verify(message: UnsafeRawBufferPointer, header: ReplyHeader) -> Verdict {
        precondition(message.count == Int(header.frame.size), "the read covers the asked-for message")
        let stored = Header(from: message)
        guard stored.isChecksumValid else { return .corrupt }
        // Equal checksums, then equal bytes: a valid header of another reply (an older one, or
        // one a misdirected write put here) is not damage.
        guard stored.frame.checksum == header.frame.checksum, stored == header.untyped else { return .mismatch }
        let body = UnsafeRawBufferPointer(rebasing: message[Constants.messageHeaderSize..<message.count])
        guard stored.isBodyValid(body) else { return .corrupt }
        return .valid
    }

    // MARK: Helpers

    private func bufferBytes(_ buffer: Int) -> UnsafeMutableRawBufferPointer {
        let start = buffer * Constants.messageSizeMax
        return UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[start..<start + Constants.messageSizeMax])
    }

    private static func sectorCeil(_ size: Int) -> Int {
        (size + Constants.sectorSize - 1) / Constants.sectorSize * Constants.sectorSize
    }
}

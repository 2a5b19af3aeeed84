import LedgerIO
import LedgerKit

// The WAL (storage spec §3): the consensus log on disk, as two rings of `journalSlotCount` slots.
// Slot = op mod slotCount in both: the header ring holds a redundant copy of each prepare's
// header (16 per sector), the prepare ring the whole prepare message (sector-rounded, at most
// `Constants.messageSizeMax`).
//
// Sketch (production: 1024 slots, 1 MiB each):
// - Append: one prepare write (its size rounded up to sectors) then one 4 KiB header-sector
//   write: two dependent O_DSYNC writes, so latency is two write latencies (~2×20 µs on NVMe)
//   and bandwidth is the prepare bytes. Up to `journalWritesMax` (32) appends overlap; a solo
//   replica's prepares are queued and written one after another (only each redundant header
//   overlaps the next prepare), so a crash can never leave a gap below a durable op.
// - Recovery, once at start-up: 256 KiB of headers plus every prepare up to its size (at most
//   1 GiB), at most 8 reads in flight: about a second at 1 GB/s, CPU bound by checksums
//   (AEGIS ≈ 10+ GB/s, so not the limit).
// - Memory, allocated at init: the 256 KiB header-ring image, one `PrepareHeader` (256 B) plus
//   a checksum per slot, 32 × 4 KiB write sectors, 8 × 1 MiB read buffers (for recovery; the
//   caller brings buffers for prepare reads and writes).
//
// Invariants (spec §13 items 1, 2): a redundant header is written only after its prepare is
// durable; faulty slots are written to the header ring as zeros (invalid), so they stay faulty
// after a crash; recovery never loads a header into a slot it marks faulty; corruption is
// reported as a value, never trapped on.

/// Why recovery cannot hand over a usable journal.
public enum JournalError: Error, Equatable, Sendable {
    /// A solo replica found slots that only peers could repair (the `slots` in the report).
    /// Starting would risk forgetting acknowledged prepares: the server refuses to start.
    case repairNeededButSolo(slots: [Int])
    /// Every slot is faulty: this is not a WAL of this cluster (or it is wholly destroyed).
    case walInvalid
}

/// Who asks for a prepare read: reads for commits have `Constants.journalReadsReservedForCommit`
/// reads reserved, so that repair traffic from peers cannot starve them.
public enum JournalReadPurpose: Sendable {
    case commit
    case repair
}

/// Whether `Journal.read` started a read (its callback will run) or not (it will not).
public enum JournalReadStart: Sendable {
    case started
    /// The slot holds no durable prepare with that op and checksum.
    case notFound
    /// No read is free for this purpose; try again later.
    case busy
}

/// What a prepare read found.
public enum JournalReadResult: Sendable {
    /// The buffer holds the prepare, header and body verified.
    case prepare(PrepareHeader)
    /// The bytes on disk are corrupt: repair the slot.
    case corrupt(JournalEntryCorruption)
    /// A valid entry, but not the one asked for (rewritten meanwhile, or a misdirected IO).
    case mismatch
}

// MARK: - Journal

/// The WAL of one replica over a `Storage`: appends prepares, reads them back for commits and
/// repair, and recovers the in-memory state from disk at start-up (`recover` must run before
/// anything else).
///
/// In memory, per slot: `headers` (the intended content: the prepare the slot should hold, or
/// none), the `headersRedundant` image (byte for byte the header ring as it should be on disk:
/// only headers whose prepare is durable, zeros for faulty slots), the `dirty` bits (the slot
/// needs a write) and `faulty` bits (it was written and then lost; faulty ⊆ dirty), and the
/// checksum of the durable prepare, so a valid prepare can be served even under a broken header.
public final class Journal<S: Storage> {
    public typealias WriteCallback = (_ written: PrepareHeader) -> Void
    public typealias ReadCallback = (_ result: JournalReadResult) -> Void
    public typealias RecoveryCallback = (_ result: Result<JournalRecovery, JournalError>) -> Void

    public let storage: S
    public let cluster: UInt128
    public let configuration: StorageConfiguration
    public var slotCount: Int { configuration.journalSlotCount }

    private enum Status {
        case initial
        case recovering
        case recovered
        /// Recovery returned an error: this journal must not be used.
        case refused
    }
    private var status = Status.initial
    /// From `recover`: a solo replica appends strictly in sequence.
    private var replicaCount = 0

    private var headers: [PrepareHeader?]
    private let headersRedundant: AlignedBuffer
    private var dirty: JournalSlotBits
    private var faulty: JournalSlotBits
    /// The checksum and size of the durable prepare in each slot (nil: reserved, corrupt, or
    /// being overwritten).
    private var prepareChecksums: [UInt128?]
    private var prepareSizes: [UInt32]

    private let writes: [JournalWrite]
    /// One header sector per write: the copy it writes, so later changes to the image cannot
    /// alter bytes in flight.
    private let writeSectors: AlignedBuffer
    public private(set) var writesInFlight = 0
    /// Whether a write of each header sector is in flight: writes of one sector serialize.
    private var headerSectorLocked: [Bool]
    /// Orders writes waiting for a header sector (first come, first written).
    private var headerSectorTicketNext: UInt64 = 0
    /// Order of a solo replica's queued prepares.
    private var prepareTicketNext: UInt64 = 0

    private let reads: [JournalRead]
    /// One message-sized buffer per read, for recovery (prepare reads use the caller's buffer).
    private let readBuffers: AlignedBuffer
    public private(set) var readsInFlight = 0
    private var readsRepairInFlight = 0

    // Recovery state (recovery runs once).
    private var recoveryOpCheckpoint: UInt64 = 0
    private var recoveryCallback: RecoveryCallback?
    private var recoveryHeaders: [JournalEntry]
    private var recoveryPrepares: [JournalEntry]
    private var recoverySlotNext = 0
    private var recoveryReport: JournalRecovery?
    private var recoverySectorsToWrite: [Bool]
    /// Truncated slots whose prepare still needs its reserved entry.
    private var recoveryPreparesToTruncate: [Bool]

    public init(storage: S, cluster: UInt128) {
        let configuration = storage.layout.configuration
        configuration.verify()
        let slotCount = configuration.journalSlotCount
        self.storage = storage
        self.cluster = cluster
        self.configuration = configuration
        headers = [PrepareHeader?](repeating: nil, count: slotCount)
        headersRedundant = AlignedBuffer(count: slotCount * Constants.messageHeaderSize)
        dirty = JournalSlotBits(slotCount: slotCount)
        faulty = JournalSlotBits(slotCount: slotCount)
        prepareChecksums = [UInt128?](repeating: nil, count: slotCount)
        prepareSizes = [UInt32](repeating: 0, count: slotCount)

        let writeCount = configuration.journalWritesMax
        writeSectors = AlignedBuffer(count: writeCount * Constants.sectorSize)
        var writes: [JournalWrite] = []
        for index in 0..<writeCount {
            let start = index * Constants.sectorSize
            writes.append(JournalWrite(sector: UnsafeMutableRawBufferPointer(
                rebasing: writeSectors.bytes[start..<start + Constants.sectorSize])))
        }
        self.writes = writes
        headerSectorLocked = [Bool](repeating: false, count: configuration.walHeaderSectorCount)

        readBuffers = AlignedBuffer(count: Constants.journalReadsMax * Constants.messageSizeMax)
        var reads: [JournalRead] = []
        for index in 0..<Constants.journalReadsMax {
            let start = index * Constants.messageSizeMax
            reads.append(JournalRead(buffer: UnsafeMutableRawBufferPointer(
                rebasing: readBuffers.bytes[start..<start + Constants.messageSizeMax])))
        }
        self.reads = reads

        recoveryHeaders = [JournalEntry](repeating: .reserved, count: slotCount)
        recoveryPrepares = [JournalEntry](repeating: .reserved, count: slotCount)
        recoverySectorsToWrite = [Bool](repeating: false, count: configuration.walHeaderSectorCount)
        recoveryPreparesToTruncate = [Bool](repeating: false, count: configuration.journalSlotCount)

        for write in writes {
            write.completion.callback = { [unowned self, unowned write] _ in
                self.writeCompleted(write)
            }
        }
        for read in reads {
            read.completion.callback = { [unowned self, unowned read] _ in self.readCompleted(read) }
        }
    }

    // MARK: State

    public var isRecovered: Bool { status == .recovered }

    /// The header the slot should hold: a loaded or appended prepare's, or nil (reserved,
    /// faulty, truncated).
    public func header(slot: Int) -> PrepareHeader? {
        precondition((0..<slotCount).contains(slot), "WAL slot in range")
        return headers[slot]
    }

    /// The header of `op`, if its slot holds that op.
    public func header(op: UInt64) -> PrepareHeader? {
        guard let header = headers[slot(op: op)], header.op == op else { return nil }
        return header
    }

    public func isDirty(slot: Int) -> Bool { dirty.contains(slot) }
    public func isFaulty(slot: Int) -> Bool { faulty.contains(slot) }
    public var dirtyCount: Int { dirty.count }
    public var faultyCount: Int { faulty.count }

    /// The checksum of the durable prepare in the slot (even under a broken header), if any.
    public func prepareChecksum(slot: Int) -> UInt128? { prepareChecksums[slot] }

    /// The slot's entry in the redundant-header image (what the next write of its sector puts
    /// on disk): a faulty slot's is zeros, so `.corrupt(.headerChecksum)`.
    public func redundantHeader(slot: Int) -> JournalEntry {
        precondition((0..<slotCount).contains(slot), "WAL slot in range")
        let start = slot * Constants.messageHeaderSize
        let bytes = UnsafeRawBufferPointer(
            rebasing: headersRedundant.bytes[start..<start + Constants.messageHeaderSize])
        return .header(bytes, cluster: cluster, slot: slot, slotCount: slotCount)
    }

    @inline(__always)
    private func slot(op: UInt64) -> Int { Int(op % UInt64(slotCount)) }

    private func setRedundant(slot: Int, to header: PrepareHeader) {
        headersRedundant.bytes.storeBytes(
            of: header, toByteOffset: slot * Constants.messageHeaderSize, as: PrepareHeader.self)
    }

    /// Zeros: an invalid header, so the slot reads back as faulty after a crash.
    private func invalidateRedundant(slot: Int) {
        let start = slot * Constants.messageHeaderSize
        UnsafeMutableRawBufferPointer(
            rebasing: headersRedundant.bytes[start..<start + Constants.messageHeaderSize]
        ).initializeMemory(as: UInt8.self, repeating: 0)
    }

    private func redundantHeaderChecksum(slot: Int) -> UInt128 {
        headersRedundant.bytes.load(
            fromByteOffset: slot * Constants.messageHeaderSize, as: UInt128.self)
    }

    // MARK: Write path

    /// Appends (or repairs) a prepare: `prepare` is the whole message, header then body, in a
    /// sector-aligned buffer of exactly its size rounded up to sectors, the padding zeroed. The
    /// buffer must stay untouched until `callback` runs, which means the prepare and its
    /// redundant header are durable (only then may the replica send prepare_ok).
    ///
    /// Order: mark dirty → write the prepare → put its header in the redundant image → write
    /// that header sector (after any write of the same sector in flight) → clear dirty/faulty
    /// if the slot still holds this header → `callback`.
    ///
    /// At most `configuration.journalWritesMax` writes may be in flight and one per slot;
    /// the replica's pipeline bounds them, so exceeding them is a programmer error (a
    /// precondition). `callback` is stored until the write completes: pass a closure made once
    /// (not a fresh capturing literal) to keep appends allocation-free.
    public func write(prepare: UnsafeRawBufferPointer, callback: @escaping WriteCallback) {
        precondition(status == .recovered, "the journal writes only after recovery")
        precondition(prepare.count >= Constants.sectorSize, "a prepare is at least one sector")
        let header = prepare.loadUnaligned(as: PrepareHeader.self)
        precondition(header.isChecksumValid, "the prepare to write has a valid checksum")
        precondition(header.frame.command == Command.prepare.rawValue, "the message is a prepare")
        precondition(!header.isReserved, "the journal never writes a reserved prepare")
        precondition(header.frame.cluster == cluster, "the prepare belongs to this cluster")
        let size = Int(header.frame.size)
        precondition(size >= Constants.messageHeaderSize, "the size covers the header")
        precondition(size <= Constants.messageSizeMax, "the prepare fits a slot")
        precondition(
            prepare.count == JournalEntry.sectorCeil(size), "the buffer is the prepare, sector-rounded")
        precondition(
            JournalEntry.isZero(UnsafeRawBufferPointer(rebasing: prepare[size...])),
            "the sector padding after the body is zero")
        assert(header.isBodyValid(UnsafeRawBufferPointer(
            rebasing: prepare[Constants.messageHeaderSize..<size])), "the body matches its checksum")

        let slot = slot(op: header.op)
        var free: JournalWrite?
        for write in writes {
            if write.phase == .idle {
                if free == nil { free = write }
            } else {
                precondition(write.slot != slot, "one write per slot at a time")
            }
        }
        guard let write = free else {
            preconditionFailure("at most journalWritesMax writes in flight (the pipeline bounds them)")
        }

        headers[slot] = header
        dirty.insert(slot)
        // The slot's prepare is being overwritten: until it is durable, there is none.
        prepareChecksums[slot] = nil
        prepareSizes[slot] = 0

        writesInFlight += 1
        write.slot = slot
        write.header = header
        write.callback = callback
        // A solo replica appends strictly in sequence: a prepare is written only once the one
        // before it is durable, so a crash can tear only the head (truncated at recovery),
        // never leave a gap below a durable op, which no peer could fill. The redundant header
        // write of op n still overlaps the prepare write of op n + 1: a torn header next to a
        // durable prepare is fixed from the prepare (@E/@F/@G/@M). So the journal queues the
        // prepares it is given, in order, instead of making the replica wait for both writes.
        if replicaCount == 1 && writes.contains(where: { $0.phase == .prepare }) {
            write.phase = .waitingForPrepareTurn
            write.ticket = prepareTicketNext
            prepareTicketNext += 1
            write.prepareBuffer = prepare
            return
        }
        startPrepareWrite(write, buffer: prepare)
    }

    private func startPrepareWrite(_ write: JournalWrite, buffer: UnsafeRawBufferPointer) {
        write.phase = .prepare
        write.prepareBuffer = nil
        storage.write(
            write.completion, zone: .walPrepares,
            offset: storage.layout.walPrepareOffset(slot: write.slot), buffer: buffer)
    }

    /// A solo replica's next queued prepare, in submission order.
    private func startNextQueuedPrepare() {
        var next: JournalWrite?
        for write in writes where write.phase == .waitingForPrepareTurn {
            if next == nil || write.ticket < next!.ticket { next = write }
        }
        guard let next, let buffer = next.prepareBuffer else { return }
        startPrepareWrite(next, buffer: buffer)
    }

    private func writeCompleted(_ write: JournalWrite) {
        switch write.phase {
        case .prepare: prepareWritten(write)
        case .headerSector: headerSectorWritten(write)
        case .recoveryFix: recoveryFixWritten()
        case .recoveryTruncatePrepare: recoveryTruncatedPrepareWritten()
        case .idle, .waitingForHeaderSector, .waitingForPrepareTurn:
            preconditionFailure("a write completes only while its IO is in flight")
        }
    }

    private func prepareWritten(_ write: JournalWrite) {
        let slot = write.slot
        let header = write.header
        // Writes to one slot do not overlap, so nothing else changed this slot meanwhile.
        precondition(
            headers[slot]?.frame.checksum == header.frame.checksum,
            "the slot still holds the prepare being written")
        prepareChecksums[slot] = header.frame.checksum
        prepareSizes[slot] = header.frame.size
        // Only now may the redundant header say so: the prepare is durable.
        setRedundant(slot: slot, to: header)
        if replicaCount == 1 { startNextQueuedPrepare() }

        let sector = slot / Constants.walHeadersPerSector
        if headerSectorLocked[sector] {
            write.phase = .waitingForHeaderSector
            write.ticket = headerSectorTicketNext
            headerSectorTicketNext += 1
            return
        }
        startHeaderSectorWrite(write)
    }

    /// Copies the slot's header sector from the image into the write's own buffer and writes
    /// it. The copy is taken now, not when the prepare was submitted, so it carries every
    /// header of the sector whose prepare is durable by now.
    private func startHeaderSectorWrite(_ write: JournalWrite) {
        let sector = write.slot / Constants.walHeadersPerSector
        precondition(!headerSectorLocked[sector], "one write per header sector at a time")
        headerSectorLocked[sector] = true
        let start = sector * Constants.sectorSize
        write.sector.copyMemory(from: UnsafeRawBufferPointer(
            rebasing: headersRedundant.bytes[start..<start + Constants.sectorSize]))
        assert(faultySlotsWrittenInvalid(sector: sector), "faulty slots go to disk as zeros")
        write.phase = .headerSector
        storage.write(
            write.completion, zone: .walHeaders,
            offset: storage.layout.walHeaderSectorOffset(slot: write.slot),
            buffer: UnsafeRawBufferPointer(write.sector))
    }

    /// A faulty slot's image is zeros, unless a write has made its prepare durable since.
    private func faultySlotsWrittenInvalid(sector: Int) -> Bool {
        let first = sector * Constants.walHeadersPerSector
        for slot in first..<first + Constants.walHeadersPerSector where faulty.contains(slot) {
            let checksum = redundantHeaderChecksum(slot: slot)
            if checksum != 0 && checksum != prepareChecksums[slot] { return false }
        }
        return true
    }

    private func headerSectorWritten(_ write: JournalWrite) {
        let slot = write.slot
        let header = write.header
        let sector = slot / Constants.walHeadersPerSector
        headerSectorLocked[sector] = false
        if let next = nextWaitingWrite(sector: sector) { startHeaderSectorWrite(next) }

        if headers[slot]?.frame.checksum == header.frame.checksum
            && prepareChecksums[slot] == header.frame.checksum
        {
            dirty.remove(slot)
            faulty.remove(slot)
        }
        let callback = write.callback!
        write.callback = nil
        write.phase = .idle
        writesInFlight -= 1
        callback(header)
    }

    private func nextWaitingWrite(sector: Int) -> JournalWrite? {
        var next: JournalWrite?
        for write in writes where write.phase == .waitingForHeaderSector {
            guard write.slot / Constants.walHeadersPerSector == sector else { continue }
            if next == nil || write.ticket < next!.ticket { next = write }
        }
        return next
    }

    // MARK: Read path

    /// Reads the prepare `op` with `checksum` into `buffer` (sector-aligned, at least the
    /// prepare's size rounded up to sectors; `Constants.messageSizeMax` is always enough) for
    /// a commit or to send to a repairing peer. Returns whether a read started; if so,
    /// `callback` runs with the verified prepare, or with what was wrong (corruption is a
    /// result, never a crash).
    @discardableResult
    public func read(
        op: UInt64, checksum: UInt128, into buffer: UnsafeMutableRawBufferPointer,
        purpose: JournalReadPurpose, callback: @escaping ReadCallback
    ) -> JournalReadStart {
        precondition(status == .recovered, "the journal reads prepares only after recovery")
        let slot = slot(op: op)
        guard prepareChecksums[slot] == checksum else { return .notFound }
        let size = JournalEntry.sectorCeil(Int(prepareSizes[slot]))
        precondition(buffer.count >= size, "the read buffer holds the prepare")
        if purpose == .repair
            && readsRepairInFlight
                >= Constants.journalReadsMax - Constants.journalReadsReservedForCommit
        {
            return .busy
        }
        guard let read = reads.first(where: { $0.phase == .idle }) else { return .busy }
        readsInFlight += 1
        if purpose == .repair { readsRepairInFlight += 1 }
        read.phase = .prepare
        read.slot = slot
        read.op = op
        read.checksum = checksum
        read.purpose = purpose
        read.target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size])
        read.callback = callback
        storage.read(
            read.completion, zone: .walPrepares,
            offset: storage.layout.walPrepareOffset(slot: slot), buffer: read.target)
        return .started
    }

    private func readCompleted(_ read: JournalRead) {
        switch read.phase {
        case .prepare: prepareRead(read)
        case .headerRing: recoveryHeaderRingRead(read)
        case .prepareFirstSector: recoveryFirstSectorRead(read)
        case .prepareRest: recoveryPrepareRead(read)
        case .idle: preconditionFailure("a read completes only while its IO is in flight")
        }
    }

    private func prepareRead(_ read: JournalRead) {
        let entry = JournalEntry.prepare(
            UnsafeRawBufferPointer(read.target), cluster: cluster, slot: read.slot,
            slotCount: slotCount)
        let result: JournalReadResult
        switch entry {
        case .corrupt(let corruption): result = .corrupt(corruption)
        case .reserved: result = .mismatch
        case .prepare(let header):
            result = header.op == read.op && header.frame.checksum == read.checksum
                ? .prepare(header) : .mismatch
        }
        let callback = read.callback!
        read.callback = nil
        read.phase = .idle
        readsInFlight -= 1
        if read.purpose == .repair { readsRepairInFlight -= 1 }
        callback(result)
    }

    // MARK: Recovery

    /// Recovers the journal from disk: reads the header ring and every prepare (up to its
    /// size), classifies each slot with the decision table, truncates torn appends, loads the
    /// trustworthy headers and rewrites the header sectors that need a fix. `opCheckpoint` is
    /// the superblock's checkpoint op (it sets `op_prepare_max`); `replicaCount` 1 means no peer
    /// can repair anything, so any slot needing repair fails recovery with
    /// `repairNeededButSolo`, before anything is written.
    ///
    /// Not done here (the replica's part, with the superblock): dropping headers outside the
    /// durable log_view, and choosing the head when log_view ≠ view.
    public func recover(
        opCheckpoint: UInt64, replicaCount: Int, callback: @escaping RecoveryCallback
    ) {
        precondition(status == .initial, "recovery runs once, first")
        precondition(replicaCount >= 1, "at least one replica")
        precondition(replicaCount <= Constants.replicasMax, "at most replicasMax replicas")
        status = .recovering
        self.replicaCount = replicaCount
        recoveryOpCheckpoint = opCheckpoint
        recoveryCallback = callback

        // The header ring straight into the image: it becomes the image once classified.
        let read = reads[0]
        readsInFlight += 1
        read.phase = .headerRing
        storage.read(read.completion, zone: .walHeaders, offset: 0, buffer: headersRedundant.bytes)
    }

    private func recoveryHeaderRingRead(_ read: JournalRead) {
        precondition(status == .recovering, "reading the header ring during recovery")
        for slot in 0..<slotCount {
            let start = slot * Constants.messageHeaderSize
            let bytes = UnsafeRawBufferPointer(
                rebasing: headersRedundant.bytes[start..<start + Constants.messageHeaderSize])
            recoveryHeaders[slot] = .header(bytes, cluster: cluster, slot: slot, slotCount: slotCount)
        }
        read.phase = .idle
        readsInFlight -= 1
        for idle in reads { recoveryReadNextPrepare(idle) }
    }

    /// Starts reading the next prepare slot on `read`, or finishes when none is left.
    private func recoveryReadNextPrepare(_ read: JournalRead) {
        precondition(read.phase == .idle, "a read serves one slot at a time")
        guard recoverySlotNext < slotCount else {
            if readsInFlight == 0 { recoveryClassify() }
            return
        }
        let slot = recoverySlotNext
        recoverySlotNext += 1
        readsInFlight += 1
        read.slot = slot
        read.phase = .prepareFirstSector
        // The first sector gives the size; a corrupt header needs nothing more.
        storage.read(
            read.completion, zone: .walPrepares,
            offset: storage.layout.walPrepareOffset(slot: slot),
            buffer: UnsafeMutableRawBufferPointer(rebasing: read.buffer[0..<Constants.sectorSize]))
    }

    private func recoveryFirstSectorRead(_ read: JournalRead) {
        let slot = read.slot
        let first = UnsafeRawBufferPointer(rebasing: read.buffer[0..<Constants.sectorSize])
        let entry = JournalEntry.header(first, cluster: cluster, slot: slot, slotCount: slotCount)
        if let header = entry.prepareHeader, Int(header.frame.size) > Constants.sectorSize {
            let size = JournalEntry.sectorCeil(Int(header.frame.size))
            read.phase = .prepareRest
            storage.read(
                read.completion, zone: .walPrepares,
                offset: storage.layout.walPrepareOffset(slot: slot) + UInt64(Constants.sectorSize),
                buffer: UnsafeMutableRawBufferPointer(
                    rebasing: read.buffer[Constants.sectorSize..<size]))
            return
        }
        recoveryPrepareRead(read)
    }

    /// The slot's prepare is in the read's buffer (as far as its size says): validate it.
    private func recoveryPrepareRead(_ read: JournalRead) {
        recoveryPrepares[read.slot] = .prepare(
            UnsafeRawBufferPointer(read.buffer), cluster: cluster, slot: read.slot,
            slotCount: slotCount)
        read.phase = .idle
        readsInFlight -= 1
        recoveryReadNextPrepare(read)
    }

    private func recoveryClassify() {
        precondition(readsInFlight == 0, "every recovery read completed")
        let report = JournalRecovery.plan(
            configuration: configuration, opCheckpoint: recoveryOpCheckpoint,
            replicaCount: replicaCount, headers: recoveryHeaders, prepares: recoveryPrepares)
        if report.faultyCount == slotCount { return recoveryFinish(.failure(.walInvalid)) }
        if replicaCount == 1 && report.faultyCount > 0 {
            return recoveryFinish(.failure(.repairNeededButSolo(slots: report.repairSlots)))
        }
        for slot in 0..<slotCount { recoveryApply(slot: slot, report.slots[slot]) }
        recoveryReport = report
        recoveryWriteNextSector()
    }

    /// Sets a slot's memory (and image) from its decision.
    private func recoveryApply(slot: Int, _ decided: JournalRecovery.Slot) {
        let sector = slot / Constants.walHeadersPerSector
        // A valid prepare can be served whatever its header says (get_prepare).
        if let prepare = decided.prepare.prepareHeader {
            prepareChecksums[slot] = prepare.frame.checksum
            prepareSizes[slot] = prepare.frame.size
        }
        switch decided.decision {
        case .nothing:
            headers[slot] = decided.prepare.prepareHeader
            // The image already holds the identical header (or the reserved one).
            assert(redundantHeader(slot: slot) == decided.header, "the image is what was read")
        case .fixHeaderFromPrepare:
            let prepare = decided.prepare.prepareHeader
            headers[slot] = prepare
            setRedundant(
                slot: slot, to: prepare ?? PrepareHeader.reserved(cluster: cluster, slot: slot))
            dirty.insert(slot)
            recoverySectorsToWrite[sector] = true
        case .repair:
            // Never load a header into a faulty slot: a later write of its sector would make
            // a lost entry look valid, and the replica could nack what it acked.
            headers[slot] = nil
            invalidateRedundant(slot: slot)
            dirty.insert(slot)
            faulty.insert(slot)
        case .truncate:
            headers[slot] = nil
            setRedundant(slot: slot, to: PrepareHeader.reserved(cluster: cluster, slot: slot))
            recoverySectorsToWrite[sector] = true
            // The prepare ring gets a reserved entry too (after the header ring: see
            // `recoveryWriteNextTruncatedPrepare`), so the slot reads as empty afterwards.
            prepareChecksums[slot] = nil
            prepareSizes[slot] = 0
            recoveryPreparesToTruncate[slot] = true
        }
    }

    /// Rewrites, one at a time, the header sectors holding a fixed or truncated slot.
    private func recoveryWriteNextSector() {
        guard let sector = recoverySectorsToWrite.firstIndex(of: true) else {
            return recoveryWriteNextTruncatedPrepare()
        }
        let write = writes[0]
        precondition(write.phase == .idle, "recovery writes alone")
        writesInFlight += 1
        write.phase = .recoveryFix
        write.slot = sector * Constants.walHeadersPerSector
        let start = sector * Constants.sectorSize
        write.sector.copyMemory(from: UnsafeRawBufferPointer(
            rebasing: headersRedundant.bytes[start..<start + Constants.sectorSize]))
        storage.write(
            write.completion, zone: .walHeaders,
            offset: storage.layout.walHeaderSectorOffset(slot: write.slot),
            buffer: UnsafeRawBufferPointer(write.sector))
    }

    private func recoveryFixWritten() {
        let write = writes[0]
        let first = write.slot
        let sector = first / Constants.walHeadersPerSector
        // Fixed slots are clean once their header is on disk; faulty ones stay dirty.
        for slot in first..<first + Constants.walHeadersPerSector where !faulty.contains(slot) {
            dirty.remove(slot)
        }
        recoverySectorsToWrite[sector] = false
        write.phase = .idle
        writesInFlight -= 1
        recoveryWriteNextSector()
    }

    /// Overwrites the first sector of each truncated slot's prepare with the reserved entry,
    /// one at a time, once every header sector is durable. The order matters: with the header
    /// already reserved, a crash here leaves either @L (both reserved) or @B (reserved header,
    /// torn prepare), which the next recovery truncates again. The other order could leave an
    /// old valid header over a reserved prepare (@K), which only peers can repair.
    private func recoveryWriteNextTruncatedPrepare() {
        guard let slot = recoveryPreparesToTruncate.firstIndex(of: true) else {
            return recoveryFinish(.success(recoveryReport!))
        }
        let write = writes[0]
        precondition(write.phase == .idle, "recovery writes alone")
        writesInFlight += 1
        write.phase = .recoveryTruncatePrepare
        write.slot = slot
        write.sector.initializeMemory(as: UInt8.self, repeating: 0)
        write.sector.storeBytes(
            of: PrepareHeader.reserved(cluster: cluster, slot: slot), toByteOffset: 0,
            as: PrepareHeader.self)
        storage.write(
            write.completion, zone: .walPrepares, offset: storage.layout.walPrepareOffset(slot: slot),
            buffer: UnsafeRawBufferPointer(write.sector))
    }

    private func recoveryTruncatedPrepareWritten() {
        let write = writes[0]
        recoveryPreparesToTruncate[write.slot] = false
        write.phase = .idle
        writesInFlight -= 1
        recoveryWriteNextTruncatedPrepare()
    }

    private func recoveryFinish(_ result: Result<JournalRecovery, JournalError>) {
        switch result {
        case .success: status = .recovered
        case .failure: status = .refused
        }
        precondition(readsInFlight == 0, "recovery ends with no read in flight")
        precondition(writesInFlight == 0, "recovery ends with no write in flight")
        let callback = recoveryCallback!
        recoveryCallback = nil
        callback(result)
    }
}

// MARK: - IO records

/// One journal write: a prepare then its header sector (or a recovery fix of a header sector).
private final class JournalWrite {
    enum Phase {
        case idle
        /// A solo replica's prepare waiting for the one before it to be durable.
        case waitingForPrepareTurn
        case prepare
        case waitingForHeaderSector
        case headerSector
        case recoveryFix
        case recoveryTruncatePrepare
    }
    let completion = StorageCompletion()
    /// This write's copy of its header sector.
    let sector: UnsafeMutableRawBufferPointer
    var phase = Phase.idle
    var slot = 0
    var header = PrepareHeader()
    var callback: ((PrepareHeader) -> Void)?
    var ticket: UInt64 = 0
    /// The caller's prepare, while it waits for its turn (solo replicas).
    var prepareBuffer: UnsafeRawBufferPointer?

    init(sector: UnsafeMutableRawBufferPointer) { self.sector = sector }
}

/// One journal read: a prepare for the caller, or a step of recovery.
private final class JournalRead {
    enum Phase {
        case idle
        case prepare
        case headerRing
        case prepareFirstSector
        case prepareRest
    }
    let completion = StorageCompletion()
    /// A message-sized buffer for recovery reads.
    let buffer: UnsafeMutableRawBufferPointer
    var phase = Phase.idle
    var slot = 0
    var op: UInt64 = 0
    var checksum: UInt128 = 0
    var purpose = JournalReadPurpose.commit
    var target = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    var callback: ((JournalReadResult) -> Void)?

    init(buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
}

/// A fixed set of slots (the dirty and faulty bits), allocated at init.
private struct JournalSlotBits {
    private var words: [UInt64]
    private(set) var count = 0
    let slotCount: Int

    init(slotCount: Int) {
        self.slotCount = slotCount
        words = [UInt64](repeating: 0, count: (slotCount + 63) / 64)
    }

    func contains(_ slot: Int) -> Bool {
        precondition((0..<slotCount).contains(slot), "WAL slot in range")
        return words[slot / 64] & (1 << UInt64(slot % 64)) != 0
    }

    mutating func insert(_ slot: Int) {
        guard !contains(slot) else { return }
        words[slot / 64] |= 1 << UInt64(slot % 64)
        count += 1
    }

    mutating func remove(_ slot: Int) {
        guard contains(slot) else { return }
        words[slot / 64] &= ~(1 << UInt64(slot % 64))
        count -= 1
    }
}

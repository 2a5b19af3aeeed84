import LedgerIO
import LedgerKit

// The superblock of one replica (storage spec §2): four copies of one 8 KiB header at the start
// of the data file, holding the durable VSR state. Every change is a staged write of the next
// sequence: the new header goes to copies 0, 1, 2, 3 one after the other, then all four are read
// back one after the other, and only when at least 3 came back intact does `working` move. One
// write at a time keeps a crash from tearing more than one copy, and reading back separately from
// writing means one local fault is unlikely to hit several copies.
//
// Sketch: an update is 4 writes + 4 reads of 8 KiB, sequential: 8 device latencies (~1 ms on
// NVMe with O_DSYNC), at most once per checkpoint (every `vsrCheckpointOps` ops) or view change.
// Nothing here is on the commit path, and nothing allocates per IO: the buffers and completions
// are allocated at init. (Opening and the quorum analysis allocate small arrays; they run once
// per start.)

/// The state a checkpoint records. `commitMax` and the sync range are the replica's at the time;
/// `viewHeaders` are the log suffix whose ops reach at least the trigger (spec §6).
public struct CheckpointUpdate: Sendable {
    public var checkpoint: CheckpointState
    public var commitMax: UInt64
    public var syncOpMin: UInt64
    public var syncOpMax: UInt64
    public var viewHeaders: SuperblockViewHeaders

    public init(
        checkpoint: CheckpointState, commitMax: UInt64, syncOpMin: UInt64 = 0,
        syncOpMax: UInt64 = 0, viewHeaders: SuperblockViewHeaders
    ) {
        self.checkpoint = checkpoint
        self.commitMax = commitMax
        self.syncOpMin = syncOpMin
        self.syncOpMax = syncOpMax
        self.viewHeaders = viewHeaders
    }
}

/// The state a view change makes durable before any message reveals it (spec §13 item 3).
public struct ViewChangeUpdate: Sendable {
    public var view: UInt32
    public var logView: UInt32
    public var commitMax: UInt64
    public var viewHeaders: SuperblockViewHeaders

    public init(view: UInt32, logView: UInt32, commitMax: UInt64, viewHeaders: SuperblockViewHeaders) {
        self.view = view
        self.logView = logView
        self.commitMax = commitMax
        self.viewHeaders = viewHeaders
    }
}

public final class Superblock<S: Storage> {
    public typealias OpenCallback = (Result<SuperblockHeader, SuperblockError>) -> Void

    /// Repair writes one open may make (each followed by a read of all copies). Twice the copies:
    /// every slot once, plus room for writes that a fault spoiled; after that the quorum still
    /// holds and the next open tries again.
    public static var openRepairWritesMax: Int { 2 * Constants.superblockCopies }

    public let storage: S
    /// Whether `working` holds a durable header (after `format` or a successful `open`).
    public private(set) var isOpen = false
    /// The analysis of the first read of the last `open` (for logs and `ledger-inspect`).
    public private(set) var openReport: SuperblockQuorumReport?
    /// Repair writes made by the last `open`.
    public private(set) var openRepairWrites = 0

    private let headerSize = Constants.superblockHeaderSize
    /// Slot `s` read back at `s * headerSize`.
    private let readBuffer: AlignedBuffer
    /// The header being written; its `copy` field is set before each slot's write.
    private let writeBuffer: AlignedBuffer
    private let readCompletion = StorageCompletion()
    private let writeCompletion = StorageCompletion()

    private var workingHeader: SuperblockHeader
    private var staging: SuperblockHeader
    /// The state after every requested update (in flight and queued) is applied: new requests
    /// are checked against it, so a broken invariant fails at the caller's line.
    private var newest: VSRState

    private enum Request {
        case format(() -> Void)
        case open(OpenCallback)
        case checkpoint(CheckpointUpdate, () -> Void)
        case viewChange(ViewChangeUpdate, () -> Void)
    }
    private var current: Request?
    private var queuedCheckpoint: (update: CheckpointUpdate, callback: () -> Void)?
    private var queuedViewChange: (update: ViewChangeUpdate, callback: () -> Void)?
    /// Which of the two queued requests came first (they run in request order).
    private var queuedViewChangeFirst = false

    public init(storage: S) {
        self.storage = storage
        readBuffer = AlignedBuffer(count: Constants.superblockCopies * Constants.superblockHeaderSize)
        writeBuffer = AlignedBuffer(count: Constants.superblockHeaderSize)
        let empty = SuperblockHeader(vsrState: VSRState(checkpoint: CheckpointState(header: PrepareHeader())))
        workingHeader = empty
        staging = empty
        newest = empty.vsrState
        readCompletion.callback = { [unowned self] completion in self.readDone(slot: completion.tag) }
        writeCompletion.callback = { [unowned self] completion in self.writeDone(slot: completion.tag) }
    }

    /// The durable state: the header of the last completed format, open or update.
    public var working: SuperblockHeader {
        precondition(isOpen, "the superblock is formatted or opened before use")
        return workingHeader
    }

    /// Whether an operation is in flight or queued.
    public var isBusy: Bool { current != nil }

    // MARK: Format

    /// Writes sequence 1 of a new data file: checkpoint op 0 (the root prepare), the cluster's
    /// members, this replica's id. Reads it back; a disk that cannot hold 3 copies is fatal.
    public func format(
        cluster: UInt128, replicaIndex: Int, replicaCount: Int, release: UInt32,
        storageSize: UInt64, callback: @escaping () -> Void
    ) {
        precondition(!isOpen, "format runs on a fresh superblock")
        precondition(current == nil, "one superblock operation at a time")
        precondition(replicaCount >= 1, "at least one replica")
        precondition(replicaCount <= Constants.replicasMax, "at most replicasMax replicas")
        precondition(replicaIndex >= 0, "replica index is not negative")
        precondition(replicaIndex < replicaCount, "replica index below the replica count")
        precondition(storageSize >= storage.layout.sizeMin, "storage size covers every zone")
        precondition(storageSize <= storage.layout.sizeMax, "storage size within the grid limit")

        let root = PrepareHeader.root(cluster: cluster, release: release)
        var checkpoint = CheckpointState(header: root)
        checkpoint.release = release
        checkpoint.storageSize = storageSize
        var state = VSRState(checkpoint: checkpoint)
        let members = Members.root(cluster: cluster, replicaCount: replicaCount)
        state.setMembers(members)
        state.replicaId = members[replicaIndex]
        state.replicaCount = UInt8(replicaCount)
        var header = SuperblockHeader(vsrState: state)
        header.cluster = cluster
        header.releaseFormat = release
        header.sequence = 1
        header.parent = 0
        header.viewHeaders = SuperblockViewHeaders([root])
        header.seal()
        precondition(header.vsrState.brokenInvariant == nil, "format writes a well-formed state")

        current = .format(callback)
        staging = header
        writeCopies()
    }

    // MARK: Open

    /// Reads every copy, picks the working header by quorum (`SuperblockQuorums`), rewrites the
    /// copies outside the quorum (one slot at a time, re-reading all copies after each write so
    /// every choice sees the disk as it is), then calls back with the working header.
    public func open(callback: @escaping OpenCallback) {
        precondition(!isOpen, "open runs once, on a fresh superblock")
        precondition(current == nil, "one superblock operation at a time")
        current = .open(callback)
        openReport = nil
        openRepairWrites = 0
        startRead(slot: 0)
    }

    // MARK: Updates

    /// Makes a checkpoint durable: the next sequence records `update`. At most one checkpoint
    /// may wait behind the operation in flight.
    public func checkpoint(update: CheckpointUpdate, callback: @escaping () -> Void) {
        precondition(isOpen, "the superblock is formatted or opened before an update")
        let next = Self.applying(update, to: newest)
        Self.checkStep(from: newest, to: next)
        newest = next
        if current == nil {
            begin(.checkpoint(update, callback))
        } else {
            precondition(queuedCheckpoint == nil, "at most one checkpoint waits")
            queuedCheckpoint = (update, callback)
            queuedViewChangeFirst = queuedViewChange != nil
        }
    }

    /// Makes a view change durable: the next sequence records `update`. At most one view change
    /// may wait behind the operation in flight.
    public func viewChange(update: ViewChangeUpdate, callback: @escaping () -> Void) {
        precondition(isOpen, "the superblock is formatted or opened before an update")
        let next = Self.applying(update, to: newest)
        Self.checkStep(from: newest, to: next)
        newest = next
        if current == nil {
            begin(.viewChange(update, callback))
        } else {
            precondition(queuedViewChange == nil, "at most one view change waits")
            queuedViewChange = (update, callback)
            queuedViewChangeFirst = queuedCheckpoint == nil
        }
    }

    private static func applying(_ update: CheckpointUpdate, to state: VSRState) -> VSRState {
        var next = state
        next.checkpoint = update.checkpoint
        next.commitMax = update.commitMax
        next.syncOpMin = update.syncOpMin
        next.syncOpMax = update.syncOpMax
        return next
    }

    private static func applying(_ update: ViewChangeUpdate, to state: VSRState) -> VSRState {
        var next = state
        next.view = update.view
        next.logView = update.logView
        next.commitMax = update.commitMax
        return next
    }

    /// The invariants of one update (spec §2 "Invariants"). Checked when the update is requested
    /// and again when its header is staged.
    private static func checkStep(from old: VSRState, to new: VSRState) {
        precondition(new.view >= old.view, "view never decreases")
        precondition(new.logView >= old.logView, "log_view never decreases")
        precondition(new.commitMax >= old.commitMax, "commit_max never decreases")
        precondition(new.logView <= new.view, "log_view <= view")
        precondition(new.checkpoint.header.op <= new.commitMax, "checkpoint op <= commit_max")
        precondition(new.syncOpMin <= new.syncOpMax, "sync_op_min <= sync_op_max")
        precondition(
            new.checkpoint.header.op >= old.checkpoint.header.op, "the checkpoint op never decreases")
        precondition(
            new.checkpoint.header.op != old.checkpoint.header.op || new.checkpoint == old.checkpoint,
            "only a checkpoint moves the checkpoint")
        precondition(new.replicaId == old.replicaId, "the replica id never changes")
    }

    /// Stages the next sequence on top of `working` and starts writing it.
    private func begin(_ request: Request) {
        precondition(current == nil, "one superblock operation at a time")
        var next = workingHeader
        next.copy = 0
        next.sequence += 1
        next.parent = workingHeader.checksum
        switch request {
        case .checkpoint(let update, _):
            next.vsrState = Self.applying(update, to: next.vsrState)
            next.viewHeaders = update.viewHeaders
        case .viewChange(let update, _):
            next.vsrState = Self.applying(update, to: next.vsrState)
            next.viewHeaders = update.viewHeaders
        case .format, .open:
            preconditionFailure("only updates are staged on top of working")
        }
        Self.checkStep(from: workingHeader.vsrState, to: next.vsrState)
        next.seal()
        current = request
        staging = next
        writeCopies()
    }

    private func beginQueued() {
        precondition(current == nil, "one superblock operation at a time")
        let viewChangeNext =
            queuedViewChange != nil && (queuedCheckpoint == nil || queuedViewChangeFirst)
        if viewChangeNext, let queued = queuedViewChange {
            queuedViewChange = nil
            begin(.viewChange(queued.update, queued.callback))
        } else if let queued = queuedCheckpoint {
            queuedCheckpoint = nil
            begin(.checkpoint(queued.update, queued.callback))
        }
    }

    // MARK: IO

    private func writeCopies() {
        writeBuffer.bytes.storeBytes(of: staging, as: SuperblockHeader.self)
        startWrite(slot: 0)
    }

    private func startWrite(slot: Int) {
        precondition(slot >= 0 && slot < Constants.superblockCopies, "superblock slot in range")
        // Each copy carries its slot: a copy read from another slot then reveals a misdirect.
        writeBuffer.bytes.storeBytes(
            of: UInt16(slot), toByteOffset: SuperblockHeader.copyOffset, as: UInt16.self)
        writeCompletion.tag = slot
        storage.write(
            writeCompletion, zone: .superblock, offset: storage.layout.superblockCopyOffset(copy: slot),
            buffer: writeBuffer.readOnlyPrefix(headerSize))
    }

    private func startRead(slot: Int) {
        precondition(slot >= 0 && slot < Constants.superblockCopies, "superblock slot in range")
        readCompletion.tag = slot
        storage.read(
            readCompletion, zone: .superblock, offset: storage.layout.superblockCopyOffset(copy: slot),
            buffer: readSlot(slot))
    }

    private func readSlot(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: readBuffer.bytes[slot * headerSize..<(slot + 1) * headerSize])
    }

    private func writeDone(slot: Int) {
        if case .open = current {
            // A repair write: look at every copy again before choosing the next one.
            startRead(slot: 0)
        } else if slot + 1 < Constants.superblockCopies {
            startWrite(slot: slot + 1)
        } else {
            startRead(slot: 0)
        }
    }

    private func readDone(slot: Int) {
        if slot + 1 < Constants.superblockCopies {
            startRead(slot: slot + 1)
        } else if case .open = current {
            openCopiesRead()
        } else {
            writeVerified()
        }
    }

    // MARK: Completion

    private func writeVerified() {
        var intact = 0
        for slot in 0..<Constants.superblockCopies
        where SuperblockQuorums.isCopy(UnsafeRawBufferPointer(readSlot(slot)), of: staging.checksum, slot: slot) {
            intact += 1
        }
        // A replica whose disk cannot hold its superblock must stop: continuing would advertise
        // state that a restart may not find. The cluster repairs it from the other replicas.
        precondition(
            intact >= Constants.superblockQuorumWrite,
            "superblock write quorum: \(intact) of \(Constants.superblockCopies) copies read back intact, "
                + "\(Constants.superblockQuorumWrite) needed (the disk cannot hold the superblock)")
        workingHeader = staging
        isOpen = true
        let finished = current
        current = nil
        switch finished {
        case .format(let callback):
            newest = workingHeader.vsrState
            callback()
        case .checkpoint(_, let callback), .viewChange(_, let callback):
            // The next update starts before the callback runs, so a request made inside the
            // callback queues behind it, in order.
            beginQueued()
            callback()
        case .open, nil:
            preconditionFailure("a verified write belongs to format or an update")
        }
    }

    private func openCopiesRead() {
        let report = SuperblockQuorums.analyze(
            copies: UnsafeRawBufferPointer(readBuffer.bytes), copyStride: headerSize)
        let isFirstRead = openReport == nil
        if isFirstRead { openReport = report }
        switch report.working {
        case .failure(let error):
            finishOpen(.failure(error))
        case .success(let quorum):
            if !isFirstRead && quorum.header.checksum != workingHeader.checksum {
                finishOpen(.failure(.quorumChangedDuringRepair))
                return
            }
            workingHeader = quorum.header
            guard let slot = quorum.nextRepairSlot, openRepairWrites < Self.openRepairWritesMax else {
                finishOpen(.success(quorum.header))
                return
            }
            openRepairWrites += 1
            writeBuffer.bytes.storeBytes(of: quorum.header, as: SuperblockHeader.self)
            startWrite(slot: slot)
        }
    }

    private func finishOpen(_ result: Result<SuperblockHeader, SuperblockError>) {
        guard case .open(let callback) = current else {
            preconditionFailure("finishing an open that is in flight")
        }
        current = nil
        if case .success(let header) = result {
            precondition(header.isChecksumValid, "the working header is intact")
            isOpen = true
            newest = header.vsrState
        }
        callback(result)
    }
}

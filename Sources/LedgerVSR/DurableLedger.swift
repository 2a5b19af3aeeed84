import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerStateMachine

// The storage half of a one-member replica (storage spec §3, §6, §7 "Normal operation", §8): the
// WAL (`Journal`), the state machine on the forest (`StateMachine<ForestStore>`), the client
// sessions, and checkpoints in the superblock. The VSR replica (next) wraps it: it decides what
// to prepare and when an op is committed; this type owns what is durable and in which order.
//
// ## One op
//
//   submit     validate → op = head + 1, timestamp (StateMachine.prepare) → prepare header
//              (parent = the previous prepare's checksum, commit = commit_min, checkpoint id)
//              → the journal writes prepare, then its redundant header
//   commit     in op order, once the op's prepare is durable: [checkpointDurable at trigger +
//              pipeline + 1] → prefetch → execute → client sessions (the reply's header; a
//              non-empty body goes to the session's slot of the client-replies zone,
//              asynchronously) → the reply callback → the forest's beat → [at a trigger: the
//              checkpoint]. Nothing is acknowledged before its prepare is durable, and
//              replies come in op order. The reply precedes the beat (as in the reference):
//              the beat changes how the state is stored, not what it is, and a crash during
//              it replays the op to the same reply.
//
// ## Checkpoints (Forest.swift header, CheckpointTrailer.swift header)
//
//   checkpoint op C   the client sessions table as of C is encoded (the state the checkpoint
//                     stands for: replay resumes at C + 1 and re-applies the ops after it)
//   trigger T = C + B the beat flushes the manifest log, calls our hook, which writes the
//                     encoded table as the client-sessions trailer (before the free set is
//                     encoded, so its blocks are acquired in the encoding), then writes the free
//                     set; the beat returns the `ForestCheckpoint`; we release the trailer's
//                     blocks (pending: freed when the next checkpoint is durable), and write the
//                     superblock (once every reply body written so far is durable: the
//                     replay will not rewrite the replies of ops up to C): C's prepare
//                     header, the forest references, the trailer,
//                     commit_max = T, and the log suffix from T up (spec §6)
//   T + P + 1         `forest.checkpointDurable()` before that op's beat: a fixed op, so replay
//                     frees blocks exactly when the first run did.
//   Commits are serial and the checkpoint is part of T's commit, so op_prepare_max (two
//   pipelines past the next trigger) is never reached by a pipeline of P.
//
// ## Restart (DurableLedgerOpen.swift)
//
//   superblock quorum → forest checkpoint → forest open → client-sessions trailer (decode,
//   release its blocks) → journal recovery (a solo replica refuses to repair) → the hash chain
//   from C to the WAL head, no gap → replay C + 1 … head through the same commit path (reading
//   each prepare back from the journal, verified); a trigger met during replay writes its
//   checkpoint again, like at first, to the same blocks. Then timestamps continue from the head.
//
// ## Memory (at init)
//
//   pipeline × 1 MiB prepare buffers (also the replay's read buffers), one 1 MiB reply buffer,
//   the encoded sessions table for the next checkpoint, and the parts' own (journal, forest).
//   Per op: the caller's reply closure is kept; nothing else allocates on the commit path but
//   the checkpoint's free-set trailers (once per checkpoint).

public final class DurableLedger<S: Storage> {
    public typealias ReplyCallback = (Result<DurableReply, DurableLedgerFault>) -> Void
    public typealias OpenCallback = (Result<Void, DurableLedgerOpenError>) -> Void

    public enum Status: Equatable, Sendable {
        case initial
        case opening
        /// Re-executing the ops between the checkpoint and the WAL head.
        case replaying
        case ready
        case openFailed
        case faulted
    }

    public let storage: S
    public let layout: DataFileLayout
    public let configuration: StorageConfiguration
    /// Events one request may hold (the store's memtables are sized for this many).
    public let batchEventsMax: Int
    public let superblock: Superblock<S>
    /// Made once the superblock names the cluster (the journal checks every entry against it).
    public internal(set) var journal: Journal<S>!
    public let store: ForestStore<S>
    public let stateMachine: StateMachine<ForestStore<S>>
    public internal(set) var clientSessions: ClientSessions
    /// The bodies of the sessions' latest replies (the headers are in `clientSessions`).
    public let clientReplies: ClientReplies<S>

    public internal(set) var status = Status.initial
    public internal(set) var fault: DurableLedgerFault?
    /// The last committed op.
    public internal(set) var commitMin: UInt64 = 0
    /// The last prepared op (the WAL head).
    public internal(set) var opHead: UInt64 = 0
    /// Ops the last open re-executed, and checkpoints it wrote again on the way (for logs and
    /// tests: a crash between a trigger and its superblock write is replayed through it).
    public internal(set) var replayedOpCount = 0
    public internal(set) var replayCheckpointCount = 0
    var headChecksum: UInt128 = 0
    /// Replay ends at this op (the WAL head found at open).
    var replayHeadOp: UInt64 = 0
    /// The op whose commit declares the last checkpoint durable (before its beat).
    var durableAtOp: UInt64?
    var openCallback: OpenCallback?

    /// The client-sessions trailer and, between a checkpoint op and its trigger, the table
    /// encoded at the checkpoint op.
    let sessionsTrailer: CheckpointTrailer<S>
    let sessionsCheckpointBytes: AlignedBuffer
    var sessionsCheckpointOp: UInt64?

    let entries: [DurableLedgerEntry]
    let replyBuffer: AlignedBuffer

    // The commit stage (one op at a time, in op order).
    enum CommitStage {
        case idle
        case reading
        case read(JournalReadResult)
        case prefetching
        case prefetched(Result<Void, ForestStoreFault>)
        /// Waiting a loop turn before the beat (see `beatTurn`).
        case turning
        case beating
        case beaten(Result<ForestCheckpoint?, ForestFault>)
        case checkpointing
        case checkpointed
    }
    var stage = CommitStage.idle
    var commitHeader = PrepareHeader()
    var commitReply = ReplyHeader()
    var commitReplySize = 0
    var isPumping = false
    var readCallback: Journal<S>.ReadCallback = { _ in }
    /// Made once (init): a prefetch given it allocates nothing per op.
    var prefetchCompletion: PrefetchCompletion<ForestStoreFault>!
    var beatCallback: Forest<S>.BeatCallback = { _ in }
    /// The loop turn between an op's reply and its beat: the reply (and a request that came
    /// meanwhile) go to the kernel before the beat's CPU work.
    let beatTurn = StorageCompletion()
    var checkpointCallback: () -> Void = {}

    /// A ledger over `storage` (formatted by `DataFileFormatter`); `open` it before use.
    public init(storage: S, configuration store: ForestStoreConfiguration, batchEventsMax: Int = Constants.batchEventsMax) {
        precondition(batchEventsMax >= 1, "a request holds an event")
        self.storage = storage
        layout = storage.layout
        configuration = storage.layout.configuration
        self.batchEventsMax = batchEventsMax
        superblock = Superblock(storage: storage)
        self.store = ForestStore(storage: storage, configuration: store)
        stateMachine = StateMachine(store: self.store)
        clientSessions = ClientSessions(capacity: configuration.clientsMax)
        clientReplies = ClientReplies(storage: storage, clientsMax: configuration.clientsMax)
        let encodedSize = ClientSessions.encodedSize(capacity: configuration.clientsMax)
        let chunkSize = CheckpointTrailerBlock.chunkSizeDefault(blockSize: configuration.blockSize)
        sessionsTrailer = CheckpointTrailer(
            grid: self.store.forest.grid, kind: .clientSessions, blockCountMax: (encodedSize + chunkSize - 1) / chunkSize)
        sessionsCheckpointBytes = AlignedBuffer(count: JournalEntry.sectorCeil(encodedSize))
        var entries: [DurableLedgerEntry] = []
        for _ in 0..<configuration.pipelinePrepareQueueMax { entries.append(DurableLedgerEntry()) }
        self.entries = entries
        // The reply message: its header is stored in front of the body the state machine writes.
        replyBuffer = AlignedBuffer(count: Constants.messageSizeMax)
        for entry in entries {
            entry.writeCallback = { [unowned self, unowned entry] written in self.prepareWritten(entry, written) }
        }
        readCallback = { [unowned self] result in
            self.stage = .read(result)
            self.pump()
        }
        prefetchCompletion = PrefetchCompletion { [unowned self] result in
            self.stage = .prefetched(result)
            self.pump()
        }
        beatCallback = { [unowned self] result in
            self.stage = .beaten(result)
            self.pump()
        }
        beatTurn.callback = { [unowned self] _ in
            self.stage = .beating
            self.store.compact(op: self.commitHeader.op, callback: self.beatCallback)
        }
        checkpointCallback = { [unowned self] in
            self.stage = .checkpointed
            self.pump()
        }
        self.store.forest.checkpointTrailerWrite = { [unowned self] snapshot, done in
            self.writeSessionsTrailer(snapshot: snapshot, done: done)
        }
    }

    /// Whether a checkpoint is being written (the trigger's trailers or the superblock).
    public var isWritingCheckpoint: Bool {
        if case .checkpointing = stage { return true }
        return store.forest.isCheckpointing
    }

    /// The op of the durable checkpoint.
    public var checkpointOp: UInt64 { superblock.working.vsrState.checkpoint.header.op }

    /// The whole stored reply (header, then body) whose header is `header`, the latest reply
    /// of its client's session; nil when it cannot be read back (damaged, or no longer the
    /// session's latest). The message is valid only during the callback.
    public func readReply(_ header: ReplyHeader, callback: @escaping (UnsafeRawBufferPointer?) -> Void) {
        guard let slot = clientSessions.slotIndex(client: header.client),
            clientSessions.slots[slot]?.reply == header
        else { return callback(nil) }
        clientReplies.read(slot: slot, header: header, callback: callback)
    }

    // MARK: Submit (the primary's path)

    /// Prepares a client request (or an internal one: client 0) as the next op; once its
    /// prepare is durable and every op before it committed, commits it and calls back with the
    /// reply. Returns the prepare header, or why nothing was prepared (then `callback` never
    /// runs). `body` is copied. `release` is the client's (its reply echoes it).
    @discardableResult
    public func submit(
        operation: Operation, body: UnsafeRawBufferPointer, realtime: UInt64, client: UInt128, request: UInt32,
        requestChecksum: UInt128 = 0, release: UInt32 = Constants.release, callback: @escaping ReplyCallback
    ) -> Result<PrepareHeader, DurableSubmitError> {
        if let error = submitRefusal() { return .failure(error) }
        guard body.count <= Constants.messageBodySizeMax,
              stateMachine.isValidRequest(operation: operation, body: body)
        else { return .failure(.invalidRequest) }
        // Only the cluster itself pulses; clients name themselves.
        guard operation != .pulse || client == 0 else { return .failure(.invalidRequest) }
        if operation.isMultiBatch {
            guard let reader = MultiBatchReader(body: body, elementSize: operation.eventSize) else {
                return .failure(.invalidRequest)
            }
            guard reader.elementCountTotal <= batchEventsMax else { return .failure(.tooManyEvents) }
        }
        guard client == 0 || clientSessions.session(client: client) != nil else { return .failure(.noSession) }
        let timestamp = stateMachine.prepare(operation: operation, body: body, realtime: realtime)
        return .success(append(
            operation: operation.rawValue, body: body, timestamp: timestamp, client: client, request: request,
            requestChecksum: requestChecksum, release: release, callback: callback))
    }

    /// Prepares a `register` for `client`: its commit op becomes the client's session (evicting
    /// the oldest session of a full table). The reply body is the register result (64 bytes).
    @discardableResult
    public func register(
        client: UInt128, realtime: UInt64, requestChecksum: UInt128 = 0, release: UInt32 = Constants.release,
        callback: @escaping ReplyCallback
    ) -> Result<PrepareHeader, DurableSubmitError> {
        if let error = submitRefusal() { return .failure(error) }
        guard client != 0 else { return .failure(.invalidRequest) }
        // A register consumes no event timestamp: the base only (StateMachine.prepare's formula).
        let timestamp = max(max(stateMachine.prepareTimestamp, stateMachine.commitTimestamp) + 1, realtime)
        stateMachine.advanceTimestamps(prepare: timestamp, commit: 0)
        return .success(append(
            operation: VSROperation.register.rawValue, body: UnsafeRawBufferPointer(start: nil, count: 0),
            timestamp: timestamp, client: client, request: 0, requestChecksum: requestChecksum, release: release,
            callback: callback))
    }

    private func submitRefusal() -> DurableSubmitError? {
        if let fault { return .faulted(fault) }
        guard status == .ready else { return .notReady }
        guard opHead - commitMin < UInt64(configuration.pipelinePrepareQueueMax) else { return .pipelineFull }
        // Above op_prepare_max the slot still holds an op the durable checkpoint needs.
        guard opHead + 1 <= configuration.opPrepareMax(checkpoint: checkpointOp) else { return .pipelineFull }
        return nil
    }

    private func append(
        operation: UInt8, body: UnsafeRawBufferPointer, timestamp: UInt64, client: UInt128, request: UInt32,
        requestChecksum: UInt128, release: UInt32, callback: @escaping ReplyCallback
    ) -> PrepareHeader {
        let op = opHead + 1
        let entry = entries[entryIndex(op: op)]
        precondition(entry.state == .free, "the pipeline bounds the prepares in flight")
        let working = superblock.working
        var header = PrepareHeader()
        header.frame.cluster = working.cluster
        header.frame.view = working.vsrState.view
        // The request's release: the reply echoes it (wire spec §8.2), and the reply is rebuilt
        // from this header on every replay.
        header.frame.release = release
        header.frame.size = UInt32(Constants.messageHeaderSize + body.count)
        header.parent = headChecksum
        header.client = client
        header.requestChecksum = requestChecksum
        header.checkpointId = working.checkpointId
        header.op = op
        header.commit = commitMin
        header.timestamp = timestamp
        header.request = request
        header.operation = operation
        let size = Int(header.frame.size)
        let padded = JournalEntry.sectorCeil(size)
        let bytes = entry.buffer.bytes
        if body.count > 0 {
            UnsafeMutableRawBufferPointer(rebasing: bytes[Constants.messageHeaderSize..<size]).copyMemory(from: body)
        }
        UnsafeMutableRawBufferPointer(rebasing: bytes[size..<padded]).initializeMemory(as: UInt8.self, repeating: 0)
        header.seal(body: UnsafeRawBufferPointer(rebasing: bytes[Constants.messageHeaderSize..<size]))
        bytes.storeBytes(of: header, toByteOffset: 0, as: PrepareHeader.self)
        entry.header = header
        entry.state = .queued
        entry.callback = callback
        opHead = op
        headChecksum = header.frame.checksum
        startWrites()
        return header
    }

    /// Hands queued prepares to the journal in op order, as many as it may write at once
    /// (`journalWritesMax` can be below the pipeline: one with the testing geometry).
    private func startWrites() {
        guard opHead > commitMin else { return }
        // Bounded by the pipeline.
        for op in (commitMin + 1)...opHead where journal.writesInFlight < configuration.journalWritesMax {
            let entry = entries[entryIndex(op: op)]
            guard entry.state == .queued else { continue }
            entry.state = .writing
            let padded = JournalEntry.sectorCeil(Int(entry.header.frame.size))
            journal.write(
                prepare: UnsafeRawBufferPointer(rebasing: entry.buffer.bytes[0..<padded]), callback: entry.writeCallback)
        }
    }

    private func prepareWritten(_ entry: DurableLedgerEntry, _ written: PrepareHeader) {
        precondition(entry.state == .writing, "a prepare is written once")
        precondition(written.frame.checksum == entry.header.frame.checksum, "the journal wrote this entry's prepare")
        entry.state = .durable
        startWrites()
        pump()
    }

    func entryIndex(op: UInt64) -> Int { Int(op % UInt64(entries.count)) }
}

/// One prepare of the pipeline: its message buffer (1 MiB, sector-aligned), the caller's reply
/// callback, and where it is.
final class DurableLedgerEntry {
    enum State { case free, queued, writing, durable }
    let buffer = AlignedBuffer(count: Constants.messageSizeMax)
    var header = PrepareHeader()
    var state = State.free
    var callback: ((Result<DurableReply, DurableLedgerFault>) -> Void)?
    var writeCallback: (PrepareHeader) -> Void = { _ in }
}

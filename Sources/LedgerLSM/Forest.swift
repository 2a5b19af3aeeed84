import LedgerIO
import LedgerKit

// The forest (storage spec §5 "LSM forest", §6 "Checkpoints and restart", §13 items 5–7;
// docs/lsm.md): every tree of a replica on one grid, one free set and one manifest log; the
// compaction beat of each committed op; the checkpoint at each checkpoint trigger; and open from
// a checkpoint followed by a replay of the ops after it.
//
// ## Beats (`compact(op:callback:)`, once per committed op, in op order)
//
//   half-bar start   the forest opens the free set's reservation session (`openReservations`)
//                    before any tree runs, so every tree plans and reserves inside it.
//   every beat       the trees' beats run side by side: the forest starts them in the order
//                    the trees were added and the beat ends when the last one calls back. A
//                    tree plans its half-bar (and reserves) inside `compact`, before it starts
//                    any IO, so reservations are taken in tree order and addresses depend only
//                    on the op sequence, whatever order IO completes in. Trees touch disjoint
//                    state but for the grid and the free set (acquire, forfeit and release are
//                    order-free inside a session, FreeSet.swift). The trees' jobs share the
//                    grid's write IOs (sized for twice one tree's jobs, plus the manifest log's
//                    writes): a job that finds every slot taken waits for one
//                    (`Grid.waitForWrite`). Side by side, one tree's merge CPU runs while other
//                    trees' reads and writes are in flight, instead of the beat waiting for
//                    each tree's IO in turn (docs/lsm.md "Speed and memory").
//   detached beats   a beat that is not a half-bar's last calls back as soon as its trees are
//                    started, while their reads, merges and writes go on: the caller prepares,
//                    prefetches and executes the next op meanwhile, and that op's `compact`
//                    waits for them before it starts (`deferredCallback`). Nothing the next op
//                    reads changes under it: within a half-bar the trees' jobs only read their
//                    inputs and write new blocks (manifest changes, releases and the memtable
//                    swap happen at the half-bar's last beat, which calls back only once done),
//                    and the next op's puts go to the mutable memtable, which no job reads. So
//                    the beat's IO wait overlaps the next op's CPU instead of adding to it. A
//                    job's read fault becomes its tree's fault at the half-bar's last beat
//                    (which reports it); a tree fault a detached beat does end with (a grid with
//                    no room for a half-bar's reservations) is reported by the next `compact`. The
//                    output blocks are the same either way (a beat's quota depends on its
//                    inputs only). Hosts wait for `isCompacting` to clear before they release
//                    the storage.
//   turns between    a tree's beat start sorts its memtable's new puts and merges a step of
//   trees            its immutable one (~0.1-1 ms for a batch of 8189). After a tree that sorted
//                    or merged at least `Constants.beatTurnValuesMin` values, the next tree
//                    starts on the event loop's next turn (`Storage.nextTurn`): meanwhile the
//                    loop sends the reply, reads the next request and starts its WAL write,
//                    so that write overlaps the beat's CPU instead of waiting for all of it.
//                    The trees still start in order and plan inside `compact`, so the grid is
//                    the same; a single transfer's trees sort a few values and start at once.
//   half-bar end     after the last tree: close the session; apply a deferred
//                    `checkpointDurable`; then, in a short session of its own (the fixed point
//                    of the log), reserve the manifest log's worst case for this point, append
//                    every tree's manifest events (trees in order, events in order), compact
//                    the log's oldest blocks (as many as were sealed at the previous half-bar end
//                    plus one, at most `manifestLogCompactBlocksMax`, never the newest), flush at
//                    a trigger, forfeit, close. Trees make manifest events only at their
//                    half-bar's last beat, so nothing is appended in between.
//
// ## Checkpoint (at the commit of the trigger op: the end of the bar after the checkpoint op)
//
//   1. The trigger's beat, then its half-bar end; the log flush seals the open block even if
//      partial (addresses from the log's reservation, acquired before the free set is encoded).
//   2. Once the flush is durable: the host's trailer (`checkpointTrailerWrite`: the client
//      sessions), then `FreeSetTrailers.write` (its own session; requires the
//      previous checkpoint durable), then `markCheckpointNotDurable` and the release of both
//      trailer chains (pending: freed once the checkpoint after this one is durable).
//   3. The beat calls back with a `ForestCheckpoint`: what the superblock's `CheckpointState`
//      stores. The caller writes the superblock.
//   4. The caller calls `checkpointDurable()` once the checkpoint is durable (spec §3: commit
//      of trigger + pipeline + 1; the commit stage before that op's beat). It must call it at
//      the same op in every run (it frees blocks: addresses depend on it) and before the next
//      trigger. Called while a half-bar's session is open, it takes effect at the half-bar's end
//      (blocks are never freed under open reservations): either way, before the next half-bar's
//      reservations, so the effect depends only on the op it was called at.
//
// Blocks released in checkpoint interval N stay acquired until checkpoint N+1 is durable
// (FreeSet's release protocol), so a crash at any point, even while a checkpoint is being
// written, leaves every block of the last durable checkpoint intact.
//
// ## Open and replay
//
//   `open(checkpoint:)` on a fresh forest over the same storage (trees added, nothing run):
//   read both free-set trailers (decode; the trailers' own blocks acquired and pending), open
//   the manifest log (its chain and extents), load each tree's tables (TreeOpen.swift). The
//   caller then replays ops checkpoint+1 … (re-putting what those ops put) calling
//   `compact(op:)` for each. Beats up to and including the checkpoint's trigger only do the
//   memtables' bookkeeping: the checkpoint was written after the trigger's beat, so its
//   manifest, free set and log already hold those beats' compaction (§13 item 7). After the
//   trigger the forest is in the state the original had right after writing the checkpoint
//   (same manifests, free set, log chain, memtables), and later beats write the same blocks at
//   the same addresses. The formatted grid is `ForestCheckpoint.formatted` (op 0): nothing to
//   read, nothing to skip.
//
// The log compaction count depends on a counter of sealed blocks; the original run resets it
// when it flushes at a checkpoint and an opened forest starts from zero, so both agree.
//
// ## Memory (at init)
//
//   grid (IO buffers, cache), free set bitsets, the manifest log's ring (sized for the trees'
//   worst-case events of one half-bar plus the blocks compaction may re-append), two trailers
//   (worst-case EWAH encodings). Beats allocate nothing but the checkpoint's trailer write
//   (FreeSetTrailers, once per checkpoint): trees are kept behind an internal protocol (one
//   dynamic call per tree per beat), callbacks are made once at init.

/// What the superblock's `CheckpointState` stores about the forest (LedgerLSM does not depend
/// on LedgerVSR): enough to open the forest as it was at the checkpoint.
public struct ForestCheckpoint: Equatable, Sendable {
    /// The checkpoint op (its trigger is one bar later).
    public var op: UInt64
    public var manifestNewest: BlockReference
    public var manifestOldest: BlockReference
    public var manifestBlockCount: UInt32
    public var freeSetAcquired: CheckpointTrailerReference
    public var freeSetReleased: CheckpointTrailerReference
    /// The highest acquired grid address (the trailers' blocks included): the grid's used
    /// extent, `CheckpointState.storage_size` in blocks (`storageSize(layout:)`).
    public var highestAcquiredAddress: UInt64

    public init(
        op: UInt64, manifestNewest: BlockReference, manifestOldest: BlockReference, manifestBlockCount: UInt32,
        freeSetAcquired: CheckpointTrailerReference, freeSetReleased: CheckpointTrailerReference,
        highestAcquiredAddress: UInt64
    ) {
        self.op = op
        self.manifestNewest = manifestNewest
        self.manifestOldest = manifestOldest
        self.manifestBlockCount = manifestBlockCount
        self.freeSetAcquired = freeSetAcquired
        self.freeSetReleased = freeSetReleased
        self.highestAcquiredAddress = highestAcquiredAddress
    }

    /// A formatted data file: no checkpoint yet, an empty grid.
    public static let formatted = ForestCheckpoint(
        op: 0, manifestNewest: .null, manifestOldest: .null, manifestBlockCount: 0, freeSetAcquired: .empty,
        freeSetReleased: .empty, highestAcquiredAddress: 0)

    /// The data file's logical size (storage spec §1): the zones before the grid plus the grid
    /// up to the highest acquired block.
    public func storageSize(layout: DataFileLayout) -> UInt64 {
        layout.sizeMin + highestAcquiredAddress * UInt64(layout.configuration.blockSize)
    }
}

/// Sizes of a forest: its trees (in beat order) and the shared parts.
public struct ForestConfiguration: Sendable, Equatable {
    /// The trees, in the order they are added and run.
    public var trees: [TreeConfiguration]
    public var cacheBlocks: Int
    public var gridReadsMax: Int
    public var gridReadQueueMax: Int
    public var manifestLogWritesMax: Int
    /// Blocks the manifest log's chain may span.
    public var manifestLogBlocksMax: Int
    /// Log blocks compacted at one half-bar end at most.
    public var manifestLogCompactBlocksMax: Int
    /// Distinct tables (live, or removed with events still in the log) the log tracks.
    public var manifestLogTablesMax: Int
    /// Memtable values a tree's beat start sorts or merges at or above which the loop turns
    /// before the next tree starts (see "Turns between trees"). Tests lower it to turn on small
    /// batches, or raise it past any batch to prove turns leave the grid unchanged.
    public var beatTurnValuesMin = Constants.beatTurnValuesMin

    public init(
        trees: [TreeConfiguration], cacheBlocks: Int = 64, gridReadsMax: Int = 8, gridReadQueueMax: Int = 64,
        manifestLogWritesMax: Int = 2, manifestLogBlocksMax: Int = 1024, manifestLogCompactBlocksMax: Int = 2,
        manifestLogTablesMax: Int? = nil
    ) {
        precondition(!trees.isEmpty, "a forest has a tree")
        precondition(manifestLogCompactBlocksMax >= 1, "the manifest log is compacted")
        self.trees = trees
        self.cacheBlocks = cacheBlocks
        self.gridReadsMax = gridReadsMax
        self.gridReadQueueMax = gridReadQueueMax
        self.manifestLogWritesMax = manifestLogWritesMax
        self.manifestLogBlocksMax = manifestLogBlocksMax
        self.manifestLogCompactBlocksMax = manifestLogCompactBlocksMax
        var liveTablesMax = 0
        for tree in trees { liveTablesMax += tree.manifest.levelCount * tree.manifest.tablesMax }
        // Removed tables linger in the log until compaction passes their events.
        self.manifestLogTablesMax = manifestLogTablesMax ?? 8 * liveTablesMax
    }

    /// Grid writes: twice one tree's jobs at their cap, plus the manifest log's (trailers write
    /// alone). The trees' beats run side by side, so their jobs share these slots; a job that
    /// finds none free waits for one (`Grid.waitForWrite`). Each slot holds a block buffer,
    /// resident: production 2 × 10 + 2 slots = 11 MiB. More would not help on one device: at
    /// 8 writes of 512 KiB in flight this machine's disk is at its bandwidth (fio, docs/lsm.md).
    public var gridWritesMax: Int {
        var treeWrites = 0
        for tree in trees { treeWrites = max(treeWrites, tree.gridWritesMax) }
        return 2 * treeWrites + manifestLogWritesMax
    }

    /// Block buffers the grid lends: every tree's compaction jobs build their output blocks in
    /// them and write them without a copy (`Grid.write(exchanging:)`). Taken from the jobs'
    /// own allocation (4 blocks each instead of 6): the memory allocated is unchanged, but the
    /// cache touches its buffers at init, so these are resident from start-up (production:
    /// 25 trees × 4 jobs × 2 × 512 KiB = 100 MiB) where an idle job's were not.
    public var gridCallerBlocks: Int {
        var blocks = 0
        for tree in trees { blocks += tree.gridCallerBlocks }
        return blocks
    }

    /// Manifest events one half-bar end appends at most, all trees together.
    public var manifestEventsPerHalfBarMax: Int {
        var events = 0
        for tree in trees { events += tree.manifestEventsPerHalfBarMax }
        return events
    }
}

/// Why the forest stopped. Sticky: later beats report it again.
public enum ForestFault: Error, Equatable, Sendable {
    case tree(treeId: UInt16, TreeFault)
    /// The manifest log's oldest block could not be read for compaction.
    case manifestLog(ManifestLogOpenError)
    /// No room on the grid for the manifest log's blocks or the checkpoint's trailers.
    case gridFull
}

/// Why a checkpoint cannot be opened: bytes from disk that do not hold together.
public enum ForestOpenError: Error, Equatable, Sendable {
    /// The op is not a checkpoint op, or op 0 with non-empty references.
    case checkpointOp(UInt64)
    case freeSet(CheckpointTrailerError)
    /// The decoded free set's extent is not the checkpoint's.
    case highestAcquiredAddress(expected: UInt64, found: UInt64)
    case manifestLog(ManifestLogOpenError)
    /// A table of a tree the forest does not have.
    case unknownTree(TableIdentity)
    /// A table whose index block the free set holds as free or released.
    case tableNotAcquired(TableIdentity)
    case tree(treeId: UInt16, TreeOpenError)
}

/// A tree as the forest drives it (Tree.swift, TreeOpen.swift). Internal: the public API adds
/// concrete `Tree`s.
protocol ForestMember<GridStorage>: AnyObject {
    associatedtype GridStorage: Storage
    var treeId: UInt16 { get }
    var fault: TreeFault? { get }
    func compact(op: UInt64, callback: @escaping () -> Void)
    func compactSkipped(op: UInt64)
    var manifestEventCount: Int { get }
    var holdsSmallImmutableTables: Bool { get set }
    var compactionBlockCounts: (written: Int, read: Int) { get }
    func drainManifestEvents(into log: ManifestLog<GridStorage>)
    func open(tables: [TableInfo]) throws(TreeOpenError)
}

extension Tree: ForestMember {
    typealias GridStorage = S
}

public final class Forest<S: Storage> {
    public typealias BeatCallback = (Result<ForestCheckpoint?, ForestFault>) -> Void
    public typealias OpenCallback = (Result<Void, ForestOpenError>) -> Void

    public let configuration: ForestConfiguration
    public let storageConfiguration: StorageConfiguration
    public let grid: Grid<S>
    public let freeSet: FreeSet
    public let manifestLog: ManifestLog<S>
    let trailerAcquired: CheckpointTrailer<S>
    let trailerReleased: CheckpointTrailer<S>
    private var members: [any ForestMember<S>] = []
    /// Each member's beat as a closure made in `add<Value>`, where the tree's type is known: a
    /// call through the `ForestMember` existential reaches the unspecialized generic `compact`
    /// (measured: about half of a beat went to generic metadata lookups and witness calls for
    /// key comparisons), a closure made in the (specialized) `add` calls the specialized one.
    /// Each tree's beat, with the forest's done callback bound in once (`add`): passing the
    /// callback at every call would convert it to and from the array's abstraction, allocating
    /// twice per tree per beat.
    private var memberBeats: [(UInt64) -> Int] = []

    /// The latest checkpoint written or opened (0: the formatted grid).
    public private(set) var checkpointOp: UInt64 = 0
    /// The op of the last beat (0 before the first).
    public private(set) var opLast: UInt64 = 0
    /// Beats up to this op replay a checkpoint's bar: bookkeeping only.
    public private(set) var replayThroughOp: UInt64 = 0
    public private(set) var fault: ForestFault?
    /// From the trigger's log flush until its beat calls back.
    public private(set) var isCheckpointing = false

    private enum State { case ready, opening, openFailed }
    private var state = State.ready
    private var isCheckpointDurablePending = false

    // The beat in progress.
    private var beatOp: UInt64 = 0
    private var beatCallback: BeatCallback?
    /// Trees whose beat has not called back yet (plus one while they are being started).
    private var membersPending = 0
    /// The beat called back before its trees were done (see "Detached beats").
    private var isBeatDetached = false
    /// Whether beats may detach (see "Detached beats"). Off, every beat runs to its end before
    /// it calls back: the same grid, slower (ForestTests
    /// `detachedBeatsWriteTheSameGridAsBeatsThatRunToTheirEnd` proves the two agree).
    public var detachesBeats = true
    /// Beats that called back before their trees were done, since init (for tests and metrics).
    public private(set) var detachedBeatCount = 0
    /// A `compact` call waiting for the detached beat before it (op and callback).
    private var deferredOp: UInt64 = 0
    private var deferredCallback: BeatCallback?
    private var memberDoneCallback: () -> Void = {}
    /// Run at the start of every `compact` (`addBeatStart`).
    private var beatStarts: [() -> Void] = []
    /// Trees of the beat in progress started so far (see "Turns between trees").
    private var membersStarted = 0
    /// The turn after which the next tree's beat starts.
    private let memberTurn = StorageCompletion()
    /// Loop turns taken between trees' beat starts, since init (for tests and metrics).
    public private(set) var beatTurnCount = 0

    // Manifest log compaction and flush at a half-bar end.
    private var logCompactRemaining = 0
    /// Log blocks compacted since open (sealed blocks = chain blocks + compacted ones).
    private var logCompactedTotal = 0
    /// Sealed blocks at the previous half-bar end's start (reset at checkpoints: see header).
    private var logSealedMark = 0
    private var logIsSynchronous = false
    private var logDoneSynchronously = false
    private var logCompactCallback: (ManifestLogOpenError?) -> Void = { _ in }
    private var flushIsSynchronous = false
    private var flushDoneSynchronously = false
    private var flushDoneCallback: () -> Void = {}
    private var hostTrailerIsSynchronous = false
    private var hostTrailerDoneSynchronously = false
    private var hostTrailerDoneCallback: () -> Void = {}
    private var trailersAreSynchronous = false
    private var trailersDoneSynchronously = false
    private var trailersDoneCallback: () -> Void = {}

    // Open.
    private var openCheckpoint = ForestCheckpoint.formatted
    private var openCallback: OpenCallback?

    public init(storage: S, configuration: ForestConfiguration) {
        let storageConfiguration = storage.layout.configuration
        precondition(storageConfiguration.lsmCompactionOps >= 4,
                     "a half-bar has two beats: every tree reserves at its first, before any forfeits at its last")
        self.configuration = configuration
        self.storageConfiguration = storageConfiguration
        grid = Grid(
            storage: storage, cacheBlocks: configuration.cacheBlocks, readsMax: configuration.gridReadsMax,
            writesMax: configuration.gridWritesMax, readQueueMax: configuration.gridReadQueueMax,
            callerBlocks: configuration.gridCallerBlocks, warmReadsMax: configuration.gridReadsMax / 2)
        freeSet = FreeSet(blockCount: storageConfiguration.gridBlockCountMax)
        var levelCount = 1
        for tree in configuration.trees { levelCount = max(levelCount, tree.manifest.levelCount) }
        let entriesPerBlock = ManifestLogBlock.entryCountMax(blockSize: storageConfiguration.blockSize)
        // One half-bar end: the trees' events, the compacted blocks' re-appends, the open block,
        // the flush's block, and one to spare; all may wait at once (appends are synchronous).
        let appendsMax = configuration.manifestEventsPerHalfBarMax
            + configuration.manifestLogCompactBlocksMax * entriesPerBlock
        let queueBlocksMax = appendsMax / entriesPerBlock + 3
        manifestLog = ManifestLog(
            grid: grid, freeSet: freeSet, levelCount: levelCount, tablesMax: configuration.manifestLogTablesMax,
            blocksMax: configuration.manifestLogBlocksMax, queueBlocksMax: queueBlocksMax,
            writesMax: configuration.manifestLogWritesMax)
        let chunkSize = CheckpointTrailerBlock.chunkSizeDefault(blockSize: storageConfiguration.blockSize)
        let trailerBlocksMax = CheckpointTrailer<S>.freeSetBlockCountMax(freeSet, chunkSize: chunkSize)
        trailerAcquired = CheckpointTrailer(grid: grid, kind: .freeSetAcquired, blockCountMax: trailerBlocksMax)
        trailerReleased = CheckpointTrailer(grid: grid, kind: .freeSetReleased, blockCountMax: trailerBlocksMax)
        var readsNeeded = 2
        for tree in configuration.trees {
            readsNeeded += tree.lookupsMax + tree.jobsPerHalfBarMax + TreeScanReads.perTreeMax
        }
        precondition(grid.readsMax + grid.readQueueMax >= readsNeeded,
                     "the grid queues every tree's lookups, scans and jobs, the log's and a trailer's read")
        members.reserveCapacity(configuration.trees.count)
        memberBeats.reserveCapacity(configuration.trees.count)
        memberDoneCallback = { [unowned self] in self.memberDone() }
        memberTurn.callback = { [unowned self] _ in self.startNextMember() }
        logCompactCallback = { [unowned self] error in self.logCompactDone(error) }
        flushDoneCallback = { [unowned self] in self.flushDone() }
        trailersDoneCallback = { [unowned self] in self.trailersDone() }
        hostTrailerDoneCallback = { [unowned self] in self.hostTrailerDone() }
    }

    /// The host's own checkpoint trailer (the replica's client sessions, storage spec §6),
    /// written at each checkpoint trigger once the manifest log is flushed and before the free
    /// set is encoded, outside any reservation session: the blocks it acquires (in a session of
    /// its own) are then acquired in the encoding, as `CheckpointTrailer`'s protocol requires.
    /// It gets the trigger op (the blocks' snapshot) and a callback to run once its blocks are
    /// durable (not before it returns); returning false means the grid has no room for them
    /// (the beat then fails with `.gridFull`). Nil: no host trailer.
    public var checkpointTrailerWrite: ((_ snapshot: UInt64, _ done: @escaping () -> Void) -> Bool)?

    /// Adds the next tree of `configuration.trees` (built on this forest's grid and free set),
    /// before the first beat or `open`.
    public func add<Value: TreeValue>(_ tree: Tree<Value, S>) {
        precondition(opLast == 0, "trees are added before the first beat")
        precondition(state == .ready, "trees are added before open")
        precondition(members.count < configuration.trees.count, "the configuration names every tree")
        precondition(tree.configuration == configuration.trees[members.count], "trees are added in configuration order")
        precondition(tree.grid === grid, "a forest's trees share its grid")
        precondition(tree.freeSet === freeSet, "a forest's trees share its free set")
        precondition(tree.configuration.compactionOps == storageConfiguration.lsmCompactionOps,
                     "a tree's bar is the storage's lsm_compaction_ops")
        precondition(TreeCompaction<Value, S>.writesInFlightMax * tree.configuration.jobsPerHalfBarMax
                     == tree.configuration.gridWritesMax, "the forest sizes the grid for the tree's writes")
        precondition(tree.compactionExchangesBlocks, "a forest's trees write compaction blocks without a copy")
        for member in members { precondition(member.treeId != tree.treeId, "tree ids are unique") }
        tree.holdsSmallImmutableTables = holdsSmallImmutableTables
        members.append(tree)
        // A held immutable table is flushed in the bar that ends at a checkpoint trigger, so
        // the checkpoint holds every value of the ops up to it (Tree.swift, "Small immutable
        // tables"; the trigger moves on only when that checkpoint is written, after the bar).
        tree.barEndsAtCheckpointTrigger = { [unowned self] barLastOp in barLastOp == self.checkpointTriggerOp }
        let done = memberDoneCallback
        memberBeats.append { op in
            tree.compact(op: op, callback: done)
            return tree.beatMemtableValues
        }
    }

    /// Adds work to run at the start of every `compact`, before anything of the beat: a groove
    /// puts the changes it deferred to the op's end (Groove.swift, "Deferred updates"). Added
    /// before the first beat, like the trees.
    public func addBeatStart(_ work: @escaping () -> Void) {
        precondition(opLast == 0, "beat-start work is added before the first beat")
        beatStarts.append(work)
    }

    /// Whether the trees hold small immutable tables back from their flush (Tree.swift, "Small
    /// immutable tables"; on by default). Set before the first beat, the same in every run.
    public var holdsSmallImmutableTables = true {
        didSet {
            precondition(opLast == 0, "set before the first beat: replicas and replays must agree")
            for index in members.indices { members[index].holdsSmallImmutableTables = holdsSmallImmutableTables }
        }
    }

    /// The op whose beat writes the next checkpoint.
    public var checkpointTriggerOp: UInt64 { storageConfiguration.checkpointTrigger(after: checkpointOp) }

    private var halfBarBeats: UInt64 { UInt64(storageConfiguration.lsmCompactionOps / 2) }

    // MARK: Beats

    /// Runs the compaction beat of `op` (after its batch committed, in op order); `callback`
    /// gets the checkpoint when `op` is a checkpoint trigger, nil otherwise, or the fault. It may
    /// run before `compact` returns.
    public func compact(op: UInt64, callback: @escaping BeatCallback) {
        precondition(state == .ready, "a forest beats once open (or fresh)")
        precondition(members.count == configuration.trees.count, "every tree was added")
        precondition(beatCallback == nil && deferredCallback == nil, "one beat at a time")
        precondition(op == opLast + 1, "one beat per op, in op order")
        // The op's deferred puts join its puts: before the trees sort them (or a replayed
        // beat skips them), whatever beat is still detached.
        for work in beatStarts { work() }
        opLast = op
        if op <= replayThroughOp {
            precondition(membersPending == 0, "replayed bookkeeping beats follow open")
            for member in members { member.compactSkipped(op: op) }
            return callback(.success(nil))
        }
        if membersPending > 0 {
            // The previous beat is detached: this one starts when its trees are done.
            precondition(isBeatDetached, "only a detached beat's trees run between beats")
            deferredOp = op
            deferredCallback = callback
            return
        }
        startBeat(op: op, callback: callback)
    }

    /// Whether a beat is still running: called back or not, some tree's compaction IO or merge
    /// is in flight, or a grid write a finished beat left in flight (TreeCompaction.swift
    /// "Writes across beats"). A host must let it finish (or crash) before it releases the
    /// storage.
    public var isCompacting: Bool {
        membersPending > 0 || beatCallback != nil || deferredCallback != nil || grid.writesPending > 0
    }

    /// Each tree's compaction blocks written and read since init, in tree order (diagnostics:
    /// where the grid's IO goes).
    public var compactionBlockCounts: [(treeId: UInt16, written: Int, read: Int)] {
        members.map { member in
            let counts = member.compactionBlockCounts
            return (member.treeId, counts.written, counts.read)
        }
    }

    private func startBeat(op: UInt64, callback: @escaping BeatCallback) {
        if let fault { return callback(.failure(fault)) }
        beatOp = op
        beatCallback = callback
        if op % halfBarBeats == 0 { freeSet.openReservations() }
        runMembers()
    }

    /// Starts every tree's beat, in tree order; the beat goes on when the last calls back. The
    /// extra count held while starting them keeps a tree that calls back before `compact`
    /// returns from ending the beat early. A beat that may detach (see "Detached beats") calls
    /// back as soon as its trees are started.
    private func runMembers() {
        precondition(membersPending == 0, "the previous beat's trees are done")
        membersPending = members.count + 1
        membersStarted = 0
        startNextMember()
    }

    /// Starts the next trees' beats, up to one whose start sorted or merged enough to let the
    /// loop turn before the rest (see "Turns between trees").
    private func startNextMember() {
        // Each call starts one tree, and each tree's start either turns the loop or starts the
        // next: bounded by the tree count.
        while true {
            let values = memberBeats[membersStarted](beatOp)
            membersStarted += 1
            if membersStarted == memberBeats.count { break }
            if values >= configuration.beatTurnValuesMin {
                beatTurnCount += 1
                return grid.storage.nextTurn(memberTurn)
            }
        }
        if detachesBeats && membersPending > 1 && beatOp % halfBarBeats != halfBarBeats - 1 {
            // Some tree still waits for IO; none can finish before this returns.
            isBeatDetached = true
            detachedBeatCount += 1
            membersPending -= 1
            return finishBeat(.success(nil))
        }
        memberDone()
    }

    /// The detached beat's trees are done: the `compact` call that waited for them starts.
    private func startDeferredBeat() {
        guard let callback = deferredCallback else { return }
        deferredCallback = nil
        startBeat(op: deferredOp, callback: callback)
    }

    private func memberDone() {
        precondition(membersPending > 0, "a tree's beat calls back once")
        membersPending -= 1
        if membersPending == 0 { membersDone() }
    }

    private func membersDone() {
        precondition(grid.writeWaitersPending == 0, "every write of the beat completed, so no job waits for a slot")
        let wasDetached = isBeatDetached
        isBeatDetached = false
        for member in members {
            if let treeFault = member.fault {
                fault = .tree(treeId: member.treeId, treeFault)
                // A detached beat has called back: the next beat reports the fault.
                return wasDetached ? startDeferredBeat() : finishBeat(.failure(fault!))
            }
        }
        guard beatOp % halfBarBeats == halfBarBeats - 1 else {
            return wasDetached ? startDeferredBeat() : finishBeat(.success(nil))
        }
        precondition(!wasDetached, "a half-bar's last beat does not detach")
        // Op 1 ends a half-bar that began at op 0, which has no beat: no session to close.
        if freeSet.isReserving { freeSet.closeReservations() }
        if isCheckpointDurablePending {
            isCheckpointDurablePending = false
            freeSet.markCheckpointDurable()
        }
        startLogPoint()
    }

    private func finishBeat(_ result: Result<ForestCheckpoint?, ForestFault>) {
        guard let callback = beatCallback else { preconditionFailure("a beat has a callback") }
        beatCallback = nil
        callback(result)
    }

    // MARK: The manifest log's fixed point (half-bar end)

    private var logSealedTotal: Int { Int(manifestLog.blockCount) + logCompactedTotal }

    private func startLogPoint() {
        freeSet.openReservations()
        var events = 0
        for member in members { events += member.manifestEventCount }
        let sealedSince = logSealedTotal - logSealedMark
        logSealedMark = logSealedTotal
        // Spec §5: compact at least as many blocks as were appended, plus one; never the newest.
        logCompactRemaining = max(0, min(
            configuration.manifestLogCompactBlocksMax, sealedSince + 1, Int(manifestLog.blockCount) - 1))
        let appendsMax = events + logCompactRemaining * manifestLog.entriesPerBlock
        guard manifestLog.reserve(appendsMax: appendsMax, snapshot: beatOp) else {
            freeSet.closeReservations()
            fault = .gridFull
            return finishBeat(.failure(.gridFull))
        }
        for member in members { member.drainManifestEvents(into: manifestLog) }
        compactLog()
    }

    /// Compacts the log's oldest blocks one after another (each a read, then `compactFinish`
    /// at this fixed point). A read served from memory is absorbed by the loop.
    private func compactLog() {
        // Each turn compacts one block: bounded by manifestLogCompactBlocksMax.
        while logCompactRemaining > 0 && fault == nil {
            guard manifestLog.canCompact else {
                logCompactRemaining = 0
                break
            }
            logIsSynchronous = true
            logDoneSynchronously = false
            manifestLog.compactBegin(callback: logCompactCallback)
            logIsSynchronous = false
            guard logDoneSynchronously else { return }
        }
        logCompacted()
    }

    private func logCompactDone(_ error: ManifestLogOpenError?) {
        if let error {
            fault = .manifestLog(error)
        } else {
            manifestLog.compactFinish()
            logCompactedTotal += 1
        }
        logCompactRemaining -= 1
        if logIsSynchronous {
            logDoneSynchronously = true
            return
        }
        compactLog()
    }

    private func logCompacted() {
        if let fault {
            manifestLog.forfeit()
            freeSet.closeReservations()
            return finishBeat(.failure(fault))
        }
        guard beatOp == checkpointTriggerOp else {
            manifestLog.forfeit()
            freeSet.closeReservations()
            return finishBeat(.success(nil))
        }
        isCheckpointing = true
        flushIsSynchronous = true
        flushDoneSynchronously = false
        manifestLog.flush(callback: flushDoneCallback)
        flushIsSynchronous = false
        // The flush sealed its blocks inside `flush`: the reservation may go.
        manifestLog.forfeit()
        freeSet.closeReservations()
        // An opened forest counts from zero here (see the header).
        logSealedMark = logSealedTotal
        if flushDoneSynchronously { writeHostTrailer() }
    }

    // MARK: Checkpoint

    private func flushDone() {
        if flushIsSynchronous {
            flushDoneSynchronously = true
            return
        }
        writeHostTrailer()
    }

    /// The host's trailer first (its blocks must be in the free set's encoding), then ours.
    private func writeHostTrailer() {
        guard let write = checkpointTrailerWrite else { return writeTrailers() }
        hostTrailerIsSynchronous = true
        hostTrailerDoneSynchronously = false
        let started = write(beatOp, hostTrailerDoneCallback)
        hostTrailerIsSynchronous = false
        guard started else {
            isCheckpointing = false
            fault = .gridFull
            return finishBeat(.failure(.gridFull))
        }
        if hostTrailerDoneSynchronously { writeTrailers() }
    }

    private func hostTrailerDone() {
        if hostTrailerIsSynchronous {
            hostTrailerDoneSynchronously = true
            return
        }
        writeTrailers()
    }

    private func writeTrailers() {
        precondition(freeSet.isCheckpointDurable,
                     "the previous checkpoint is durable before the next is written (FreeSet release protocol)")
        precondition(manifestLog.isFlushed, "the manifest log is durable before the free set is encoded")
        trailersAreSynchronous = true
        trailersDoneSynchronously = false
        let written = FreeSetTrailers.write(
            acquired: trailerAcquired, released: trailerReleased, freeSet: freeSet, snapshot: beatOp,
            callback: trailersDoneCallback)
        trailersAreSynchronous = false
        guard written else {
            isCheckpointing = false
            fault = .gridFull
            return finishBeat(.failure(.gridFull))
        }
        if trailersDoneSynchronously { trailersWritten() }
    }

    private func trailersDone() {
        if trailersAreSynchronous {
            trailersDoneSynchronously = true
            return
        }
        trailersWritten()
    }

    private func trailersWritten() {
        freeSet.markCheckpointNotDurable()
        trailerAcquired.releaseBlocks(freeSet)
        trailerReleased.releaseBlocks(freeSet)
        checkpointOp = storageConfiguration.checkpointAfter(checkpointOp)
        precondition(checkpointOp + UInt64(storageConfiguration.lsmCompactionOps) == beatOp,
                     "a checkpoint is written at its trigger")
        let checkpoint = ForestCheckpoint(
            op: checkpointOp, manifestNewest: manifestLog.newest, manifestOldest: manifestLog.oldest,
            manifestBlockCount: manifestLog.blockCount, freeSetAcquired: trailerAcquired.reference,
            freeSetReleased: trailerReleased.reference, highestAcquiredAddress: freeSet.highestAcquiredAddress)
        isCheckpointing = false
        finishBeat(.success(checkpoint))
    }

    /// The latest checkpoint (written, or opened) is durable: blocks released before it are
    /// free from now on (or from the end of the current half-bar, if one is in progress). Call
    /// between beats, at the same op in every run (see the header).
    public func checkpointDurable() {
        precondition(beatCallback == nil, "a checkpoint becomes durable between beats")
        precondition(!isCheckpointDurablePending, "a checkpoint becomes durable once")
        precondition(!freeSet.isCheckpointDurable, "a checkpoint becomes durable once, after it is written or opened")
        if freeSet.isReserving {
            isCheckpointDurablePending = true
        } else {
            freeSet.markCheckpointDurable()
        }
    }

    /// Whether the latest checkpoint is durable (a deferred call counts).
    public var isCheckpointDurable: Bool { freeSet.isCheckpointDurable || isCheckpointDurablePending }

    // MARK: Open

    /// Loads `checkpoint` into this fresh forest (every tree added, no beat run); `callback`
    /// gets the outcome (possibly before `open` returns). The caller then replays the ops after
    /// `checkpoint.op`. After an error the forest is unusable.
    public func open(checkpoint: ForestCheckpoint, callback: @escaping OpenCallback) {
        precondition(state == .ready, "a forest opens once")
        precondition(opLast == 0, "a forest opens before its first beat")
        precondition(members.count == configuration.trees.count, "every tree was added")
        if checkpoint.op == 0 {
            // The formatted grid: the fresh state already is it.
            guard checkpoint == .formatted else {
                state = .openFailed
                return callback(.failure(.checkpointOp(0)))
            }
            return callback(.success(()))
        }
        guard (checkpoint.op + 1) % UInt64(storageConfiguration.vsrCheckpointOps) == 0 else {
            state = .openFailed
            return callback(.failure(.checkpointOp(checkpoint.op)))
        }
        state = .opening
        openCheckpoint = checkpoint
        openCallback = callback
        FreeSetTrailers.open(
            acquired: trailerAcquired, released: trailerReleased, acquiredReference: checkpoint.freeSetAcquired,
            releasedReference: checkpoint.freeSetReleased, freeSet: freeSet
        ) { [unowned self] result in self.freeSetOpened(result) }
    }

    private func freeSetOpened(_ result: Result<Void, CheckpointTrailerError>) {
        if case .failure(let error) = result { return finishOpen(.failure(.freeSet(error))) }
        let highest = freeSet.highestAcquiredAddress
        guard highest == openCheckpoint.highestAcquiredAddress else {
            return finishOpen(.failure(.highestAcquiredAddress(expected: openCheckpoint.highestAcquiredAddress, found: highest)))
        }
        manifestLog.open(
            newest: openCheckpoint.manifestNewest, oldest: openCheckpoint.manifestOldest,
            blockCount: openCheckpoint.manifestBlockCount
        ) { [unowned self] result in self.manifestLogOpened(result) }
    }

    private func manifestLogOpened(_ result: Result<[TableInfo], ManifestLogOpenError>) {
        let tables: [TableInfo]
        switch result {
        case .failure(let error): return finishOpen(.failure(.manifestLog(error)))
        case .success(let live): tables = live
        }
        for table in tables {
            guard members.contains(where: { $0.treeId == table.treeId }) else {
                return finishOpen(.failure(.unknownTree(table.identity)))
            }
            // Checked, not assumed: the manifest and the free set come from different trailers.
            guard table.address <= UInt64(freeSet.blockCount), !freeSet.isFree(table.address),
                  !freeSet.isReleased(table.address)
            else { return finishOpen(.failure(.tableNotAcquired(table.identity))) }
        }
        for member in members {
            do throws(TreeOpenError) {
                try member.open(tables: tables)
            } catch {
                return finishOpen(.failure(.tree(treeId: member.treeId, error)))
            }
        }
        checkpointOp = openCheckpoint.op
        opLast = openCheckpoint.op
        replayThroughOp = openCheckpoint.op + UInt64(storageConfiguration.lsmCompactionOps)
        logCompactedTotal = 0
        logSealedMark = logSealedTotal
        finishOpen(.success(()))
    }

    private func finishOpen(_ result: Result<Void, ForestOpenError>) {
        guard let callback = openCallback else { preconditionFailure("an open has a callback") }
        openCallback = nil
        if case .failure = result { state = .openFailed } else { state = .ready }
        callback(result)
    }
}

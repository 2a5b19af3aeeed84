import LedgerIO
import LedgerKit

// One LSM tree (storage spec §5 "Trees", "Memtables", "Compaction"; docs/lsm.md): two
// memtables, levels of tables on the grid described by the manifest, point lookups, and
// compaction run in beats.
//
// ## Schedule (beat = one `compact(op:)`, bar = `compactionOps` beats, half-bar = half of it)
//
//   every beat           the mutable memtable sorts the puts since the last beat into a run.
//   1st half beats       the immutable memtable merges its runs, a paced step per beat.
//   beat 0 (1st half)    plan: for even levels A (0, 2, 4, …) holding at least
//                        `tableCountMax(A)` visible tables (level 0: half a table's values,
//                        see "Level 0"), a job A → A+1.
//   beat h (2nd half)    plan: the immutable memtable → 0 (merged with the level-0 tables it
//                        overlaps), and jobs for odd levels A (1, 3, 5, …) at their limit.
//   last beat of a half  apply every job's manifest change (outputs `snapshotMin = S`, inputs
//                        retired and removed, moves), release input blocks, forfeit the
//                        reservations; S = the op after the half-bar's last beat.
//   last beat of a bar   (after the above) the mutable memtable becomes immutable (swap): its
//                        runs are kept, merged into one over the next first half-bar.
//
// A level compacts when it is *at* its limit rather than over it: it loses a table in one
// half-bar and gains at most one (a flush or compaction output: every output table but the
// last is full) in the other, so after every bar it holds at most `tableCountMax` tables.
//
// ## Level 0, the landing level
//
// The immutable table's flush merges with the level-0 tables its keys overlap. A tree keyed
// by a random field overlaps all of them, so if level 0 held many full tables (the spec's
// level 0 holds 8), a flush of a few hundred values (a held table flushed at a checkpoint
// trigger, see below) would rewrite them all: ~30 ms of a beat for each of the half-bar's 16
// beats on the debit/credit trees, the single-request p99 after a load. So level 0 is a
// landing level of at most `landingLevelTablesMax` (2) tables: it compacts into level 1 (a
// first half-bar's job, one table per half-bar) once it holds half a table's values, and a
// small flush merges only with what little it holds. Level i ≥ 1 holds growthFactor^i
// tables, as the spec's level i − 1 does. The price: values of a full flush are written once
// more (landing, then level 1), but only where keys overlap: ascending trees move the landed
// table down by metadata.
//
// ## Small immutable tables (storage spec §5 "Memtables": "unless the previous immutable
// table is under 50% full, in which case the next bar is merged into it")
//
// Flushing costs about the same whatever the immutable table holds: its keys overlap every
// level-0 table of a tree keyed by a random field (account ids), so a flush of 32 values
// rewrites all of level 0, as one of 262 k does. Small ops (one transfer each) then paid a
// full flush per bar. So at the second half-bar's start the tree *holds* the immutable table
// instead of flushing it when the table and the mutable one together are at most half a
// table (`mayHoldImmutable`): whatever the rest of the bar puts then still fits one table.
// At the bar's end the held table absorbs the mutable one's runs (`Memtable.absorb`) instead
// of swapping with it, and is merged over the next first half-bar like a fresh immutable
// table. It is flushed at the first second half-bar where it is over that size, or where the
// bar ends at a checkpoint trigger (`barEndsAtCheckpointTrigger`): a checkpoint must find every
// value of its ops in the grid, because replay re-puts only the ops after it (Forest.swift).
// The decision depends only on the op sequence, so replicas and replays agree.
//
// ## Pacing
//
// A job's work is its input values (memtable values, or the values of the A and B tables).
// Beat b (0-based) of a half-bar of h beats merges until (b + 1)/h of them are consumed, so
// each beat builds and writes about 1/h of the output blocks; the last beat finishes the job.
// A beat calls back when its quota is merged and its writes are durable. Jobs of one half-bar
// run side by side (they touch disjoint levels). Output addresses come from reservations taken
// at the half-bar's first beat in a fixed order (immutable, then levels ascending): the same
// op sequence gives the same addresses whatever order IO completes in.
//
// IO bounds: a job keeps at most 2 writes and 1 read in flight, a lookup 1 read. `init` checks
// that the grid has that many for this tree's jobs and lookups. A forest runs its trees' beats
// side by side on one grid: a job that finds every write slot taken (by other trees' jobs)
// waits for one (`Grid.waitForWrite`), and the grid queues a read for every job and lookup.
//
// Free-set sessions: if no session is open at a half-bar's start, the tree opens one and
// closes it at the half-bar's end. A forest opens the session itself (before its trees' first
// beat of the half-bar, calling them in a fixed order) and closes it after their last beat.
//
// ## Memory per tree (all allocated at init)
//
//   memtables       (3 × capacity + 2 × valuesPerBeatMax) × value size (see below)
//   jobs            jobsPerHalfBarMax (levelCount / 2 + 1) jobs × 4 blocks (A index/value,
//                   B index/value) + 2 output blocks (value, index) borrowed from the grid
//                   (`gridCallerBlocks`; the job's own when the grid lends none): a pool lent
//                   to the levels a half-bar plans, not one job per level (a half-bar runs at
//                   most that many; one per level kept 7 jobs where 4 can be busy: 525 MiB of
//                   buffers where 300 do)
//   lookups         lookupsMax contexts (levelCount table infos each); lookups read grid blocks
//                   in place, no buffers of their own.
//   manifest        levelCount × tablesMax table infos (+ keys).
// Testing (4 KiB blocks, 7 levels: 4 jobs): 96 KiB of job buffers; production (512 KiB blocks,
// 8 levels: 5 jobs): 15 MiB (10 MiB the jobs', 5 MiB the grid's), resident only as used.
// The memtables share one merge buffer and sort each beat in a beat-sized scratch, so a tree
// holds 3 × capacity + 2 × valuesPerBeatMax values, touched only as used (Memtable.swift).
//
// ## Not done yet
//
//   - Snapshots older than the latest half-bar: retired tables are removed from the manifest
//     when the job is applied (no snapshot outlives a half-bar yet); memtables answer for the
//     latest state whatever the snapshot.
//   - The 50 % immutable merge; repair of faulty blocks (a fault stops the tree: `fault` is set
//     and later beats do nothing). Range scans are in TreeScan.swift; checkpoint, open and
//     replay are the forest's (Forest.swift, TreeOpen.swift).
//   - Replay skipping compaction done before a checkpoint is the forest's job (it decides which
//     beats run).

/// Sizes of one tree.
public struct TreeConfiguration: Sendable, Equatable {
    /// The most values one committed batch (one beat) puts into the tree.
    public var valuesPerBeatMax: Int
    /// Beats per bar (`StorageConfiguration.lsmCompactionOps`).
    public var compactionOps: Int
    public var manifest: ManifestConfiguration
    public var blockSize: Int
    /// Lookups in flight at once.
    public var lookupsMax: Int
    /// The largest scan `limit` of a tree whose values are never tombstones (object trees),
    /// which bounds a scan's memtable copy (TreeScan.swift); nil: any limit, and a copy of both
    /// memtables (trees with tombstones: a tombstone in range takes a copy slot and hides no
    /// result, so only both memtables bound the copy).
    public var scanValuesMax: Int?

    public init(
        valuesPerBeatMax: Int, compactionOps: Int, manifest: ManifestConfiguration, blockSize: Int,
        lookupsMax: Int = 16, scanValuesMax: Int? = nil
    ) {
        precondition(valuesPerBeatMax >= 1, "a beat may put a value")
        precondition(compactionOps >= 2, "a bar has two halves")
        precondition(compactionOps % 2 == 0, "a bar has two equal halves")
        precondition(lookupsMax >= 1, "a tree serves a lookup")
        if let scanValuesMax { precondition(scanValuesMax >= 1, "a capped scan may return a value") }
        self.valuesPerBeatMax = valuesPerBeatMax
        self.compactionOps = compactionOps
        self.manifest = manifest
        self.blockSize = blockSize
        self.lookupsMax = lookupsMax
        self.scanValuesMax = scanValuesMax
    }

    /// Values one memtable holds: one bar of puts.
    public var memtableCapacity: Int { compactionOps * valuesPerBeatMax }
    public var halfBarBeats: Int { compactionOps / 2 }

    /// Values a scan context's memtable copy holds: both memtables, or fewer with a cap (a
    /// tombstone-free copy stops after `limit` ≤ `scanValuesMax` values).
    public var scanCopyValuesMax: Int {
        let memtables = 2 * memtableCapacity
        guard let scanValuesMax else { return memtables }
        return min(scanValuesMax, memtables)
    }

    /// Bytes of one scan context of a tree of `Value`s (TreeScan.swift, "Memory per scan
    /// context"): the memtable copy, two blocks per level, and the memtable run cursors.
    public func scanContextBytes<Value: TreeValue>(_ type: Value.Type) -> Int {
        let copy = scanCopyValuesMax * Value.valueSize
        let blocks = 2 * manifest.levelCount * blockSize
        let runCursors = 2 * 2 * compactionOps * MemoryLayout<Int>.stride
        return copy + blocks + runCursors
    }

    /// Block buffers the tree's compaction jobs borrow from a grid that lends them
    /// (`Grid.takeBlock()`, two per job: `TreeCompaction.gridBlocksBorrowed`).
    var gridCallerBlocks: Int { jobsPerHalfBarMax * 2 }

    /// Value blocks per table: a memtable's worth, bounded by what an index block names.
    public func valueBlocksMax<Value: TreeValue>(_ type: Value.Type) -> Int {
        let perBlock = ValueBlock<Value>.capacity(blockSize: blockSize)
        let blocks = (memtableCapacity + perBlock - 1) / perBlock
        return min(blocks, IndexBlock<Value>.capacity(blockSize: blockSize))
    }
}

/// What the memtables say about a key.
public enum MemtableLookup<Value: TreeValue> {
    case found(Value)
    /// The newest value of the key is a tombstone: it does not exist.
    case deleted
    /// Neither memtable knows the key: the levels decide.
    case notInMemory
}

/// Why a tree stopped: a block it needed could not be read or decoded, or the grid is full.
public enum TreeFault: Error, Equatable, Sendable {
    case block(BlockFault)
    case corrupt(TableBlockError)
    case gridFull
    /// A compaction's outputs do not fit the level's manifest storage (`tablesMax`).
    case levelFull(level: Int)
}

public final class Tree<Value: TreeValue, S: Storage> {
    public let treeId: UInt16
    public let grid: Grid<S>
    public let freeSet: FreeSet
    public let configuration: TreeConfiguration
    public let valueBlocksMax: Int
    public internal(set) var manifest: Manifest<Value.Key>
    public private(set) var fault: TreeFault?
    /// Whether compaction builds output blocks in buffers borrowed from the grid and writes
    /// them without a copy (`Grid.write(exchanging:)`): true when the grid lends buffers.
    public var compactionExchangesBlocks: Bool { jobs[0].exchangesOutputBlocks }

    var mutable: Memtable<Value>
    var immutable: Memtable<Value>

    /// The pool of a half-bar's jobs (`jobsPerHalfBarMax`): `planJob` lends an idle one to a
    /// level B, `finishHalfBar` ends them all. Jobs plan in a fixed order (immutable, then
    /// levels ascending), so the pool's order is level B's order, as the manifest events need.
    private let jobs: [TreeCompaction<Value, S>]
    private var isHalfBarActive = false
    private var ownsReservationSession = false
    var beatCallback: (() -> Void)?
    /// Whether the bar ending at the given op ends at a checkpoint trigger, where a held
    /// immutable table must be flushed (see "Small immutable tables"). A forest sets it; a lone
    /// tree writes no checkpoint.
    public var barEndsAtCheckpointTrigger: (_ barLastOp: UInt64) -> Bool = { _ in false }
    /// Whether small immutable tables are held (the default). Off, every bar's table is flushed:
    /// tests that need tables on the grid after a light load turn it off. Change it only
    /// between runs (before the first beat), as replicas and replays must agree on it.
    public var holdsSmallImmutableTables = true
    /// The immutable table was held back from this bar's flush and absorbs the mutable one at
    /// the bar's end.
    private(set) var isImmutableHeld = false
    private var beatOp: UInt64 = 0
    /// The op of the last beat run; beats follow ops one by one (the schedule counts them).
    var beatOpLast: UInt64?
    private var beatJobsPending = 0
    var manifestEvents: [TableInfo] = []

    // Lookups (TreeLookup.swift).
    var lookupContexts: [TreeLookupContext<Value>] = []
    var lookupContextsFree: [Int] = []
    var lookupReadCallbacks: [GridReadHandler] = []
    // Scans (TreeScan.swift): contexts allocated at the first scan.
    var scans: TreeScans<Value, S>?

    public init(treeId: UInt16, grid: Grid<S>, freeSet: FreeSet, configuration: TreeConfiguration) {
        precondition(configuration.blockSize == grid.blockSize, "the tree's blocks are the grid's")
        precondition(configuration.manifest.levelCount >= 1, "a tree has a level")
        self.treeId = treeId
        self.grid = grid
        self.freeSet = freeSet
        self.configuration = configuration
        valueBlocksMax = configuration.valueBlocksMax(Value.self)
        let perBlock = ValueBlock<Value>.capacity(blockSize: configuration.blockSize)
        precondition(valueBlocksMax * perBlock >= configuration.memtableCapacity,
                     "a table holds a memtable: one index block names a bar's value blocks")
        // Half-bar jobs: the immutable memtable's plus one per other-parity source level.
        let levelCount = configuration.manifest.levelCount
        let jobsPerHalfBarMax = levelCount / 2 + 1
        precondition(grid.writesMax >= jobsPerHalfBarMax * TreeCompaction<Value, S>.writesInFlightMax,
                     "the grid has room for the writes of every job of a half-bar")
        precondition(configuration.gridCallerBlocks == jobsPerHalfBarMax * TreeCompaction<Value, S>.gridBlocksBorrowed,
                     "the grid's caller blocks for a tree are its jobs' output blocks")
        precondition(grid.readsMax + grid.readQueueMax >= configuration.lookupsMax + jobsPerHalfBarMax,
                     "the grid queues a read for every lookup and job (each waits for one at a time)")
        manifest = Manifest(treeId: treeId, configuration: configuration.manifest)
        // One merge buffer for both memtables (only the immutable one merges) and a beat's
        // worth of sort scratch each (Memtable.swift, "Memory").
        let mergeBuffer = MemtableMergeBuffer<Value>(capacity: configuration.memtableCapacity)
        mutable = Memtable(
            capacity: configuration.memtableCapacity, runsMax: configuration.compactionOps,
            sortScratchCapacity: configuration.valuesPerBeatMax, mergeBuffer: mergeBuffer)
        immutable = Memtable(
            capacity: configuration.memtableCapacity, runsMax: configuration.compactionOps,
            sortScratchCapacity: configuration.valuesPerBeatMax, mergeBuffer: mergeBuffer)
        jobs = (0..<jobsPerHalfBarMax).map { _ in
            TreeCompaction(
                treeId: treeId, grid: grid, freeSet: freeSet, valueBlocksMax: configuration.valueBlocksMax(Value.self),
                tablesMax: configuration.manifest.tablesMax)
        }
        manifestEvents.reserveCapacity(4 * configuration.manifest.tablesMax)
        for job in jobs {
            job.onBeatDone = { [unowned self] in self.jobBeatDone() }
        }
        initLookups()
    }

    // MARK: Memtables

    /// Puts `value` (a tombstone deletes its key); a later put of a key wins.
    @inline(__always)
    public func put(_ value: Value) {
        precondition(mutable.count < mutable.capacity, "a bar puts at most compactionOps × valuesPerBeatMax values")
        mutable.put(value)
        if let putKeyBound, !(putKeyBound < value.key) { return }
        putKeyBound = value.key
    }

    /// The largest key ever put (nil: none).
    private var putKeyBound: Value.Key?

    /// A key at least as large as every key the tree holds (nil: it holds none): the larger of
    /// the largest key ever put and the manifest's bound (the largest key of any table it was
    /// given: by compaction, or loaded at open). Never lowered (compaction only drops keys), so
    /// an upper bound, not the exact maximum, and it may differ between a run and a restart of
    /// it; it only ever answers "absent" for keys that are absent, so lookups answer the same
    /// either way. Ids that grow with time (as TigerBeetle recommends, and the benchmark's) and
    /// new timestamps are above it: their lookup is two compares instead of every memtable run
    /// and level (~0.8 ms of a batch's prefetch of 8189 new transfer ids).
    public var keyBound: Value.Key? {
        guard let tables = manifest.keyBound else { return putKeyBound }
        guard let puts = putKeyBound else { return tables }
        return max(puts, tables)
    }

    /// Whether `key` is above every key the tree holds (`keyBound`): absent, at any snapshot.
    @inline(__always)
    public func isAboveEveryKey(_ key: Value.Key) -> Bool {
        if let putKeyBound, !(putKeyBound < key) { return false }
        if let tables = manifest.keyBound, !(tables < key) { return false }
        return true
    }

    /// Opens a scope over the puts to come (one batch's linked chain; Memtable.swift).
    public func scopeOpen() {
        mutable.scopeOpen()
    }

    /// Closes the scope; `persist: false` drops every put made since `scopeOpen()`.
    public func scopeClose(persist: Bool) {
        mutable.scopeClose(persist: persist)
    }

    public var scopeIsActive: Bool { mutable.scopeIsActive }

    /// The key's newest value if a memtable holds it.
    public func getCached(_ key: Value.Key) -> MemtableLookup<Value> {
        if let value = mutable.get(key) ?? immutable.get(key) {
            return value.isTombstone ? .deleted : .found(value)
        }
        return .notInMemory
    }

    /// The value of `key` put since the last beat (the mutable memtable's unsorted puts), or
    /// nil; a tombstone counts as no value.
    public func getCurrentBeat(_ key: Value.Key) -> Value? {
        guard let value = mutable.getUnsorted(key), !value.isTombstone else { return nil }
        return value
    }

    /// Values in the memtables (the mutable one's count includes duplicates of the current beat,
    /// the immutable one's keys in several runs until its merge ends).
    public var memtableCounts: (mutable: Int, immutable: Int) { (mutable.count, immutable.count) }

    /// Blocks the tree's compaction jobs have written and read since init (diagnostics).
    public var compactionBlockCounts: (written: Int, read: Int) {
        jobs.reduce((0, 0)) { ($0.0 + $1.blocksWrittenTotal, $0.1 + $1.blocksReadTotal) }
    }

    // MARK: Manifest events

    /// The table infos the tree's compactions produced since the last call, in order, each
    /// with its event (insert, update for moves, remove for retired inputs): what the forest
    /// appends to the manifest log.
    public func takeManifestEvents() -> [TableInfo] {
        let events = manifestEvents
        manifestEvents.removeAll(keepingCapacity: true)
        return events
    }

    // MARK: Beats

    /// Runs the compaction beat of `op` (after its batch committed); `callback` runs when the
    /// beat's work is done and durable (possibly before `compact` returns).
    /// Memtable values the last `compact` sorted or merged before it returned: the CPU work of
    /// the beat's start, which the forest uses to decide whether the loop turns after it.
    public private(set) var beatMemtableValues = 0

    public func compact(op: UInt64, callback: @escaping () -> Void) {
        precondition(beatCallback == nil, "one beat at a time")
        precondition(!mutable.scopeIsActive, "no beat inside a scope: scopes live within one batch")
        if let beatOpLast { precondition(op == beatOpLast + 1, "one beat per op, in op order") }
        beatOpLast = op
        let ops = UInt64(configuration.compactionOps)
        let half = configuration.halfBarBeats
        let beat = Int(op % ops)
        let mergeInputsBefore = immutable.isImmutable ? immutable.mergeInputsRemaining : 0
        beatMemtableValues = mutable.unsortedCount
        mutable.sortSuffix()
        stepImmutableMerge(beat: beat)
        beatMemtableValues += mergeInputsBefore - (immutable.isImmutable ? immutable.mergeInputsRemaining : 0)
        beatOp = op
        beatCallback = callback
        if fault == nil && beat % half == 0 { startHalfBar(op: op, isFirstHalf: beat == 0) }
        beatJobsPending = 1
        if isHalfBarActive && fault == nil {
            for job in jobs where job.isActive {
                beatJobsPending += 1
                job.runBeat(beat: beat % half, beats: half)
            }
        }
        jobBeatDone()
    }

    private func jobBeatDone() {
        precondition(beatJobsPending > 0, "a beat ends once per job")
        beatJobsPending -= 1
        if beatJobsPending > 0 { return }
        let ops = UInt64(configuration.compactionOps)
        let half = UInt64(configuration.halfBarBeats)
        let beat = beatOp % ops
        if isHalfBarActive && beat % half == half - 1 { finishHalfBar() }
        if beat == ops - 1 && fault == nil { swapMemtables() }
        guard let callback = beatCallback else { preconditionFailure("a beat has a callback") }
        beatCallback = nil
        callback()
    }

    /// The immutable memtable's merge, paced over the first half-bar: beat b of h merges
    /// ⌈remaining / (h − b)⌉ run values (≤ a bar / h ≈ 2 beats' worth), so it is done before
    /// the second half-bar plans its flush. Depends only on the beat and the memtable, so a
    /// replayed beat does the same.
    func stepImmutableMerge(beat: Int) {
        guard immutable.isImmutable && !immutable.isMerged else { return }
        let beatsLeft = max(1, configuration.halfBarBeats - beat)
        let remaining = immutable.mergeInputsRemaining
        immutable.mergeStep(inputsMax: (remaining + beatsLeft - 1) / beatsLeft)
    }

    /// The bar's end: the mutable table becomes the immutable one, or a held immutable table
    /// absorbs it (see "Small immutable tables").
    func swapMemtables() {
        if isImmutableHeld {
            precondition(immutable.isImmutable, "a held table is immutable")
            immutable.absorb(mutable)
            isImmutableHeld = false
            return
        }
        precondition(!immutable.isImmutable, "the immutable memtable was flushed during the bar")
        precondition(immutable.count == 0, "the immutable memtable was flushed during the bar")
        mutable.makeImmutable()
        swap(&mutable, &immutable)
    }

    /// Whether the second half-bar starting at `op` may hold the immutable table back from its
    /// flush: the bar does not end at a checkpoint trigger, and the immutable table, the mutable
    /// one and the rest of the bar's puts at their maximum fit one table (so at most half of it
    /// is held: the bar's second half may put the other half).
    private func mayHoldImmutable(op: UInt64) -> Bool {
        let half = configuration.halfBarBeats
        let barLastOp = op + UInt64(half) - 1
        if !holdsSmallImmutableTables || barEndsAtCheckpointTrigger(barLastOp) { return false }
        let rest = half * configuration.valuesPerBeatMax
        return immutable.count + mutable.count + rest <= configuration.memtableCapacity
    }

    // MARK: Half-bars

    private func startHalfBar(op: UInt64, isFirstHalf: Bool) {
        precondition(!isHalfBarActive, "half-bars do not overlap")
        let snapshot = op + UInt64(configuration.halfBarBeats)
        if !freeSet.isReserving {
            freeSet.openReservations()
            ownsReservationSession = true
        }
        isHalfBarActive = true
        let latest = TableInfo.snapshotLatest
        if !isFirstHalf && immutable.isImmutable && immutable.count > 0 {
            if mayHoldImmutable(op: op) {
                isImmutableHeld = true
            } else {
                // A no-op: the first half-bar's beats merged it (`stepImmutableMerge`).
                immutable.finishMerge()
                let values = immutable.values
                let keyMin = values[0].key
                let keyMax = values[values.count - 1].key
                let tablesB = manifest.level(0).tables(visibleAt: latest, overlapping: keyMin...keyMax)
                planJob(0, sourceA: .memtable(values), tablesB: tablesB, keyMin: keyMin, keyMax: keyMax, snapshot: snapshot)
            }
        }
        let levelCount = configuration.manifest.levelCount
        for levelA in stride(from: isFirstHalf ? 0 : 1, to: levelCount - 1, by: 2) {
            if levelA == 0 {
                // The landing level compacts once it holds half a table (see "Level 0").
                let values = manifest.visibleValueCount(level: 0, snapshot: latest)
                guard values > 0 && values >= configuration.memtableCapacity / 2 else { continue }
            } else {
                let visible = manifest.visibleTableCount(level: levelA, snapshot: latest)
                guard visible >= configuration.manifest.tableCountMax(level: levelA) else { continue }
            }
            guard let input = manifest.chooseCompaction(level: levelA, snapshot: latest) else { continue }
            let tableKeyMin = input.table.keyMin(as: Value.Key.self)
            let tableKeyMax = input.table.keyMax(as: Value.Key.self)
            let tablesB = manifest.level(levelA + 1).tables(visibleAt: latest, overlapping: tableKeyMin...tableKeyMax)
            planJob(levelA + 1, sourceA: .table(input.table), tablesB: tablesB, keyMin: input.keyMin,
                    keyMax: input.keyMax, snapshot: snapshot)
        }
    }

    /// Plans job `levelB` (its key range spans A and the B tables it meets).
    private func planJob(
        _ levelB: Int, sourceA: TreeCompaction<Value, S>.SourceA, tablesB: ManifestLevel<Value.Key>.Iterator,
        keyMin: Value.Key, keyMax: Value.Key, snapshot: UInt64
    ) {
        var keyMin = keyMin
        var keyMax = keyMax
        for table in tablesB {
            keyMin = min(keyMin, table.keyMin(as: Value.Key.self))
            keyMax = max(keyMax, table.keyMax(as: Value.Key.self))
        }
        // Tombstones go when nothing older can hold their keys: the last level, or no table
        // below level B overlaps the range the job rewrites.
        var dropTombstones = true
        for level in (levelB + 1)..<configuration.manifest.levelCount
        where manifest.level(level).overlapCount(keyMin: keyMin, keyMax: keyMax, snapshot: TableInfo.snapshotLatest) > 0 {
            dropTombstones = false
        }
        var idle: TreeCompaction<Value, S>?
        for job in jobs where !job.isActive {
            idle = job
            break
        }
        guard let job = idle else { preconditionFailure("a half-bar plans at most jobsPerHalfBarMax jobs") }
        let reserved = job.plan(
            sourceA: sourceA, levelB: levelB, tablesB: tablesB, dropTombstones: dropTombstones, snapshot: snapshot)
        if !reserved && fault == nil { fault = .gridFull }
    }

    private func finishHalfBar() {
        isHalfBarActive = false
        for job in jobs where job.isActive {
            precondition(fault != nil || job.isDone, "the half-bar's last beat finishes every job")
            if let failure = job.failure, fault == nil {
                switch failure {
                case .block(let blockFault): fault = .block(blockFault)
                case .corrupt(let error): fault = .corrupt(error)
                }
            }
        }
        for job in jobs where job.isActive && fault == nil && !job.isMove {
            // Inputs leave before outputs join: the level needs room for the difference.
            let level = manifest.level(job.levelB)
            if level.count - job.tablesB.count + job.outputs.count > level.tablesMax {
                fault = .levelFull(level: job.levelB)
            }
        }
        for job in jobs where job.isActive {
            if fault == nil { apply(job) }
            job.finish()
        }
        if ownsReservationSession {
            freeSet.closeReservations()
            ownsReservationSession = false
        }
        // The second half-bar flushed the immutable memtable (or it was empty): its values are
        // in level 0 from now on.
        let isSecondHalf = beatOp % UInt64(configuration.compactionOps) == UInt64(configuration.compactionOps - 1)
        if fault == nil && isSecondHalf && immutable.isImmutable && !isImmutableHeld { immutable.reset() }
    }

    /// Makes a job's outputs visible and its inputs gone (storage spec §5: outputs from S,
    /// inputs until S; no older snapshot is kept, so inputs leave the manifest now).
    private func apply(_ job: TreeCompaction<Value, S>) {
        let snapshot = job.snapshot
        if job.isMove {
            guard let table = job.tableA else { preconditionFailure("a move has a table") }
            let moved = manifest.move(table, toLevel: UInt8(job.levelB))
            manifestEvents.append(moved.with(event: .update))
            return
        }
        if let table = job.tableA { retire(table, snapshot: snapshot) }
        for table in job.tablesB { retire(table, snapshot: snapshot) }
        for table in job.outputs {
            manifest.insert(table)
            manifestEvents.append(table.with(event: .insert))
        }
        // Still acquired until the checkpoint after the next one is durable (free-set protocol).
        for address in job.inputAddresses { freeSet.release(address) }
    }

    private func retire(_ table: TableInfo, snapshot: UInt64) {
        var removed = manifest.remove(table)
        removed.snapshotMax = snapshot
        manifestEvents.append(removed.with(event: .remove))
    }
}

import LedgerIO
import LedgerKit

// One compaction job of a tree (storage spec §5 "Compaction"): source A (the immutable memtable,
// or one table of level A) merged with the overlapping tables of level B into new tables of
// level B, or a move of A's table by metadata when nothing overlaps. The tree plans the jobs at
// the start of a half-bar (`plan`), runs a quota of each per beat (`runBeat`) and applies the
// manifest changes at the end of the half-bar (the tree does that, from `outputs`/`inputs`).
//
// The job is a state machine driven by `run()`: each turn writes a ready output block, reads
// the next input block a blocked merge source needs, or moves one run of values through the
// merge (`MergeIterator.nextRun`: a stretch of one source copied in bulk into the output block).
// Grid reads and writes may call back before they return (memory hits): `isRunning` turns such
// a callback into a plain "go on" for the loop already running, so the stack never grows.
//
// Determinism: output addresses are acquired from the job's own reservation, in output order,
// whatever the IO completion order; the quota of a beat is a function of the input sizes only.
//
// Memory: four blocks per job (A index, A value, B index, B value), two output blocks (value,
// index) borrowed from the grid, plus `tablesMax` table infos and the addresses of the input
// blocks (to release them).
//
// Output blocks are built in place in buffers the grid lends (`Grid.takeBlock()`) and written
// with `Grid.write(exchanging:)`: the grid keeps the written buffer (it becomes a cache slot's
// when the write is durable) and hands back an idle one, in which the job builds its next block.
// A 512 KiB block then reaches the disk and the cache with no memcpy (the copy of
// `write(block:)` was 11 % of the server's CPU under load). Ownership: the job never touches a
// buffer it handed to the grid; the one handed back is the job's alone (stale bytes: the
// builder writes every byte of a block before sealing, and sealing zeroes the padding, so the
// bytes written do not depend on which buffer they were built in). A grid without caller
// blocks (tests that build a lone tree) gets the job's own two output buffers instead, written
// with `write(block:)`, which copies.
//
// ## Writes across beats
//
// A beat that is not its half-bar's last ends once its quota is merged and its blocks are handed
// to the grid, not once their writes completed: they complete while the next op is prefetched
// and executed. The half-bar's last beat waits for every write, so each output is durable before
// the tree applies the job (its tables become visible) and before a checkpoint names it. Between
// beats a completion only counts down `writesInFlight` (`run` finds no active beat). A job that
// finds every grid write slot taken (other jobs' writes still in flight) waits for one
// (`Grid.waitForWrite`); addresses were acquired in output order, so the blocks are the same
// whatever the timing. (Tried in step 4's second session, before beats detached, and dropped:
// then it slowed the next op's WAL write; measured again in the sixth session, docs/decisions.md.)
//
// Input blocks are read pinned (`Grid.readPinned`): the job merges straight from the cache's
// copy, which stays put until the job unpins it, instead of copying each 512 KiB block into its
// own buffer (that memcpy was ~10 % of the server's CPU under load). Ownership: a pinned block is
// read-only to everyone and the job holds at most one pin per input role (A index, A value,
// B index, B value); a value block's pin ends when the merge has consumed it (the next read of
// its source, or the merge's end), an index block's when its table's last value block is read,
// and `finish` ends any left (a failed job). A block the grid cannot pin (served from a write in
// flight, or kept out of the cache) is valid during the callback only: it is copied into the
// job's own input buffer for its role, as before.
//
// Reading ahead: a job reads one input block at a time, and its merge runs only when the event
// loop runs, which it does not while the next op executes (a detached beat, Forest.swift). So
// each block read also warms the source's next `warmAheadBlocks` blocks into the grid's cache
// (`Grid.warm`: plain storage reads, on idle read IOs only, within the grid's warming budget);
// the job's own read of a warmed block is then a cache hit, or takes over the warming read if
// it is still in flight. A warmed block evicted before its turn is read again: only speed
// depends on warming, never the blocks written.
//
// Key order of the values written (what `ValueBlock.checkOrder` would find): every value block
// a job writes strictly ascends, in release builds, because (1) a memtable run is checked as it
// is copied (`isAscending`, a precondition), (2) a table's value block is checked when read
// (`checkOrder`, a typed error) unless the grid says it is trusted, i.e. written by a job of
// this process (by induction, ascending) and held in the grid's memory since, (3) the merge
// checks that each run starts above the last key it took, and the builder that it starts above
// the table's last key (preconditions). So a job writes its value blocks `trusted: true`, and
// skips `checkOrder` for trusted blocks it reads (in debug builds it still asserts it). A block
// read from storage is always checked: whoever wrote it, the merge never traps on it.

final class TreeCompaction<Value: TreeValue, S: Storage> {
    enum SourceA {
        case memtable(UnsafeBufferPointer<Value>)
        case table(TableInfo)
    }

    enum Failure {
        case block(BlockFault)
        case corrupt(TableBlockError)
    }

    /// Merge source numbers: A is newer (priority 0), B older.
    private static var sourceA: Int { 0 }
    /// Writes one job keeps in flight: building the next block overlaps the last one's write.
    static var writesInFlightMax: Int { 2 }
    /// Buffers one job borrows from a grid that lends them (`Grid.takeBlock()`): the output
    /// value block and the output index block.
    static var gridBlocksBorrowed: Int { 2 }
    /// Blocks of the job's input buffers.
    private static var inputBlocks: Int { 4 }

    let treeId: UInt16
    let grid: Grid<S>
    let freeSet: FreeSet
    let builder: TableBuilder<Value>
    /// Input buffers (A index, A value, B index, B value), plus the two output buffers when the
    /// grid lends none.
    private let buffers: AlignedBuffer
    private let blockSize: Int
    /// Whether output blocks are the grid's, written with `write(exchanging:)` (no copy).
    let exchangesOutputBlocks: Bool
    /// Where the next output value block and index block are built. A new buffer after every
    /// exchanging write; fixed (`buffers` 4 and 5) otherwise.
    private var outputValueBlock: UnsafeMutableRawBufferPointer
    private var outputIndexBlock: UnsafeMutableRawBufferPointer

    // Plan (set by `plan`, valid for one half-bar).
    private(set) var isActive = false
    private(set) var isMove = false
    private(set) var levelB = 0
    private(set) var tableA: TableInfo?
    private(set) var tablesB: [TableInfo]
    private(set) var snapshot: UInt64 = 0
    private(set) var reservation: Reservation?
    private var inputValueCount = 0
    /// Blocks this job has written and read (from the cache or the disk) since init: the
    /// benchmark's write amplification per tree (`Tree.compactionBlockCounts`).
    private(set) var blocksWrittenTotal = 0
    private(set) var blocksReadTotal = 0
    private var dropTombstones = false
    private var memtableValues = UnsafeBufferPointer<Value>(start: nil, count: 0)

    // Progress.
    private var merge = MergeIterator<BufferSource<Value>>(dropTombstones: false)
    /// Per merge source: which tables it reads, and where it is.
    private var sourceTableCount = InlineArray<2, Int>(repeating: 0)
    private var sourceTableIndex = InlineArray<2, Int>(repeating: 0)
    private var sourceIndexBlock: [IndexBlock<Value>?] = [nil, nil]
    private var sourceValueBlockIndex = InlineArray<2, Int>(repeating: 0)
    /// Values of the buffers the source used up before its current one (for pacing).
    private var sourceConsumedBefore = InlineArray<2, Int>(repeating: 0)
    private var sourceIsTable = InlineArray<2, Bool>(repeating: false)
    /// Per merge source: the grid pins of its current index and value block, if pinned.
    private var sourceIndexPin = InlineArray<2, GridPin?>(repeating: nil)
    private var sourceValuePin = InlineArray<2, GridPin?>(repeating: nil)
    private(set) var isMergeDone = false
    private(set) var outputs: [TableInfo]
    /// Index and value block addresses of the input tables, released when the job is applied.
    private(set) var inputAddresses: [UInt64]
    private(set) var failure: Failure?

    // Beat.
    private var isBeatActive = false
    private var isLastBeat = false
    private var beatTarget = 0
    private var isRunning = false
    private var isReadPending = false
    private var writesInFlight = 0
    private var readCallbacks: [GridPinnedReadHandler] = []
    private var writeCallback: Grid<S>.WriteCallback = {}
    /// Waiting for a grid write slot (`canWrite`); `gridWriteCallback` resumes the job.
    private var isWaitingForGridWrite = false
    private var gridWriteCallback: Grid<S>.WriteCallback = {}
    /// Called (outside `run`'s loop) when the beat's quota is done (and, at the half-bar's last
    /// beat, its writes are durable: see "Writes across beats").
    var onBeatDone: () -> Void = {}

    init(treeId: UInt16, grid: Grid<S>, freeSet: FreeSet, valueBlocksMax: Int, tablesMax: Int) {
        self.treeId = treeId
        self.grid = grid
        self.freeSet = freeSet
        blockSize = grid.blockSize
        builder = TableBuilder(treeId: treeId, blockSize: grid.blockSize, valueBlocksMax: valueBlocksMax)
        // A grid with caller blocks is sized for every job on it (Forest: `gridCallerBlocks`);
        // `takeBlock` traps if it is not. One without (tests of a lone tree) is not asked.
        exchangesOutputBlocks = grid.callerBlocks > 0
        let ownBlocks = Self.inputBlocks + (exchangesOutputBlocks ? 0 : Self.gridBlocksBorrowed)
        let buffers = AlignedBuffer(count: ownBlocks * grid.blockSize)
        self.buffers = buffers
        if exchangesOutputBlocks {
            outputValueBlock = grid.takeBlock()
            outputIndexBlock = grid.takeBlock()
        } else {
            outputValueBlock = Self.block(4, of: buffers, blockSize: grid.blockSize)
            outputIndexBlock = Self.block(5, of: buffers, blockSize: grid.blockSize)
        }
        precondition(outputValueBlock.baseAddress != outputIndexBlock.baseAddress, "the two output blocks are distinct")
        tablesB = []
        tablesB.reserveCapacity(tablesMax)
        // A job writes at most (its input values) worth of tables; a level holds tablesMax.
        outputs = []
        outputs.reserveCapacity(tablesMax + 1)
        inputAddresses = []
        inputAddresses.reserveCapacity((tablesMax + 1) * (valueBlocksMax + 1))
        readCallbacks = [
            GridPinnedReadHandler { [unowned self] result in self.readDone(source: 0, result) },
            GridPinnedReadHandler { [unowned self] result in self.readDone(source: 1, result) },
        ]
        writeCallback = { [unowned self] in
            self.writesInFlight -= 1
            self.run()
        }
        gridWriteCallback = { [unowned self] in
            self.isWaitingForGridWrite = false
            self.run()
        }
    }

    deinit {
        // A job dropped mid half-bar (a store torn down) leaves no slot of the grid pinned.
        releasePins()
    }

    // MARK: Plan

    /// Sets up the job for this half-bar: `tablesB` are the visible tables of `levelB`
    /// overlapping A, in key order. Reserves the worst-case output blocks (a free-set session is
    /// open); returns false when the grid has no room for them.
    func plan(
        sourceA: SourceA, levelB: Int, tablesB: some Sequence<TableInfo>, dropTombstones: Bool,
        snapshot: UInt64
    ) -> Bool {
        precondition(!isActive, "a compaction job is planned once per half-bar")
        reset()
        self.levelB = levelB
        self.snapshot = snapshot
        self.dropTombstones = dropTombstones
        for table in tablesB { self.tablesB.append(table) }
        merge = MergeIterator(dropTombstones: dropTombstones)
        switch sourceA {
        case .memtable(let values):
            precondition(values.count > 0, "an empty memtable is not flushed")
            memtableValues = values
            inputValueCount = values.count
            merge.add(BufferSource(values), priority: 0)
            sourceIsTable[0] = false
        case .table(let table):
            tableA = table
            inputValueCount = Int(table.valueCount)
            isMove = self.tablesB.isEmpty
            addTableSource(tableCount: 1, priority: 0)
        }
        isActive = true
        if isMove { return true }
        if !self.tablesB.isEmpty {
            for table in self.tablesB { inputValueCount += Int(table.valueCount) }
            addTableSource(tableCount: self.tablesB.count, priority: 1)
        }
        // Every output value block is full but the job's last; a table ends only when full.
        let valueBlocks = (inputValueCount + builder.valueBlockCapacity - 1) / builder.valueBlockCapacity
        let tables = (valueBlocks + builder.valueBlocksMax - 1) / builder.valueBlocksMax
        reservation = freeSet.reserve(count: valueBlocks + tables)
        return reservation != nil
    }

    private func addTableSource(tableCount: Int, priority: Int) {
        let source = merge.add(
            BufferSource(UnsafeBufferPointer(start: nil, count: 0), isLast: false), priority: priority)
        sourceIsTable[source] = true
        sourceTableCount[source] = tableCount
    }

    private func reset() {
        releasePins()
        isMove = false
        tableA = nil
        tablesB.removeAll(keepingCapacity: true)
        outputs.removeAll(keepingCapacity: true)
        inputAddresses.removeAll(keepingCapacity: true)
        reservation = nil
        failure = nil
        isMergeDone = false
        inputValueCount = 0
        memtableValues = UnsafeBufferPointer(start: nil, count: 0)
        for source in 0..<2 {
            sourceTableCount[source] = 0
            sourceTableIndex[source] = 0
            sourceIndexBlock[source] = nil
            sourceValueBlockIndex[source] = 0
            sourceConsumedBefore[source] = 0
            sourceIsTable[source] = false
        }
        builder.reset()
    }

    /// The half-bar is over and the tree applied (or dropped) the job.
    func finish() {
        precondition(isActive, "finishing a planned job")
        precondition(!isBeatActive, "a job finishes between beats")
        precondition(writesInFlight == 0, "a job finishes with its writes durable")
        precondition(!isReadPending, "a job finishes with no read in flight")
        precondition(!isWaitingForGridWrite, "a job finishes waiting for no write slot")
        releasePins()
        if let reservation { freeSet.forfeit(reservation) }
        reservation = nil
        isActive = false
    }

    /// Whether the job has merged every input (or failed) and its writes are durable.
    var isDone: Bool { isMove || failure != nil || (isMergeDone && writesInFlight == 0) }

    // MARK: Beats

    /// Runs beat `beat` of `beats` of the half-bar: merges until the inputs consumed reach
    /// `(beat + 1) / beats` of the total (the last beat finishes the job), then `onBeatDone`.
    func runBeat(beat: Int, beats: Int) {
        precondition(isActive, "a planned job runs")
        precondition(!isBeatActive, "one beat at a time")
        precondition(beat < beats, "beat inside the half-bar")
        isLastBeat = beat == beats - 1
        beatTarget = (inputValueCount * (beat + 1) + beats - 1) / beats
        isBeatActive = true
        run()
    }

    private func run() {
        if isRunning { return }
        isRunning = true
        let finished = loop()
        isRunning = false
        if finished { onBeatDone() }
    }

    /// Returns true when the beat is over (the caller then reports it, outside the loop).
    private func loop() -> Bool {
        // Each turn writes a block, starts a read, or consumes input; the input is finite, so
        // the loop ends (or waits for IO) within inputValueCount + blocks turns.
        while true {
            guard isBeatActive else { return false }
            if isReadPending { return false }
            if isMove || failure != nil {
                if writesInFlight > 0 { return false }
                isBeatActive = false
                return true
            }
            if builder.hasValueBlock && (builder.isValueBlockFull || isMergeDone) {
                guard canWrite() else { return false }
                writeValueBlock()
                continue
            }
            if builder.valueBlockCount > 0 && !builder.hasValueBlock && (builder.isFull || isMergeDone) {
                guard canWrite() else { return false }
                writeIndexBlock()
                continue
            }
            if isMergeDone || (!isLastBeat && progress() >= beatTarget) {
                // Only the last beat waits for the writes (see "Writes across beats").
                if isLastBeat && writesInFlight > 0 { return false }
                isBeatActive = false
                return true
            }
            // A run never overfills the output block, nor (but in the last beat) the beat's quota.
            let room = builder.valueBlockCapacity - builder.blockValueCount
            let limit = isLastBeat ? room : min(room, beatTarget - progress())
            switch merge.nextRun(limit: limit) {
            case .run(let values):
                // The merge and the builder check order only where runs meet. Runs of table
                // blocks passed `checkOrder` when read (or are trusted); a memtable's run is
                // checked here, as it is copied: every value written ascends in release builds
                // (see "Key order" at the top).
                if isMemtableRun(values) {
                    precondition(ValueBlock<Value>.isAscending(values), "the immutable memtable ascends")
                }
                if !builder.hasValueBlock { builder.attachValueBlock(outputValueBlock) }
                builder.append(contentsOf: values)
            case .blocked(let source):
                startRead(source: source)
            case .done:
                isMergeDone = true
                // Every input is consumed: nothing reads the pinned blocks any more.
                releasePins()
            }
        }
    }

    /// Whether `run` is a slice of the immutable memtable (not of a value block read).
    private func isMemtableRun(_ run: UnsafeBufferPointer<Value>) -> Bool {
        guard let memtableStart = memtableValues.baseAddress, let runStart = run.baseAddress else { return false }
        return runStart >= memtableStart && runStart < memtableStart + memtableValues.count
    }

    /// Input values the merge has consumed.
    private func progress() -> Int {
        var total = 0
        for source in 0..<merge.sourceCount {
            total += sourceConsumedBefore[source] + merge[source: source].consumed
        }
        return total
    }

    // MARK: Output

    private func acquire() -> UInt64 {
        guard let reservation else { preconditionFailure("a merging job has a reservation") }
        guard let address = freeSet.acquire(reservation) else {
            preconditionFailure("the reservation holds the worst case of the job's output")
        }
        return address
    }

    /// Whether the job may start a write now; if not, its own write's completion resumes it,
    /// or the grid calls it back when another job's write frees a slot (the forest runs its
    /// trees' beats side by side, so other trees' jobs may hold every slot).
    private func canWrite() -> Bool {
        if writesInFlight == Self.writesInFlightMax { return false }
        if grid.writesAvailable == 0 {
            if !isWaitingForGridWrite {
                isWaitingForGridWrite = true
                grid.waitForWrite(gridWriteCallback)
            }
            return false
        }
        return true
    }

    private func writeValueBlock() {
        // Sealing detaches the block from the builder: nothing of the job points at it after
        // the write but `outputValueBlock`, which the write replaces.
        builder.sealValueBlock(address: acquire(), snapshot: snapshot)
        outputValueBlock = write(outputValueBlock, trusted: true)
    }

    private func writeIndexBlock() {
        let table = builder.sealIndexBlock(
            outputIndexBlock, address: acquire(), snapshot: snapshot, snapshotMin: snapshot)
        outputs.append(TableInfo(
            treeId: treeId, level: UInt8(levelB), keyMin: table.keyMin, keyMax: table.keyMax,
            index: table.index, snapshotMin: snapshot, valueCount: UInt32(table.valueCount)))
        outputIndexBlock = write(outputIndexBlock, trusted: false)
    }

    /// Writes the sealed `block`; returns the buffer to build the next block of its kind in.
    /// `trusted`: a value block, whose order the job vouches for (see "Key order" above).
    private func write(_ block: UnsafeMutableRawBufferPointer, trusted: Bool) -> UnsafeMutableRawBufferPointer {
        writesInFlight += 1
        blocksWrittenTotal += 1
        guard exchangesOutputBlocks else {
            // The grid copies the block: the buffer is ours again when `write` returns.
            grid.write(
                block: UnsafeRawBufferPointer(block), trusted: trusted, compaction: true, callback: writeCallback)
            return block
        }
        // A local goes inout, not the stored property: a completion run inside `write` (it
        // re-enters `run`, which returns at once) then holds no conflicting access to it.
        var next = block
        grid.write(exchanging: &next, trusted: trusted, callback: writeCallback)
        // The grid keeps `block` until the cache takes it: the job must never build in it again.
        precondition(next.baseAddress != block.baseAddress, "an exchanging write hands back another buffer")
        precondition(next.baseAddress != outputValueBlock.baseAddress, "the buffer handed back is not in use")
        precondition(next.baseAddress != outputIndexBlock.baseAddress, "the buffer handed back is not in use")
        precondition(next.count == blockSize, "the buffer handed back is one block")
        return next
    }

    // MARK: Input

    /// Input buffers: 0 A index, 1 A value, 2 B index, 3 B value.
    private func buffer(_ index: Int) -> UnsafeMutableRawBufferPointer {
        precondition(index < Self.inputBlocks, "the job's own buffers past the inputs are output blocks")
        return Self.block(index, of: buffers, blockSize: blockSize)
    }

    private static func block(_ index: Int, of buffers: AlignedBuffer, blockSize: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[(index * blockSize)..<((index + 1) * blockSize)])
    }

    private func table(source: Int, index: Int) -> TableInfo {
        if source == Self.sourceA && tableA != nil { return tableA! }
        return tablesB[index]
    }

    private func startRead(source: Int) {
        precondition(sourceIsTable[source], "only table sources block")
        precondition(sourceTableIndex[source] < sourceTableCount[source], "a blocked source has a table left")
        // The source is drained: its value block is consumed, the merge no longer reads it.
        if let pin = sourceValuePin[source] {
            grid.unpin(pin)
            sourceValuePin[source] = nil
        }
        isReadPending = true
        blocksReadTotal += 1
        if let index = sourceIndexBlock[source] {
            grid.readPinned(index.reference(sourceValueBlockIndex[source]), callback: readCallbacks[source].callback)
        } else {
            let table = table(source: source, index: sourceTableIndex[source])
            grid.readPinned(table.index, callback: readCallbacks[source].callback)
        }
    }

    private func readDone(source: Int, _ result: GridPinnedReadResult) {
        precondition(isReadPending, "a read completes once")
        isReadPending = false
        let isIndex = sourceIndexBlock[source] == nil
        switch result {
        case .fault(let fault):
            failure = .block(fault)
        case .pinned(let block, let pin, let trusted):
            // The job holds the block in place until it unpins it.
            if isIndex {
                precondition(sourceIndexPin[source] == nil, "one index block pinned per source")
                sourceIndexPin[source] = pin
                indexBlockRead(source: source, block)
            } else {
                precondition(sourceValuePin[source] == nil, "one value block pinned per source")
                sourceValuePin[source] = pin
                valueBlockRead(source: source, block, trusted: trusted)
            }
        case .block(let block, let trusted):
            // Valid during this callback only: the job's own buffer for the role takes a copy.
            let target = buffer(2 * source + (isIndex ? 0 : 1))
            target.copyMemory(from: block)
            if isIndex {
                indexBlockRead(source: source, UnsafeRawBufferPointer(target))
            } else {
                valueBlockRead(source: source, UnsafeRawBufferPointer(target), trusted: trusted)
            }
        }
        if failure != nil { releasePins() }
        run()
    }

    /// Ends the job's pins (the merge is done, the job failed or finishes).
    private func releasePins() {
        for source in 0..<2 {
            if let pin = sourceIndexPin[source] { grid.unpin(pin) }
            if let pin = sourceValuePin[source] { grid.unpin(pin) }
            sourceIndexPin[source] = nil
            sourceValuePin[source] = nil
        }
    }

    /// `block` (pinned, or the job's copy) stays valid while the merge reads it.
    private func indexBlockRead(source: Int, _ block: UnsafeRawBufferPointer) {
        do {
            let index = try IndexBlock<Value>.decode(block: block, treeId: treeId)
            sourceIndexBlock[source] = index
            sourceValueBlockIndex[source] = 0
            inputAddresses.append(table(source: source, index: sourceTableIndex[source]).address)
            for entry in 0..<index.valueBlockCount { inputAddresses.append(index.reference(entry).address) }
        } catch {
            failure = .corrupt(error)
            return
        }
        warmAhead(source: source)
    }

    /// `block` (pinned, or the job's copy) stays valid until the merge has consumed it.
    /// `trusted`: a job of this process wrote it (see "Key order" above).
    private func valueBlockRead(source: Int, _ block: UnsafeRawBufferPointer, trusted: Bool) {
        guard let index = sourceIndexBlock[source] else { preconditionFailure("a value block follows its index") }
        let values: UnsafeBufferPointer<Value>
        do {
            let decoded = try ValueBlock<Value>.decode(block: block, treeId: treeId)
            // A block out of order would trip the merge's order precondition: reject it here,
            // unless a job of this process wrote it (it ascends: see "Key order" above).
            if trusted {
                assert(ValueBlock<Value>.isAscending(decoded.values), "a trusted value block ascends")
            } else {
                try decoded.checkOrder()
            }
            values = decoded.values
        } catch {
            failure = .corrupt(error)
            return
        }
        let entry = sourceValueBlockIndex[source]
        let isLastBlock = entry + 1 == index.valueBlockCount
        let isLastTable = sourceTableIndex[source] + 1 == sourceTableCount[source]
        if isLastBlock {
            // The table's value blocks are all read: its index block is no longer needed.
            sourceIndexBlock[source] = nil
            if let pin = sourceIndexPin[source] {
                grid.unpin(pin)
                sourceIndexPin[source] = nil
            }
            sourceTableIndex[source] += 1
        } else {
            sourceValueBlockIndex[source] = entry + 1
        }
        sourceConsumedBefore[source] += merge[source: source].buffer.count
        merge[source: source].refill(values, isLast: isLastBlock && isLastTable)
        warmAhead(source: source)
    }

    /// Value blocks a source warms ahead of the one it merges (`Grid.warm`).
    static var warmAheadBlocks: Int { Constants.compactionWarmAheadBlocks }

    /// Starts reading the source's next blocks into the grid's cache (see "Reading ahead"): the
    /// next value blocks of its current table, or the next table's index block.
    private func warmAhead(source: Int) {
        guard sourceTableIndex[source] < sourceTableCount[source] else { return }
        guard let index = sourceIndexBlock[source] else {
            grid.warm(table(source: source, index: sourceTableIndex[source]).index)
            return
        }
        let first = sourceValueBlockIndex[source]
        let end = min(first + Self.warmAheadBlocks, index.valueBlockCount)
        // Each turn warms one block or stops: bounded by warmAheadBlocks.
        for entry in first..<end where !grid.warm(index.reference(entry)) { return }
    }
}

import LedgerIO
import LedgerKit

// Range scans of a tree (storage spec §5 "Scans"): the live values with keys in
// [keyMin, keyMax], in key order (either direction), the newest version of each key winning,
// at most `limit` of them. One k-way merge (`MergeIterator`, tombstones dropped) over:
//
//   source 0          the memtables' newest values in range (a copy, see below),
//   source 1 + L      level L: its visible tables overlapping the range, in key order; per
//                     table the index block, then the value blocks in range, one at a time.
//
// A level source refills block by block: the merge reports `.blocked(source)` when the level's
// buffered values are used up, and the scan reads the next block it needs (one read in flight
// per scan). The merge never emits a key while a level that might hold a smaller one is
// blocked, so the scan stops as soon as `limit` values are out: it reads only the blocks that
// can hold the first `limit` keys (plus, per level, the block that proves a level has nothing
// smaller), never the whole range.
//
// **What a scan sees: the state when it starts.** The memtables change under a scan waiting for
// IO (a beat's end swaps them, flushes the immutable one, the next batch puts into the mutable
// one), so the scan copies what it needs of them into its context when it starts: the mutable
// memtable is first brought to "runs only" (`sortSuffix`, what every beat does: its contents
// stay the same), then the immutable memtable's runs (one once its paced merge ends) and the
// mutable one's are merged, newest wins, tombstones kept (they hide older values in the levels), in the scan's direction. The
// copy stops after `limit` live values: the scan's first `limit` results cannot lie beyond
// them (levels only add keys). So a small-limit scan copies little; a wide one copies at most
// both memtables' values in range. (A lazy merge of the runs, refilled like a level source,
// would avoid the copy but needs the memtables frozen while a scan waits for IO.)
//
// The tables are captured at the start too: each level's source holds a manifest level
// iterator (a copy-on-write reference to the level's arrays), so a compaction applied mid-scan
// leaves the scan on the tables it started with (the manifest change then copies that level's
// arrays: an allocation, only while a scan is in flight); their blocks stay readable until a
// later checkpoint is durable (free-set protocol), as for lookups. The iterators are dropped
// when the scan ends. `snapshot` selects the tables; the memtables always answer for the
// latest state (as for lookups).
//
// Reads served from memory call back before `read` returns: the loop in `scanStep` absorbs
// them (`isStepping`), so the stack does not grow with the number of blocks read.
//
// Hostile blocks: a block that verifies but decodes badly, or whose values are out of order
// (within the block, or against the level's previous block) is `.corrupt`, never a trap in the
// merge's order precondition.
//
// Memory per scan context (allocated at a tree's first scan, never after; `TreeConfiguration.
// scanContextBytes`): the memtable copy; 2 blocks per level (the current index and value block,
// since a grid block is only valid inside its callback); small per-level cursors. The copy holds
// both memtables (2 × memtable capacity values) in a tree with tombstones, since a tombstone in
// range takes a slot and counts toward no result. A tree whose values are never tombstones (the
// grooves' object trees) sets `TreeConfiguration.scanValuesMax`: its copy is all live values, so
// it stops after `limit` ≤ scanValuesMax values and holds no more; `scan` checks the limit, and
// a tombstone met in such a copy is a broken invariant (precondition).
//
// Testing (4 KiB blocks, 7 levels): copy + 56 KiB per context. Production (512 KiB blocks,
// 7 levels: 7 MiB of blocks), `Tree.scansMax` = 2 contexts per tree, copy before → after:
//   transfers object (128 B)     2 × 262 k values = 64 MiB → `Constants.queryResultsMax`
//                                (8189, a query's limit) = 1 MiB
//   accounts object (128 B)      2 × 524 k values = 128 MiB → 8189 values = 1 MiB
//   account events (256 B)       2 × 262 k values = 128 MiB → `Constants.changeEventsMax`
//                                (2730, a change-events reply) = 683 KiB
//   index trees (16/32 B), the expiry tree: uncapped (tombstones): 8 MiB (expiries) to
//                                64 MiB (accounts' u128 indexes).
// So an object tree's context is now mostly its 7 MiB of blocks.
// (ScanCopyCapTests computes these from the production `ForestStoreConfiguration`.)

/// The outcome of a tree scan.
public enum TreeScanResult: Equatable, Sendable {
    /// `count` values were written to the front of the output buffer.
    case done(Int)
    /// A block in the range could not be read as its referrer names it.
    case fault(BlockFault)
    /// A block verified but its contents contradict the tree (a buggy or hostile writer).
    case corrupt(TableBlockError)
}

final class TreeScanContext<Value: TreeValue> {
    enum Phase {
        case index
        case value
    }

    typealias Key = Value.Key

    // Request.
    var keyMin: Key?
    var keyMax: Key?
    var direction = ScanDirection.ascending
    var limit = 0
    var output = UnsafeMutableBufferPointer<Value>(start: nil, count: 0)
    var callback: ((TreeScanResult) -> Void)?
    var count = 0
    var result: TreeScanResult?

    var merge = MergeIterator<BufferSource<Value>>(dropTombstones: true)

    /// The memtables' newest values in range (tombstones included), ascending: at the front
    /// for an ascending scan, at the back for a descending one.
    let memtableValues: UnsafeMutablePointer<Value>
    /// Both memtables' worth (the copy never holds more), or the tree's `scanValuesMax` when
    /// its values are never tombstones (the copy then stops after `limit` ≤ that many).
    let memtableValuesMax: Int
    /// Per memtable run (the immutable memtable, then the mutable one's runs, oldest first):
    /// next position and end (exclusive, in the scan's direction), while merging the runs.
    let runCursors: UnsafeMutablePointer<Int>
    let runEnds: UnsafeMutablePointer<Int>
    /// Runs merged at most: both memtables' `runsMax` (the immutable one keeps its runs until
    /// its merge, paced over a half-bar, ends).
    let runsMax: Int

    // Per level.
    var tables: [ManifestLevel<Key>.Iterator?]
    /// The current table's index block (decoded in `blocks`), nil between tables.
    var indexBlocks: [IndexBlock<Value>?]
    /// Next value block entry of the current table, and the end (exclusive, in direction).
    var entryNext: [Int]
    var entryEnd: [Int]
    /// The last key the level's source was given (its order check across blocks).
    var lastKeys: [Key?]
    /// Per level: an index block, then a value block.
    let blocks: AlignedBuffer
    let blockSize: Int

    // IO.
    var readLevel = 0
    var readPhase = Phase.index
    var isReadPending = false
    var isStepping = false

    init(levelCount: Int, blockSize: Int, memtableValuesMax: Int, runsMax: Int) {
        precondition(memtableValuesMax >= 1, "a scan context copies a value")
        self.blockSize = blockSize
        self.memtableValuesMax = memtableValuesMax
        self.runsMax = 2 * runsMax
        memtableValues = .allocate(capacity: memtableValuesMax)
        runCursors = .allocate(capacity: 2 * runsMax)
        runEnds = .allocate(capacity: 2 * runsMax)
        tables = Array(repeating: nil, count: levelCount)
        indexBlocks = Array(repeating: nil, count: levelCount)
        entryNext = Array(repeating: 0, count: levelCount)
        entryEnd = Array(repeating: 0, count: levelCount)
        lastKeys = Array(repeating: nil, count: levelCount)
        blocks = AlignedBuffer(count: 2 * levelCount * blockSize)
    }

    deinit {
        memtableValues.deallocate()
        runCursors.deallocate()
        runEnds.deallocate()
    }

    func block(level: Int, phase: Phase) -> UnsafeMutableRawBufferPointer {
        let index = 2 * level + (phase == .index ? 0 : 1)
        return UnsafeMutableRawBufferPointer(rebasing: blocks.bytes[(index * blockSize)..<((index + 1) * blockSize)])
    }

    /// Whether `a` comes strictly before `b` in the scan's direction.
    func precedes(_ a: Key, _ b: Key) -> Bool {
        direction == .ascending ? a < b : b < a
    }
}

/// A tree's pool of scan contexts and their read callbacks (made once).
final class TreeScans<Value: TreeValue, S: Storage> {
    var contexts: [TreeScanContext<Value>]
    var free: [Int]
    var readCallbacks: [GridReadHandler] = []

    init(contexts: [TreeScanContext<Value>]) {
        self.contexts = contexts
        free = Array((0..<contexts.count).reversed())
    }
}

/// Grid reads a tree's scans keep in flight at most: one per scan context, `Tree.scansMax`
/// contexts. Not generic, so forest-wide sums can name it.
public enum TreeScanReads {
    public static var perTreeMax: Int { 2 }
}

extension Tree {
    /// Scans in flight at once (the forest runs a query's scans within this bound).
    public static var scansMax: Int { TreeScanReads.perTreeMax }

    /// Merge sources before the levels: the memtables' copy.
    private static var scanLevelSourceFirst: Int { 1 }

    /// Scans in flight.
    public var scansPending: Int {
        guard let scans else { return 0 }
        return scans.contexts.count - scans.free.count
    }

    /// Writes to the front of `output` the live values with keys in `[keyMin, keyMax]`, in
    /// `direction`, the newest version of each key winning, at most `limit` (≤ `output.count`);
    /// stops reading once `limit` values are found. Tables are those visible at `snapshot`; the
    /// memtables answer for the latest state. The scan sees the tree as it is when `scan` is
    /// called. `callback` may run before `scan` returns; `output` must stay valid until it runs.
    public func scan(
        keyMin: Value.Key, keyMax: Value.Key, snapshot: UInt64 = TableInfo.snapshotLatest,
        direction: ScanDirection, limit: Int, into output: UnsafeMutableBufferPointer<Value>,
        callback: @escaping (TreeScanResult) -> Void
    ) {
        precondition(limit >= 0, "a scan limit is not negative")
        precondition(limit <= output.count, "the scan output holds limit values")
        if let cap = configuration.scanValuesMax {
            precondition(limit <= cap, "a capped tree's scan limit is at most scanValuesMax (its memtable copy)")
        }
        if limit == 0 || keyMax < keyMin {
            callback(.done(0))
            return
        }
        let scans = scanPool()
        guard let slot = scans.free.popLast() else {
            preconditionFailure("at most scansMax scans in flight (the forest bounds them)")
        }
        let context = scans.contexts[slot]
        context.keyMin = keyMin
        context.keyMax = keyMax
        context.direction = direction
        context.limit = limit
        context.output = output
        context.callback = callback
        context.count = 0
        context.result = nil
        context.merge = MergeIterator(direction: direction, dropTombstones: true)

        context.merge.add(
            BufferSource(scanCopyMemtables(context, keyMin: keyMin, keyMax: keyMax), direction: direction, isLast: true),
            priority: 0)
        for level in 0..<manifest.levelCount {
            context.tables[level] = manifest.level(level).tables(
                visibleAt: snapshot, overlapping: keyMin...keyMax, direction: direction)
            context.indexBlocks[level] = nil
            context.lastKeys[level] = nil
            let source = context.merge.add(
                BufferSource(UnsafeBufferPointer(start: nil, count: 0), direction: direction, isLast: false),
                priority: Self.scanLevelSourceFirst + level)
            precondition(source == Self.scanLevelSourceFirst + level, "level L is merge source 1 + L")
        }
        scanStep(slot: slot)
    }

    private func scanPool() -> TreeScans<Value, S> {
        if let scans { return scans }
        let levelCount = configuration.manifest.levelCount
        precondition(levelCount + Self.scanLevelSourceFirst <= MergeIterator<BufferSource<Value>>.sourcesMax,
                     "a scan merges the memtables and every level (at most 16 sources)")
        let jobsPerHalfBarMax = levelCount / 2 + 1
        precondition(
            grid.readsMax + grid.readQueueMax >= configuration.lookupsMax + jobsPerHalfBarMax + Self.scansMax,
            "the grid queues a read for every lookup, job and scan (each waits for one at a time)")
        let contexts = (0..<Self.scansMax).map { _ in
            TreeScanContext<Value>(
                levelCount: levelCount, blockSize: configuration.blockSize,
                memtableValuesMax: configuration.scanCopyValuesMax, runsMax: configuration.compactionOps)
        }
        let pool = TreeScans<Value, S>(contexts: contexts)
        pool.readCallbacks = (0..<Self.scansMax).map { slot in
            GridReadHandler { [unowned self] result in self.scanReadDone(slot: slot, result) }
        }
        scans = pool
        return pool
    }

    // MARK: Memtables

    /// Runs of the immutable memtable in the scan's merge: its runs (one once merged, none
    /// when it is not immutable: flushed and reset).
    private var scanImmutableRunCount: Int {
        guard immutable.isImmutable else {
            precondition(immutable.count == 0, "a mutable second memtable is empty (reset after its flush)")
            return 0
        }
        return immutable.runCount
    }

    /// Memtable run `run` of the merge: the immutable memtable's runs (`immutableRuns` of
    /// them), then the mutable memtable's, each oldest first.
    private func scanMemtableRun(_ run: Int, immutableRuns: Int) -> UnsafeBufferPointer<Value> {
        run < immutableRuns ? immutable.run(run) : mutable.run(run - immutableRuns)
    }

    /// Copies the memtables' newest value (tombstones included) of each key in range into the
    /// context, in the scan's direction, and stops after `limit` live values: the merge emits
    /// `limit` values by then whatever the levels hold (they only add keys; the memtables are
    /// newer than every level), so later keys are never needed. Returns the copy, ascending.
    private func scanCopyMemtables(
        _ context: TreeScanContext<Value>, keyMin: Value.Key, keyMax: Value.Key
    ) -> UnsafeBufferPointer<Value> {
        // Runs only (what a beat does first): the contents stay the same, lookups and the
        // next beat are unaffected.
        mutable.sortSuffix()
        let immutableRuns = scanImmutableRunCount
        let runCount = mutable.runCount + immutableRuns
        precondition(runCount <= context.runsMax, "a memtable keeps at most runsMax runs")
        let ascending = context.direction == .ascending
        for run in 0..<runCount {
            let values = scanMemtableRun(run, immutableRuns: immutableRuns)
            let low = ValueBlock<Value>.lowerBound(values, keyMin)
            let high = max(low, Self.scanUpperBound(values, keyMax))
            context.runCursors[run] = ascending ? low : high - 1
            context.runEnds[run] = ascending ? high : low - 1
        }
        let step = ascending ? 1 : -1
        var out = 0
        var live = 0
        // Each turn copies one key and consumes at least one value: bounded by the values of
        // both memtables in range.
        while live < context.limit {
            var best = -1
            var bestValue: Value? = nil
            for run in 0..<runCount where context.runCursors[run] != context.runEnds[run] {
                let value = scanMemtableRun(run, immutableRuns: immutableRuns)[context.runCursors[run]]
                // On equal keys the later (newer) run wins.
                if let current = bestValue, context.precedes(current.key, value.key) { continue }
                best = run
                bestValue = value
            }
            guard let value = bestValue, best >= 0 else { break }
            if value.isTombstone {
                // A capped copy is sized for `limit` live values only.
                precondition(!isScanCapped, "a tree with scanValuesMax holds no tombstones (object trees are never deleted from)")
            }
            precondition(out < context.memtableValuesMax, "the memtable copy fits both memtables, or a capped scan's limit")
            context.memtableValues[ascending ? out : context.memtableValuesMax - 1 - out] = value
            out += 1
            if !value.isTombstone { live += 1 }
            for run in 0..<runCount where context.runCursors[run] != context.runEnds[run]
                && scanMemtableRun(run, immutableRuns: immutableRuns)[context.runCursors[run]].key == value.key
            {
                context.runCursors[run] += step
            }
        }
        let start = ascending ? context.memtableValues : context.memtableValues + (context.memtableValuesMax - out)
        return UnsafeBufferPointer(start: start, count: out)
    }

    /// Whether the tree's scans copy at most `scanValuesMax` memtable values (no tombstones).
    private var isScanCapped: Bool { configuration.scanValuesMax != nil }

    /// The first position in ascending `values` whose key is above `key`.
    static func scanUpperBound(_ values: UnsafeBufferPointer<Value>, _ key: Value.Key) -> Int {
        var low = 0
        var count = values.count
        while count > 0 {
            let half = count / 2
            if !(key < values[low + half].key) {
                low += half + 1
                count -= half + 1
            } else {
                count = half
            }
        }
        return low
    }

    // MARK: Merge loop

    private func scanStep(slot: Int) {
        guard let scans else { preconditionFailure("a scan runs with a pool") }
        let context = scans.contexts[slot]
        context.isStepping = true
        // Each turn emits a value, finishes, or starts a read (a level's next block): bounded by
        // `limit` plus the blocks of the range.
        while context.result == nil {
            if context.count == context.limit {
                context.result = .done(context.count)
                break
            }
            switch context.merge.next() {
            case .value(let value):
                context.output[context.count] = value
                context.count += 1
            case .done:
                context.result = .done(context.count)
            case .blocked(let source):
                precondition(source >= Self.scanLevelSourceFirst, "only level sources block")
                scanRefill(context, slot: slot, level: source - Self.scanLevelSourceFirst)
                if context.isReadPending {
                    context.isStepping = false
                    return
                }
            }
        }
        context.isStepping = false
        guard let result = context.result, let callback = context.callback else {
            preconditionFailure("a finished scan has a result and a callback")
        }
        // Drop the manifest iterators: later manifest changes then copy nothing.
        for level in 0..<context.tables.count {
            context.tables[level] = nil
            context.indexBlocks[level] = nil
        }
        context.callback = nil
        context.output = UnsafeMutableBufferPointer(start: nil, count: 0)
        context.merge = MergeIterator(dropTombstones: true)
        scans.free.append(slot)
        callback(result)
    }

    /// Level `level`'s source is used up: reads its next value block in range, or the next
    /// table's index block, or marks it exhausted.
    private func scanRefill(_ context: TreeScanContext<Value>, slot: Int, level: Int) {
        guard let scans else { preconditionFailure("a scan runs with a pool") }
        if let index = context.indexBlocks[level], context.entryNext[level] != context.entryEnd[level] {
            context.readLevel = level
            context.readPhase = .value
            context.isReadPending = true
            grid.read(index.reference(context.entryNext[level]), callback: scans.readCallbacks[slot].callback)
            return
        }
        context.indexBlocks[level] = nil
        guard let table = context.tables[level]?.next() else {
            context.tables[level] = nil
            context.merge[source: Self.scanLevelSourceFirst + level].refill(
                UnsafeBufferPointer(start: nil, count: 0), isLast: true)
            return
        }
        context.readLevel = level
        context.readPhase = .index
        context.isReadPending = true
        grid.read(table.index, callback: scans.readCallbacks[slot].callback)
    }

    private func scanReadDone(slot: Int, _ read: GridReadResult) {
        guard let scans else { preconditionFailure("a scan runs with a pool") }
        let context = scans.contexts[slot]
        precondition(context.isReadPending, "a scan read completes once")
        context.isReadPending = false
        switch read {
        case .fault(let fault):
            context.result = .fault(fault)
        case .block(let block):
            scanBlock(context, block)
        }
        if !context.isStepping { scanStep(slot: slot) }
    }

    /// Takes the block just read: an index block sets the table's value block entries in
    /// range; a value block's values in range refill the level's source.
    private func scanBlock(_ context: TreeScanContext<Value>, _ block: UnsafeRawBufferPointer) {
        guard let keyMin = context.keyMin, let keyMax = context.keyMax else {
            preconditionFailure("a scan in flight has a range")
        }
        let level = context.readLevel
        // The grid's block is only valid inside the callback: keep a copy.
        let target = context.block(level: level, phase: context.readPhase)
        target.copyMemory(from: block)
        do throws(TableBlockError) {
            switch context.readPhase {
            case .index:
                let index = try IndexBlock<Value>.decode(block: UnsafeRawBufferPointer(target), treeId: treeId)
                let first = index.firstValueBlock(keyMaxAtLeast: keyMin)
                let last = index.lastValueBlock(keyMinAtMost: keyMax) ?? -1
                // No block of this table meets the range: the next refill moves to the next table.
                guard first <= last else { return }
                context.indexBlocks[level] = index
                if context.direction == .ascending {
                    context.entryNext[level] = first
                    context.entryEnd[level] = last + 1
                } else {
                    context.entryNext[level] = last
                    context.entryEnd[level] = first - 1
                }
            case .value:
                let decoded = try ValueBlock<Value>.decode(block: UnsafeRawBufferPointer(target), treeId: treeId)
                try decoded.checkOrder()
                let values = decoded.values
                let low = ValueBlock<Value>.lowerBound(values, keyMin)
                let high = Self.scanUpperBound(values, keyMax)
                let slice = UnsafeBufferPointer(rebasing: values[low..<max(low, high)])
                if let first = context.direction == .ascending ? slice.first : slice.last {
                    // The level must move on strictly in the scan's direction across blocks and
                    // tables, or the merge's order precondition would trap on a hostile block.
                    if let lastKey = context.lastKeys[level], !context.precedes(lastKey, first.key) {
                        throw TableBlockError.order(index: context.direction == .ascending ? low : high - 1)
                    }
                    let final = context.direction == .ascending ? slice[slice.count - 1] : slice[0]
                    context.lastKeys[level] = final.key
                }
                context.entryNext[level] += context.direction == .ascending ? 1 : -1
                context.merge[source: Self.scanLevelSourceFirst + level].refill(slice, isLast: false)
            }
        } catch {
            context.result = .corrupt(error)
        }
    }
}

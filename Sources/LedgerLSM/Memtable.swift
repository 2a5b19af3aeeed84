import CLedgerHints
import LedgerKit

// A tree's in-memory table (storage spec §5 "Memtables"). The mutable table takes every put of
// a bar; once per beat the puts since the last beat are sorted into a run, so a lookup is a
// binary search per run plus a search of the current beat's puts. At bar end the
// table becomes immutable with its runs as they are (O(1) but for the last beat's sort); the
// tree then merges them into one sorted array, each key once, a bounded step per beat over the
// first half of the next bar (`mergeStep`), before the second half flushes it to level 0.
// Merging all runs in the bar's last beat made that beat ~30 × slower than the others.
//
// The merge is one pass: a tournament tree of the runs ordered by (head key, newest run first;
// RunTournament), taking its winner into the merge buffer and keeping only the first (newest)
// value of each key. One pass moves each value once (pairwise passes would move it log2(runs)
// times, too much to spread over a half-bar at ~2 beats' worth per beat). The runs stay intact
// in `storage` until the merge ends, so lookups and scans read them meanwhile; then `storage`
// and the merge buffer swap. A table of one run (keys that only ascend: object trees by
// timestamp, time-based ids) is merged already: no pass, no copy.
//
// Sketch (transfers, production): one bar = 32 beats × 8,189 puts = 262 k values of 128 B =
// 32 MiB (allocated once at init, never after). A beat's puts whose keys already ascend are a
// run as they are; others are sorted stably without recursion or allocation: from 128 puts on
// by a radix sort over the key bytes that differ (KeyRadixSort: 4-6 scatters for a batch's
// index keys), below that (or for keys not split into words) by insertion and bottom-up merge
// passes. A lookup: a binary search of the current beat's puts while they ascend (`put` keeps
// `suffixAscends`), else ≤ 8 k linear compares, then ≤ 32 binary searches.
//
// Memory: a table's `storage` (capacity values), a sort scratch for one beat's puts
// (`sortScratchCapacity`, a tree's `valuesPerBeatMax`) and a full-size merge buffer that a
// tree's two tables share (`MemtableMergeBuffer`: only one table merges at a time), so a tree
// holds 3 × capacity + 2 × a beat, not 4 × capacity. Nothing is written at allocation: pages
// become resident as puts reach them (a bar of this workload's puts, not the worst case), and
// a tree whose puts ascend never touches the merge buffer. When a sort finds more puts than
// its scratch holds (a configuration that undercounts a beat) or the runs overflow `runsMax`,
// the table borrows the merge buffer, finishing the other table's paced merge first (its
// result is the same whichever beat completes it).
//
// Within a run each key appears once: a stable sort keeps equal keys in put order, and the
// dedup keeps the last (the latest put wins). Runs are in put order too, so a later run
// shadows an earlier one.
//
// Scopes (a linked chain of one batch, state-machine `scopeOpen`/`scopeClose`): every put of a
// scope lands in the unsorted suffix (no beat runs inside a batch), so discarding the scope is
// truncating the suffix back to its length at open: O(1), no undo log. One level only (the
// state machine never nests).

/// The full-size buffer a tree's two memtables share to merge runs into (see Memtable's
/// header, "Memory"). A merge swaps it with the merging table's storage, so at any time each of
/// the three allocations (two storages, this buffer) has exactly one holder, which frees it.
public final class MemtableMergeBuffer<Value: TreeValue> {
    public let capacity: Int
    fileprivate var values: UnsafeMutablePointer<Value>
    /// The table whose paced merge writes into `values` now, if any.
    fileprivate weak var merging: Memtable<Value>?

    public init(capacity: Int) {
        precondition(capacity >= 1, "a merge buffer holds a value")
        self.capacity = capacity
        // Not written here: resident only once a merge reaches it.
        values = .allocate(capacity: capacity)
    }

    deinit { values.deallocate() }
}

public final class Memtable<Value: TreeValue> {
    /// Puts this table holds (one bar's worth).
    public let capacity: Int
    /// Runs kept before they are merged into one (one per beat: a bar's beats).
    public let runsMax: Int

    /// Puts one beat's sort takes in its own scratch; more borrow the merge buffer.
    public let sortScratchCapacity: Int

    private var storage: UnsafeMutablePointer<Value>
    private let sortScratch: UnsafeMutablePointer<Value>
    private let mergeBuffer: MemtableMergeBuffer<Value>
    /// Run `r` is `storage[runEnds[r - 1] ..< runEnds[r]]` (from 0 for the first); one more
    /// entry than `runsMax` for the run that triggers a merge.
    private let runEnds: UnsafeMutablePointer<Int>
    public private(set) var runCount = 0
    /// Values held: the runs, then the unsorted suffix (a key may be in several runs until an
    /// immutable table's merge ends).
    public private(set) var count = 0
    public private(set) var isImmutable = false
    /// Immutable and merged into one run: `values` is ready.
    public private(set) var isMerged = false
    /// `count` at `scopeOpen()`, while a scope is open.
    private var scopeCount: Int?
    public var scopeIsActive: Bool { scopeCount != nil }

    // The immutable table's merge (see the header): the tournament of the runs, each run's next
    // position in `storage`, values written to the merge buffer so far, run values left.
    private var mergeTournament: RunTournament<Value.Key>
    private let mergeCursors: UnsafeMutablePointer<Int>
    private var mergeOut = 0
    /// Run values the merge has yet to consume (0 once merged).
    public private(set) var mergeInputsRemaining = 0

    /// How many values ahead of a run's cursor the merge loads its next line.
    private static var mergeReadAhead: Int { 8 }

    /// Runs shorter than this are sorted by insertion before the merge passes.
    private static var insertionRunLength: Int { 16 }
    /// A beat's puts are radix sorted from this many on (keys split into words only; fewer
    /// cost less by insertion and merging than the radix sort's count tables).
    private static var radixSortCountMin: Int { 128 }
    /// The radix sort, for values whose keys split into words (`TreeValue.keyWord`).
    private let radixSort: KeyRadixSort<Value>?

    /// A table of `capacity` puts. `sortScratchCapacity` (default: `capacity`) bounds the puts
    /// a sort takes without the merge buffer; `mergeBuffer` (default: the table's own) may be
    /// shared with the tree's other table.
    public init(
        capacity: Int, runsMax: Int = Constants.lsmCompactionOps, sortScratchCapacity: Int? = nil,
        mergeBuffer: MemtableMergeBuffer<Value>? = nil
    ) {
        precondition(capacity >= 1, "a memtable holds a value")
        precondition(runsMax >= 1, "a memtable keeps a run")
        let buffer = mergeBuffer ?? MemtableMergeBuffer(capacity: capacity)
        // Merges swap storage and buffer: both must hold a full table.
        precondition(buffer.capacity == capacity, "the merge buffer holds exactly a table")
        self.capacity = capacity
        self.runsMax = runsMax
        self.sortScratchCapacity = min(capacity, sortScratchCapacity ?? capacity)
        precondition(self.sortScratchCapacity >= 1, "the sort scratch holds a value")
        self.mergeBuffer = buffer
        // Neither is written here: pages become resident as puts and sorts reach them.
        storage = .allocate(capacity: capacity)
        sortScratch = .allocate(capacity: self.sortScratchCapacity)
        radixSort = Value.keyWordCount > 0 ? KeyRadixSort() : nil
        runEnds = .allocate(capacity: runsMax + 1)
        mergeTournament = RunTournament(runsMax: runsMax + 1)
        mergeCursors = .allocate(capacity: runsMax + 1)
    }

    deinit {
        storage.deallocate()
        sortScratch.deallocate()
        runEnds.deallocate()
        mergeTournament.deallocate()
        mergeCursors.deallocate()
    }

    /// Values in runs; those after are the unsorted suffix.
    private var sortedCount: Int { runCount == 0 ? 0 : runEnds[runCount - 1] }

    public var isFull: Bool { count == capacity }

    /// Sorted run `index` (ascending, each key once); later runs are newer. An immutable table
    /// keeps its runs until its merge ends, then has one.
    func run(_ index: Int) -> UnsafeBufferPointer<Value> {
        precondition(index >= 0 && index < runCount, "memtable run in range")
        let start = index == 0 ? 0 : runEnds[index - 1]
        return UnsafeBufferPointer(start: storage + start, count: runEnds[index] - start)
    }

    /// Adds `value`; a later put of the same key wins.
    @inline(__always)
    public func put(_ value: Value) {
        precondition(!isImmutable, "an immutable memtable takes no puts")
        precondition(count < capacity, "the memtable has room (sized for one bar)")
        suffixAscends = count == sortedCount || (suffixAscends && storage[count - 1].key < value.key)
        (storage + count).initialize(to: value)
        count += 1
    }

    /// Whether the unsorted suffix's keys strictly ascend in put order (an object tree's inserts
    /// by creation timestamp): `get` then binary-searches it, and the beat's sort takes it as a
    /// run without a pass. Kept by `put`; true for an empty suffix. A discarded scope's
    /// truncation leaves it as it was (a truncated ascending suffix still ascends; false is
    /// only ever a missed fast path).
    private var suffixAscends = true

    /// Opens a scope: the puts until `scopeClose(persist:)` can be discarded together.
    public func scopeOpen() {
        precondition(!isImmutable, "a scope covers puts to the mutable memtable")
        precondition(scopeCount == nil, "scopes do not nest")
        scopeCount = count
    }

    /// Closes the scope; `persist: false` drops every put made since `scopeOpen()`.
    public func scopeClose(persist: Bool) {
        guard let start = scopeCount else { preconditionFailure("scopeClose follows scopeOpen") }
        precondition(start >= sortedCount, "no beat sorts the suffix inside a scope")
        precondition(start <= count, "a scope only adds puts")
        scopeCount = nil
        if !persist { count = start }
    }

    /// The newest value of `key` (a tombstone included), or nil.
    public func get(_ key: Value.Key) -> Value? {
        if let value = getUnsorted(key) { return value }
        var run = runCount
        while run > 0 {
            run -= 1
            let start = run == 0 ? 0 : runEnds[run - 1]
            let values = UnsafeBufferPointer(start: storage + start, count: runEnds[run] - start)
            // A run is sorted: its ends bound it. Keys that grow with time (timestamps, and ids
            // chosen as time-based ids recommend) fall outside almost every run, so a lookup
            // costs two compares per run instead of a binary search.
            guard let first = values.first, let last = values.last,
                  !(key < first.key), !(last.key < key)
            else { continue }
            if let value = ValueBlock<Value>.find(values, key) { return value }
        }
        return nil
    }

    /// The newest value of `key` among the puts since the last `sortSuffix` (the current
    /// beat's), or nil.
    public func getUnsorted(_ key: Value.Key) -> Value? {
        let suffixStart = sortedCount
        if suffixAscends {
            // Each key at most once: a binary search.
            let suffix = UnsafeBufferPointer(start: storage + suffixStart, count: count - suffixStart)
            return ValueBlock<Value>.find(suffix, key)
        }
        // Newest first: ≤ one beat of puts.
        var index = count
        while index > suffixStart {
            index -= 1
            if storage[index].key == key { return storage[index] }
        }
        return nil
    }

    /// Puts since the last `sortSuffix`.
    public var unsortedCount: Int { count - sortedCount }

    /// Sorts the puts since the last call into a run (once per beat). A run beyond `runsMax`
    /// merges all runs into one, so the table stays within its bounds whatever the beat count.
    public func sortSuffix() {
        precondition(!isImmutable, "an immutable memtable is sorted")
        precondition(scopeCount == nil, "no beat inside a scope (the scope truncates the unsorted suffix)")
        let start = sortedCount
        if count == start { return }
        sortSuffixRun(from: start)
        // One run over the limit (runEnds has room for it): merge them all into one.
        if runCount > runsMax { mergeRuns() }
        assert(runsAreSorted(), "memtable runs ascend")
    }

    /// Turns the table immutable (no puts after): sorts the last beat's puts into a run and
    /// starts the merge of the runs, which `mergeStep` and `finishMerge` carry out.
    public func makeImmutable() {
        precondition(!isImmutable, "made immutable once per bar")
        sortSuffix()
        isImmutable = true
        assert(runsAreSorted(), "memtable runs ascend")
        startMerge()
    }

    /// Sets up the paced merge of the runs (`mergeStep`); a table of one run is merged already.
    private func startMerge() {
        mergeOut = 0
        // One run (or none) is sorted with each key once: merged as it is, no copy.
        if runCount <= 1 {
            mergeInputsRemaining = 0
            isMerged = true
            return
        }
        takeMergeBuffer()
        mergeBuffer.merging = self
        mergeInputsRemaining = count
        for run in 0..<runCount {
            mergeCursors[run] = run == 0 ? 0 : runEnds[run - 1]
            precondition(mergeCursors[run] < runEnds[run], "a memtable run holds a value")
        }
        mergeTournament.start(runCount: runCount) { run in storage[mergeCursors[run]].key }
        isMerged = false
    }

    /// Takes the puts of `other`, a mutable table at its bar's end, into this immutable table,
    /// which was held back from its flush because it is small (Tree.swift, "Small immutable
    /// tables"); `other` is left empty. The result is an immutable table whose runs are this
    /// table's (older) then `other`'s (newer), merged over the next half-bar like a fresh one.
    /// A run of `other` whose keys all follow this table's keys (keys that grow with time)
    /// extends this table's run instead: no merge at all.
    public func absorb(_ other: Memtable<Value>) {
        precondition(isImmutable, "an immutable memtable absorbs")
        precondition(!other.isImmutable, "the absorbed memtable is the mutable one")
        precondition(other !== self, "a memtable does not absorb itself")
        precondition(other.scopeCount == nil, "no absorb inside a scope")
        precondition(other.capacity == capacity && other.runsMax == runsMax, "the tree's two memtables match")
        finishMerge()
        other.sortSuffix()
        precondition(count + other.count <= capacity, "the tree absorbs only what fits (Tree.mayHoldImmutable)")
        precondition(runCount <= 1 && other.runCount <= runsMax, "a merged table and a bar's runs fit runEnds")
        if other.count > 0 {
            (storage + count).update(from: other.storage, count: other.count)
            for run in 0..<other.runCount {
                let end = count + other.runEnds[run]
                let extendsLastRun = run == 0 && runCount == 1 && storage[count - 1].key < storage[count].key
                if extendsLastRun {
                    runEnds[0] = end
                } else {
                    runEnds[runCount] = end
                    runCount += 1
                }
            }
            count += other.count
        }
        other.reset()
        assert(runsAreSorted(), "memtable runs ascend")
        startMerge()
    }

    /// Makes the shared merge buffer this table's to write: another table's paced merge into
    /// it is finished first (`finishMerge` then swaps it out, so read `mergeBuffer.values` after).
    private func takeMergeBuffer() {
        if let other = mergeBuffer.merging, other !== self { other.finishMerge() }
        precondition(mergeBuffer.merging == nil, "one memtable merges into the shared buffer at a time")
    }

    /// Merges up to `inputsMax` run values (a bounded step: ~log2(runs) comparisons each).
    public func mergeStep(inputsMax: Int) {
        precondition(isImmutable, "only an immutable memtable merges its runs")
        if isMerged { return }
        precondition(mergeBuffer.merging === self, "a paced merge owns the shared buffer until it ends")
        let output = mergeBuffer.values
        var budget = min(inputsMax, mergeInputsRemaining)
        // Each turn consumes one run value: bounded by `budget`.
        while budget > 0 {
            let run = mergeTournament.winner
            let cursor = mergeCursors[run]
            let value = storage[cursor]
            // Equal keys come newest run first: only the first of a key is kept.
            if mergeOut == 0 || output[mergeOut - 1].key != value.key {
                (output + mergeOut).initialize(to: value)
                mergeOut += 1
            }
            budget -= 1
            mergeInputsRemaining -= 1
            mergeCursors[run] = cursor + 1
            // The run's value `mergeReadAhead` ahead, every line of it: up to 32 runs are read
            // side by side, more streams than the hardware prefetcher follows. A hint: past the
            // run it loads a neighbour's line (or nothing that matters), never faults.
            let ahead = UnsafeRawPointer(storage + cursor + Self.mergeReadAhead)
            ledger_prefetch_read(ahead)
            if MemoryLayout<Value>.stride > 64 { ledger_prefetch_read(ahead + 64) }
            mergeTournament.advanceWinner(next: cursor + 1 < runEnds[run] ? storage[cursor + 1].key : nil)
        }
        if mergeInputsRemaining == 0 {
            precondition(!mergeTournament.isLive, "every run consumed when no input remains")
            // Every value now lives in the merge buffer: it becomes the storage, one run, and
            // the old storage becomes the buffer.
            swap(&storage, &mergeBuffer.values)
            mergeBuffer.merging = nil
            runEnds[0] = mergeOut
            runCount = 1
            count = mergeOut
            isMerged = true
            assert(runsAreSorted(), "the merged memtable ascends")
        }
    }

    /// Merges what is left of the runs (a no-op once merged).
    public func finishMerge() {
        mergeStep(inputsMax: mergeInputsRemaining)
    }

    /// The immutable table's values, ascending by key, each key once with its latest put, for
    /// the flush to level 0.
    public var values: UnsafeBufferPointer<Value> {
        precondition(isImmutable && isMerged, "a memtable is one sorted run once immutable and merged")
        return UnsafeBufferPointer(start: storage, count: count)
    }

    /// Empties the table and makes it mutable again.
    public func reset() {
        precondition(scopeCount == nil, "no reset inside a scope")
        // A merge cut short leaves the buffer free (its partial output is dropped).
        if mergeBuffer.merging === self { mergeBuffer.merging = nil }
        count = 0
        runCount = 0
        isImmutable = false
        isMerged = false
        mergeOut = 0
        mergeInputsRemaining = 0
    }

    // MARK: - Sorting

    /// Sorts `storage[start..<count]` stably, drops all but the last value of each key, and
    /// records it as a run.
    private func sortSuffixRun(from start: Int) {
        precondition(runCount <= runsMax, "room for a run")
        let length = count - start
        // Fast path: puts whose keys already ascend strictly (an object tree keyed by creation
        // timestamp, an id tree of time-based ids) are a run as they are, with no duplicates to
        // drop; one pass of compares instead of a sort. If the run also starts above the
        // previous run's last key, it extends that run: fewer runs, faster lookups and merges.
        if suffixAscends || Self.ascendsStrictly(storage + start, length) {
            if runCount > 0, runEnds[runCount - 1] == start, start > 0, storage[start - 1].key < storage[start].key {
                runEnds[runCount - 1] = count
            } else {
                runEnds[runCount] = count
                runCount += 1
            }
            return
        }
        // The beat's own scratch, or the merge buffer for more puts than it holds.
        var target = sortScratch
        if length > sortScratchCapacity {
            takeMergeBuffer()
            target = mergeBuffer.values
        }
        let sorted = if let radixSort, length >= Self.radixSortCountMin {
            radixSort.sort(storage + start, length, scratch: target)
        } else {
            mergeSort(storage + start, length, scratch: target)
        }
        count = start + dedupKeepingLast(sorted, length, into: storage + start)
        runEnds[runCount] = count
        runCount += 1
    }

    /// Sorts `values[0..<count]` stably: insertion sorts of short chunks, then bottom-up merge
    /// passes between `values` and `scratch`; returns the one that holds the result.
    private func mergeSort(
        _ values: UnsafeMutablePointer<Value>, _ count: Int, scratch: UnsafeMutablePointer<Value>
    ) -> UnsafeMutablePointer<Value> {
        var source = values
        var target = scratch
        insertionSortChunks(source, count)
        var width = Self.insertionRunLength
        // Doubles `width` each pass: ≤ log2(capacity) passes.
        while width < count {
            var low = 0
            while low < count {
                let middle = min(low + width, count)
                let high = min(low + 2 * width, count)
                mergeStable(source + low, middle - low, source + middle, high - middle, into: target + low)
                low = high
            }
            swap(&source, &target)
            width *= 2
        }
        return source
    }

    /// Whether `values[0..<count]` has strictly ascending keys.
    private static func ascendsStrictly(_ values: UnsafeMutablePointer<Value>, _ count: Int) -> Bool {
        var index = 1
        while index < count {
            guard values[index - 1].key < values[index].key else { return false }
            index += 1
        }
        return true
    }

    /// Sorts each chunk of `insertionRunLength` values of `values[0..<count]` by insertion
    /// (stable: a value moves only past strictly greater keys).
    private func insertionSortChunks(_ values: UnsafeMutablePointer<Value>, _ count: Int) {
        var chunk = 0
        while chunk < count {
            let end = min(chunk + Self.insertionRunLength, count)
            var index = chunk + 1
            while index < end {
                let value = values[index]
                var slot = index
                while slot > chunk, value.key < values[slot - 1].key {
                    values[slot] = values[slot - 1]
                    slot -= 1
                }
                values[slot] = value
                index += 1
            }
            chunk = end
        }
    }

    /// Merges two ascending sequences into `target`; on equal keys the left one goes first,
    /// which keeps put order (stability).
    private func mergeStable(
        _ left: UnsafeMutablePointer<Value>, _ leftCount: Int, _ right: UnsafeMutablePointer<Value>,
        _ rightCount: Int, into target: UnsafeMutablePointer<Value>
    ) {
        var l = 0
        var r = 0
        var out = 0
        while l < leftCount && r < rightCount {
            if right[r].key < left[l].key {
                target[out] = right[r]
                r += 1
            } else {
                target[out] = left[l]
                l += 1
            }
            out += 1
        }
        if l < leftCount { (target + out).update(from: left + l, count: leftCount - l) }
        if r < rightCount { (target + out).update(from: right + r, count: rightCount - r) }
    }

    /// Copies sorted `values[0..<count]` to `target` with one value per key, the last of each;
    /// returns how many. `target` may be `values` itself (it writes no further than it read).
    private func dedupKeepingLast(
        _ values: UnsafeMutablePointer<Value>, _ count: Int, into target: UnsafeMutablePointer<Value>
    ) -> Int {
        var out = 0
        for index in 0..<count {
            if index + 1 < count, values[index + 1].key == values[index].key { continue }
            target[out] = values[index]
            out += 1
        }
        return out
    }

    /// Merges every run into one (no unsorted suffix). Each pass merges pairs of runs, newer
    /// winning on equal keys; it halves the run count, so ≤ log2(runsMax) passes.
    private func mergeRuns() {
        precondition(count == sortedCount, "no unsorted suffix while merging runs")
        takeMergeBuffer()
        // Bounded by log2(runsMax) passes.
        while runCount > 1 {
            let scratch = mergeBuffer.values
            var out = 0
            var merged = 0
            var run = 0
            while run < runCount {
                let start = run == 0 ? 0 : runEnds[run - 1]
                let middle = runEnds[run]
                let end = run + 1 < runCount ? runEnds[run + 1] : middle
                out += mergeNewerWins(
                    older: storage + start, middle - start, newer: storage + middle, end - middle,
                    into: scratch + out)
                runEnds[merged] = out
                merged += 1
                run += 2
            }
            // Every value now lives in the merge buffer: it becomes the storage.
            swap(&storage, &mergeBuffer.values)
            runCount = merged
            count = out
        }
    }

    /// Merges two ascending runs with unique keys into `target`, one value per key, `newer`'s on
    /// equal keys; returns the output count.
    private func mergeNewerWins(
        older: UnsafeMutablePointer<Value>, _ olderCount: Int, newer: UnsafeMutablePointer<Value>,
        _ newerCount: Int, into target: UnsafeMutablePointer<Value>
    ) -> Int {
        var o = 0
        var n = 0
        var out = 0
        while o < olderCount && n < newerCount {
            let olderKey = older[o].key
            let newerKey = newer[n].key
            if olderKey < newerKey {
                target[out] = older[o]
                o += 1
            } else {
                if olderKey == newerKey { o += 1 }
                target[out] = newer[n]
                n += 1
            }
            out += 1
        }
        if o < olderCount { (target + out).update(from: older + o, count: olderCount - o) }
        if n < newerCount { (target + out).update(from: newer + n, count: newerCount - n) }
        return out + (olderCount - o) + (newerCount - n)
    }

    private func runsAreSorted() -> Bool {
        var start = 0
        for run in 0..<runCount {
            let values = UnsafeBufferPointer(start: storage + start, count: runEnds[run] - start)
            if !ValueBlock<Value>.isAscending(values) { return false }
            start = runEnds[run]
        }
        return true
    }
}

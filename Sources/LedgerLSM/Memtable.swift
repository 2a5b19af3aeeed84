import LedgerKit

// A tree's in-memory table (storage spec §5 "Memtables"). The mutable table takes every put of
// a bar; once per beat the puts since the last beat are sorted into a run, so a lookup is a
// binary search per run plus a short linear scan of the current beat's puts. At bar end the
// table becomes immutable: its runs are merged into one sorted array, each key once, which is
// flushed to level 0 during the next bar.
//
// Sketch (transfers, production): one bar = 32 beats × 8,189 puts = 262 k values of 128 B =
// 32 MiB, plus as much scratch for the merges (allocated once at init, never after). Sorting a
// beat's 8 k values is a bottom-up merge sort (stable, no recursion, no allocation):
// ~8 k × 13 comparisons ≈ 100 µs. A lookup: ≤ 8 k linear compares in the current beat, then
// ≤ 32 binary searches.
//
// Within a run each key appears once: a stable sort keeps equal keys in put order, and the
// dedup keeps the last (the latest put wins). Runs are in put order too, so a later run
// shadows an earlier one.

public final class Memtable<Value: TreeValue> {
    /// Puts this table holds (one bar's worth).
    public let capacity: Int
    /// Runs kept before they are merged into one (one per beat: a bar's beats).
    public let runsMax: Int

    private var storage: UnsafeMutablePointer<Value>
    private var scratch: UnsafeMutablePointer<Value>
    /// Run `r` is `storage[runEnds[r - 1] ..< runEnds[r]]` (from 0 for the first); one more
    /// entry than `runsMax` for the run that triggers a merge.
    private let runEnds: UnsafeMutablePointer<Int>
    public private(set) var runCount = 0
    /// Values held: the runs, then the unsorted suffix.
    public private(set) var count = 0
    public private(set) var isImmutable = false

    /// Runs shorter than this are sorted by insertion before the merge passes.
    private static var insertionRunLength: Int { 16 }

    public init(capacity: Int, runsMax: Int = Constants.lsmCompactionOps) {
        precondition(capacity >= 1, "a memtable holds a value")
        precondition(runsMax >= 1, "a memtable keeps a run")
        self.capacity = capacity
        self.runsMax = runsMax
        storage = .allocate(capacity: capacity)
        scratch = .allocate(capacity: capacity)
        runEnds = .allocate(capacity: runsMax + 1)
    }

    deinit {
        storage.deallocate()
        scratch.deallocate()
        runEnds.deallocate()
    }

    /// Values in runs; those after are the unsorted suffix.
    private var sortedCount: Int { runCount == 0 ? 0 : runEnds[runCount - 1] }

    public var isFull: Bool { count == capacity }

    /// Sorted run `index` (ascending, each key once); later runs are newer.
    func run(_ index: Int) -> UnsafeBufferPointer<Value> {
        precondition(index >= 0 && index < runCount, "memtable run in range")
        let start = index == 0 ? 0 : runEnds[index - 1]
        return UnsafeBufferPointer(start: storage + start, count: runEnds[index] - start)
    }

    /// Adds `value`; a later put of the same key wins.
    public func put(_ value: Value) {
        precondition(!isImmutable, "an immutable memtable takes no puts")
        precondition(count < capacity, "the memtable has room (sized for one bar)")
        (storage + count).initialize(to: value)
        count += 1
    }

    /// The newest value of `key` (a tombstone included), or nil.
    public func get(_ key: Value.Key) -> Value? {
        let suffixStart = sortedCount
        // The current beat's puts, newest first: ≤ one beat of puts.
        var index = count
        while index > suffixStart {
            index -= 1
            if storage[index].key == key { return storage[index] }
        }
        var run = runCount
        while run > 0 {
            run -= 1
            let start = run == 0 ? 0 : runEnds[run - 1]
            let values = UnsafeBufferPointer(start: storage + start, count: runEnds[run] - start)
            if let value = ValueBlock<Value>.find(values, key) { return value }
        }
        return nil
    }

    /// Sorts the puts since the last call into a run (once per beat). A run beyond `runsMax`
    /// merges all runs into one, so the table stays within its bounds whatever the beat count.
    public func sortSuffix() {
        precondition(!isImmutable, "an immutable memtable is sorted")
        let start = sortedCount
        if count == start { return }
        sortSuffixRun(from: start)
        // One run over the limit (runEnds has room for it): merge them all into one.
        if runCount > runsMax { mergeRuns() }
        assert(runsAreSorted(), "memtable runs ascend")
    }

    /// Turns the table immutable: one sorted run, each key once with its latest put.
    public func makeImmutable() {
        precondition(!isImmutable, "made immutable once per bar")
        sortSuffix()
        mergeRuns()
        isImmutable = true
        assert(runsAreSorted(), "memtable runs ascend")
    }

    /// The immutable table's values, ascending by key, for the flush to level 0.
    public var values: UnsafeBufferPointer<Value> {
        precondition(isImmutable, "a mutable memtable is not yet one sorted run")
        return UnsafeBufferPointer(start: storage, count: count)
    }

    /// Empties the table and makes it mutable again.
    public func reset() {
        count = 0
        runCount = 0
        isImmutable = false
    }

    // MARK: - Sorting

    /// Sorts `storage[start..<count]` stably, drops all but the last value of each key, and
    /// records it as a run.
    private func sortSuffixRun(from start: Int) {
        precondition(runCount <= runsMax, "room for a run")
        let length = count - start
        var source = storage + start
        var target = scratch + start
        insertionSortChunks(source, length)
        var width = Self.insertionRunLength
        // Doubles `width` each pass: ≤ log2(capacity) passes.
        while width < length {
            var low = 0
            while low < length {
                let middle = min(low + width, length)
                let high = min(low + 2 * width, length)
                mergeStable(source + low, middle - low, source + middle, high - middle, into: target + low)
                low = high
            }
            swap(&source, &target)
            width *= 2
        }
        if source != storage + start { (storage + start).update(from: source, count: length) }
        count = start + dedupKeepingLast(storage + start, length)
        runEnds[runCount] = count
        runCount += 1
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

    /// Compacts sorted `values[0..<count]` to one value per key, the last of each; returns the
    /// new count.
    private func dedupKeepingLast(_ values: UnsafeMutablePointer<Value>, _ count: Int) -> Int {
        var out = 0
        for index in 0..<count {
            if index + 1 < count, values[index + 1].key == values[index].key { continue }
            values[out] = values[index]
            out += 1
        }
        return out
    }

    /// Merges every run into one (no unsorted suffix). Each pass merges pairs of runs, newer
    /// winning on equal keys; it halves the run count, so ≤ log2(runsMax) passes.
    private func mergeRuns() {
        precondition(count == sortedCount, "no unsorted suffix while merging runs")
        // Bounded by log2(runsMax) passes.
        while runCount > 1 {
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
            // Every value now lives in `scratch`: it becomes the storage.
            swap(&storage, &scratch)
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

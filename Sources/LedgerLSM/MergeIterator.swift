// The k-way merge under compaction and scans (storage spec §5): sources of one tree — the
// mutable and immutable memtables, then tables of level 0, 1, … — each sorted by key, merged
// into one stream where every key appears once with the value of its newest source.
//
// A source is a cursor over values already in memory (a memtable, a value block, a test
// array). A source whose buffer is used up may not be finished (a table's next value block is
// still being read): the merge then reports `.blocked(source:)` and the caller refills that
// source before calling `next()` again. The merge never emits a key while any source that could
// hold a smaller one is blocked.
//
// Cost: k ≤ 16 sources, a linear scan of them per emitted value. Compaction merges 2 sources and
// a scan at most 2 memtables + 7 levels, where a scan of ≤ 9 peeks beats a heap's bookkeeping;
// a tournament tree would pay off only for much larger k. The sources live inline in the
// iterator (`InlineArray`): no allocation at all. Compaction takes runs (`nextRun`, below): one
// scan of the sources per stretch of one source's keys rather than per value.

public enum ScanDirection: Sendable {
    case ascending
    case descending
}

/// What a source offers next.
public enum MergePeek<Value: TreeValue> {
    case value(Value)
    /// Nothing in memory now, but more values follow once the caller refills the source.
    case drained
    /// No more values.
    case exhausted
}

/// A sorted cursor over in-memory values, in the merge's direction, each key at most once.
public protocol MergeSource {
    associatedtype Value: TreeValue
    func peek() -> MergePeek<Value>
    /// Steps past the value `peek()` returned (only after it returned `.value`).
    mutating func advance()
}

/// A source over one buffer of ascending values at a time (a memtable's values, a value block,
/// a test array), read forwards or backwards; `refill` moves it to the next buffer.
public struct BufferSource<Value: TreeValue>: MergeSource {
    public private(set) var buffer: UnsafeBufferPointer<Value>
    public let direction: ScanDirection
    /// Whether no buffer follows this one.
    public private(set) var isLast: Bool
    /// Values consumed from `buffer`.
    public private(set) var consumed = 0

    public init(_ buffer: UnsafeBufferPointer<Value>, direction: ScanDirection = .ascending, isLast: Bool = true) {
        self.buffer = buffer
        self.direction = direction
        self.isLast = isLast
    }

    public func peek() -> MergePeek<Value> {
        if consumed == buffer.count { return isLast ? .exhausted : .drained }
        return .value(buffer[direction == .ascending ? consumed : buffer.count - 1 - consumed])
    }

    public mutating func advance() {
        precondition(consumed < buffer.count, "advance past a value that was peeked")
        consumed += 1
    }

    /// Steps past the next `count` values of the buffer (a run the merge emitted in bulk).
    public mutating func advance(by count: Int) {
        precondition(count >= 1, "a run holds a value")
        precondition(count <= buffer.count - consumed, "advance within the buffer")
        consumed += count
    }

    /// Continues with `next` (ascending values, beyond the previous buffer's in the direction).
    public mutating func refill(_ next: UnsafeBufferPointer<Value>, isLast: Bool) {
        precondition(consumed == buffer.count, "refill a drained source")
        precondition(!self.isLast, "refill a source that has more")
        buffer = next
        consumed = 0
        self.isLast = isLast
    }
}

/// What the merge yields next.
public enum MergeStep<Value: TreeValue> {
    case value(Value)
    /// Source `source` must be refilled before the merge can go on.
    case blocked(source: Int)
    case done
}

public struct MergeIterator<Source: MergeSource> {
    public typealias Value = Source.Value
    public static var sourcesMax: Int { 16 }

    public let direction: ScanDirection
    /// Whether tombstones are dropped (the output goes to the last level, or nothing lies below)
    /// rather than emitted to shadow older values further down.
    public let dropTombstones: Bool
    public private(set) var sourceCount = 0
    private var sources = InlineArray<16, Source?>(repeating: nil)
    /// Per source: 0 is the newest (the mutable memtable), larger is older.
    private var priorities = InlineArray<16, Int>(repeating: 0)
    /// The last key taken from the sources, emitted or dropped: keys must move strictly in
    /// `direction`, which also catches a source out of order.
    private var lastKey: Value.Key?

    public init(direction: ScanDirection = .ascending, dropTombstones: Bool) {
        self.direction = direction
        self.dropTombstones = dropTombstones
    }

    /// Adds a source (sorted in `direction`) with its age: 0 = newest; priorities are distinct.
    /// Returns the source's index, as `.blocked(source:)` names it.
    @discardableResult
    public mutating func add(_ source: Source, priority: Int) -> Int {
        precondition(sourceCount < Self.sourcesMax, "at most 16 merge sources")
        precondition(lastKey == nil, "sources are added before the merge starts")
        for index in 0..<sourceCount {
            precondition(priorities[index] != priority, "merge source priorities are distinct")
        }
        sources[sourceCount] = source
        priorities[sourceCount] = priority
        sourceCount += 1
        return sourceCount - 1
    }

    /// Source `index`, to refill it after `.blocked(source: index)`.
    public subscript(source index: Int) -> Source {
        get {
            precondition(index >= 0 && index < sourceCount, "merge source in range")
            return sources[index]!
        }
        set {
            precondition(index >= 0 && index < sourceCount, "merge source in range")
            sources[index] = newValue
        }
    }

    /// The next value: the next key in `direction` with its newest source's value (older values
    /// of the key are skipped), unless it is a tombstone and tombstones are dropped.
    public mutating func next() -> MergeStep<Value> {
        // Each pass consumes at least one value or returns, so this ends within the values
        // buffered in the sources (a dropped tombstone is the only reason to loop).
        while true {
            var winner = -1
            var winnerValue: Value? = nil
            for index in 0..<sourceCount {
                switch sources[index]!.peek() {
                case .exhausted:
                    continue
                case .drained:
                    return .blocked(source: index)
                case .value(let value):
                    guard let best = winnerValue else {
                        winner = index
                        winnerValue = value
                        continue
                    }
                    if precedes(value.key, best.key)
                        || (value.key == best.key && priorities[index] < priorities[winner])
                    {
                        winner = index
                        winnerValue = value
                    }
                }
            }
            guard let value = winnerValue else { return .done }
            let key = value.key
            if let lastKey { precondition(precedes(lastKey, key), "merged keys move strictly in the scan direction") }
            lastKey = key
            // Consume the key from every source: the winner's value and the older ones it shadows.
            for index in 0..<sourceCount {
                if case .value(let other) = sources[index]!.peek(), other.key == key {
                    sources[index]!.advance()
                }
            }
            if value.isTombstone && dropTombstones { continue }
            return .value(value)
        }
    }

    private func precedes(_ a: Value.Key, _ b: Value.Key) -> Bool {
        direction == .ascending ? a < b : b < a
    }
}

/// What `MergeIterator.nextRun(limit:)` yields next.
public enum MergeRunStep<Value: TreeValue> {
    /// Values to emit, in order: a slice of one source's buffer, valid until that source is
    /// refilled (the caller copies it out before calling the merge again).
    case run(UnsafeBufferPointer<Value>)
    /// Source `source` must be refilled before the merge can go on.
    case blocked(source: Int)
    case done
}

// Runs: compaction merges sources whose keys come in long stretches from one source (an index
// tree's new (account, timestamp) keys all follow the account's older ones; a source whose
// peers are exhausted is one stretch to its end). Emitting such a stretch as one slice costs a
// galloping search instead of a peek of every source, an enum and two order checks per value,
// and lets the table builder copy it with one memcpy.
//
// Order: the merge checks (precondition) that each run starts above the last key it took. The
// order inside a run is the source's, checked by the caller where the values came from (the
// compaction: `ValueBlock.checkOrder` on every value block it reads, but those its own jobs
// wrote in this process (trusted), and a check of each memtable run as it copies it: see
// TreeCompaction "Key order"); here it is a debug `assert` only.
extension MergeIterator {
    /// The next run of values to emit, ascending merges of buffer sources only: at most `limit`
    /// values of the source holding the smallest key, each below every other source's next key
    /// (so no other source holds a newer value of it), with tombstones dropped if asked. A key
    /// held by several sources is a run of one value (the newest), the older ones are skipped.
    /// Emits the same values, in the same order, as repeated `next()`.
    public mutating func nextRun<V: TreeValue>(limit: Int) -> MergeRunStep<V> where Source == BufferSource<V> {
        precondition(direction == .ascending, "runs are slices of ascending buffers")
        precondition(limit >= 1, "a run holds a value")
        // Each pass returns or consumes a dropped tombstone: ends within the buffered values.
        while true {
            var winner = -1
            var winnerKey: V.Key? = nil
            // The smallest next key of the other sources: the winner's run stays below it.
            var bound: V.Key? = nil
            for index in 0..<sourceCount {
                let source = sources[index]!
                if source.consumed == source.buffer.count {
                    if source.isLast { continue }
                    return .blocked(source: index)
                }
                let key = source.buffer[source.consumed].key
                guard let best = winnerKey else {
                    winner = index
                    winnerKey = key
                    continue
                }
                if key < best || (key == best && priorities[index] < priorities[winner]) {
                    bound = Self.smaller(bound, best)
                    winner = index
                    winnerKey = key
                } else {
                    bound = Self.smaller(bound, key)
                }
            }
            guard let key = winnerKey else { return .done }
            if let lastKey { precondition(lastKey < key, "merged keys move strictly in the scan direction") }
            let buffer = sources[winner]!.buffer
            let start = sources[winner]!.consumed
            if let bound, bound == key {
                // Shadowed: older sources hold the key too. Consume it everywhere, emit the newest.
                lastKey = key
                for index in 0..<sourceCount {
                    let source = sources[index]!
                    if source.consumed < source.buffer.count && source.buffer[source.consumed].key == key {
                        sources[index]!.advance()
                    }
                }
                if dropTombstones && buffer[start].isTombstone { continue }
                return .run(UnsafeBufferPointer(rebasing: buffer[start..<(start + 1)]))
            }
            if dropTombstones && buffer[start].isTombstone {
                lastKey = key
                sources[winner]!.advance()
                continue
            }
            let end = Self.runEnd(
                buffer, start: start, end: start + min(limit, buffer.count - start), bound: bound,
                stopAtTombstone: dropTombstones)
            let run = UnsafeBufferPointer(rebasing: buffer[start..<end])
            assert(ValueBlock<V>.isAscending(run), "a source's buffer ascends")
            lastKey = run[run.count - 1].key
            sources[winner]!.advance(by: run.count)
            return .run(run)
        }
    }

    private static func smaller<K: Comparable>(_ a: K?, _ b: K) -> K {
        guard let a else { return b }
        return b < a ? b : a
    }

    /// The end of the run that starts at `start` (whose key is below `bound`): the first index
    /// in `start + 1 ..< end` whose key is not below `bound` (or a tombstone, if asked), else `end`.
    private static func runEnd<V: TreeValue>(
        _ buffer: UnsafeBufferPointer<V>, start: Int, end: Int, bound: V.Key?, stopAtTombstone: Bool
    ) -> Int {
        precondition(start < end, "a run holds a value")
        let boundEnd = runEnd(buffer, start: start, end: end, bound: bound)
        guard stopAtTombstone else { return boundEnd }
        // Tombstones can be anywhere: look at every value of the run, but only at its flag (a
        // key comparison per value, `CompositeKey128`'s 24 bytes, was 7 % of a server's CPU).
        var index = start + 1
        while index < boundEnd && !buffer[index].isTombstone { index += 1 }
        return index
    }

    /// The first index in `start + 1 ..< end` whose key is not below `bound`, else `end`.
    private static func runEnd<V: TreeValue>(
        _ buffer: UnsafeBufferPointer<V>, start: Int, end: Int, bound: V.Key?
    ) -> Int {
        guard let bound else { return end }
        // Gallop from `start`: `low` is below the bound; `high` is not, or is `end` (taken as
        // not below). Double the step until `high` is not below (≤ log2(end - start) steps),
        // then bisect (as many again). No look at `end - 1` first: with the short runs of
        // interleaved random keys that line, far ahead in a block just read from disk, was a
        // cache miss on every call (half of this function's time in the forest benchmark),
        // while the gallop's first steps read the lines next to `start`.
        var low = start
        var high = start + 1
        var step = 1
        while high < end && buffer[high].key < bound {
            low = high
            step *= 2
            high = min(start + step, end)
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if buffer[middle].key < bound { low = middle } else { high = middle }
        }
        return high
    }
}

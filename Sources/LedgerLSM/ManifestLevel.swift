/// The tables of one level of one tree (storage spec §5 "Trees", "Manifest").
///
/// Tables are kept sorted by (key min, snapshot min, address) in flat arrays allocated at init
/// for `tablesMax` tables; inserts and removes shift the tail in place and never allocate.
/// The keys are decoded once, at insert, into parallel arrays, so searches compare `Key`s
/// without loading them from `TableInfo` bytes.
///
/// **Disjointness.** At any one snapshot, the tables of a level that see it have disjoint key
/// ranges. Tables of different snapshots may overlap (a compaction's retired inputs and its
/// outputs cover the same keys), so the whole array is not disjoint: two tables whose key
/// ranges overlap must have disjoint visibility intervals. Among the tables visible at one
/// snapshot, key min order is therefore also key max order.
///
/// **Searching with retired tables present.** Because of those overlaps, "first table whose key
/// max reaches `lo`" is not a binary search on key max. We keep `keyMaxPrefix[i]` = the largest
/// key max of tables `0...i`: it is monotonic, so the first table that may reach `lo` is a
/// binary search on it, and the last is a binary search on key min. Retired tables widen that
/// window only until they are removed (once no snapshot sees them).
///
/// Sketch: production levels hold up to 8^(level+1) tables (2 M at level 6); shifting a flat
/// array of that size per insert is too slow there, and a segmented array over a node pool
/// replaces this storage then. Searches stay O(log n + overlaps) either way.
public struct ManifestLevel<Key: Comparable & BitwiseCopyable> {
    /// Storage capacity: visible tables plus retired tables still seen by some snapshot.
    public let tablesMax: Int
    private var tables: [TableInfo]
    private var keyMins: [Key]
    private var keyMaxs: [Key]
    /// `keyMaxPrefix[i] == max(keyMaxs[0...i])`.
    private var keyMaxPrefix: [Key]
    /// Tables whose snapshot max is `snapshotMaxLive` (not retired by a compaction yet).
    public private(set) var liveCount: Int = 0

    public init(tablesMax: Int) {
        precondition(tablesMax >= 1, "a level holds at least one table")
        self.tablesMax = tablesMax
        tables = []
        keyMins = []
        keyMaxs = []
        keyMaxPrefix = []
        tables.reserveCapacity(tablesMax)
        keyMins.reserveCapacity(tablesMax)
        keyMaxs.reserveCapacity(tablesMax)
        keyMaxPrefix.reserveCapacity(tablesMax)
    }

    /// Tables stored, visible or not.
    public var count: Int { tables.count }
    public var isFull: Bool { tables.count == tablesMax }

    /// The table at `index` in storage order (ascending key min).
    public func table(at index: Int) -> TableInfo { tables[index] }

    /// Tables visible at `snapshot` (a scan of the level).
    public func visibleCount(snapshot: UInt64) -> Int {
        var result = 0
        for table in tables where table.isVisible(snapshot: snapshot) { result += 1 }
        return result
    }

    // MARK: Changes

    /// Adds `table`, which must not conflict with the level (see `fault(inserting:)`).
    public mutating func insert(_ table: TableInfo) {
        precondition(tables.count < tablesMax, "a manifest level never holds more than tablesMax tables")
        let keyMin = table.keyMin(as: Key.self)
        let keyMax = table.keyMax(as: Key.self)
        precondition(keyMin <= keyMax, "a table's key min is not above its key max")
        precondition(table.snapshotMin < table.snapshotMax, "a table is visible at some snapshot")
        assert(fault(inserting: table) == nil, "tables of a level are disjoint at every snapshot")

        let position = insertionIndex(table, keyMin: keyMin)
        tables.insert(table, at: position)
        keyMins.insert(keyMin, at: position)
        keyMaxs.insert(keyMax, at: position)
        keyMaxPrefix.insert(keyMax, at: position)
        updatePrefix(from: position)
        if table.snapshotMax == TableInfo.snapshotMaxLive { liveCount += 1 }
    }

    /// Removes the table with `table`'s identity; it must be present.
    @discardableResult
    public mutating func remove(_ table: TableInfo) -> TableInfo {
        guard let position = index(of: table) else {
            preconditionFailure("a removed table is in its level")
        }
        let removed = tables.remove(at: position)
        keyMins.remove(at: position)
        keyMaxs.remove(at: position)
        keyMaxPrefix.remove(at: position)
        updatePrefix(from: position)
        if removed.snapshotMax == TableInfo.snapshotMaxLive { liveCount -= 1 }
        return removed
    }

    /// Retires the table with `table`'s identity from `snapshotMax` on. Snapshot max only moves
    /// down, so the change cannot make two tables of the level overlap.
    @discardableResult
    public mutating func updateSnapshotMax(_ table: TableInfo, to snapshotMax: UInt64) -> TableInfo {
        guard let position = index(of: table) else {
            preconditionFailure("an updated table is in its level")
        }
        let current = tables[position]
        precondition(snapshotMax < current.snapshotMax, "snapshot max only moves down")
        precondition(current.snapshotMin < snapshotMax, "a table is visible at some snapshot")
        if current.snapshotMax == TableInfo.snapshotMaxLive { liveCount -= 1 }
        tables[position].snapshotMax = snapshotMax
        return tables[position]
    }

    // MARK: Queries

    /// Storage index of the table with `table`'s identity, if present.
    public func index(of table: TableInfo) -> Int? {
        let keyMin = table.keyMin(as: Key.self)
        var position = lowerBound(keyMin: keyMin)
        // Tables with one key min are few (the generations of a compaction); bounded by count.
        while position < tables.count, keyMins[position] == keyMin {
            if tables[position].isSameTable(as: table) { return position }
            position += 1
        }
        return nil
    }

    public func contains(_ table: TableInfo) -> Bool { index(of: table) != nil }

    /// The table visible at `snapshot` whose key range holds `key` (at most one, by disjointness).
    public func table(containing key: Key, snapshot: UInt64) -> TableInfo? {
        let window = candidates(keyMin: key, keyMax: key)
        for position in window where tables[position].isVisible(snapshot: snapshot) {
            if keyMaxs[position] >= key { return tables[position] }
        }
        return nil
    }

    /// Tables visible at `snapshot`, in key order, optionally only those overlapping
    /// `[keyMin, keyMax]` (inclusive).
    public func tables(
        visibleAt snapshot: UInt64, overlapping keyRange: ClosedRange<Key>? = nil,
        direction: ScanDirection = .ascending
    ) -> Iterator {
        let window = keyRange.map { candidates(keyMin: $0.lowerBound, keyMax: $0.upperBound) } ?? 0..<tables.count
        return Iterator(level: self, snapshot: snapshot, keyRange: keyRange, window: window, direction: direction)
    }

    /// Tables visible at `snapshot` overlapping `[keyMin, keyMax]`.
    public func overlapCount(keyMin: Key, keyMax: Key, snapshot: UInt64) -> Int {
        var result = 0
        for position in candidates(keyMin: keyMin, keyMax: keyMax)
        where tables[position].isVisible(snapshot: snapshot) && keyMaxs[position] >= keyMin {
            result += 1
        }
        return result
    }

    /// Walks the visible tables of a level in key order. It holds a copy of the level (a
    /// reference to its storage): changing the level while iterating copies the storage, so
    /// finish iterating first.
    public struct Iterator: IteratorProtocol, Sequence {
        let level: ManifestLevel
        let snapshot: UInt64
        let keyRange: ClosedRange<Key>?
        let window: Range<Int>
        let direction: ScanDirection
        /// Next position to look at; walks the window once in either direction.
        var cursor: Int

        init(level: ManifestLevel, snapshot: UInt64, keyRange: ClosedRange<Key>?, window: Range<Int>, direction: ScanDirection) {
            self.level = level
            self.snapshot = snapshot
            self.keyRange = keyRange
            self.window = window
            self.direction = direction
            self.cursor = direction == .ascending ? window.lowerBound : window.upperBound - 1
        }

        public mutating func next() -> TableInfo? {
            while window.contains(cursor) {
                let position = cursor
                cursor += direction == .ascending ? 1 : -1
                guard level.tables[position].isVisible(snapshot: snapshot) else { continue }
                // The window already bounds key min from above; key max still filters.
                if let keyRange, level.keyMaxs[position] < keyRange.lowerBound { continue }
                return level.tables[position]
            }
            return nil
        }
    }

    // MARK: Compaction input

    /// Chooses this level's input to compact into `next`: the table visible at `snapshot` that
    /// overlaps the fewest visible tables of `next`, the lowest key min among equals (a
    /// deterministic choice: replicas compact the same tables). Nil when no table is visible.
    ///
    /// One merge-like pass over both levels: visible tables are disjoint and sorted, so the
    /// first `next` table that can overlap only moves forward, and each `next` table is counted
    /// for at most the run of this level's tables it spans.
    public func chooseCompaction(into next: ManifestLevel, snapshot: UInt64) -> CompactionInput<Key>? {
        var best: CompactionInput<Key>? = nil
        var nextStart = 0
        for position in 0..<tables.count where tables[position].isVisible(snapshot: snapshot) {
            let keyMin = keyMins[position]
            let keyMax = keyMaxs[position]
            while nextStart < next.count,
                !next.tables[nextStart].isVisible(snapshot: snapshot) || next.keyMaxs[nextStart] < keyMin
            {
                nextStart += 1
            }
            var candidate = CompactionInput(table: tables[position], overlapCount: 0, keyMin: keyMin, keyMax: keyMax)
            var nextPosition = nextStart
            while nextPosition < next.count, next.keyMins[nextPosition] <= keyMax {
                if next.tables[nextPosition].isVisible(snapshot: snapshot) {
                    candidate.overlapCount += 1
                    candidate.keyMin = min(candidate.keyMin, next.keyMins[nextPosition])
                    candidate.keyMax = max(candidate.keyMax, next.keyMaxs[nextPosition])
                }
                nextPosition += 1
            }
            if best == nil || candidate.overlapCount < best!.overlapCount { best = candidate }
            if best!.overlapCount == 0 { break }  // Nothing is fewer; later tables lose the tie.
        }
        return best
    }

    // MARK: Invariants

    /// Why `table` cannot join this level, or nil if it can: an inverted key range, an empty
    /// visibility interval, a full level, the same table already present, or a table that some
    /// snapshot would see together with it over a shared key.
    public func fault(inserting table: TableInfo) -> ManifestFault? {
        let keyMin = table.keyMin(as: Key.self)
        let keyMax = table.keyMax(as: Key.self)
        guard keyMin <= keyMax else { return .keyRangeInverted(table.identity) }
        guard table.snapshotMin < table.snapshotMax else { return .snapshotRangeEmpty(table.identity) }
        guard tables.count < tablesMax else { return .levelFull(level: table.level) }
        if contains(table) { return .duplicate(table.identity) }
        for position in candidates(keyMin: keyMin, keyMax: keyMax) where keyMaxs[position] >= keyMin {
            if tables[position].sharesSnapshots(with: table) {
                return .overlap(table.identity, tables[position].identity)
            }
        }
        return nil
    }

    /// Checks every invariant of the level; nil when they all hold. A scan of the level plus
    /// its key overlaps: for tests and debug checks, not for the commit path.
    public func checkInvariants() -> ManifestFault? {
        let counts = [keyMins.count, keyMaxs.count, keyMaxPrefix.count]
        guard counts.allSatisfy({ $0 == tables.count }), tables.count <= tablesMax else {
            return .corruptLevel("parallel arrays and capacity")
        }
        var live = 0
        for position in 0..<tables.count {
            let table = tables[position]
            guard keyMins[position] == table.keyMin(as: Key.self), keyMaxs[position] == table.keyMax(as: Key.self) else {
                return .corruptLevel("decoded keys differ from the table's")
            }
            guard keyMins[position] <= keyMaxs[position] else { return .keyRangeInverted(table.identity) }
            guard table.snapshotMin < table.snapshotMax else { return .snapshotRangeEmpty(table.identity) }
            if table.snapshotMax == TableInfo.snapshotMaxLive { live += 1 }
            let prefix = position == 0 ? keyMaxs[0] : max(keyMaxPrefix[position - 1], keyMaxs[position])
            guard keyMaxPrefix[position] == prefix else { return .corruptLevel("key max prefix") }
            if position > 0, !Self.ordered(tables[position - 1], keyMins[position - 1], table, keyMins[position]) {
                return .corruptLevel("sort order")
            }
            var other = position + 1
            while other < tables.count, keyMins[other] <= keyMaxs[position] {
                if table.sharesSnapshots(with: tables[other]) {
                    return .overlap(table.identity, tables[other].identity)
                }
                other += 1
            }
        }
        guard live == liveCount else { return .corruptLevel("live count") }
        return nil
    }

    // MARK: Search helpers

    /// Storage positions that may hold a table overlapping `[keyMin, keyMax]`: every table before
    /// the window ends below `keyMin`, every table after it starts above `keyMax`.
    private func candidates(keyMin: Key, keyMax: Key) -> Range<Int> {
        let start = lowerBound(keyMaxPrefix: keyMin)
        let end = upperBound(keyMin: keyMax)
        return start..<max(start, end)
    }

    /// First position whose key min is ≥ `key`.
    private func lowerBound(keyMin key: Key) -> Int {
        var low = 0
        var high = tables.count
        while low < high {
            let middle = low + (high - low) / 2
            if keyMins[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// First position whose key min is > `key`.
    private func upperBound(keyMin key: Key) -> Int {
        var low = 0
        var high = tables.count
        while low < high {
            let middle = low + (high - low) / 2
            if keyMins[middle] <= key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// First position whose key max prefix is ≥ `key`.
    private func lowerBound(keyMaxPrefix key: Key) -> Int {
        var low = 0
        var high = tables.count
        while low < high {
            let middle = low + (high - low) / 2
            if keyMaxPrefix[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Where `table` goes to keep (key min, snapshot min, address) order.
    private func insertionIndex(_ table: TableInfo, keyMin: Key) -> Int {
        var position = lowerBound(keyMin: keyMin)
        while position < tables.count, Self.ordered(tables[position], keyMins[position], table, keyMin) {
            position += 1
        }
        return position
    }

    /// Whether `a` sorts before `b`.
    private static func ordered(_ a: TableInfo, _ aKeyMin: Key, _ b: TableInfo, _ bKeyMin: Key) -> Bool {
        if aKeyMin != bKeyMin { return aKeyMin < bKeyMin }
        if a.snapshotMin != b.snapshotMin { return a.snapshotMin < b.snapshotMin }
        return a.address < b.address
    }

    /// Recomputes the key max prefix from `position` on after an insert or remove there. Stops
    /// once a value is unchanged: every later value is then unchanged too.
    private mutating func updatePrefix(from position: Int) {
        var current = position
        while current < tables.count {
            let prefix = current == 0 ? keyMaxs[0] : max(keyMaxPrefix[current - 1], keyMaxs[current])
            if current > position, keyMaxPrefix[current] == prefix { return }
            keyMaxPrefix[current] = prefix
            current += 1
        }
    }
}

/// The table a compaction takes from a level, and what it meets in the next level.
public struct CompactionInput<Key: Comparable & BitwiseCopyable> {
    /// The chosen table of the source level.
    public var table: TableInfo
    /// Visible tables of the next level overlapping the chosen table's key range.
    public var overlapCount: Int
    /// The smallest key min and largest key max of the chosen table and the tables it overlaps:
    /// the key range the compaction rewrites in the next level.
    public var keyMin: Key
    public var keyMax: Key

    /// Nothing below overlaps: the table moves down by a manifest update, no data is rewritten.
    public var isMove: Bool { overlapCount == 0 }
}

/// Why a table cannot join the manifest, or which invariant of a level does not hold.
public enum ManifestFault: Error, Equatable, Sendable {
    case keyRangeInverted(TableIdentity)
    case snapshotRangeEmpty(TableIdentity)
    case levelFull(level: UInt8)
    case levelOutOfRange(level: UInt8)
    case treeMismatch(TableIdentity)
    case duplicate(TableIdentity)
    /// Some snapshot would see both tables over a shared key.
    case overlap(TableIdentity, TableIdentity)
    /// A table's `level` field differs from the level holding it.
    case wrongLevel(TableIdentity)
    /// Internal state broken (names the broken invariant); a bug, never bad input.
    case corruptLevel(String)
}

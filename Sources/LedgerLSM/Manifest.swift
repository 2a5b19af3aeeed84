import LedgerKit

/// Sizes of one tree's manifest (storage spec §5, §12).
public struct ManifestConfiguration: Sendable, Equatable {
    /// `lsm_levels`: levels 0 ..< levelCount.
    public var levelCount: Int
    /// `lsm_growth_factor`: level `i` ≥ 1 holds up to growthFactor^i visible tables (level 0,
    /// the landing level, see `tableCountMax`).
    public var growthFactor: Int
    /// Storage capacity of each level's flat arrays (visible plus retired tables). Tests keep it
    /// small; production sizing waits for the segmented node-pool storage.
    public var tablesMax: Int

    public init(
        levelCount: Int = Constants.lsmLevels, growthFactor: Int = Constants.lsmGrowthFactor, tablesMax: Int
    ) {
        precondition(levelCount >= 1, "a tree has a level")
        precondition(levelCount <= Int(UInt8.max), "a level fits the u8 of a TableInfo")
        precondition(growthFactor >= 2, "levels grow")
        precondition(tablesMax >= 1, "a level holds a table")
        self.levelCount = levelCount
        self.growthFactor = growthFactor
        self.tablesMax = tablesMax
    }

    /// Tables the landing level 0 holds at a bar's end at most: what the immutable table's
    /// flush leaves there (at most a table's worth plus what level 0 held, under half a table
    /// unless its compaction had to leave one of two tables behind: Tree.swift "Level 0").
    public static var landingLevelTablesMax: Int { 2 }

    /// The most visible tables level `level` should hold at a bar's end: 2 for the landing
    /// level 0 (`landingLevelTablesMax`), growthFactor^level below it, saturating at Int.max.
    /// Compaction keeps levels under it; the manifest does not enforce it.
    public func tableCountMax(level: Int) -> Int {
        precondition(level >= 0, "level is not negative")
        precondition(level < levelCount, "level is below levelCount")
        if level == 0 { return Self.landingLevelTablesMax }
        var result = 1
        for _ in 1...level {
            let (product, overflow) = result.multipliedReportingOverflow(by: growthFactor)
            if overflow { return Int.max }
            result = product
        }
        return result
    }
}

/// All levels of one tree (storage spec §5 "Trees"): which tables exist, at which level, seen
/// by which snapshots. Lookups walk the levels shallowest first: a shallower level holds newer
/// values, so the first table holding a key has that key's current value ("shallower wins").
/// That order is a property of how compaction moves data down; the manifest keeps the tables
/// and their per-level disjointness, and answers in that order.
public struct Manifest<Key: Comparable & BitwiseCopyable> {
    public let treeId: UInt16
    public let configuration: ManifestConfiguration
    private var levels: [ManifestLevel<Key>]

    public init(treeId: UInt16, configuration: ManifestConfiguration) {
        precondition(MemoryLayout<Key>.size <= TableKeyBytes.sizeMax, "a table key fits in 32 bytes")
        self.treeId = treeId
        self.configuration = configuration
        levels = []
        levels.reserveCapacity(configuration.levelCount)
        for _ in 0..<configuration.levelCount {
            levels.append(ManifestLevel(tablesMax: configuration.tablesMax))
        }
    }

    public var levelCount: Int { levels.count }

    public func level(_ level: Int) -> ManifestLevel<Key> { levels[level] }

    /// Tables stored at `level`, visible or not.
    public func tableCount(level: Int) -> Int { levels[level].count }

    public func visibleTableCount(level: Int, snapshot: UInt64) -> Int {
        levels[level].visibleCount(snapshot: snapshot)
    }

    /// Values of the tables of `level` visible at `snapshot`: a walk over the level (for the
    /// landing level 0, which holds at most a few tables).
    public func visibleValueCount(level: Int, snapshot: UInt64) -> Int {
        var count = 0
        let tables = levels[level]
        for position in 0..<tables.count {
            let table = tables.table(at: position)
            if table.isVisible(snapshot: snapshot) { count += Int(table.valueCount) }
        }
        return count
    }

    // MARK: Changes

    /// Why `table` cannot be inserted, or nil: for tables that come from disk (the manifest log
    /// at open), which must be rejected with an error rather than trapped on.
    public func fault(inserting table: TableInfo) -> ManifestFault? {
        guard table.treeId == treeId else { return .treeMismatch(table.identity) }
        guard Int(table.level) < levels.count else { return .levelOutOfRange(level: table.level) }
        if locate(table) != nil { return .duplicate(table.identity) }
        return levels[Int(table.level)].fault(inserting: table)
    }

    /// Adds `table` at `table.level`.
    public mutating func insert(_ table: TableInfo) {
        precondition(table.treeId == treeId, "a tree's manifest holds its own tables")
        precondition(Int(table.level) < levels.count, "a table's level is below levelCount")
        assert(locate(table) == nil, "a table is in one level at a time")
        levels[Int(table.level)].insert(table)
        let key = table.keyMax.load(as: Key.self)
        if let keyBound, !(keyBound < key) { return }
        keyBound = key
    }

    /// A key at least as large as every key of every table inserted (nil: none yet). Never
    /// lowered by a removal: an upper bound (Tree.keyBound).
    public private(set) var keyBound: Key?

    /// Removes the table with `table`'s identity from `table.level`.
    @discardableResult
    public mutating func remove(_ table: TableInfo) -> TableInfo {
        precondition(Int(table.level) < levels.count, "a table's level is below levelCount")
        return levels[Int(table.level)].remove(table)
    }

    /// Retires the table (at `table.level`) from snapshot `snapshotMax` on.
    @discardableResult
    public mutating func updateSnapshotMax(_ table: TableInfo, to snapshotMax: UInt64) -> TableInfo {
        precondition(Int(table.level) < levels.count, "a table's level is below levelCount")
        return levels[Int(table.level)].updateSnapshotMax(table, to: snapshotMax)
    }

    /// Moves a table (found at `table.level`) to `level`: the compaction of a table that overlaps
    /// nothing below. Returns the table as it now is.
    @discardableResult
    public mutating func move(_ table: TableInfo, toLevel level: UInt8) -> TableInfo {
        precondition(Int(level) < levels.count, "a table's level is below levelCount")
        precondition(level != table.level, "a move changes level")
        var moved = remove(table)
        moved.level = level
        levels[Int(level)].insert(moved)
        return moved
    }

    /// Applies one manifest log event carrying the table's new state: `insert` adds it, `remove`
    /// drops it, `update` gives it the event's level and snapshot max (wherever it was). An
    /// update either moves the table to another level or lowers its snapshot max.
    public mutating func apply(_ table: TableInfo) {
        switch table.event {
        case .insert:
            insert(table)
        case .remove:
            remove(table)
        case .update:
            guard let (level, position) = locate(table) else {
                preconditionFailure("an updated table is in the manifest")
            }
            let current = levels[level].table(at: position)
            precondition(current.keyMin == table.keyMin, "an update keeps the key range")
            precondition(current.keyMax == table.keyMax, "an update keeps the key range")
            if level == Int(table.level) {
                updateSnapshotMax(current, to: table.snapshotMax)
            } else {
                var moved = levels[level].remove(current)
                moved.level = table.level
                moved.snapshotMax = table.snapshotMax
                insert(moved)
            }
        case nil:
            preconditionFailure("an applied table info carries an event")
        }
    }

    // MARK: Queries

    /// The (level, storage index) of the table with `table`'s identity, any level: its own
    /// level is looked at first.
    public func locate(_ table: TableInfo) -> (level: Int, index: Int)? {
        if Int(table.level) < levels.count, let index = levels[Int(table.level)].index(of: table) {
            return (Int(table.level), index)
        }
        for level in 0..<levels.count where level != Int(table.level) {
            if let index = levels[level].index(of: table) { return (level, index) }
        }
        return nil
    }

    /// The table of `level` visible at `snapshot` whose key range holds `key`.
    public func table(containing key: Key, level: Int, snapshot: UInt64) -> TableInfo? {
        levels[level].table(containing: key, snapshot: snapshot)
    }

    /// The tables that may hold `key` at `snapshot`, shallowest level first, at most one per
    /// level. A point lookup reads them in this order and stops at the first hit.
    public func lookupTables(key: Key, snapshot: UInt64) -> Lookup {
        Lookup(levels: levels, key: key, snapshot: snapshot)
    }

    public struct Lookup: IteratorProtocol, Sequence {
        let levels: [ManifestLevel<Key>]
        let key: Key
        let snapshot: UInt64
        var level = 0

        public mutating func next() -> TableInfo? {
            while level < levels.count {
                let current = level
                level += 1
                if let table = levels[current].table(containing: key, snapshot: snapshot) { return table }
            }
            return nil
        }
    }

    /// The compaction input of `level` into `level + 1` at `snapshot` (see
    /// `ManifestLevel.chooseCompaction`).
    public func chooseCompaction(level: Int, snapshot: UInt64) -> CompactionInput<Key>? {
        precondition(level + 1 < levels.count, "the last level compacts into nothing")
        return levels[level].chooseCompaction(into: levels[level + 1], snapshot: snapshot)
    }

    /// Checks every level's invariants, that each table's `level` and `treeId` fields match
    /// where it is, and that no table is in two levels. A full scan: tests and debug only.
    public func checkInvariants() -> ManifestFault? {
        for level in 0..<levels.count {
            if let fault = levels[level].checkInvariants() { return fault }
            for position in 0..<levels[level].count {
                let table = levels[level].table(at: position)
                guard Int(table.level) == level else { return .wrongLevel(table.identity) }
                guard table.treeId == treeId else { return .treeMismatch(table.identity) }
                for other in 0..<levels.count where other != level && levels[other].contains(table) {
                    return .duplicate(table.identity)
                }
            }
        }
        return nil
    }
}

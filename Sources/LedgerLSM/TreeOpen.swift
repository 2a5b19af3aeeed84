import LedgerIO
import LedgerKit

// What a tree needs for restart (storage spec §6 "Restart"; the protocol is in Forest.swift's
// header): load its manifest from the live tables the manifest log replayed, and run the beats
// of the ops the forest replays up to the checkpoint trigger in "replay" mode.
//
// A replayed beat (`compactSkipped`) does the memtable bookkeeping of a beat (sort the beat's
// puts into a run, swap the memtables at the bar's end) and no compaction: the checkpoint was
// written after the trigger's beat, so its manifest and free set already hold every compaction
// of those beats. The immutable memtable the original run flushed during the trigger's bar is in
// level 0 of the loaded manifest, so the restarted tree's immutable memtable is empty until the
// trigger's swap, as the original's was after its flush: after the trigger both trees hold the
// same manifest and the same memtables.
//
// Also here: the forest's hooks to move a tree's manifest events into the manifest log without
// copying them, and the tree's worst cases the forest sizes the log and the grid for.

/// Why a tree's tables from a checkpoint cannot be loaded: bytes from disk, never trapped on.
public enum TreeOpenError: Error, Equatable, Sendable {
    /// The table conflicts with the manifest (overlap, level out of range, full level, …).
    case manifest(ManifestFault)
    /// A live table that a compaction retired: the tree keeps no retired table across a
    /// half-bar, so a checkpoint never holds one.
    case tableRetired(TableIdentity)
}

extension Tree {
    /// Loads the tree's tables (those of `tables` with this tree's id) into its empty manifest,
    /// before its first beat. On error the manifest is left empty.
    public func open(tables: [TableInfo]) throws(TreeOpenError) {
        precondition(beatOpLast == nil, "a tree opens before its first beat")
        precondition(beatCallback == nil, "a tree opens before its first beat")
        precondition(mutable.count == 0, "a tree opens with empty memtables")
        precondition(immutable.count == 0, "a tree opens with empty memtables")
        for level in 0..<manifest.levelCount {
            precondition(manifest.tableCount(level: level) == 0, "a tree opens with an empty manifest")
        }
        for table in tables where table.treeId == treeId {
            // The tree stores its tables as compaction made them (event `insert`); the log's
            // event byte says what happened last, which the manifest does not keep.
            let loaded = table.with(event: .insert)
            guard loaded.snapshotMax == TableInfo.snapshotMaxLive else {
                manifest = Manifest(treeId: treeId, configuration: configuration.manifest)
                throw .tableRetired(table.identity)
            }
            if let fault = manifest.fault(inserting: loaded) {
                manifest = Manifest(treeId: treeId, configuration: configuration.manifest)
                throw .manifest(fault)
            }
            manifest.insert(loaded)
        }
    }

    /// The beat of a replayed op whose compaction the checkpoint already holds: memtable
    /// bookkeeping only (see the file header).
    func compactSkipped(op: UInt64) {
        precondition(beatCallback == nil, "one beat at a time")
        if let beatOpLast { precondition(op == beatOpLast + 1, "one beat per op, in op order") }
        beatOpLast = op
        mutable.sortSuffix()
        let ops = UInt64(configuration.compactionOps)
        stepImmutableMerge(beat: Int(op % ops))
        if op % ops == ops - 1 && fault == nil { swapMemtables() }
    }

    /// Events waiting for `drainManifestEvents`.
    var manifestEventCount: Int { manifestEvents.count }

    /// Appends the tree's manifest events to the log, in order, and forgets them (no copy: the
    /// allocation-free form of `takeManifestEvents`).
    func drainManifestEvents(into log: ManifestLog<S>) {
        for event in manifestEvents { log.append(event) }
        manifestEvents.removeAll(keepingCapacity: true)
    }
}

extension TreeConfiguration {
    /// Compaction jobs of one half-bar at most: the immutable memtable's plus one per source
    /// level of the half-bar's parity.
    var jobsPerHalfBarMax: Int { manifest.levelCount / 2 + 1 }

    /// Grid writes the tree's jobs keep in flight at most during its beat (each job keeps
    /// `TreeCompaction.writesInFlightMax`, 2; `Forest.add` checks that they agree).
    var gridWritesMax: Int { jobsPerHalfBarMax * 2 }

    /// Manifest events one half-bar can make at most: per job, its input tables removed (A and
    /// at most a level of B tables) and its outputs inserted (at most a level's worth plus one),
    /// or one update for a move.
    public var manifestEventsPerHalfBarMax: Int {
        jobsPerHalfBarMax * (1 + manifest.tablesMax + manifest.tablesMax + 1)
    }
}

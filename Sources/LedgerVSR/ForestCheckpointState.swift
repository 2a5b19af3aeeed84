import LedgerKit
import LedgerLSM

// The forest's part of the superblock (storage spec §2 "CheckpointState", §6; docs/lsm.md):
// LedgerLSM describes a checkpoint as a `ForestCheckpoint` (it does not know the superblock),
// and the superblock stores the same facts in `CheckpointState`'s fields. This file is the one
// place that maps one onto the other:
//
// | ForestCheckpoint                 | CheckpointState                                        |
// | -------------------------------- | ------------------------------------------------------ |
// | op                               | header.op (the checkpoint op's prepare header)         |
// | manifestNewest / manifestOldest  | manifestNewestAddress/Checksum, manifestOldest…        |
// | manifestBlockCount               | manifestBlockCount                                     |
// | freeSetAcquired / freeSetReleased| freeSetAcquired / freeSetReleased (`TrailerReference`) |
// | highestAcquiredAddress           | storageSize = sizeMin + highest × blockSize            |
//
// Writing is a plain copy (the forest made the values; a precondition checks they read back).
// Reading comes from disk: a copy whose checksum verifies can still hold a state no replica
// writes (a bug, or a hostile file), so every field is checked against the others and against
// the layout before the forest is asked to open it. Nothing here reads the grid: whether the
// referenced blocks exist and verify is `Forest.open`'s (and `ledger-inspect manifest`'s) job.

/// Why a superblock's `CheckpointState` does not describe a forest checkpoint.
public enum ForestCheckpointStateError: Error, Equatable, Sendable {
    /// Neither 0 (formatted) nor a checkpoint op (`(op + 1) % vsrCheckpointOps == 0`).
    case checkpointOp(UInt64)
    /// Op 0 (the formatted grid) with a manifest, a trailer or a grown grid.
    case formattedNotEmpty
    /// Below the zones before the grid, or not a whole number of blocks past them.
    case storageSize(UInt64)
    /// The grid extent `storageSize` implies is larger than the grid can be.
    case highestAcquiredAddress(UInt64)
    /// Exactly one of the manifest's newest and oldest references is null.
    case manifestEnds
    /// Zero for a non-empty log, non-zero for an empty one, or more blocks than the grid holds.
    case manifestBlockCount(UInt32)
    /// A manifest reference outside the acquired grid, or a null one with a checksum.
    case manifestReference(address: UInt64)
    /// A trailer reference that is neither empty (all zero) nor a chain in the acquired grid.
    case trailerReference(TrailerKind)
}

extension CheckpointState {
    /// A checkpoint state recording `forest` at `header` (the checkpoint op's prepare header).
    /// The other fields (parents, client sessions, release) are the caller's.
    public init(header: PrepareHeader, forest: ForestCheckpoint, layout: DataFileLayout) {
        self.init(header: header)
        record(forest: forest, layout: layout)
    }

    /// Stores `forest` in the manifest, free-set and storage-size fields. `header.op` must be
    /// the forest's checkpoint op.
    public mutating func record(forest: ForestCheckpoint, layout: DataFileLayout) {
        precondition(header.op == forest.op, "the checkpoint header is the forest checkpoint's op")
        manifestNewestAddress = forest.manifestNewest.address
        manifestNewestChecksum = forest.manifestNewest.checksum
        manifestOldestAddress = forest.manifestOldest.address
        manifestOldestChecksum = forest.manifestOldest.checksum
        manifestBlockCount = forest.manifestBlockCount
        freeSetAcquired = TrailerReference(forest.freeSetAcquired)
        freeSetReleased = TrailerReference(forest.freeSetReleased)
        storageSize = forest.storageSize(layout: layout)
        // The same property checked where it is read: what a replica writes, it can open.
        let readBack = try? ForestCheckpoint(checkpointState: self, layout: layout)
        precondition(readBack == forest, "a recorded forest checkpoint reads back as itself")
    }
}

extension TrailerReference {
    /// The superblock's form of a trailer reference.
    public init(_ reference: CheckpointTrailerReference) {
        self.init()
        checksum = reference.checksum
        lastBlockChecksum = reference.last.checksum
        lastBlockAddress = reference.last.address
        size = reference.size
    }

    /// LedgerLSM's form of this reference (not validated: see `ForestCheckpoint(checkpointState:)`).
    public var checkpointTrailerReference: CheckpointTrailerReference {
        CheckpointTrailerReference(
            checksum: checksum, last: BlockReference(address: lastBlockAddress, checksum: lastBlockChecksum),
            size: size)
    }
}

extension ForestCheckpoint {
    /// The forest checkpoint a superblock's checkpoint state records, validated: the fields
    /// must agree with each other and with `layout` (see `ForestCheckpointStateError`).
    public init(checkpointState state: CheckpointState, layout: DataFileLayout) throws(ForestCheckpointStateError) {
        let configuration = layout.configuration
        let op = state.header.op
        let highest = try Self.highestAcquiredAddress(storageSize: state.storageSize, layout: layout)
        let newest = BlockReference(address: state.manifestNewestAddress, checksum: state.manifestNewestChecksum)
        let oldest = BlockReference(address: state.manifestOldestAddress, checksum: state.manifestOldestChecksum)
        let checkpoint = ForestCheckpoint(
            op: op, manifestNewest: newest, manifestOldest: oldest, manifestBlockCount: state.manifestBlockCount,
            freeSetAcquired: state.freeSetAcquired.checkpointTrailerReference,
            freeSetReleased: state.freeSetReleased.checkpointTrailerReference, highestAcquiredAddress: highest)
        if op == 0 {
            // The formatted grid: nothing acquired, nothing referenced (client sessions included).
            guard checkpoint == .formatted, state.clientSessions == TrailerReference() else {
                throw .formattedNotEmpty
            }
            self = checkpoint
            return
        }
        // `op + 1` cannot overflow: the superblock bounds ops by 2^63 (VSRState.opMax), but a
        // state read here may not have been through that check.
        guard op < UInt64.max, (op + 1) % UInt64(configuration.vsrCheckpointOps) == 0 else {
            throw .checkpointOp(op)
        }
        try Self.checkManifest(newest: newest, oldest: oldest, blockCount: state.manifestBlockCount, highest: highest)
        let trailers: [(TrailerKind, TrailerReference)] = [
            (.freeSetAcquired, state.freeSetAcquired), (.freeSetReleased, state.freeSetReleased),
            (.clientSessions, state.clientSessions),
        ]
        for (kind, reference) in trailers {
            guard Self.isValidTrailer(reference, highest: highest, blockSize: configuration.blockSize) else {
                throw .trailerReference(kind)
            }
        }
        self = checkpoint
    }

    /// The highest acquired grid address `storageSize` stands for.
    private static func highestAcquiredAddress(
        storageSize: UInt64, layout: DataFileLayout
    ) throws(ForestCheckpointStateError) -> UInt64 {
        let blockSize = UInt64(layout.configuration.blockSize)
        guard storageSize >= layout.sizeMin else { throw .storageSize(storageSize) }
        let gridBytes = storageSize - layout.sizeMin
        guard gridBytes % blockSize == 0 else { throw .storageSize(storageSize) }
        let highest = gridBytes / blockSize
        guard highest <= UInt64(layout.configuration.gridBlockCountMax) else { throw .highestAcquiredAddress(highest) }
        return highest
    }

    private static func checkManifest(
        newest: BlockReference, oldest: BlockReference, blockCount: UInt32, highest: UInt64
    ) throws(ForestCheckpointStateError) {
        guard newest.isNull == oldest.isNull else { throw .manifestEnds }
        for reference in [newest, oldest] {
            if reference.isNull {
                guard reference.checksum == 0 else { throw .manifestReference(address: 0) }
            } else {
                guard reference.address <= highest else { throw .manifestReference(address: reference.address) }
            }
        }
        if newest.isNull {
            guard blockCount == 0 else { throw .manifestBlockCount(blockCount) }
        } else {
            // Every block of the chain has its own acquired address.
            guard blockCount >= 1, UInt64(blockCount) <= highest else { throw .manifestBlockCount(blockCount) }
            // One block is both ends; two distinct ends are two blocks at least.
            guard (newest == oldest) == (blockCount == 1) else { throw .manifestBlockCount(blockCount) }
        }
    }

    /// Empty (all zero), or a chain whose last block is acquired and whose size its blocks can
    /// hold.
    private static func isValidTrailer(_ reference: TrailerReference, highest: UInt64, blockSize: Int) -> Bool {
        if reference.size == 0 { return reference == TrailerReference() }
        guard reference.lastBlockAddress >= 1, reference.lastBlockAddress <= highest else { return false }
        // Each block holds at most its body, in `highest` blocks at most (no overflow: `highest`
        // is at most gridBlockCountMax, 2^25 in production, and a body is below 2^20 bytes).
        let bodySize = UInt64(blockSize - Constants.messageHeaderSize)
        return reference.size <= highest * bodySize
    }
}

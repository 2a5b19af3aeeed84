/// The sizes of one replica's storage and log that tests need to shrink. Production values are
/// `StorageConfiguration.production`; the simulator and unit tests use `.testing` (a few
/// megabytes of data file instead of a gigabyte), which keeps every code path but makes wraps,
/// checkpoints and full zones reachable in a short test.
///
/// Everything derived from these numbers (zone sizes, checkpoint geometry) is computed here, in
/// one place, and checked by `verify()`.
public struct StorageConfiguration: Sendable, Equatable {
    /// Slots of the WAL: both rings (headers and prepares) have this many (`journal_slot_count`).
    public var journalSlotCount: Int
    /// Client sessions, and so client-reply slots (`clients_max`).
    public var clientsMax: Int
    /// Prepares in flight in the primary's pipeline (`pipeline_prepare_queue_max`).
    public var pipelinePrepareQueueMax: Int
    /// Beats in one LSM bar (`lsm_compaction_ops`).
    public var lsmCompactionOps: Int
    /// Size of one grid block.
    public var blockSize: Int
    /// Largest grid, in blocks: the data file's logical size never exceeds
    /// `DataFileLayout.sizeMin + gridBlockCountMax * blockSize`.
    public var gridBlockCountMax: Int

    public init(
        journalSlotCount: Int, clientsMax: Int, pipelinePrepareQueueMax: Int, lsmCompactionOps: Int,
        blockSize: Int, gridBlockCountMax: Int
    ) {
        self.journalSlotCount = journalSlotCount
        self.clientsMax = clientsMax
        self.pipelinePrepareQueueMax = pipelinePrepareQueueMax
        self.lsmCompactionOps = lsmCompactionOps
        self.blockSize = blockSize
        self.gridBlockCountMax = gridBlockCountMax
    }

    /// The production configuration (storage spec §12).
    public static let production = StorageConfiguration(
        journalSlotCount: Constants.journalSlotCount, clientsMax: Constants.clientsMax,
        pipelinePrepareQueueMax: Constants.pipelinePrepareQueueMax,
        lsmCompactionOps: Constants.lsmCompactionOps, blockSize: Constants.blockSize,
        gridBlockCountMax: Constants.gridBlockCountMax)

    /// A small configuration for tests and the simulator: 32 WAL slots, 4 KiB blocks, 4-op bars
    /// (like TigerBeetle's `test_min`), so a data file is about 38 MiB and the WAL wraps every
    /// 32 ops.
    public static let testing = StorageConfiguration(
        journalSlotCount: 32, clientsMax: 4, pipelinePrepareQueueMax: 4, lsmCompactionOps: 4,
        blockSize: 4096, gridBlockCountMax: 1024)

    /// Sectors of the WAL header ring.
    public var walHeaderSectorCount: Int { journalSlotCount / Constants.walHeadersPerSector }

    /// Concurrent journal writes: `Constants.journalWritesMax`, but always fewer than the header
    /// sectors, so that one crash cannot tear every sector of the header ring.
    public var journalWritesMax: Int { min(Constants.journalWritesMax, walHeaderSectorCount - 1) }

    // MARK: Checkpoint geometry (storage spec §3, "Checkpoint geometry")

    /// Ops between two checkpoints: the WAL minus one bar minus enough bars to hold two
    /// pipelines, so that a full pipeline never overwrites an op of the last durable checkpoint.
    public var vsrCheckpointOps: Int {
        let pipelineBars =
            (2 * pipelinePrepareQueueMax + lsmCompactionOps - 1) / lsmCompactionOps
        return journalSlotCount - lsmCompactionOps - lsmCompactionOps * pipelineBars
    }

    /// The op of the checkpoint that follows `checkpoint` (0 means "no checkpoint yet", the
    /// state right after format). Checkpoints always end a bar: 959, 1919, … in production.
    public func checkpointAfter(_ checkpoint: UInt64) -> UInt64 {
        if checkpoint == 0 { return UInt64(vsrCheckpointOps - 1) }
        return checkpoint + UInt64(vsrCheckpointOps)
    }

    /// The op whose commit writes the checkpoint after `checkpoint`: the end of the next bar.
    public func checkpointTrigger(after checkpoint: UInt64) -> UInt64 {
        checkpointAfter(checkpoint) + UInt64(lsmCompactionOps)
    }

    /// The highest op a replica at `checkpoint` may write into its WAL: two pipelines past the
    /// next trigger. Above it the slot still holds an op the last durable checkpoint needs.
    public func opPrepareMax(checkpoint: UInt64) -> UInt64 {
        checkpointTrigger(after: checkpoint) + UInt64(2 * pipelinePrepareQueueMax)
    }

    /// The highest op a replica at `checkpoint` acknowledges before it checkpoints.
    public func opPrepareOkMax(checkpoint: UInt64) -> UInt64 {
        checkpointTrigger(after: checkpoint) + UInt64(pipelinePrepareQueueMax)
    }

    /// Checks the relationships between the values; crashes naming the broken one.
    public func verify() {
        precondition(journalSlotCount > 0 && journalSlotCount.nonzeroBitCount == 1,
                     "journalSlotCount is a power of two")
        precondition(journalSlotCount % Constants.walHeadersPerSector == 0,
                     "the header ring is whole sectors")
        precondition(walHeaderSectorCount >= 2, "a crash cannot tear every header sector")
        precondition(clientsMax >= 1, "at least one client session")
        precondition(pipelinePrepareQueueMax >= 1, "the pipeline holds at least one prepare")
        precondition(lsmCompactionOps >= 2 && lsmCompactionOps % 2 == 0, "a bar has two halves")
        precondition(blockSize % Constants.sectorSize == 0, "blocks are whole sectors")
        precondition(blockSize.nonzeroBitCount == 1, "blockSize is a power of two")
        precondition(gridBlockCountMax >= 1, "the grid holds at least one block")
        precondition(vsrCheckpointOps > 0, "the WAL holds a checkpoint interval")
        precondition(vsrCheckpointOps % lsmCompactionOps == 0, "checkpoints end a bar")
        precondition(
            opPrepareMax(checkpoint: checkpointAfter(0)) - checkpointAfter(0)
                <= UInt64(journalSlotCount),
            "the ops after a checkpoint, up to op_prepare_max, fit in the WAL")
        precondition(opPrepareMax(checkpoint: 0) < UInt64(journalSlotCount),
                     "the first wrap fits in the WAL")
    }
}

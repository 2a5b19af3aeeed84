/// Every limit of the system, in one place. Relationships between them are checked by
/// `Constants.verify()`, which runs at start-up and in a test.
///
/// Sizes are in bytes unless the name says otherwise. Values marked "wire" are fixed by the
/// TigerBeetle 0.17 client protocol and must not change; the others are our configuration.
public enum Constants {
    // MARK: Wire (TigerBeetle 0.17 client protocol)

    /// Largest message, header included (wire).
    public static let messageSizeMax = 1 << 20
    /// Every message starts with exactly one header of this size (wire).
    public static let messageHeaderSize = 256
    /// Largest message body.
    public static let messageBodySizeMax = messageSizeMax - messageHeaderSize

    /// Size of the fixed records (wire).
    public static let accountSize = 128
    public static let transferSize = 128
    public static let accountFilterSize = 128
    public static let queryFilterSize = 64
    public static let accountBalanceSize = 128
    public static let changeEventsFilterSize = 64
    public static let changeEventSize = 384
    public static let createResultSize = 16
    public static let idSize = 16

    /// Largest number of batches in one multi-batch body (wire: the postamble is a u16 and
    /// 0xFFFF is reserved).
    public static let multiBatchCountMax = 65_534

    /// Events per create/lookup batch of the multi-batch operations: one 128-byte slot of the
    /// 1 MiB message goes to the trailer (wire: 8189).
    public static let batchEventsMax =
        (messageBodySizeMax - MultiBatch.trailerSize(elementSize: accountSize, batchCount: 1))
        / accountSize
    /// Results of one query batch (`limit` is clamped to this).
    public static let queryResultsMax =
        (messageBodySizeMax - MultiBatch.trailerSize(elementSize: transferSize, batchCount: 1))
        / transferSize
    /// Events of the legacy, non-multi-batch create operations: the whole body (8190).
    public static let batchEventsMaxLegacy = messageBodySizeMax / transferSize
    /// Results of one `get_change_events` (2730): the body, bounded as the reference bounds it.
    public static let changeEventsMax = min(
        messageBodySizeMax / changeEventSize, batchEventsMaxLegacy, batchEventsMaxLegacy / 2)

    /// Our release, as TigerBeetle encodes it (major·65536 + minor·256 + patch): 0.17.9, the
    /// protocol we speak (wire spec §8.3). Written into the data file at format.
    public static let release: UInt32 = 0 << 16 | 17 << 8 | 9
    /// Oldest client release served: 0.17.0, the first with the multi-batch operations.
    public static let releaseClientMin: UInt32 = 0 << 16 | 17 << 8 | 0

    // MARK: State machine

    /// Timestamps a pulse consumes, whatever it expires: the largest create_transfers batch of
    /// any protocol variant (state-machine spec §4.1).
    public static let pulseTimestampDelta: UInt64 = 8190
    /// Pending transfers one pulse may expire (spec §7.2).
    public static let pulseExpiriesMax = 8190

    /// Largest valid timestamp: 2^63 − 1 nanoseconds since the UNIX epoch.
    public static let timestampMax: UInt64 = UInt64(Int64.max)
    public static let nanosecondsPerSecond: UInt64 = 1_000_000_000

    // MARK: Consensus (used by later layers; declared here so every limit lives in one file)

    /// Client sessions kept per cluster (wire observation: production config).
    public static let clientsMax = 64
    /// Largest cluster.
    public static let replicasMax = 6
    /// Replica ids kept in the superblock's member list (replicas and standbys).
    public static let membersMax = 12
    /// Prepares in flight in the primary's pipeline.
    public static let pipelinePrepareQueueMax = 8
    /// Client requests a primary queues while its pipeline is full (the reference's CLI default).
    public static let pipelineRequestQueueMax = 24
    /// Client connections a replica accepts: 8 + the request queue + 1 spare (wire spec §5.9).
    public static let clientConnectionsMax = 8 + pipelineRequestQueueMax + 1
    /// Messages queued for sending per connection (storage spec §9: 4 for replicas).
    public static let connectionSendQueueMax = 4
    /// The replica's and the bus's clock: `tick()` every 10 ms (storage spec §9).
    public static let tickNs: UInt64 = 10_000_000
    /// A connection with no identified client, or a partial message that makes no progress,
    /// is closed after this many ticks: 45 s (storage spec §9).
    public static let connectionIdleTimeoutTicks = 4_500
    /// Client-reply writes in flight (storage spec §9: replies 1 read / 2 writes).
    public static let clientRepliesWritesMax = 2

    // MARK: Storage (storage spec §1–3, §12)

    /// Unit of every direct IO: buffer address, offset and length are multiples of it.
    public static let sectorSize = 4096
    /// Slots of the WAL in production (`StorageConfiguration` lets tests shrink it).
    public static let journalSlotCount = 1024
    /// Redundant prepare headers per sector of the WAL header ring.
    public static let walHeadersPerSector = sectorSize / messageHeaderSize
    /// Beats per LSM bar in production.
    public static let lsmCompactionOps = 32
    /// Levels of every LSM tree, and how many times more tables each level holds than the one
    /// above it. Level 0 is a landing level for the immutable table's flushes (at most 2
    /// tables, compacted once it holds half a table's values); level i ≥ 1 holds up to
    /// growthFactor^i tables, as the spec's level i − 1 does (spec: 7 levels; ours: 8, see
    /// docs/decisions.md "A landing level 0").
    public static let lsmLevels = 8
    public static let lsmGrowthFactor = 8
    /// Size of a grid block in production.
    public static let blockSize = 512 << 10
    /// Callers that may wait for a grid write slot at once (`Grid.waitForWrite`): compaction
    /// jobs, one wait each (25 trees × 5 jobs in production), with room to spare.
    public static let gridWriteWaitersMax = 1_024
    /// Blocks a compaction job's merge source warms ahead of the one it merges (`Grid.warm`).
    public static let compactionWarmAheadBlocks = 2
    /// Memtable values a tree's beat start sorts or merges at or above which the forest lets
    /// the event loop turn before the next tree starts (Forest.swift "Turns between trees"):
    /// a batch's trees (thousands of values, ~0.1-1 ms each) yield, a single transfer's do not.
    public static let beatTurnValuesMin = 256
    /// Largest grid in production: 16 TiB of blocks (TigerBeetle's default `--limit-storage`).
    public static let gridBlockCountMax = (16 << 40) / blockSize
    /// Copies of the superblock; a write needs `superblockQuorumWrite` of them read back, and
    /// opening needs `superblockQuorumRead` identical ones (write + read quorum > copies).
    public static let superblockCopies = 4
    public static let superblockQuorumWrite = 3
    public static let superblockQuorumRead = 2
    /// One superblock copy: its header (`superblockHeaderSize`) plus reserved space.
    public static let superblockCopySize = 24 << 10
    /// The checksummed part of one superblock copy.
    public static let superblockHeaderSize = 8 << 10
    /// View-change headers kept in the superblock.
    public static let viewHeadersMax = 11
    /// Concurrent journal IO (storage spec §3): reads, of which some are kept for commits, and
    /// writes (fewer than the header sectors, so one crash cannot tear every header sector).
    public static let journalReadsMax = 8
    public static let journalReadsReservedForCommit = 2
    public static let journalWritesMax = 32

    /// Checks every relationship between the constants. Crashes with the name of the broken
    /// relationship: a wrong constant is a programmer error, never an operating error.
    public static func verify() {
        precondition(clientConnectionsMax > pipelineRequestQueueMax, "every queued request's client can be connected")
        precondition(UInt64(connectionIdleTimeoutTicks) * tickNs == 45 * nanosecondsPerSecond, "idle connections close after 45 s")
        precondition(messageSizeMax.nonzeroBitCount == 1, "messageSizeMax is a power of two")
        precondition(messageBodySizeMax > 0, "the header fits in a message")
        precondition(messageHeaderSize % 128 == 0, "header is a whole number of 128-byte records")
        precondition(messageBodySizeMax % accountSize == 0, "the body holds whole accounts")
        precondition(accountSize == transferSize, "accounts and transfers share the record size")
        precondition(batchEventsMax == 8189, "wire: 8189 events per create batch")
        precondition(queryResultsMax == 8189, "wire: 8189 results per query batch")
        precondition(batchEventsMaxLegacy == 8190, "wire: 8190 events per legacy batch")
        precondition(changeEventsMax == 2730, "wire: 2730 change events per reply")
        precondition(
            batchEventsMax * transferSize
                + MultiBatch.trailerSize(elementSize: transferSize, batchCount: 1)
                <= messageBodySizeMax,
            "a full create batch fits in one request")
        precondition(
            batchEventsMax * createResultSize
                + MultiBatch.trailerSize(elementSize: createResultSize, batchCount: 1)
                <= messageBodySizeMax,
            "the results of a full create batch fit in one reply")
        precondition(
            UInt64(batchEventsMaxLegacy) <= pulseTimestampDelta,
            "a pulse reserves at least as many timestamps as the largest create batch")
        precondition(pulseExpiriesMax <= Int(pulseTimestampDelta), "each expiry gets a timestamp")
        precondition(batchEventsMax <= Int(UInt16.max), "a batch count fits the u16 trailer")
        precondition(changeEventsMax * changeEventSize <= messageBodySizeMax, "change events fit")
        precondition(replicasMax <= 6, "wire: at most 6 addresses")
        precondition(release == 4361, "wire: 0.17.9")
        precondition(releaseClientMin <= release, "we serve our own clients")
        precondition(replicasMax * 2 <= membersMax, "members hold replicas and standbys")
        precondition(messageSizeMax % sectorSize == 0, "a WAL slot is whole sectors")
        precondition(sectorSize % messageHeaderSize == 0, "headers never straddle sectors")
        precondition(superblockCopySize % sectorSize == 0, "superblock copies are whole sectors")
        precondition(superblockHeaderSize <= superblockCopySize, "the header fits its copy")
        precondition(
            superblockQuorumWrite + superblockQuorumRead > superblockCopies,
            "superblock read and write quorums intersect")
        precondition(journalReadsReservedForCommit < journalReadsMax, "repair can read too")
        precondition(
            journalWritesMax < journalSlotCount / walHeadersPerSector,
            "a crash cannot tear every header sector")
        precondition(lsmLevels >= 1 && lsmLevels <= Int(UInt8.max), "a level fits a TableInfo's u8")
        precondition(lsmGrowthFactor >= 2, "levels grow")
        StorageConfiguration.production.verify()
        StorageConfiguration.testing.verify()
    }
}

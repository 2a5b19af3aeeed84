import LedgerKit
import LedgerStateMachine

// The sizes of the state machine's store on the forest (`ForestStore`), derived from one batch's
// worst case so that no batch can overflow a memtable, a prefetch queue or a cache stash.
//
// Per batch (B = `Constants.batchEventsMax` = 8189 events, E = `Constants.pulseExpiriesMax` =
// 8190 expiries; a batch is one operation):
//
//   accounts          changes ≤ 2E (every transfer or expiry updates two accounts; an account
//                     changed twice is put twice); prefetch ≤ 4E ids (a transfer's two
//                     accounts and its pending transfer's two) plus timestamps; index puts
//                     ≤ 2E (inserts ≤ B in create_accounts; afterwards only the `closed` flag
//                     changes, one put or tombstone per account a transfer or expiry closes or
//                     reopens, at most two per event)
//   transfers         changes ≤ B (inserts; failed ids are put into the id tree; index puts
//                     ≤ B: transfers never change after insert); prefetch ≤ 2E
//                     ids (the transfer and its pending transfer) plus E timestamps
//   transfers pending changes ≤ E (an insert per pending transfer or an update per post, void
//                     or expiry); prefetch ≤ E timestamps
//   account events    changes ≤ E (one event per transfer or expiry); prefetch ≤ E timestamps
//   expiry schedule   puts ≤ E (a put per pending transfer with a timeout, a tombstone per
//                     post, void or expiry)
//
// The object caches (`cache…`) are the resident objects between batches, in objects (whole
// sets of 16); the id'd grooves' id caches likewise in ids; the grid's block cache is
// `cacheGridBlocks` blocks.
//
// Object-tree scans are capped (`GrooveConfiguration.objectScanValuesMax`, objects are never
// deleted): `Constants.queryResultsMax` (a query's limit; ForestQuery scans 64-object chunks)
// for accounts, transfers and pending statuses, `Constants.changeEventsMax` for account events
// (the change-events scan). The expiry tree has tombstones and stays uncapped (16 B values).

public struct ForestStoreConfiguration: Sendable, Equatable {
    public var accounts: GrooveConfiguration
    public var transfers: GrooveConfiguration
    public var transfersPending: GrooveConfiguration
    public var accountEvents: GrooveConfiguration
    public var expiries: TreeConfiguration
    public var cacheGridBlocks: Int
    public var gridReadsMax: Int
    public var manifestLogBlocksMax: Int
    /// Distinct tables the manifest log tracks (live, or removed with events still in the log).
    public var manifestLogTablesMax: Int

    /// Object cache sizes (objects) and the block cache (blocks).
    public struct Caches: Sendable, Equatable {
        public var accounts: Int
        public var transfers: Int
        public var transfersPending: Int
        public var accountEvents: Int
        public var gridBlocks: Int
        /// Id → timestamp caches of the id'd grooves (ids; whole sets of 16; 0: none).
        public var accountIds: Int
        public var transferIds: Int

        /// `accountIds` / `transferIds` nil: as many ids as the object cache holds objects.
        public init(
            accounts: Int, transfers: Int, transfersPending: Int, accountEvents: Int, gridBlocks: Int,
            accountIds: Int? = nil, transferIds: Int? = nil
        ) {
            self.accounts = accounts
            self.transfers = transfers
            self.transfersPending = transfersPending
            self.accountEvents = accountEvents
            self.gridBlocks = gridBlocks
            self.accountIds = accountIds ?? accounts
            self.transferIds = transferIds ?? transfers
        }

        /// Production defaults: 256 Ki accounts (32 MiB: a working set of 100 k accounts stays
        /// resident; 64 Ki made most account reads go to the trees), 64 Ki transfers (8 MiB), 64 Ki pending
        /// statuses (1 MiB), no account-event cache (events are read by scans, which do not use
        /// it), and 256 MiB of grid blocks at 512 KiB (512 blocks: the block cache is written in
        /// full at start-up, so it is resident whatever the load; the server's RSS target is
        /// 1 GiB, docs/lsm.md "Speed and memory"; 1 GiB of blocks alone was the whole budget,
        /// and the forest benchmark's loads and lookups ran no slower at 256 MiB). Id caches: 256 Ki account ids
        /// (8.5 MiB, the account cache's memory: ids are a quarter of an account's size; a
        /// 16-way cache holds a working set of ~40 % of its capacity with almost no misses, so
        /// 100 k accounts fit where 64 Ki ids thrash under a cyclic sweep), 64 Ki transfer ids
        /// (2.1 MiB: most transfer ids a batch names are new, which the cache cannot answer).
        public static let production = Caches(
            accounts: 1 << 18, transfers: 1 << 16, transfersPending: 1 << 16, accountEvents: 0, gridBlocks: 512,
            accountIds: 1 << 18, transferIds: 1 << 16)
    }

    /// The configuration for a data file of `storage`'s geometry; `batchEventsMax` and
    /// `expiriesMax` shrink a test's batches (and with them every memtable).
    public init(
        storage: StorageConfiguration, caches: Caches, batchEventsMax: Int = Constants.batchEventsMax,
        expiriesMax: Int = Constants.pulseExpiriesMax, levelCount: Int = Constants.lsmLevels,
        growthFactor: Int = Constants.lsmGrowthFactor, tablesMax: Int? = nil, lookupsMax: Int = 16,
        gridReadsMax: Int = 16, manifestLogBlocksMax: Int = 1024,
        manifestLogTablesMax: Int = ForestStoreConfiguration.manifestLogTablesMaxDefault
    ) {
        precondition(batchEventsMax >= 1 && expiriesMax >= batchEventsMax, "a pulse expires at least a batch")
        let manifest = ManifestConfiguration(
            levelCount: levelCount, growthFactor: growthFactor,
            tablesMax: tablesMax ?? ForestStoreConfiguration.levelTablesMaxDefault)
        func groove(
            _ object: TreeId, _ id: TreeId?, _ indexes: [UInt16], changes: Int, prefetch: Int, cache: Int,
            idCache: Int = 0, objectScanValuesMax: Int = Constants.queryResultsMax, indexPuts: Int? = nil
        ) -> GrooveConfiguration {
            GrooveConfiguration(
                objectTreeId: object.rawValue, idTreeId: id?.rawValue, indexTreeIds: indexes,
                changesPerBeatMax: changes, prefetchEntriesMax: prefetch, cacheCapacity: cache,
                compactionOps: storage.lsmCompactionOps, manifest: manifest, blockSize: storage.blockSize,
                lookupsMax: lookupsMax, idCacheCapacity: idCache, objectScanValuesMax: objectScanValuesMax,
                indexPutsPerBeatMax: indexPuts)
        }
        let e = expiriesMax
        // Prefetch entries count ids and the timestamps they resolve to (Groove.swift), so twice.
        accounts = groove(
            .accountsObject, .accountsId, GrooveIndex<Account>.accounts().map(\.treeId),
            changes: 2 * e, prefetch: 2 * (4 * e + e), cache: caches.accounts, idCache: caches.accountIds,
            indexPuts: 2 * e)
        // Every transfer updates two accounts: each updated account reaches its object tree
        // once per op (Groove.swift, "Deferred updates").
        accounts.defersUpdates = true
        transfers = groove(
            .transfersObject, .transfersId, GrooveIndex<Transfer>.transfers().map(\.treeId),
            changes: batchEventsMax, prefetch: 2 * (2 * e + e), cache: caches.transfers, idCache: caches.transferIds,
            indexPuts: batchEventsMax)
        transfersPending = groove(
            .transfersPendingObject, nil, [], changes: e, prefetch: e, cache: caches.transfersPending)
        // The change-events scan is the account-events object tree's only scan.
        accountEvents = groove(
            .accountEventsObject, nil, [], changes: e, prefetch: e, cache: caches.accountEvents,
            objectScanValuesMax: Constants.changeEventsMax)
        expiries = TreeConfiguration(
            valuesPerBeatMax: e, compactionOps: storage.lsmCompactionOps, manifest: manifest,
            blockSize: storage.blockSize, lookupsMax: lookupsMax)
        cacheGridBlocks = caches.gridBlocks
        self.gridReadsMax = gridReadsMax
        self.manifestLogBlocksMax = manifestLogBlocksMax
        self.manifestLogTablesMax = manifestLogTablesMax
    }

    /// Tables the manifest log tracks by default: 256 Ki. A table holds a bar of one tree's
    /// puts (up to 64 value blocks of 512 KiB for the transfers object tree), so this covers
    /// terabytes of tables; the forest's own default (8 × every level's `tablesMax` of every
    /// tree: 5.7 M tables here) reserved a 16 M-slot extent map, 0.8 GiB resident from start.
    public static let manifestLogTablesMaxDefault = 1 << 18

    /// Tables one level's manifest storage holds (visible and retired): 4096 tables of one bar
    /// each is 8 G transfers in one level of the transfers object tree. The arrays are reserved,
    /// not touched, so untouched capacity costs address space, not memory; a segmented manifest
    /// (storage spec §12) replaces this bound later.
    public static let levelTablesMaxDefault = 4096

    /// The forest's trees in registration order: accounts, transfers, pending statuses, account
    /// events (each groove's id tree, indexes, object tree), then the expiry schedule.
    public var trees: [TreeConfiguration] {
        accounts.treeConfigurations + transfers.treeConfigurations + transfersPending.treeConfigurations
            + accountEvents.treeConfigurations + [expiries]
    }

    /// `ForestConfiguration.beatTurnValuesMin`.
    public var beatTurnValuesMin = Constants.beatTurnValuesMin

    /// Inserts of a create batch between two polls of compaction's completions (ForestStore.swift
    /// "Compaction during execute"): 256, ~0.15 ms of execute on this VM (3 M transfers, two
    /// runs each: 64–256 gave 0.69–0.72 M/s, 1,024 0.68, 2,048 0.65); tests lower it so their
    /// small batches poll too.
    public var executePollInserts = 256

    public var forest: ForestConfiguration {
        let trees = self.trees
        // Every tree's lookups, scans and compaction reads may queue at once (a detached beat's
        // jobs read while the next op prefetches), plus the log's and a trailer's (Forest.init
        // checks the same sum).
        var reads = 2
        for tree in trees { reads += tree.lookupsMax + tree.jobsPerHalfBarMax + TreeScanReads.perTreeMax }
        var configuration = ForestConfiguration(
            trees: trees, cacheBlocks: cacheGridBlocks, gridReadsMax: gridReadsMax,
            gridReadQueueMax: max(64, reads - gridReadsMax), manifestLogBlocksMax: manifestLogBlocksMax,
            manifestLogTablesMax: manifestLogTablesMax)
        configuration.beatTurnValuesMin = beatTurnValuesMin
        return configuration
    }
}

import LedgerIO
import LedgerKit

// A groove (storage spec §5 "Grooves", "Caches", "Prefetch, then execute"; docs/lsm.md "The
// state machine on the forest"): one object type's trees and its object cache.
//
//   object tree   timestamp → object (the synthetic primary key; objects are never deleted)
//   id tree       id → timestamp (`IdTreeValue`; also the orphaned ids of failed transfers)
//   index trees   `(field, timestamp)` composite keys, one tree per declared index
//
// ## Id-less grooves
//
// Some objects have no id (a transfer's pending status, an account event): they are found by
// timestamp only, and their groove has no id tree (`GrooveConfiguration.idTreeId` nil). The
// object protocol says which is which: `GrooveObject` is timestamp-keyed, and
// `IdentifiedGrooveObject` (Account, Transfer) adds the u128 `id`. One `Groove` type serves
// both, reading the id through `GrooveObject.grooveId`, which the protocol extensions answer
// statically (nil, or `id`): a separate id-less groove type would duplicate prefetch, cache and
// scope logic for nothing, and constrained extensions would split the API the forest store
// drives generically. The id operations (`prefetchEnqueue(id:)`, `get(id:)`,
// `insertOrphanedId`, `isOrphaned`) trap on an id-less groove: calling them is a bug.
//
// ## Scopes (linked chains)
//
// `scopeOpen()` / `scopeClose(persist:)` bracket the changes of one linked chain within a
// batch; a discarded scope restores exactly the state at open: every tree drops the puts of the
// scope (their mutable memtables truncate the unsorted suffix), the cache replays its undo log,
// and the id answers of the batch (`idStates`: ids inserted or orphaned in the scope) are put
// back from the groove's own undo log, so an id inserted or orphaned in a discarded scope reads
// as before (usually absent). The undo log holds one entry per id change, at most
// `changesPerBeatMax`, reserved at init. No beat and no prefetch inside a scope (precondition).
//
// ## Deferred updates
//
// With `configuration.defersUpdates` (accounts), an update changes the cache (and any index
// key it moves) at once but not the object tree: the groove records the object's timestamp
// (GrooveDeferredUpdates) and puts each updated object once, its cached version, in timestamp
// order, when the op's beat starts (`Forest.addBeatStart`), or before the next prefetch if a
// host prefetches again without a beat. Within the op the groove answers every read from the
// cache (see below), and an updated object is touched, so an eviction stashes it until then.
// A discarded scope drops the updates it recorded, as the cache restores their objects. The
// object tree then holds the same objects at every beat, with one put per object instead of
// one per update.
//
// ## Uncached inserts
//
// `insert(_:cached: false)` puts a new object into its trees but not into the object cache or
// the id cache: for objects the next batches are unlikely to read (a single-phase transfer:
// nothing posts or voids it; ForestStore.insertTransfer caches only pending ones). Caching
// them cost ~3 ms of a batch of 8189 transfers (an insert into a set of a cache of MiBs, a
// 128-byte copy, an eviction, for the object and again for its id), and the caches held only
// the last few batches' transfers, which the trees' memtables hold anyway. A later batch that
// names one finds it through the trees (the memtables, then the tables) like any evicted
// object. Within the batch, its id answer is in `idStates` as for any insert, and a get of its
// object that misses the cache searches the object tree's current puts (a binary search: an
// object tree's inserts ascend by timestamp), so reads of the same batch see it as before.
//
// ## Prefetch, then execute
//
// Per batch: `prefetchStart()` (drops the cache's stash: every change of the previous batch is
// in the trees by now), `prefetchEnqueue(id:)` / `prefetchEnqueue(timestamp:)` for every object
// the batch may touch, then `prefetch(callback:)`. Each id is resolved through the id cache,
// else the id tree (memtables first, then a lookup), then its object through the object tree
// unless the cache holds it already; found objects are upserted into the `CacheMap`, whose
// stash keeps them even if later upserts of the batch evict them from the set-associative
// part. After the callback, `get(id:)` / `get(timestamp:)` answer synchronously; inserts and
// updates of the batch go to the trees and the cache at once, so later gets of the same batch
// see them.
//
// Rounds: once a prefetch completes, more ids and timestamps may be enqueued and `prefetch`
// called again (a second round that depends on what the first found, e.g. a post's pending
// transfer, then its accounts). Rounds accumulate: what earlier rounds resolved stays known and
// is not looked up again, and `prefetchEntriesMax` bounds all rounds of a batch together.
//
// The groove remembers what prefetch learned about each id this batch (found at a timestamp,
// absent, orphaned) in a map reserved at init and cleared per batch: the object cache is keyed
// by timestamp, so the id → timestamp step must be answered without I/O during execute. The
// timestamps enqueued by timestamp go in a second map (whether the object tree lacked them).
// Both are `GrooveBatchMap`s (open addressing, a cheap fixed hash, O(1) clear), not
// `Dictionary`/`Set`: SipHash and the generic paths cost ~20 % of a forest batch's execute. Asking
// for an id or timestamp that was not prefetched is a bug in the caller (precondition), which
// is how "not prefetched" is told apart from "does not exist".
//
// Concurrency: at most the id tree's `lookupsMax` id lookups and the object tree's
// `lookupsMax` object lookups in flight. One driver loop (`prefetchStep`) starts lookups while
// slots are free; a lookup that completes before `lookup` returns (memtable, cached block) only
// records its result, and the loop picks up the work it produced, so the stack never grows with
// the number of keys. Callbacks are made per slot at init: prefetch allocates nothing.
//
// A lookup fault (a block that cannot be read or decoded) stops starting new lookups; once the
// lookups in flight drain, `prefetch` reports the fault: the caller stops (the grid repairs,
// not the groove). An id whose object the object tree lacks is also reported (`.idWithoutObject`):
// on-disk state that does not hold together.
//
// ## Id cache
//
// The object cache is keyed by timestamp, so without help every prefetched id costs the id
// tree's memtable search and, usually, a tree lookup (index block, value block) before its
// object is found in the cache. `idCache` (a `CacheMap<IdTreeValue>` keyed by id, the object
// cache's set-associative CLOCK design, `idCacheCapacity` ids) answers those ids with one hash
// lookup. It holds only what the id tree holds: every id-tree value it caches came from the
// tree (a memtable hit or a lookup during prefetch) or went into it (`insert`,
// `insertOrphanedId` upsert it with the same value), and ids leave the id tree never (no
// tombstones), so a cached answer is the tree's answer. "Not found" is never cached: the batch
// may insert the id later. A discarded scope rolls the cache back with the trees (CacheMap
// scopes), and `prefetchStart` drops its stash as for the object cache. It starts empty with
// the groove (a restart builds a new one), so nothing older than the trees can be in it.
// Sketch: 34 B per id (32 B value, 16-bit tag): 256 Ki ids cost 8.5 MiB, plus the stash and
// undo log (sized like the object cache's: 13 MiB for production accounts). Measured (release,
// 100 k accounts on the grid, batches of 16 Ki ids sweeping them): 14 ms of prefetch per batch
// without, 6.3 ms with 128 Ki ids, 5.5 ms with 256 Ki; a cache smaller than a cyclic working
// set thrashes (64 Ki ids: 20 ms), hence the production size (ForestStoreConfiguration).
//
// ## Indexes
//
// Declared with `GrooveIndex` (GrooveIndex.swift): one tree per index. An insert puts the key of
// every index whose field is present; an update that changes a derived key puts the old key's
// tombstone and the new key (unchanged keys are not re-put).
//
// Derivation: when the index at position p declares field number p for every p (the accounts'
// and transfers' tables), the groove asks `Object.indexField(_:number:)`, a `switch` on the
// concrete type, instead of each index's closure (a closure call, its context and the
// `Derivation` enum per index: 11 per transfer insert). Other declarations use the closures.
//
// ## Tree order
//
// `GrooveConfiguration.treeConfigurations` lists the trees in the order `registerTrees(in:)`
// adds them: id tree, index trees in declaration order, object tree. A forest's configuration
// is built from that list (other grooves' lists appended), so the order is fixed.

/// Sizes of a groove.
public struct GrooveConfiguration: Sendable, Equatable {
    public var objectTreeId: UInt16
    /// nil: an id-less groove (objects found by timestamp only).
    public var idTreeId: UInt16?
    public var indexTreeIds: [UInt16]
    /// Inserts, updates and orphaned ids one batch makes at most.
    public var changesPerBeatMax: Int
    /// Ids plus timestamps one batch prefetches at most.
    public var prefetchEntriesMax: Int
    /// Objects the cache holds (whole sets of 16; 0: stash only).
    public var cacheCapacity: Int
    /// Ids the id → timestamp cache holds (whole sets of 16; 0: no id cache). Id'd grooves only.
    public var idCacheCapacity: Int
    /// The largest object-tree scan limit (the object tree's `scanValuesMax`: objects are never
    /// deleted, so a scan copies at most this many memtable values); nil: uncapped.
    public var objectScanValuesMax: Int?
    /// Puts one batch makes into one index tree at most: by default two per change (an update
    /// that changes a derived key tombstones the old one and puts the new one). A groove whose
    /// objects never change an indexed field after insert (transfers), or change at most a flag
    /// (accounts: `closed`, one put or tombstone per change), passes a tighter bound: each index
    /// tree's two memtables are sized from it.
    public var indexPutsPerBeatMax: Int
    public var compactionOps: Int
    public var manifest: ManifestConfiguration
    public var blockSize: Int
    public var lookupsMax: Int
    /// Whether updates reach the object tree once per object at the op's beat instead of one
    /// put per update (see "Deferred updates"): for objects updated many times per batch
    /// (accounts).
    public var defersUpdates = false

    public init(
        objectTreeId: UInt16, idTreeId: UInt16?, indexTreeIds: [UInt16], changesPerBeatMax: Int,
        prefetchEntriesMax: Int, cacheCapacity: Int, compactionOps: Int, manifest: ManifestConfiguration,
        blockSize: Int, lookupsMax: Int = 16, idCacheCapacity: Int? = nil,
        objectScanValuesMax: Int? = Constants.queryResultsMax, indexPutsPerBeatMax: Int? = nil
    ) {
        precondition(changesPerBeatMax >= 1, "a batch may change an object")
        precondition(prefetchEntriesMax >= 1, "a batch may prefetch an object")
        let idCacheCapacity = idCacheCapacity ?? cacheCapacity
        precondition(idCacheCapacity >= 0, "an id cache capacity is a count of ids")
        precondition(idCacheCapacity % ClockSets.ways == 0, "the id cache capacity is whole sets of 16 ways")
        self.objectTreeId = objectTreeId
        self.idTreeId = idTreeId
        self.indexTreeIds = indexTreeIds
        self.changesPerBeatMax = changesPerBeatMax
        self.prefetchEntriesMax = prefetchEntriesMax
        self.cacheCapacity = cacheCapacity
        self.idCacheCapacity = idCacheCapacity
        self.objectScanValuesMax = objectScanValuesMax
        self.indexPutsPerBeatMax = indexPutsPerBeatMax ?? 2 * changesPerBeatMax
        precondition(self.indexPutsPerBeatMax >= 1, "a batch may put an index key")
        self.compactionOps = compactionOps
        self.manifest = manifest
        self.blockSize = blockSize
        self.lookupsMax = lookupsMax
    }

    private func tree(valuesPerBeatMax: Int, scanValuesMax: Int? = nil) -> TreeConfiguration {
        TreeConfiguration(
            valuesPerBeatMax: valuesPerBeatMax, compactionOps: compactionOps, manifest: manifest,
            blockSize: blockSize, lookupsMax: lookupsMax, scanValuesMax: scanValuesMax)
    }

    /// The object tree takes one put per insert or update; its scans are capped (no tombstones).
    public var objectTree: TreeConfiguration {
        tree(valuesPerBeatMax: changesPerBeatMax, scanValuesMax: objectScanValuesMax)
    }
    /// The id tree takes one put per insert or orphaned id.
    public var idTree: TreeConfiguration { tree(valuesPerBeatMax: changesPerBeatMax) }
    /// An index tree takes `indexPutsPerBeatMax` puts per beat.
    public var indexTree: TreeConfiguration { tree(valuesPerBeatMax: indexPutsPerBeatMax) }

    /// The groove's trees in registration order: id (if any), indexes (as declared), object.
    public var treeConfigurations: [TreeConfiguration] {
        (idTreeId == nil ? [] : [idTree]) + indexTreeIds.map { _ in indexTree } + [objectTree]
    }

    /// Upserts between two stash compactions: every prefetched object plus every change.
    public var stashCapacity: Int { prefetchEntriesMax + changesPerBeatMax }
}

/// Why a prefetch stopped.
public enum GrooveFault: Error, Equatable, Sendable {
    case block(treeId: UInt16, BlockFault)
    case corrupt(treeId: UInt16, TableBlockError)
    /// The id tree names a timestamp the object tree does not hold.
    case idWithoutObject(id: UInt128, timestamp: UInt64)
}

public final class Groove<Object: GrooveObject, S: Storage> {
    public typealias PrefetchCallback = (Result<Void, GrooveFault>) -> Void

    /// What prefetch learned about an id this batch.
    enum IdState: Equatable {
        case pending
        case found(timestamp: UInt64)
        case notFound
        case orphaned(timestamp: UInt64)
    }

    public let configuration: GrooveConfiguration
    public let objectTree: Tree<Object, S>
    /// nil for an id-less groove.
    public let idTree: Tree<IdTreeValue, S>?
    public let indexes: [GrooveIndex<Object>]
    /// Whether `Object.indexField(_:number:)` derives index p as its field p (see "Indexes").
    public let derivesStatically: Bool
    /// Whether two versions of an object derive the same key in every index (nil: unknown, so
    /// each index is derived): lets an update that changes no indexed field (an account's
    /// balances) skip deriving every index twice. It must agree with `indexes`.
    public let indexesUnchanged: ((Object, Object) -> Bool)?
    /// Per index (by position): its tree, one of the two.
    public let indexTrees64: [Tree<CompositeKey64, S>?]
    public let indexTrees128: [Tree<CompositeKey128, S>?]
    public let cache: CacheMap<Object>
    /// id → the id tree's value (timestamp, orphaned flag), consulted before the id tree during
    /// prefetch; nil for an id-less groove or `idCacheCapacity` 0. See "Id cache" above.
    public let idCache: CacheMap<IdTreeValue>?
    /// The op's updates not yet put into the object tree (`configuration.defersUpdates`).
    private let deferredUpdates: GrooveDeferredUpdates?

    // Prefetch state of the current batch (reserved at init, cleared by `prefetchStart`).
    private var ids: [UInt128] = []
    /// Ids named but not yet entered into `idStates`: the last `enqueueDelay` names, a ring by
    /// name count (`enqueueDelayed`). See `prefetchEnqueue(id:)`.
    private let enqueueDelayIds: UnsafeMutableBufferPointer<UInt128>
    private var enqueueDelayed = 0
    /// Every id of the batch: enqueued or changed (≤ prefetchEntriesMax + changesPerBeatMax).
    private var idStates: GrooveBatchMap<UInt128, IdState>
    /// Timestamps to fetch from the object tree, with the id that named them (nil: enqueued by
    /// timestamp).
    private var objectQueue: [(timestamp: UInt64, id: UInt128?)] = []
    /// Timestamps enqueued by timestamp → whether the object tree lacked them (for
    /// `get(timestamp:)`'s "prefetched" check); one map, so enqueue and the check probe once.
    private var timestamps: GrooveBatchMap<UInt64, Bool>
    private var idNext = 0
    /// Whether `ids[idNext]` missed the id cache already (it then goes to the id tree).
    private var idNextMissedCache = false
    private var objectNext = 0
    private var isPrefetching = false
    private var isPrefetched = false
    /// Inserts this batch made without caching their objects (`insert(_:cached:)`): while
    /// nonzero, a cache miss also searches the object tree's current puts.
    private var uncachedInserts = 0
    private var isStepping = false
    private var prefetchFault: GrooveFault?
    private var prefetchCallback: PrefetchCallback?

    // The open scope's undo log of `idStates`: entry i restores `idUndoStates[i]` (nil: absent)
    // for `idUndoIds[i]`. Reserved at init for `changesPerBeatMax` entries.
    private var idUndoIds: [UInt128] = []
    private var idUndoStates: [IdState?] = []
    public private(set) var scopeIsActive = false

    /// The most lookups (id and object together) prefetch had in flight at once: statistics,
    /// and how tests see that prefetch runs lookups side by side within the bound.
    public private(set) var lookupsInFlightMax = 0

    // Lookup slots: the key each slot looks up and its completion (made at init, so a lookup
    // allocates nothing: TreeLookupCompletion).
    private var idSlotKeys: [UInt128]
    private var idSlotsFree: [Int]
    private var idCompletions: [TreeLookupCompletion<IdTreeValue>] = []
    private var objectSlotKeys: [(timestamp: UInt64, id: UInt128?)]
    private var objectSlotsFree: [Int]
    private var objectCompletions: [TreeLookupCompletion<Object>] = []

    public init(
        grid: Grid<S>, freeSet: FreeSet, configuration: GrooveConfiguration, indexes: [GrooveIndex<Object>],
        indexesUnchanged: ((Object, Object) -> Bool)? = nil
    ) {
        precondition(indexes.map(\.treeId) == configuration.indexTreeIds, "the configuration names the indexes' trees in order")
        precondition((configuration.idTreeId != nil) == Object.hasGrooveId,
                     "a groove has an id tree exactly when its objects have ids")
        self.configuration = configuration
        self.indexes = indexes
        derivesStatically = !indexes.isEmpty
            && indexes.indices.allSatisfy { indexes[$0].fieldNumber == $0 }
        self.indexesUnchanged = indexesUnchanged
        idTree = configuration.idTreeId.map {
            Tree(treeId: $0, grid: grid, freeSet: freeSet, configuration: configuration.idTree)
        }
        objectTree = Tree(
            treeId: configuration.objectTreeId, grid: grid, freeSet: freeSet, configuration: configuration.objectTree)
        indexTrees64 = indexes.map { index in
            index.isWide ? nil
                : Tree(treeId: index.treeId, grid: grid, freeSet: freeSet, configuration: configuration.indexTree)
        }
        indexTrees128 = indexes.map { index in
            index.isWide
                ? Tree(treeId: index.treeId, grid: grid, freeSet: freeSet, configuration: configuration.indexTree) : nil
        }
        // Only values touched since `prefetchStart` are stashed when evicted: the groove reads
        // only objects it prefetched or changed this batch (see "Prefetch, then execute").
        cache = CacheMap(
            cacheCapacity: configuration.cacheCapacity, stashCapacity: configuration.stashCapacity,
            stashesOnlyTouched: true)
        // Evictions are forgotten, not stashed: prefetch copies each answer into `idStates` and
        // execute never reads the id cache, so nothing relies on an id staying cached within a
        // batch. Its undo log is sized like the object cache's: one entry per id resolved
        // (≤ prefetchEntriesMax) and one per insert or orphaned id (≤ changes).
        idCache = configuration.idTreeId != nil && configuration.idCacheCapacity > 0
            ? CacheMap(
                cacheCapacity: configuration.idCacheCapacity, stashCapacity: configuration.stashCapacity,
                retainsEvictions: false)
            : nil
        deferredUpdates = configuration.defersUpdates
            ? GrooveDeferredUpdates(capacity: configuration.changesPerBeatMax) : nil
        let entries = configuration.prefetchEntriesMax
        ids.reserveCapacity(entries)
        enqueueDelayIds = .allocate(capacity: Self.enqueueDelay)
        enqueueDelayIds.initialize(repeating: 0)
        // Changes of the batch record their ids too.
        idStates = GrooveBatchMap(capacity: entries + configuration.changesPerBeatMax)
        objectQueue.reserveCapacity(entries)
        timestamps = GrooveBatchMap(capacity: entries)
        idUndoIds.reserveCapacity(configuration.changesPerBeatMax)
        idUndoStates.reserveCapacity(configuration.changesPerBeatMax)
        let lookups = configuration.lookupsMax
        idSlotKeys = Array(repeating: 0, count: lookups)
        idSlotsFree = Array((0..<lookups).reversed())
        objectSlotKeys = Array(repeating: (0, nil), count: lookups)
        objectSlotsFree = Array((0..<lookups).reversed())
        idCompletions = (0..<lookups).map { slot in
            TreeLookupCompletion { [unowned self] result in self.idLookupDone(slot: slot, result) }
        }
        objectCompletions = (0..<lookups).map { slot in
            TreeLookupCompletion { [unowned self] result in self.objectLookupDone(slot: slot, result) }
        }
    }

    deinit { enqueueDelayIds.deallocate() }

    /// Adds the groove's trees to `forest` in the order of `configuration.treeConfigurations`.
    public func registerTrees(in forest: Forest<S>) {
        if let idTree { forest.add(idTree) }
        for position in indexes.indices {
            if let tree = indexTrees64[position] { forest.add(tree) }
            if let tree = indexTrees128[position] { forest.add(tree) }
        }
        forest.add(objectTree)
        if deferredUpdates != nil {
            forest.addBeatStart { [unowned self] in self.putDeferredUpdates() }
        }
    }

    // MARK: Changes

    /// Inserts a new object: the object tree, the id tree, each index whose field is present,
    /// and, if `cached`, the cache and the id cache (see "Uncached inserts").
    public func insert(_ object: Object, cached: Bool = true) {
        precondition(!isPrefetching, "changes happen after prefetch")
        precondition(object.timestamp != 0, "an object has a timestamp")
        objectTree.put(object)
        if let id = object.grooveId {
            let value = IdTreeValue(id: id, timestamp: object.timestamp)
            requireIdTree().put(value)
            if cached { idCache?.upsert(value) }
            recordId(id, .found(timestamp: object.timestamp))
        }
        if !cached { uncachedInserts += 1 }
        if derivesStatically {
            for position in 0..<indexes.count {
                if let field = Object.indexField(object, number: position) {
                    putIndex(position, field: field, timestamp: object.timestamp)
                }
            }
        } else {
            // Through a buffer pointer: subscripting the array copies each index (its closure
            // retained and released) per insert.
            indexes.withUnsafeBufferPointer { indexes in
                for position in indexes.indices {
                    if let field = indexes[position].field(of: object) {
                        putIndex(position, field: field, timestamp: object.timestamp)
                    }
                }
            }
        }
        if cached { cache.upsert(object) }
    }

    /// `insert` into the object tree only, not the cache: for an id-less, index-less groove of
    /// append-only objects that no read of the same op asks for (account events: only
    /// get_account_balances reads them, and it appends none). Each insert then skips a stash
    /// probe and a copy of the object (256 B for an event) that nothing would read; the next
    /// op's prefetch finds the object in the memtable. A discarded scope truncates the tree as
    /// for `insert` (the cache logged nothing).
    public func insertUncached(_ object: Object) {
        precondition(!isPrefetching, "changes happen after prefetch")
        precondition(object.timestamp != 0, "an object has a timestamp")
        precondition(idTree == nil, "an uncached insert has no id to answer this batch")
        precondition(indexes.isEmpty, "an uncached insert has no index keys")
        objectTree.put(object)
    }

    /// Replaces `old` by `new` (same id and timestamp): the object tree, the indexes whose
    /// derived key changed (old key tombstoned, new key put), and the cache.
    public func update(old: Object, new: Object) {
        precondition(!isPrefetching, "changes happen after prefetch")
        precondition(old.grooveId == new.grooveId, "an update keeps the object's id")
        precondition(old.timestamp == new.timestamp, "an update keeps the object's timestamp")
        putIndexChanges(old: old, new: new)
        cache.upsert(new)
        if let deferredUpdates {
            deferredUpdates.record(timestamp: new.timestamp, hint: CacheMap<Object>.slotHintNone)
        } else {
            objectTree.put(new)
        }
    }

    /// `update(old:new:)` for execute's read-change-write: the old object is the one the cache
    /// holds for `new.timestamp` (found through `hint`, checked, else looked up), so the caller
    /// neither passes it nor pays a second lookup for the cache write. The object must exist.
    public func update(_ new: Object, hint: CacheMap<Object>.SlotHint) {
        precondition(!isPrefetching, "changes happen after prefetch")
        guard let old = cache.replace(new, hint: hint) else {
            preconditionFailure("an update replaces an object the batch prefetched or inserted")
        }
        precondition(old.grooveId == new.grooveId, "an update keeps the object's id")
        if let deferredUpdates {
            deferredUpdates.record(timestamp: new.timestamp, hint: hint)
        } else {
            objectTree.put(new)
        }
        putIndexChanges(old: old, new: new)
    }

    /// Puts the op's deferred updates into the object tree, each updated object once (its
    /// cached version), in timestamp order: at the start of the op's beat, and (for a host that
    /// prefetches again without a beat) before the next prefetch empties the stash.
    public func putDeferredUpdates() {
        guard let deferredUpdates else { return }
        precondition(!isPrefetching, "deferred updates are put between batches")
        deferredUpdates.drain(ahead: { cache.prefetchSlot($0) }) { timestamp, slot in
            var hint = slot
            // An updated object was touched, so an eviction stashed it: it stays findable
            // until the next prefetch's `compact`.
            guard let object = cache.get(timestamp, hint: &hint) else {
                preconditionFailure("a deferred update's object stays cached until it is put")
            }
            objectTree.put(object)
        }
    }

    /// For each index whose derived key differs between `old` and `new`: the old key's
    /// tombstone and the new key.
    private func putIndexChanges(old: Object, new: Object) {
        if let indexesUnchanged, indexesUnchanged(old, new) { return }
        indexes.withUnsafeBufferPointer { indexes in
            for position in indexes.indices {
                let fieldOld = derivesStatically
                    ? Object.indexField(old, number: position) : indexes[position].field(of: old)
                let fieldNew = derivesStatically
                    ? Object.indexField(new, number: position) : indexes[position].field(of: new)
                guard fieldOld != fieldNew else { continue }
                if let fieldOld { putIndex(position, field: fieldOld, timestamp: old.timestamp, tombstone: true) }
                if let fieldNew { putIndex(position, field: fieldNew, timestamp: new.timestamp) }
            }
        }
    }

    /// Records `id` as orphaned (a failed transfer's id, at the timestamp it failed at), so a
    /// retry of it is recognized.
    public func insertOrphanedId(_ id: UInt128, timestamp: UInt64) {
        precondition(!isPrefetching, "changes happen after prefetch")
        let value = IdTreeValue(id: id, timestamp: timestamp, orphaned: true)
        requireIdTree().put(value)
        idCache?.upsert(value)
        recordId(id, .orphaned(timestamp: timestamp))
    }

    private func putIndex(_ position: Int, field: UInt128, timestamp: UInt64, tombstone: Bool = false) {
        if let tree = indexTrees64[position] {
            precondition(field <= UInt128(UInt64.max), "a u64 index stores a u64 field")
            let key = CompositeKey64(field: UInt64(field), timestamp: timestamp)
            tree.put(tombstone ? .tombstone(key: key) : key)
        } else if let tree = indexTrees128[position] {
            let key = CompositeKey128(field: field, timestamp: timestamp)
            tree.put(tombstone ? .tombstone(key: key) : key)
        } else {
            preconditionFailure("every index has a tree")
        }
    }

    private func recordId(_ id: UInt128, _ state: IdState) {
        if scopeIsActive {
            precondition(idUndoIds.count < configuration.changesPerBeatMax, "a scope changes at most changesPerBeatMax ids")
        }
        // The map holds prefetchEntriesMax + changesPerBeatMax ids: a batch names no more
        // (its put traps past its capacity).
        let previous = idStates.put(id, state)
        if scopeIsActive {
            idUndoIds.append(id)
            idUndoStates.append(previous)
        }
    }

    /// The id tree; trapping on an id-less groove, where asking for ids is a bug.
    private func requireIdTree() -> Tree<IdTreeValue, S> {
        guard let idTree else { preconditionFailure("an id operation on an id-less groove (objects have no ids)") }
        return idTree
    }

    // MARK: Scopes

    /// Opens a scope: the changes until `scopeClose(persist:)` can be undone together (one
    /// linked chain of a batch). Scopes do not nest.
    public func scopeOpen() {
        precondition(!scopeIsActive, "groove scopes do not nest")
        precondition(!isPrefetching, "a scope opens after prefetch")
        precondition(idUndoIds.isEmpty, "a closed scope left no undo log")
        scopeIsActive = true
        idTree?.scopeOpen()
        for position in indexes.indices {
            indexTrees64[position]?.scopeOpen()
            indexTrees128[position]?.scopeOpen()
        }
        objectTree.scopeOpen()
        cache.scopeOpen()
        idCache?.scopeOpen()
        deferredUpdates?.scopeOpen()
    }

    /// Closes the scope; `persist: false` restores the trees, the cache and the batch's id
    /// answers to their state at `scopeOpen()`.
    public func scopeClose(persist: Bool) {
        precondition(scopeIsActive, "scopeClose follows scopeOpen")
        scopeIsActive = false
        idTree?.scopeClose(persist: persist)
        for position in indexes.indices {
            indexTrees64[position]?.scopeClose(persist: persist)
            indexTrees128[position]?.scopeClose(persist: persist)
        }
        objectTree.scopeClose(persist: persist)
        cache.scopeClose(persist: persist)
        // The id tree dropped the scope's puts: the id cache forgets them too.
        idCache?.scopeClose(persist: persist)
        deferredUpdates?.scopeClose(persist: persist)
        if !persist {
            // Newest first, so an id changed twice ends with its state before the first change.
            for offset in 0..<idUndoIds.count {
                let entry = idUndoIds.count - 1 - offset
                if let state = idUndoStates[entry] {
                    idStates.put(idUndoIds[entry], state)
                } else {
                    idStates.remove(idUndoIds[entry])
                }
            }
        }
        idUndoIds.removeAll(keepingCapacity: true)
        idUndoStates.removeAll(keepingCapacity: true)
    }

    // MARK: Prefetch

    /// Starts a batch's prefetch: the stash goes (the previous batch's changes are in the trees)
    /// and the previous batch's answers are forgotten.
    public func prefetchStart() {
        precondition(!isPrefetching, "one prefetch at a time")
        precondition(!scopeIsActive, "a scope closes within its batch")
        putDeferredUpdates()
        cache.compact()
        idCache?.compact()
        ids.removeAll(keepingCapacity: true)
        enqueueDelayed = 0
        idStates.removeAll()
        objectQueue.removeAll(keepingCapacity: true)
        timestamps.removeAll()
        uncachedInserts = 0
        idNext = 0
        idNextMissedCache = false
        objectNext = 0
        prefetchFault = nil
        isPrefetched = false
    }

    /// Names an object the batch may touch by id (duplicates are looked up once).
    ///
    /// The id enters `idStates` `enqueueDelay` names later (or when `prefetch` starts): its slot
    /// is a random line of a table of MiBs, so probing it at once waits for memory on every
    /// name (7 % of a forest create_transfers batch); the delay lets the hint issued now load
    /// it. Names are entered in order, so `ids` (and every answer) is as without the delay;
    /// nothing reads `idStates` or `ids` between names and `prefetch`.
    public func prefetchEnqueue(id: UInt128) {
        precondition(!isPrefetching, "enqueue between prefetchStart and prefetch, or between rounds")
        _ = requireIdTree()
        idStates.prefetch(id)
        let position = enqueueDelayed & (Self.enqueueDelay - 1)
        if enqueueDelayed >= Self.enqueueDelay { enqueueNow(id: enqueueDelayIds[position]) }
        enqueueDelayIds[position] = id
        enqueueDelayed += 1
    }

    /// Names held back by `prefetchEnqueue(id:)`: far enough ahead for a miss to complete (a
    /// name costs tens of ns), a power of two (the ring's index is a mask).
    private static var enqueueDelay: Int { 16 }

    /// Enters the held-back names, oldest first.
    private func enqueueFlush() {
        let first = max(0, enqueueDelayed - Self.enqueueDelay)
        for count in first..<enqueueDelayed { enqueueNow(id: enqueueDelayIds[count & (Self.enqueueDelay - 1)]) }
        enqueueDelayed = 0
    }

    private func enqueueNow(id: UInt128) {
        // One probe: inserts unless the batch named the id already.
        guard idStates.insert(id, .pending) else { return }
        precondition(ids.count + objectQueue.count < configuration.prefetchEntriesMax,
                     "a batch prefetches at most prefetchEntriesMax entries")
        ids.append(id)
    }

    /// Names an object the batch may touch by timestamp.
    public func prefetchEnqueue(timestamp: UInt64) {
        precondition(!isPrefetching, "enqueue between prefetchStart and prefetch, or between rounds")
        guard timestamps.insert(timestamp, false) else { return }
        precondition(ids.count + objectQueue.count < configuration.prefetchEntriesMax,
                     "a batch prefetches at most prefetchEntriesMax entries")
        objectQueue.append((timestamp, nil))
    }

    /// Loads every enqueued object into the cache; `callback` runs once all are in (possibly
    /// before `prefetch` returns) or with the first fault.
    public func prefetch(callback: @escaping PrefetchCallback) {
        precondition(!isPrefetching, "one prefetch round at a time")
        precondition(prefetchFault == nil, "no prefetch round after a fault: the caller stops")
        precondition(!scopeIsActive, "no prefetch inside a scope")
        enqueueFlush()
        isPrefetched = false
        isPrefetching = true
        prefetchCallback = callback
        prefetchStep()
    }

    /// Starts lookups while slots are free; completions that happen inside `lookup` only
    /// record their results (`isStepping`), and the loop picks up the work they produce.
    private func prefetchStep() {
        isStepping = true
        // Each turn resolves or starts at least one id or object, marks the next id as missed
        // by the id cache, or ends: bounded by 2 × ids + objects enqueued.
        while prefetchFault == nil {
            var started = false
            var idProgressed = false
            if idNext < ids.count && !idNextMissedCache, let idCache {
                hintIdsAhead(idCache)
                // A hash lookup instead of the memtables' search and a tree lookup.
                if let value = idCache.get(ids[idNext]) {
                    let id = ids[idNext]
                    idNext += 1
                    started = true
                    idProgressed = true
                    resolveId(id, value)
                } else {
                    // Asked once: the id waits for a lookup slot without asking again (the
                    // next turn tries the id tree).
                    idNextMissedCache = true
                    started = true
                    idProgressed = true
                }
            } else if idNext < ids.count, let slot = idSlotsFree.popLast() {
                let id = ids[idNext]
                idNext += 1
                idNextMissedCache = false
                started = true
                idProgressed = true
                let idTree = requireIdTree()
                // A new time-based id is above every id the tree holds: absent, no search.
                if idTree.isAboveEveryKey(id) {
                    idStates.put(id, .notFound)
                    idSlotsFree.append(slot)
                    continue
                }
                switch idTree.getCached(id) {
                case .found(let value):
                    idCache?.upsert(value)
                    resolveId(id, value)
                case .deleted: idStates.put(id, .notFound)
                case .notInMemory:
                    idSlotKeys[slot] = id
                    // The memtables were searched just above.
                    idTree.lookupNotInMemory(id, completion: idCompletions[slot])
                    continue
                }
                idSlotsFree.append(slot)
            }
            // Objects trail the ids by more than the hint distance while ids still resolve:
            // each found id appends its object, so taking objects as soon as they appear
            // would leave none ahead to hint (`hintObjectsAhead`), and every cache probe would
            // wait for memory. Once the ids stop progressing (all resolved, or waiting for
            // lookups), the objects left are taken regardless.
            let objectsAhead = objectQueue.count - objectNext
            if objectsAhead > 0 && (objectsAhead > Self.prefetchHintDistance || !idProgressed),
                let slot = objectSlotsFree.popLast()
            {
                hintObjectsAhead()
                let entry = objectQueue[objectNext]
                objectNext += 1
                started = true
                if cache.peek(entry.timestamp) == nil {
                    objectSlotKeys[slot] = entry
                    objectTree.lookup(entry.timestamp, completion: objectCompletions[slot])
                    continue
                }
                objectSlotsFree.append(slot)
            }
            if !started { break }
        }
        isStepping = false
        let lookups = lookupsInFlight
        lookupsInFlightMax = max(lookupsInFlightMax, lookups)
        let inFlight = lookups > 0
        guard !inFlight else { return }
        guard prefetchFault != nil || (idNext == ids.count && objectNext == objectQueue.count) else {
            preconditionFailure("prefetch stops with work left only after a fault")
        }
        finishPrefetch()
    }

    /// How many entries ahead prefetch's own loop starts loading cache lines: the id cache's and
    /// object cache's sets and the batch map's slots live in tens of MiB, so each probe would
    /// otherwise wait for memory; a few entries ahead is ~1 µs, enough for a miss to complete.
    private static var prefetchHintDistance: Int { 8 }

    /// Loads the lines the id cache probe and the `idStates` write of the id
    /// `prefetchHintDistance` ahead will touch. Loads only.
    /// Also the value line of the id half as far ahead, whose set's tags were loaded earlier
    /// (a hit compares its key).
    @inline(__always)
    private func hintIdsAhead(_ idCache: CacheMap<IdTreeValue>) {
        let ahead = idNext + Self.prefetchHintDistance
        if ahead < ids.count {
            idCache.prefetchPlacement(of: ids[ahead], stash: false)
            idStates.prefetch(ids[ahead])
        }
        let near = idNext + Self.prefetchHintDistance / 2
        if near < ids.count { idCache.prefetchValue(of: ids[near]) }
    }

    /// Loads the object cache set of the entry `prefetchHintDistance` ahead (its `peek`), and
    /// the value lines of the entry half as far ahead whose set was loaded earlier. Loads only.
    @inline(__always)
    private func hintObjectsAhead() {
        let ahead = objectNext + Self.prefetchHintDistance
        if ahead < objectQueue.count { cache.prefetchPlacement(of: objectQueue[ahead].timestamp, stash: false) }
        let near = objectNext + Self.prefetchHintDistance / 2
        if near < objectQueue.count { cache.prefetchValue(of: objectQueue[near].timestamp) }
    }

    private var lookupsInFlight: Int {
        2 * configuration.lookupsMax - idSlotsFree.count - objectSlotsFree.count
    }

    private func resolveId(_ id: UInt128, _ value: IdTreeValue) {
        if value.isOrphaned {
            idStates.put(id, .orphaned(timestamp: value.timestamp))
            return
        }
        idStates.put(id, .found(timestamp: value.timestamp))
        precondition(objectQueue.count < configuration.prefetchEntriesMax,
                     "ids and timestamps together are at most prefetchEntriesMax objects to fetch")
        objectQueue.append((value.timestamp, id))
    }

    private func idLookupDone(slot: Int, _ result: TreeLookupResult<IdTreeValue>) {
        let id = idSlotKeys[slot]
        idSlotsFree.append(slot)
        switch result {
        case .found(let value):
            idCache?.upsert(value)
            resolveId(id, value)
        case .notFound: idStates.put(id, .notFound)
        case .fault(let fault): noteFault(.block(treeId: requireIdTree().treeId, fault))
        case .corrupt(let error): noteFault(.corrupt(treeId: requireIdTree().treeId, error))
        }
        if !isStepping { prefetchStep() }
    }

    private func objectLookupDone(slot: Int, _ result: TreeLookupResult<Object>) {
        let entry = objectSlotKeys[slot]
        objectSlotsFree.append(slot)
        switch result {
        case .found(let object): cache.upsert(object)
        case .notFound:
            if let id = entry.id {
                noteFault(.idWithoutObject(id: id, timestamp: entry.timestamp))
            } else {
                let previous = timestamps.put(entry.timestamp, true)
                precondition(previous == false, "a timestamp is looked up once, after its enqueue")
            }
        case .fault(let fault): noteFault(.block(treeId: objectTree.treeId, fault))
        case .corrupt(let error): noteFault(.corrupt(treeId: objectTree.treeId, error))
        }
        if !isStepping { prefetchStep() }
    }

    private func noteFault(_ fault: GrooveFault) {
        if prefetchFault == nil { prefetchFault = fault }
    }

    private func finishPrefetch() {
        guard let callback = prefetchCallback else { preconditionFailure("a prefetch has a callback") }
        prefetchCallback = nil
        isPrefetching = false
        isPrefetched = prefetchFault == nil
        if let fault = prefetchFault { callback(.failure(fault)) } else { callback(.success(())) }
    }

    // MARK: Execute hints (software prefetch, ForestStore.hint)

    /// Execute will soon ask for `id`'s batch answer (and, for a new id, insert it): starts
    /// loading its `idStates` slot and, with `idCache`, the id cache's lines an insert of the id
    /// probes. Only loads: what execute then reads is unchanged.
    @inline(__always)
    public func hintId(_ id: UInt128, idCache includeIdCache: Bool) {
        idStates.prefetch(id)
        if includeIdCache { idCache?.prefetchPlacement(of: id, stash: true) }
    }

    /// Execute will soon read the object of `id`: if prefetch found it, starts loading its
    /// cache set's tags (the `idStates` slot should be loaded by an earlier `hintId`) and
    /// returns its timestamp (for a later `cache.prefetchValue`), else 0.
    @inline(__always)
    public func hintObject(id: UInt128) -> UInt64 {
        guard isPrefetched, case .found(let timestamp)? = idStates.get(id) else { return 0 }
        cache.prefetchPlacement(of: timestamp, stash: false)
        return timestamp
    }

    // MARK: Execute (synchronous, after prefetch)

    /// The object with `id`, nil if it does not exist (or its id is orphaned). The id must have
    /// been prefetched (or changed) this batch.
    public func get(id: UInt128) -> Object? {
        precondition(isPrefetched, "gets follow a completed prefetch")
        _ = requireIdTree()
        guard let state = idStates.get(id) else { preconditionFailure("get(id:) of an id not prefetched this batch") }
        switch state {
        case .pending: preconditionFailure("a completed prefetch resolved every id")
        case .notFound, .orphaned: return nil
        case .found(let timestamp):
            guard let object = cache.get(timestamp) ?? uncachedInsert(timestamp) else {
                preconditionFailure("a prefetched object stays in the cache or its stash until the next batch")
            }
            return object
        }
    }

    /// The object this batch inserted at `timestamp` without caching it, if any: the object
    /// tree's current puts (a binary search: an object tree's inserts ascend). Only searched
    /// when the batch made an uncached insert, so a missing prefetch still fails its check.
    private func uncachedInsert(_ timestamp: UInt64) -> Object? {
        guard uncachedInserts > 0 else { return nil }
        return objectTree.getCurrentBeat(timestamp)
    }

    /// The timestamp of the object with `id`, nil if it does not exist (or its id is orphaned):
    /// `get(id:)` without reading the object (the batch's id answers only). The id must have
    /// been prefetched (or changed) this batch.
    public func timestamp(id: UInt128) -> UInt64? {
        precondition(isPrefetched, "gets follow a completed prefetch")
        _ = requireIdTree()
        guard let state = idStates.get(id) else { preconditionFailure("timestamp(id:) of an id not prefetched this batch") }
        switch state {
        case .pending: preconditionFailure("a completed prefetch resolved every id")
        case .notFound, .orphaned: return nil
        case .found(let timestamp): return timestamp
        }
    }

    /// `get(timestamp:)` that tries the cache slot `hint` first and leaves the object's slot in
    /// it (CacheMap slot hints).
    public func get(timestamp: UInt64, hint: inout CacheMap<Object>.SlotHint) -> Object? {
        precondition(isPrefetched, "gets follow a completed prefetch")
        if let object = cache.get(timestamp, hint: &hint) ?? uncachedInsert(timestamp) { return object }
        precondition(timestamps.get(timestamp) == true, "get(timestamp:) of a timestamp not prefetched this batch")
        return nil
    }

    /// The object created at `timestamp`, nil if none. The timestamp must have been prefetched
    /// (directly, or as a prefetched id's object) or changed this batch.
    public func get(timestamp: UInt64) -> Object? {
        precondition(isPrefetched, "gets follow a completed prefetch")
        if let object = cache.get(timestamp) ?? uncachedInsert(timestamp) { return object }
        // Not in the cache: the object tree must have lacked it (`true`); a found object stays
        // in the cache or its stash until the next batch.
        precondition(timestamps.get(timestamp) == true, "get(timestamp:) of a timestamp not prefetched this batch")
        return nil
    }

    /// Whether `id` is an orphaned id (a failed transfer's). The id must have been prefetched.
    public func isOrphaned(id: UInt128) -> Bool {
        precondition(isPrefetched, "orphaned ids are known after a completed prefetch")
        _ = requireIdTree()
        guard let state = idStates.get(id) else { preconditionFailure("isOrphaned of an id not prefetched this batch") }
        if case .orphaned = state { return true }
        return false
    }
}

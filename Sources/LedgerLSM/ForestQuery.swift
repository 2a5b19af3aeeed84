import LedgerIO
import LedgerKit

// The timestamps a query selects (storage spec §5 "Scans"; state-machine spec §6.3, §6.5;
// docs/lsm.md "The state machine on the forest"), found from index-tree scans during prefetch.
// The store then loads the objects by timestamp; `AccountQuery.matches` /
// `TransferQuery.matches` stay the one definition of what a query selects, and the tests hold
// this planner to them.
//
// ## Plan
//
// A query is an intersection of *terms* over the timestamp range; a term is one cursor
// (ForestQueryCursor.swift: one index tree at one field value, or the object tree) or the union
// of two (debit_account_id ∪ credit_account_id for get_account_transfers). Each non-zero field
// of the filter is a term (zero fields are not indexed, so they cannot be scanned — and a zero
// filter field means "any"); with no term at all, the object tree's timestamps are the one term.
// The plans per query type are in ForestQueryPlans.swift.
//
// ## Zig-zag
//
// Every term has a head: its next timestamp in the query's direction (a union's is the nearer
// of its two cursors' heads). The target is the farthest head; every cursor seeks to it (skips
// what it holds before it, or starts its next scan *at* the target: the skip costs one scan,
// not a walk through the keys in between). When all heads agree, the target matches: it is
// emitted and every cursor holding it moves past it (both sides of a union when a transfer
// names the account on both: emitted once). The first term to end ends the query; so does the
// `limit`-th match. Timestamps come out in the query's order without sorting.
//
// ## Driving
//
// One loop (`step`) alternates two phases: start a scan for every cursor whose window is used
// up (they run side by side: each cursor is a different tree, so one scan per tree), then, with
// every window filled, zig-zag in memory until a cursor needs another scan. Scans that complete
// before `scan` returns (memtable-only data, cached blocks) only record their result
// (`isStepping`), so the stack never grows with the number of scans. A scan's fault or corrupt
// block ends the query with that fault once the scans in flight drain; nothing is emitted from
// a window that was not read whole.
//
// ## What a query sees
//
// Each scan sees the tree as it is when the scan starts (TreeScan.swift): memtables and levels.
// A query is several scans over time, so it answers for one state only if no put happens while
// it runs: the store runs it in the prefetch phase, before the batch's execute (compaction
// beats may run meanwhile: they move values between levels without changing what a key
// answers).
//
// ## Memory (allocated at init)
//
// Per index cursor: `chunkCount` keys (16 B or 32 B each) plus their timestamps (8 B); the
// object cursor: `objectChunkCount` objects (128 B). Default 512 keys: transfers (7 cursors)
// ≈ 150 KiB. The object tree's scans allocate their context at the tree's first scan
// (TreeScan.swift: a memtable copy of 2 × memtable capacity objects, per context): that, not
// this planner, is the cost of a no-field query; a small `objectChunkCount` keeps each of its
// scans short (the copy stops after `limit` values) but not that allocation.
//
// ## Cost
//
// CPU: one comparison per key the windows hold. IO: an intersection reads, per cursor, the
// blocks around each target it seeks to; a selective term makes the others skip. A single-term
// query (one field, or none, or the union alone) scans only `limit` keys per cursor.

/// Why a query stopped.
public enum ForestQueryFault: Error, Equatable, Sendable {
    /// A block of tree `treeId` could not be read as its referrer names it.
    case block(treeId: UInt16, BlockFault)
    /// A block of tree `treeId` verified but its contents contradict the tree.
    case corrupt(treeId: UInt16, TableBlockError)
}

public final class ForestQuery<Object: GrooveObject, S: Storage> {
    public typealias Callback = (Result<Int, ForestQueryFault>) -> Void

    /// Cursors one plan uses at most: five field terms plus a union's second cursor.
    public static var cursorsPerQueryMax: Int { 7 }

    /// One cursor per queryable index (in the order given at init), then the object cursor.
    let cursors: [ForestQueryCursor<Object, S>]
    private let cursorByTreeId: [UInt16: Int]
    private var scanCallbacks: [(TreeScanResult) -> Void] = []

    // The plan of the current run: active cursors, grouped into terms (a term's cursors are
    // consecutive in `leaves`; `termEnds[t]` is one past term t's last leaf).
    private var leaves: [Int]
    /// The field each leaf scans (0 for the object cursor).
    private var leafFields: [UInt128]
    private var termEnds: [Int]
    private var isPlanning = false
    private var isPlanEmpty = false
    private var isRunning = false
    private var timestampMin: UInt64 = 0
    private var timestampMax: UInt64 = 0
    private var direction = ScanDirection.ascending
    private var limit = 0
    private var output = UnsafeMutableBufferPointer<UInt64>(start: nil, count: 0)
    private var callback: Callback?

    // Progress.
    private var emitted = 0
    private var scansPending = 0
    private var fault: ForestQueryFault?
    private var isStepping = false

    /// Statistics: scans started by all runs (tests see the zig-zag skip through it).
    public private(set) var scansStarted = 0

    /// A planner over `groove`'s index trees `indexTreeIds` (each must be one of the groove's
    /// indexes) and its object tree. `chunkCount`: keys per index scan; `objectChunkCount`:
    /// objects per object-tree scan.
    public init(groove: Groove<Object, S>, indexTreeIds: [UInt16], chunkCount: Int = 512, objectChunkCount: Int = 64) {
        precondition(chunkCount >= 1, "an index scan returns a key")
        precondition(objectChunkCount >= 1, "an object scan returns an object")
        var cursors: [ForestQueryCursor<Object, S>] = []
        var cursorByTreeId: [UInt16: Int] = [:]
        for treeId in indexTreeIds {
            guard let position = groove.indexes.firstIndex(where: { $0.treeId == treeId }) else {
                preconditionFailure("a queried index is one of the groove's")
            }
            precondition(cursorByTreeId[treeId] == nil, "an index is queried through one cursor")
            let source: ForestQueryCursor<Object, S>.Source
            if let tree = groove.indexTrees64[position] {
                source = .index64(tree, .allocate(capacity: chunkCount))
            } else if let tree = groove.indexTrees128[position] {
                source = .index128(tree, .allocate(capacity: chunkCount))
            } else {
                preconditionFailure("every index has a tree")
            }
            cursorByTreeId[treeId] = cursors.count
            cursors.append(ForestQueryCursor(source: source, capacity: chunkCount))
        }
        cursors.append(ForestQueryCursor(
            source: .objects(groove.objectTree, .allocate(capacity: objectChunkCount)), capacity: objectChunkCount))
        self.cursors = cursors
        self.cursorByTreeId = cursorByTreeId
        leaves = []
        leaves.reserveCapacity(Self.cursorsPerQueryMax)
        leafFields = []
        leafFields.reserveCapacity(Self.cursorsPerQueryMax)
        termEnds = []
        termEnds.reserveCapacity(Self.cursorsPerQueryMax)
        scanCallbacks = (0..<cursors.count).map { cursor in
            { [unowned self] result in self.scanDone(cursor: cursor, result) }
        }
    }

    /// Whether a query is being planned or run.
    public var isBusy: Bool { isPlanning || isRunning }

    // MARK: Planning (ForestQueryPlans.swift builds the plans)

    /// Starts a plan: timestamps in `[timestampMin, timestampMax]`, in `direction`, at most
    /// `limit`, written to the front of `output`.
    func planStart(
        timestampMin: UInt64, timestampMax: UInt64, direction: ScanDirection, limit: Int,
        output: UnsafeMutableBufferPointer<UInt64>, callback: @escaping Callback
    ) {
        precondition(!isBusy, "one query at a time per planner")
        precondition(limit >= 1, "a query's limit is at least 1")
        precondition(output.count >= limit, "the output holds limit timestamps")
        isPlanning = true
        isPlanEmpty = false
        leaves.removeAll(keepingCapacity: true)
        leafFields.removeAll(keepingCapacity: true)
        termEnds.removeAll(keepingCapacity: true)
        self.timestampMin = timestampMin
        self.timestampMax = timestampMax
        self.direction = direction
        self.limit = limit
        self.output = output
        self.callback = callback
    }

    /// Adds a term: the index `treeId` at `field` (non-zero: zero fields are not indexed).
    func planTerm(treeId: UInt16, field: UInt128) {
        planLeaf(treeId: treeId, field: field)
        termEnds.append(leaves.count)
    }

    /// Adds a term: the union of the indexes `first` and `second`, both at `field`.
    func planUnion(first: UInt16, second: UInt16, field: UInt128) {
        precondition(first != second, "a union joins two different indexes")
        planLeaf(treeId: first, field: field)
        planLeaf(treeId: second, field: field)
        termEnds.append(leaves.count)
    }

    private func planLeaf(treeId: UInt16, field: UInt128) {
        precondition(isPlanning, "terms are added between planStart and planRun")
        precondition(field != 0, "zero fields are not indexed: they are no term")
        precondition(leaves.count < Self.cursorsPerQueryMax, "a plan uses at most cursorsPerQueryMax cursors")
        guard let cursor = cursorByTreeId[treeId] else { preconditionFailure("a planned index has a cursor") }
        precondition(!leaves.contains(cursor), "a plan uses an index once")
        leaves.append(cursor)
        leafFields.append(field)
    }

    /// Marks the plan as selecting nothing (whatever else it holds).
    func planEmpty() {
        precondition(isPlanning, "a plan is marked empty between planStart and planRun")
        isPlanEmpty = true
    }

    /// Runs the plan; with no term, the object tree's timestamps in range are the one term.
    /// The callback may run before this returns.
    func planRun() {
        precondition(isPlanning, "a plan runs once, after planStart")
        isPlanning = false
        isRunning = true
        emitted = 0
        scansPending = 0
        fault = nil
        guard timestampMin <= timestampMax, !isPlanEmpty else {
            // An empty range selects nothing; the cursors are never reset for it.
            finish()
            return
        }
        if leaves.isEmpty {
            leaves.append(cursors.count - 1)
            leafFields.append(0)
            termEnds.append(1)
        }
        for index in leaves.indices {
            cursors[leaves[index]].reset(
                field: leafFields[index], timestampMin: timestampMin, timestampMax: timestampMax, direction: direction)
        }
        step()
    }

    // MARK: Driving

    private func step() {
        isStepping = true
        // Each turn starts scans, emits a timestamp, or moves a cursor past at least one key (or
        // toward a scan): bounded by the keys of the terms in range.
        while scansPending == 0 {
            if fault != nil { break }
            if startScans() { continue }
            if !zigzag() { break }
        }
        isStepping = false
        if scansPending == 0 { finish() }
    }

    /// Starts a scan for every cursor whose window is used up; false if none needed one.
    private func startScans() -> Bool {
        var started = false
        let single = termEnds.count == 1
        for leaf in leaves where cursors[leaf].head == .refill {
            let cursor = cursors[leaf]
            // One term: its first `limit - emitted` keys are the answer, so read no more.
            let scanLimit = single ? min(cursor.capacity, limit - emitted) : cursor.capacity
            scansPending += 1
            scansStarted += 1
            started = true
            cursor.startScan(limit: scanLimit, callback: scanCallbacks[leaf])
        }
        return started
    }

    private func scanDone(cursor: Int, _ result: TreeScanResult) {
        precondition(scansPending > 0, "a scan completes while pending")
        scansPending -= 1
        if let scanFault = cursors[cursor].refilled(result), fault == nil { fault = scanFault }
        if !isStepping && scansPending == 0 { step() }
    }

    /// One zig-zag move with every window filled; false when the query is complete.
    private func zigzag() -> Bool {
        var target: UInt64 = 0
        var agree = true
        var termStart = 0
        for (term, termEnd) in termEnds.enumerated() {
            guard let head = termHead(start: termStart, end: termEnd) else { return false }
            if term == 0 {
                target = head
            } else if head != target {
                agree = false
                if precedes(target, head) { target = head }
            }
            termStart = termEnd
        }
        if agree {
            precondition(emitted < limit, "a query emits at most limit timestamps")
            precondition(emitted == 0 || precedes(output[emitted - 1], target), "a query emits in its order, once")
            output[emitted] = target
            emitted += 1
            for leaf in leaves where cursors[leaf].head == .key(target) { cursors[leaf].advance() }
            return emitted < limit
        }
        for leaf in leaves { cursors[leaf].seek(target) }
        return true
    }

    /// The nearest head of the term's cursors, nil once they all end.
    private func termHead(start: Int, end: Int) -> UInt64? {
        var nearest: UInt64?
        for index in start..<end {
            switch cursors[leaves[index]].head {
            case .key(let timestamp):
                if let current = nearest, !precedes(timestamp, current) { continue }
                nearest = timestamp
            case .end:
                continue
            case .refill:
                preconditionFailure("the zig-zag runs with every window filled")
            }
        }
        return nearest
    }

    @inline(__always)
    private func precedes(_ a: UInt64, _ b: UInt64) -> Bool {
        direction == .ascending ? a < b : b < a
    }

    private func finish() {
        guard let callback else { preconditionFailure("a running query has a callback") }
        precondition(isRunning, "a query finishes once")
        isRunning = false
        self.callback = nil
        output = UnsafeMutableBufferPointer(start: nil, count: 0)
        if let fault {
            callback(.failure(fault))
        } else {
            callback(.success(emitted))
        }
    }
}

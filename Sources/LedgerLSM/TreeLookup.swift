import LedgerIO
import LedgerKit

// Point lookups of a tree (storage spec §5 "Trees"): the memtables, then one table per level,
// shallowest first: index block → the value block whose key range holds the key → binary
// search. The first level that holds the key decides (a tombstone means "not found").
//
// Each lookup takes a context from a fixed pool (`lookupsMax`; the forest bounds lookups per
// batch, so running out is a bug). The context captures the tables to read when the lookup
// starts, so a compaction applied while it waits for IO cannot make it skip a level (released
// blocks stay readable until a later checkpoint is durable). Blocks are decoded in place in the
// grid's buffer during the read callback: a lookup owns no block memory. A read served from
// memory calls back before `read` returns; the loop in `lookupStep` absorbs that, so the stack
// does not grow with the level count.

/// The outcome of a tree lookup.
public enum TreeLookupResult<Value: TreeValue> {
    case found(Value)
    /// No value, or its newest value is a tombstone.
    case notFound
    /// A block on the key's path could not be read as its referrer names it.
    case fault(BlockFault)
    /// A block verified but its contents contradict the tree (a buggy or hostile writer).
    case corrupt(TableBlockError)
}

/// The completion of a lookup, made once by its owner (a groove makes one per lookup slot at
/// init) and passed by reference. Why not a closure argument: the context stores the callback
/// in a field of a generic class, whose layout keeps function values at their most general
/// abstraction, so a closure passed from specialized code (a `Tree<IdTreeValue, S>`) was
/// re-wrapped in a reabstraction thunk per lookup: a heap allocation per new id of a
/// create_transfers batch. The wrapper below converts the closure once, when it is made.
public final class TreeLookupCompletion<Value: TreeValue> {
    let body: (TreeLookupResult<Value>) -> Void

    public init(_ body: @escaping (TreeLookupResult<Value>) -> Void) { self.body = body }
}

final class TreeLookupContext<Value: TreeValue> {
    enum Phase {
        case index
        case value
    }

    var key: Value.Key?
    var completion: TreeLookupCompletion<Value>?
    /// The tables that may hold the key, shallowest first (captured at start).
    var tables: [TableInfo]
    var tableIndex = 0
    var phase = Phase.index
    var valueReference = BlockReference.null
    var result: TreeLookupResult<Value>?
    var isReadPending = false
    var isStepping = false

    init(levelCount: Int) {
        tables = []
        tables.reserveCapacity(levelCount)
    }
}

extension Tree {
    func initLookups() {
        let levelCount = configuration.manifest.levelCount
        lookupContexts = (0..<configuration.lookupsMax).map { _ in TreeLookupContext(levelCount: levelCount) }
        lookupContextsFree = Array((0..<configuration.lookupsMax).reversed())
        lookupReadCallbacks = (0..<configuration.lookupsMax).map { slot in
            GridReadHandler { [unowned self] result in self.lookupReadDone(slot: slot, result) }
        }
    }

    /// Lookups in flight.
    public var lookupsPending: Int { configuration.lookupsMax - lookupContextsFree.count }

    /// Looks `key` up at `snapshot` (`TableInfo.snapshotLatest` for the current state; the
    /// memtables always answer for the latest state). `callback` may run before `lookup`
    /// returns (memtable or cached blocks). Allocates a completion per call: hot paths make
    /// their `TreeLookupCompletion`s once and call `lookup(_:snapshot:completion:)`.
    public func lookup(
        _ key: Value.Key, snapshot: UInt64 = TableInfo.snapshotLatest,
        callback: @escaping (TreeLookupResult<Value>) -> Void
    ) {
        lookup(key, snapshot: snapshot, completion: TreeLookupCompletion(callback))
    }

    /// `lookup(_:snapshot:callback:)` with a completion made once by the caller: allocates
    /// nothing.
    public func lookup(
        _ key: Value.Key, snapshot: UInt64 = TableInfo.snapshotLatest, completion: TreeLookupCompletion<Value>
    ) {
        if isAboveEveryKey(key) {
            completion.body(.notFound)
            return
        }
        switch getCached(key) {
        case .found(let value):
            completion.body(.found(value))
            return
        case .deleted:
            completion.body(.notFound)
            return
        case .notInMemory:
            break
        }
        lookupNotInMemory(key, snapshot: snapshot, completion: completion)
    }

    /// `lookup(_:snapshot:completion:)` for a key the caller just found in neither memtable
    /// (`getCached` answered `.notInMemory`, and nothing was put since): starts at the tables,
    /// saving the second search of both memtables.
    public func lookupNotInMemory(
        _ key: Value.Key, snapshot: UInt64 = TableInfo.snapshotLatest, completion: TreeLookupCompletion<Value>
    ) {
        guard let slot = lookupContextsFree.popLast() else {
            preconditionFailure("at most lookupsMax lookups in flight (the forest bounds them)")
        }
        let context = lookupContexts[slot]
        context.key = key
        context.completion = completion
        context.tables.removeAll(keepingCapacity: true)
        for table in manifest.lookupTables(key: key, snapshot: snapshot) { context.tables.append(table) }
        context.tableIndex = 0
        context.phase = .index
        context.result = nil
        lookupStep(slot: slot)
    }

    private func lookupStep(slot: Int) {
        let context = lookupContexts[slot]
        context.isStepping = true
        // Each turn reads one block (2 per level): bounded by 2 × levelCount turns.
        while context.result == nil {
            if context.tableIndex == context.tables.count {
                context.result = .notFound
                break
            }
            let reference = context.phase == .index ? context.tables[context.tableIndex].index : context.valueReference
            context.isReadPending = true
            grid.read(reference, callback: lookupReadCallbacks[slot].callback)
            if context.isReadPending {
                context.isStepping = false
                return
            }
        }
        context.isStepping = false
        guard let result = context.result, let completion = context.completion else {
            preconditionFailure("a finished lookup has a result and a completion")
        }
        context.completion = nil
        context.key = nil
        lookupContextsFree.append(slot)
        completion.body(result)
    }

    private func lookupReadDone(slot: Int, _ read: GridReadResult) {
        let context = lookupContexts[slot]
        precondition(context.isReadPending, "a lookup read completes once")
        context.isReadPending = false
        guard let key = context.key else { preconditionFailure("a lookup in flight has a key") }
        switch read {
        case .fault(let fault):
            context.result = .fault(fault)
        case .block(let block):
            lookupBlock(context, key: key, block)
        }
        if !context.isStepping { lookupStep(slot: slot) }
    }

    /// Moves the lookup on with the block it read: to the value block, the next level, or a
    /// result.
    private func lookupBlock(_ context: TreeLookupContext<Value>, key: Value.Key, _ block: UnsafeRawBufferPointer) {
        do {
            switch context.phase {
            case .index:
                let index = try IndexBlock<Value>.decode(block: block, treeId: treeId)
                if let entry = index.valueBlockIndex(for: key) {
                    context.valueReference = index.reference(entry)
                    context.phase = .value
                } else {
                    context.tableIndex += 1
                }
            case .value:
                let values = try ValueBlock<Value>.decode(block: block, treeId: treeId)
                context.phase = .index
                if let value = values.find(key) {
                    context.result = value.isTombstone ? .notFound : .found(value)
                } else {
                    context.tableIndex += 1
                }
            }
        } catch {
            context.result = .corrupt(error)
        }
    }
}

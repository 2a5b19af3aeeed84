import LedgerKit

// Builds one table (storage spec §5: one index block + value blocks) from values in strictly
// ascending key order, tombstones included. The builder owns no block memory: the caller (a
// compaction or a memtable flush) attaches a block buffer, appends values until the block is
// full or the input ends, seals it at an address it acquired, writes it, and attaches the next
// buffer. At the end it seals the index block from what the builder recorded about each value
// block (key min, key max, reference).
//
// A caller's loop:
//
//     builder.attachValueBlock(buffer)
//     for value in input {                    // ascending keys
//         builder.append(value)
//         if builder.isValueBlockFull {
//             let reference = builder.sealValueBlock(address: acquire(), snapshot: op)
//             write(buffer); buffer = nextBuffer()
//             if builder.isFull { break }     // the table is done; start the next one
//             builder.attachValueBlock(buffer)
//         }
//     }
//     if !builder.isValueBlockEmpty { builder.sealValueBlock(...); write(...) }
//     let table = builder.sealIndexBlock(indexBuffer, address: acquire(), snapshot: op, snapshotMin: op)
//
// A state machine rather than a callback, so the caller can stop between blocks to wait for IO
// and nothing captures context on the hot path. Per value: one store into the block and one key
// comparison (strict order is a precondition: a merge that emits a key twice is a bug); per run
// (`append(contentsOf:)`): one copy and one comparison at the run's start.

/// What a built table is: what the manifest records about it.
public struct BuiltTable<Value: TreeValue>: Equatable, Sendable {
    public var index: BlockReference
    public var keyMin: Value.Key
    public var keyMax: Value.Key
    public var valueCount: Int
    public var valueBlockCount: Int
    public var snapshotMin: UInt64
}

public final class TableBuilder<Value: TreeValue> {
    public let treeId: UInt16
    public let blockSize: Int
    /// The most value blocks one table may have (the tree's per-bar capacity in blocks).
    public let valueBlocksMax: Int
    /// Values per value block.
    public let valueBlockCapacity: Int

    /// Key min / key max / reference of each sealed value block of the current table.
    private let keysMin: UnsafeMutableBufferPointer<Value.Key>
    private let keysMax: UnsafeMutableBufferPointer<Value.Key>
    private let references: UnsafeMutableBufferPointer<BlockReference>

    /// The attached value block, while one is.
    private var block: UnsafeMutableRawBufferPointer?
    private var blockValues: UnsafeMutableBufferPointer<Value>
    /// Values in the attached block.
    public private(set) var blockValueCount = 0
    /// Value blocks sealed in the current table.
    public private(set) var valueBlockCount = 0
    /// Values in the current table, sealed blocks and the attached one.
    public private(set) var valueCount = 0
    private var lastKey: Value.Key?

    /// Allocates the per-table bookkeeping (`valueBlocksMax` entries) once; tables are then
    /// built one after the other with no allocation.
    public init(treeId: UInt16, blockSize: Int, valueBlocksMax: Int) {
        precondition(valueBlocksMax >= 1, "a table has a value block")
        precondition(
            valueBlocksMax <= IndexBlock<Value>.capacity(blockSize: blockSize),
            "the index block names every value block")
        let valueBlockCapacity = ValueBlock<Value>.capacity(blockSize: blockSize)
        precondition(valueBlockCapacity >= 1, "a value block holds a value")
        precondition(valueBlocksMax * valueBlockCapacity <= Int(UInt32.max), "value count fits u32")
        self.treeId = treeId
        self.blockSize = blockSize
        self.valueBlocksMax = valueBlocksMax
        self.valueBlockCapacity = valueBlockCapacity
        keysMin = .allocate(capacity: valueBlocksMax)
        keysMax = .allocate(capacity: valueBlocksMax)
        references = .allocate(capacity: valueBlocksMax)
        blockValues = UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    deinit {
        keysMin.deallocate()
        keysMax.deallocate()
        references.deallocate()
    }

    /// The most values one table may hold.
    public var valueCountMax: Int { valueBlocksMax * valueBlockCapacity }

    public var hasValueBlock: Bool { block != nil }
    public var isValueBlockEmpty: Bool { blockValueCount == 0 }
    public var isValueBlockFull: Bool { blockValueCount == valueBlockCapacity }
    /// Whether the table takes no more values: every value block it may have is full.
    public var isFull: Bool { valueCount == valueCountMax }
    /// Whether the current table has no value yet.
    public var isEmpty: Bool { valueCount == 0 }

    /// Attaches an empty block buffer (`blockSize` bytes, sector-aligned) to fill with values.
    /// The builder writes into it until `sealValueBlock`; the caller keeps ownership.
    public func attachValueBlock(_ buffer: UnsafeMutableRawBufferPointer) {
        precondition(block == nil, "one value block at a time")
        precondition(buffer.count == blockSize, "a value block buffer is one block")
        precondition(valueBlockCount < valueBlocksMax, "the table has room for another value block")
        block = buffer
        blockValues = ValueBlock<Value>.body(of: buffer)
        blockValueCount = 0
    }

    /// Appends the next value (its key above every key appended to this table).
    public func append(_ value: Value) {
        precondition(block != nil, "a value block is attached")
        precondition(blockValueCount < valueBlockCapacity, "the value block has room")
        let key = value.key
        if let lastKey { precondition(lastKey < key, "table keys strictly ascend") }
        blockValues[blockValueCount] = value
        blockValueCount += 1
        valueCount += 1
        lastKey = key
    }

    /// Appends a run of values in one copy (a slice the merge emitted: ascending, its first key
    /// above every key appended to this table). Only the run's first key is checked against the
    /// table: the order inside the run is its source's, checked by the caller where the values
    /// came from (TreeCompaction: value blocks read, memtable runs), re-checked here in debug.
    public func append(contentsOf values: UnsafeBufferPointer<Value>) {
        precondition(block != nil, "a value block is attached")
        precondition(values.count >= 1, "a run holds a value")
        precondition(values.count <= valueBlockCapacity - blockValueCount, "the value block has room")
        if let lastKey { precondition(lastKey < values[0].key, "table keys strictly ascend") }
        assert(ValueBlock<Value>.isAscending(values), "a run ascends")
        // The block's memory is bound to `Value` (`ValueBlock.body`); values are trivial.
        (blockValues.baseAddress! + blockValueCount).update(from: values.baseAddress!, count: values.count)
        blockValueCount += values.count
        valueCount += values.count
        lastKey = values[values.count - 1].key
    }

    /// Seals the attached, non-empty value block at `address` and detaches it; the caller then
    /// writes the buffer to the grid. Returns the block's reference.
    @discardableResult
    public func sealValueBlock(address: UInt64, snapshot: UInt64) -> BlockReference {
        guard let buffer = block else { preconditionFailure("a value block is attached") }
        precondition(blockValueCount >= 1, "a value block is never empty")
        precondition(valueBlockCount < valueBlocksMax, "the table has room for the value block")
        let entry = valueBlockCount
        keysMin[entry] = blockValues[0].key
        keysMax[entry] = blockValues[blockValueCount - 1].key
        let reference = ValueBlock<Value>.seal(
            block: buffer, treeId: treeId, valueCount: blockValueCount, address: address,
            snapshot: snapshot)
        references[entry] = reference
        valueBlockCount += 1
        block = nil
        blockValues = UnsafeMutableBufferPointer(start: nil, count: 0)
        blockValueCount = 0
        return reference
    }

    /// Seals the table's index block into `buffer` at `address` and starts a new table. Every
    /// value block must be sealed (an attached empty one is detached and left to the caller).
    public func sealIndexBlock(
        _ buffer: UnsafeMutableRawBufferPointer, address: UInt64, snapshot: UInt64, snapshotMin: UInt64
    ) -> BuiltTable<Value> {
        precondition(blockValueCount == 0, "the last value block is sealed before the index block")
        precondition(valueBlockCount >= 1, "a table has a value block")
        precondition(buffer.count == blockSize, "an index block buffer is one block")
        let count = valueBlockCount
        let index = IndexBlock<Value>.seal(
            block: buffer, treeId: treeId,
            keysMin: UnsafeBufferPointer(keysMin.extracting(0..<count)),
            keysMax: UnsafeBufferPointer(keysMax.extracting(0..<count)),
            references: UnsafeBufferPointer(references.extracting(0..<count)),
            valueCount: valueCount, snapshotMin: snapshotMin, address: address, snapshot: snapshot)
        let table = BuiltTable<Value>(
            index: index, keyMin: keysMin[0], keyMax: keysMax[count - 1], valueCount: valueCount,
            valueBlockCount: count, snapshotMin: snapshotMin)
        reset()
        return table
    }

    /// Forgets the current table (for example an empty one) and detaches any value block.
    public func reset() {
        block = nil
        blockValues = UnsafeMutableBufferPointer(start: nil, count: 0)
        blockValueCount = 0
        valueBlockCount = 0
        valueCount = 0
        lastKey = nil
    }
}

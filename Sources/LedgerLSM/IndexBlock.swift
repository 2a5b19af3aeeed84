import LedgerKit

// An index block names a table's value blocks (docs/lsm.md "Blocks"). Its body holds, for
// `valueBlockCount` entries in key order, parallel arrays: key min, key max (key size each),
// address (u64), checksum (u128). Keys come first so both key arrays are aligned for typed
// binary search; addresses and checksums may be misaligned (an odd count shifts the checksums
// by 8 bytes) and are read with unaligned loads.
//
// Sketch: the transfers tree's ~64 value blocks need 64 × (8 + 8 + 8 + 16) = 2.5 KiB of a
// 512 KiB index block; finding a key's value block is a binary search of ≤ 7 steps.

/// A decoded index block: a view of its entries inside the caller's block buffer, valid while
/// that buffer is.
public struct IndexBlock<Value: TreeValue> {
    public let treeId: UInt16
    /// Values in the whole table.
    public let valueCount: UInt32
    /// The op from which the table is visible.
    public let snapshotMin: UInt64
    public let keysMin: UnsafeBufferPointer<Value.Key>
    public let keysMax: UnsafeBufferPointer<Value.Key>
    let addresses: UnsafeRawBufferPointer
    let checksums: UnsafeRawBufferPointer

    // Metadata layout (docs/lsm.md "Metadata by block type"): the rest is zero.
    static var treeIdOffset: Int { 0 }
    static var reservedOffset: Int { 2 }
    static var keySizeOffset: Int { 4 }
    static var valueBlockCountOffset: Int { 8 }
    static var valueCountOffset: Int { 12 }
    static var snapshotMinOffset: Int { 16 }
    static var metadataUsedSize: Int { 24 }

    /// Body bytes of one entry.
    public static var entrySize: Int {
        2 * Value.keySize + MemoryLayout<UInt64>.size + MemoryLayout<UInt128>.size
    }

    /// Value blocks one index block of `blockSize` bytes can name.
    public static func capacity(blockSize: Int) -> Int {
        precondition(blockSize > Constants.messageHeaderSize, "a block holds more than its header")
        return (blockSize - Constants.messageHeaderSize) / entrySize
    }

    public var valueBlockCount: Int { keysMin.count }
    /// The table's smallest key.
    public var keyMin: Value.Key { keysMin[0] }
    /// The table's largest key.
    public var keyMax: Value.Key { keysMax[keysMax.count - 1] }

    /// The reference of value block `index`.
    public func reference(_ index: Int) -> BlockReference {
        precondition(index >= 0 && index < valueBlockCount, "index entry in range")
        return BlockReference(
            address: addresses.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self),
            checksum: checksums.loadUnaligned(fromByteOffset: index * 16, as: UInt128.self))
    }

    /// The value block that holds `key` if any value block does: the first whose key max is not
    /// below `key`, if its key min is not above it.
    public func valueBlockIndex(for key: Value.Key) -> Int? {
        let index = firstValueBlock(keyMaxAtLeast: key)
        guard index < valueBlockCount else { return nil }
        return keysMin[index] <= key ? index : nil
    }

    /// Where an ascending scan from `key` starts: the first value block whose key max is not
    /// below `key` (`valueBlockCount` if none).
    public func firstValueBlock(keyMaxAtLeast key: Value.Key) -> Int {
        Self.lowerBound(keysMax, key)
    }

    /// Where a descending scan from `key` starts: the last value block whose key min is not
    /// above `key` (nil if none).
    public func lastValueBlock(keyMinAtMost key: Value.Key) -> Int? {
        let above = Self.upperBound(keysMin, key)
        return above == 0 ? nil : above - 1
    }

    /// Writes the entries and seals `block` as the index block at `address`; returns the
    /// reference the manifest keeps. Entries must be in key order and name real blocks.
    public static func seal(
        block: UnsafeMutableRawBufferPointer, treeId: UInt16, keysMin: UnsafeBufferPointer<Value.Key>,
        keysMax: UnsafeBufferPointer<Value.Key>, references: UnsafeBufferPointer<BlockReference>,
        valueCount: Int, snapshotMin: UInt64, address: UInt64, snapshot: UInt64
    ) -> BlockReference {
        let count = keysMin.count
        precondition(count >= 1, "a table has a value block")
        precondition(keysMax.count == count, "one key max per entry")
        precondition(references.count == count, "one reference per entry")
        precondition(count <= capacity(blockSize: block.count), "the entries fit in the index block")
        precondition(valueCount >= count, "every value block holds a value")
        precondition(valueCount <= UInt32.max, "value count fits u32")
        precondition(checkEntries(keysMin, keysMax) == nil, "index entries ascend")
        let body = UnsafeMutableRawBufferPointer(rebasing: block[Constants.messageHeaderSize...])
        let keys = Value.keySize
        for index in 0..<count {
            precondition(!references[index].isNull, "an index entry names a block")
            body.storeBytes(of: keysMin[index], toByteOffset: index * keys, as: Value.Key.self)
            body.storeBytes(of: keysMax[index], toByteOffset: (count + index) * keys, as: Value.Key.self)
            body.storeBytes(
                of: references[index].address, toByteOffset: 2 * count * keys + index * 8, as: UInt64.self)
            body.storeBytes(
                of: references[index].checksum, toByteOffset: 2 * count * keys + count * 8 + index * 16,
                as: UInt128.self)
        }
        var metadata = BlockMetadata()
        metadata.store(treeId, at: treeIdOffset)
        metadata.store(UInt32(keys), at: keySizeOffset)
        metadata.store(UInt32(count), at: valueBlockCountOffset)
        metadata.store(UInt32(valueCount), at: valueCountOffset)
        metadata.store(snapshotMin, at: snapshotMinOffset)
        return BlockSealing.seal(
            block: block, address: address, snapshot: snapshot, type: .index, metadata: metadata,
            bodySize: count * entrySize)
    }

    /// Decodes an index block of tree `treeId` (whose checksums the grid has verified): checks
    /// the header, the metadata and that entries ascend and name real blocks (one pass over a
    /// few dozen entries), so lookups can trust the binary searches.
    public static func decode(
        block: UnsafeRawBufferPointer, treeId: UInt16
    ) throws(TableBlockError) -> IndexBlock<Value> {
        let (header, metadata) = try TableBlockError.checkHeader(
            block: block, type: .index, treeId: treeId, treeIdOffset: treeIdOffset)
        let keySize = metadata.load(UInt32.self, at: keySizeOffset)
        guard keySize == UInt32(Value.keySize) else { throw .keySize(found: keySize) }
        guard metadata.load(UInt16.self, at: reservedOffset) == 0 else { throw .reserved }
        guard isZero(metadata, from: metadataUsedSize) else { throw .reserved }
        let blockCount = metadata.load(UInt32.self, at: valueBlockCountOffset)
        guard blockCount >= 1, Int(blockCount) <= capacity(blockSize: block.count) else {
            throw .count(found: blockCount)
        }
        let count = Int(blockCount)
        let valueCount = metadata.load(UInt32.self, at: valueCountOffset)
        // Both bounds are small products (count ≤ capacity): no overflow.
        guard Int(valueCount) >= count,
            Int(valueCount) <= count * ValueBlock<Value>.capacity(blockSize: block.count)
        else { throw .count(found: valueCount) }
        guard Int(header.frame.size) == Constants.messageHeaderSize + count * entrySize else {
            throw .size(found: header.frame.size)
        }
        let body = UnsafeRawBufferPointer(rebasing: block[Constants.messageHeaderSize...])
        let keys = Value.keySize
        precondition(
            Int(bitPattern: body.baseAddress!) % MemoryLayout<Value.Key>.alignment == 0,
            "index block body is aligned for its keys")
        // Binding is free at run time; it tells the compiler that the bytes are keys now.
        let keysMinBytes = UnsafeRawBufferPointer(rebasing: body[0..<(count * keys)])
        let keysMaxBytes = UnsafeRawBufferPointer(rebasing: body[(count * keys)..<(2 * count * keys)])
        let index = IndexBlock(
            treeId: treeId, valueCount: valueCount,
            snapshotMin: metadata.load(UInt64.self, at: snapshotMinOffset),
            keysMin: keysMinBytes.bindMemory(to: Value.Key.self),
            keysMax: keysMaxBytes.bindMemory(to: Value.Key.self),
            addresses: UnsafeRawBufferPointer(
                rebasing: body[(2 * count * keys)..<(2 * count * keys + count * 8)]),
            checksums: UnsafeRawBufferPointer(
                rebasing: body[(2 * count * keys + count * 8)..<(count * entrySize)]))
        if let bad = checkEntries(index.keysMin, index.keysMax) { throw .order(index: bad) }
        for entry in 0..<count where index.reference(entry).isNull { throw .nullAddress(index: entry) }
        return index
    }

    /// The first entry whose keys do not ascend (key min ≤ key max < next key min), or nil.
    static func checkEntries(
        _ keysMin: UnsafeBufferPointer<Value.Key>, _ keysMax: UnsafeBufferPointer<Value.Key>
    ) -> Int? {
        for index in 0..<keysMin.count {
            if keysMax[index] < keysMin[index] { return index }
            if index > 0, !(keysMax[index - 1] < keysMin[index]) { return index }
        }
        return nil
    }

    /// The first index whose key is not below `key`.
    static func lowerBound(_ keys: UnsafeBufferPointer<Value.Key>, _ key: Value.Key) -> Int {
        var low = 0
        var count = keys.count
        // Halves `count` each step: at most log2(keys.count) + 1 iterations.
        while count > 0 {
            let half = count / 2
            if keys[low + half] < key {
                low += half + 1
                count -= half + 1
            } else {
                count = half
            }
        }
        return low
    }

    /// The first index whose key is above `key`.
    static func upperBound(_ keys: UnsafeBufferPointer<Value.Key>, _ key: Value.Key) -> Int {
        var low = 0
        var count = keys.count
        // Halves `count` each step: at most log2(keys.count) + 1 iterations.
        while count > 0 {
            let half = count / 2
            if !(key < keys[low + half]) {
                low += half + 1
                count -= half + 1
            } else {
                count = half
            }
        }
        return low
    }
}

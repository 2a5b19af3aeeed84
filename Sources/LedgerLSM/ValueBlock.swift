import LedgerKit

// A value block is a `block` message whose body is `valueCount` values of one tree, sorted by
// key with each key at most once (docs/lsm.md "Blocks"). Values are stored byte for byte
// (`MemoryLayout<Value>.stride` each), so a decoded block is a typed view of the block buffer:
// no copy, no allocation. The body starts 256 bytes into a block buffer that is sector-aligned,
// so it is aligned for any value (16 bytes at most, for `UInt128` fields).
//
// Sketch (production, 512 KiB blocks): 4,094 transfers per block; a point lookup is one binary
// search of ≤ 12 steps, each a cache miss on a 512 KiB block: ~1 µs once the block is cached.

/// Why a table block (value or index) cannot be decoded: its checksums may verify, yet what it
/// says contradicts what the reader expects. Reported, never trapped on (storage spec §13.14).
public enum TableBlockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The header's command is not `block`.
    case notABlock(command: UInt8)
    /// A block of another type than the reader asked for.
    case blockType(found: UInt8)
    /// A block of another tree.
    case treeId(found: UInt16)
    /// A value block whose values are not this tree's size.
    case valueSize(found: UInt32)
    /// An index block whose keys are not this tree's size.
    case keySize(found: UInt32)
    /// A value count or value block count of zero or beyond the block's capacity.
    case count(found: UInt32)
    /// The header's `size` disagrees with the count in the metadata.
    case size(found: UInt32)
    /// Non-zero reserved metadata bytes.
    case reserved
    /// Index entry `index` has a null address.
    case nullAddress(index: Int)
    /// Keys are not strictly ascending at `index` (entry or value).
    case order(index: Int)

    public var description: String {
        switch self {
        case .notABlock(let command): "not a block (command \(command))"
        case .blockType(let found): "block type \(found)"
        case .treeId(let found): "tree id \(found)"
        case .valueSize(let found): "value size \(found)"
        case .keySize(let found): "key size \(found)"
        case .count(let found): "count \(found)"
        case .size(let found): "size \(found) disagrees with the count"
        case .reserved: "non-zero reserved metadata"
        case .nullAddress(let index): "null address in entry \(index)"
        case .order(let index): "keys not ascending at \(index)"
        }
    }
}

extension TableBlockError {
    /// The checks every table block starts with: a block message of `type`, for tree `treeId`
    /// (stored as a u16 at `treeIdOffset` of the metadata). Returns its header and metadata.
    static func checkHeader(
        block: UnsafeRawBufferPointer, type: BlockType, treeId: UInt16, treeIdOffset: Int
    ) throws(TableBlockError) -> (BlockHeader, BlockMetadata) {
        precondition(block.count > Constants.messageHeaderSize, "a block holds more than its header")
        let untyped = Header(from: block)
        guard untyped.frame.command == Command.block.rawValue else {
            throw .notABlock(command: untyped.frame.command)
        }
        let header = untyped.asBlock
        guard header.blockType == type.rawValue else { throw .blockType(found: header.blockType) }
        let metadata = BlockMetadata(header.metadata)
        let foundTreeId = metadata.load(UInt16.self, at: treeIdOffset)
        guard foundTreeId == treeId else { throw .treeId(found: foundTreeId) }
        return (header, metadata)
    }
}

/// A decoded value block: a view of its sorted values inside the caller's block buffer, valid
/// while that buffer is.
public struct ValueBlock<Value: TreeValue> {
    /// The block's values, ascending by key.
    public let values: UnsafeBufferPointer<Value>

    // Metadata layout (docs/lsm.md "Metadata by block type"): the rest is zero.
    static var treeIdOffset: Int { 0 }
    static var reservedOffset: Int { 2 }
    static var valueSizeOffset: Int { 4 }
    static var valueCountOffset: Int { 8 }
    static var metadataUsedSize: Int { 12 }

    /// Values that fit in one block of `blockSize` bytes.
    public static func capacity(blockSize: Int) -> Int {
        precondition(blockSize > Constants.messageHeaderSize, "a block holds more than its header")
        return (blockSize - Constants.messageHeaderSize) / Value.valueSize
    }

    /// The body of an empty block buffer as room for `capacity(blockSize: block.count)` values,
    /// to be filled in ascending key order before `seal`.
    public static func body(of block: UnsafeMutableRawBufferPointer) -> UnsafeMutableBufferPointer<Value> {
        precondition(block.count > Constants.messageHeaderSize, "a block holds more than its header")
        let body = UnsafeMutableRawBufferPointer(rebasing: block[Constants.messageHeaderSize...])
        // A block buffer is sector-aligned (grid, AlignedBuffer): anything else is a caller bug.
        precondition(
            Int(bitPattern: body.baseAddress!) % MemoryLayout<Value>.alignment == 0,
            "value block body is aligned for its values")
        return body.bindMemory(to: Value.self).extracting(0..<capacity(blockSize: block.count))
    }

    /// The metadata of a value block of `valueCount` values of tree `treeId`.
    public static func metadata(treeId: UInt16, valueCount: Int) -> BlockMetadata {
        var metadata = BlockMetadata()
        metadata.store(treeId, at: treeIdOffset)
        metadata.store(UInt32(Value.valueSize), at: valueSizeOffset)
        metadata.store(UInt32(valueCount), at: valueCountOffset)
        return metadata
    }

    /// Seals `block`, whose first `valueCount` body values are written (`body(of:)`), as a value
    /// block at `address`, and returns the reference its index block keeps.
    public static func seal(
        block: UnsafeMutableRawBufferPointer, treeId: UInt16, valueCount: Int, address: UInt64,
        snapshot: UInt64
    ) -> BlockReference {
        precondition(valueCount >= 1, "a value block is never empty")
        precondition(valueCount <= capacity(blockSize: block.count), "the values fit in the block")
        assert(isAscending(UnsafeBufferPointer(body(of: block).extracting(0..<valueCount))), "values ascend")
        return BlockSealing.seal(
            block: block, address: address, snapshot: snapshot, type: .value,
            metadata: metadata(treeId: treeId, valueCount: valueCount),
            bodySize: valueCount * Value.valueSize)
    }

    /// Decodes a value block of tree `treeId` (whose checksums the grid has verified): checks
    /// the header and metadata against this tree and returns a view of its values. Key order is
    /// not checked here (it costs a pass over the block); `checkOrder()` does it for the scrubber
    /// and inspection.
    public static func decode(
        block: UnsafeRawBufferPointer, treeId: UInt16
    ) throws(TableBlockError) -> ValueBlock<Value> {
        let (header, metadata) = try TableBlockError.checkHeader(
            block: block, type: .value, treeId: treeId, treeIdOffset: treeIdOffset)
        let valueSize = metadata.load(UInt32.self, at: valueSizeOffset)
        guard valueSize == UInt32(Value.valueSize) else { throw .valueSize(found: valueSize) }
        guard metadata.load(UInt16.self, at: reservedOffset) == 0 else { throw .reserved }
        guard isZero(metadata, from: metadataUsedSize) else { throw .reserved }
        let valueCount = metadata.load(UInt32.self, at: valueCountOffset)
        guard valueCount >= 1, Int(valueCount) <= capacity(blockSize: block.count) else {
            throw .count(found: valueCount)
        }
        // valueCount ≤ capacity, so this product is below the block size: no overflow.
        guard Int(header.frame.size) == Constants.messageHeaderSize + Int(valueCount) * Value.valueSize else {
            throw .size(found: header.frame.size)
        }
        let body = UnsafeRawBufferPointer(rebasing: block[Constants.messageHeaderSize...])
        precondition(
            Int(bitPattern: body.baseAddress!) % MemoryLayout<Value>.alignment == 0,
            "value block body is aligned for its values")
        // Binding is free at run time; it tells the compiler that the bytes are values now.
        let values = body.bindMemory(to: Value.self).extracting(0..<Int(valueCount))
        return ValueBlock(values: values)
    }

    /// Throws `.order` unless keys are strictly ascending (a block written by a buggy or hostile
    /// writer whose checksums still verify).
    public func checkOrder() throws(TableBlockError) {
        if let index = Self.firstDisorder(values) { throw .order(index: index) }
    }

    public var keyMin: Value.Key { values[0].key }
    public var keyMax: Value.Key { values[values.count - 1].key }

    /// The index of the first value whose key is not below `key` (`values.count` if none).
    public func lowerBound(_ key: Value.Key) -> Int { Self.lowerBound(values, key) }

    /// The value of `key`, a tombstone included (the caller decides what a tombstone means).
    public func find(_ key: Value.Key) -> Value? { Self.find(values, key) }

    /// The index of the first value in `values` (ascending by key) whose key is not below `key`.
    public static func lowerBound(_ values: UnsafeBufferPointer<Value>, _ key: Value.Key) -> Int {
        var low = 0
        var count = values.count
        // Halves `count` each step: at most log2(values.count) + 1 iterations.
        while count > 0 {
            let half = count / 2
            if values[low + half].key < key {
                low += half + 1
                count -= half + 1
            } else {
                count = half
            }
        }
        return low
    }

    /// The value of `key` in `values` (ascending by key, each key once), or nil.
    public static func find(_ values: UnsafeBufferPointer<Value>, _ key: Value.Key) -> Value? {
        let index = lowerBound(values, key)
        guard index < values.count else { return nil }
        let value = values[index]
        return value.key == key ? value : nil
    }

    static func isAscending(_ values: UnsafeBufferPointer<Value>) -> Bool {
        firstDisorder(values) == nil
    }

    /// The first index whose key is not above its predecessor's, or nil if keys strictly
    /// ascend. Each key is extracted once (a compaction checks every block it reads).
    static func firstDisorder(_ values: UnsafeBufferPointer<Value>) -> Int? {
        if values.count < 2 { return nil }
        var previous = values[0].key
        for index in 1..<values.count {
            let key = values[index].key
            if !(previous < key) { return index }
            previous = key
        }
        return nil
    }
}

/// Whether metadata bytes `from..<96` are zero.
func isZero(_ metadata: BlockMetadata, from offset: Int) -> Bool {
    withUnsafeBytes(of: metadata.words) { bytes in
        for byte in bytes[offset...] where byte != 0 { return false }
        return true
    }
}

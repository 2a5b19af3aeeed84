import LedgerKit

/// One block of the manifest log (storage spec §5 "Manifest"; docs/lsm.md "Blocks"): a
/// back-linked chain of blocks, shared by all trees, recording `TableInfo` events in the order
/// they happened. The superblock names the newest and the oldest block; open reads newest to
/// oldest (`ManifestLogReplay`).
///
/// Body: `entryCount` `TableInfo`s of 128 bytes, oldest first, at most
/// `(blockSize − 256) / 128` (4,094 in 512 KiB blocks, 30 in 4 KiB ones).
///
/// Metadata (`BlockHeader.metadata`, little-endian):
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 4 | entry count (u32) |
/// | 4 | 4 | reserved, zero |
/// | 8 | 8 | previous (older) block address, 0 for the oldest ever written |
/// | 16 | 16 | previous block checksum, 0 when the address is 0 |
/// | 32 | 64 | reserved, zero |
public enum ManifestLogBlock {
    public static let metadataEntryCountOffset = 0
    public static let metadataPreviousAddressOffset = 8
    public static let metadataPreviousChecksumOffset = 16
    /// Bytes of metadata in use; the rest is zero.
    public static let metadataUsedSize = 32

    /// Entries that fit in a block of `blockSize` bytes.
    public static func entryCountMax(blockSize: Int) -> Int {
        precondition(blockSize > Constants.messageHeaderSize, "a block holds a header and a body")
        return (blockSize - Constants.messageHeaderSize) / TableInfo.size
    }

    /// Writes entry `index` (an event: its `event` is set) into the body of `block`.
    public static func storeEntry(_ entry: TableInfo, at index: Int, in block: UnsafeMutableRawBufferPointer) {
        precondition(index >= 0, "entry index is not negative")
        precondition(index < entryCountMax(blockSize: block.count), "entry index inside the block")
        precondition(entry.event != nil, "a manifest log entry records an event")
        precondition(entry.reserved == 0, "a manifest log entry's reserved bytes are zero")
        block.storeBytes(of: entry, toByteOffset: Constants.messageHeaderSize + index * TableInfo.size, as: TableInfo.self)
    }

    /// Seals a block whose first `entryCount` entries are written (`storeEntry`): fills the
    /// header and metadata, zeroes the rest of the block, and returns the block's reference,
    /// which the next block (or the superblock) keeps.
    public static func seal(
        block: UnsafeMutableRawBufferPointer, entryCount: Int, previous: BlockReference, address: UInt64,
        snapshot: UInt64
    ) -> BlockReference {
        precondition(entryCount >= 1, "a manifest log block records at least one event")
        precondition(entryCount <= entryCountMax(blockSize: block.count), "entries fit in the block")
        precondition(!previous.isNull || previous.checksum == 0, "a null previous block has no checksum")
        var metadata = BlockMetadata()
        metadata.store(UInt32(entryCount), at: metadataEntryCountOffset)
        metadata.store(previous.address, at: metadataPreviousAddressOffset)
        metadata.store(previous.checksum, at: metadataPreviousChecksumOffset)
        return BlockSealing.seal(
            block: block, address: address, snapshot: snapshot, type: .manifest, metadata: metadata,
            bodySize: entryCount * TableInfo.size)
    }

    /// Writes `entries` (oldest first) into `block` and seals it.
    public static func encode(
        _ entries: some Collection<TableInfo>, into block: UnsafeMutableRawBufferPointer, previous: BlockReference,
        address: UInt64, snapshot: UInt64
    ) -> BlockReference {
        var index = 0
        for entry in entries {
            storeEntry(entry, at: index, in: block)
            index += 1
        }
        return seal(block: block, entryCount: index, previous: previous, address: address, snapshot: snapshot)
    }

    /// Reads the header, metadata and every entry of a manifest block, validating them: the
    /// block type, the entry count and size, zero reserved bytes, and each entry's event, level,
    /// tree id, address, snapshots and value count. Checksums are not recomputed here: the
    /// grid (or `ManifestLogReplay`) verified the block against its referrer.
    public static func decode(
        block: UnsafeRawBufferPointer, levelCount: Int
    ) throws(ManifestLogError) -> ManifestLogBlockView {
        precondition(block.count > Constants.messageHeaderSize, "a block holds a header and a body")
        let untyped = Header(from: block)
        guard untyped.frame.command == Command.block.rawValue else { throw .notABlock }
        let header = untyped.asBlock
        guard header.blockType == BlockType.manifest.rawValue else {
            throw .notAManifestBlock(blockType: header.blockType)
        }
        let metadata = BlockMetadata(header.metadata)
        let entryCount = metadata.load(UInt32.self, at: metadataEntryCountOffset)
        guard entryCount >= 1, Int(entryCount) <= entryCountMax(blockSize: block.count) else {
            throw .entryCount(entryCount)
        }
        guard Int(header.frame.size) == Constants.messageHeaderSize + Int(entryCount) * TableInfo.size else {
            throw .size(header.frame.size)
        }
        guard metadata.load(UInt32.self, at: 4) == 0 else { throw .metadataReserved }
        for offset in stride(from: metadataUsedSize, to: 96, by: 16) where metadata.load(UInt128.self, at: offset) != 0 {
            throw .metadataReserved
        }
        let previous = BlockReference(
            address: metadata.load(UInt64.self, at: metadataPreviousAddressOffset),
            checksum: metadata.load(UInt128.self, at: metadataPreviousChecksumOffset))
        guard !previous.isNull || previous.checksum == 0 else { throw .metadataReserved }

        let view = ManifestLogBlockView(block: block, entryCount: Int(entryCount), previous: previous)
        for index in 0..<view.entryCount {
            if let fault = entryFault(view[index], levelCount: levelCount) {
                throw .entry(index: index, fault)
            }
        }
        return view
    }

    /// What is wrong with one decoded entry, or nil. Key order cannot be checked here (only the
    /// tree knows its key type): `Manifest.fault(inserting:)` does that at open.
    public static func entryFault(_ entry: TableInfo, levelCount: Int) -> TableInfoFault? {
        guard entry.event != nil else { return .event(entry.eventCode) }
        guard entry.reserved == 0 else { return .reserved }
        guard Int(entry.level) < levelCount else { return .level(entry.level) }
        guard entry.treeId != 0 else { return .treeId }
        guard entry.address != 0 else { return .address }
        guard entry.snapshotMin < entry.snapshotMax else { return .snapshots }
        guard entry.valueCount >= 1 else { return .valueCount }
        return nil
    }
}

/// A decoded, validated manifest log block: valid while the block's bytes are.
public struct ManifestLogBlockView {
    public let block: UnsafeRawBufferPointer
    public let entryCount: Int
    /// The older block of the chain (null for the oldest ever written).
    public let previous: BlockReference

    /// Entry `index`, oldest first.
    public subscript(index: Int) -> TableInfo {
        precondition(index >= 0, "entry index is not negative")
        precondition(index < entryCount, "entry index below the entry count")
        return block.loadUnaligned(
            fromByteOffset: Constants.messageHeaderSize + index * TableInfo.size, as: TableInfo.self)
    }
}

/// What is wrong with one manifest log entry.
public enum TableInfoFault: Equatable, Sendable {
    case event(UInt8)
    case reserved
    case level(UInt8)
    case treeId
    case address
    case snapshots
    case valueCount
}

/// Why the manifest log cannot be decoded or replayed. Every cause is bad bytes (or a chain
/// that does not hold together), reported to open; none is trapped on.
public enum ManifestLogError: Error, Equatable, Sendable {
    /// The bytes are not the block the chain names (from `BlockSealing.verify`).
    case block(BlockFault)
    case notABlock
    case notAManifestBlock(blockType: UInt8)
    case entryCount(UInt32)
    case size(UInt32)
    case metadataReserved
    case entry(index: Int, TableInfoFault)
    /// The superblock's newest and oldest references are not both null or both set.
    case chainEnds
    /// A block with no previous block, before the oldest block was reached.
    case chainEnded
    /// More blocks than `blocksMax` (a cycle, or a chain longer than the log may be).
    case chainTooLong
    /// More distinct tables than `tablesMax`.
    case tooManyTables
    /// A table has events newer than its `remove`: removal is final.
    case eventAfterRemove(TableIdentity)
    /// Two live tables share an index block address.
    case duplicateAddress(UInt64)
}

/// Rebuilds the manifest at open from the manifest log, read newest block to oldest, each
/// block's entries last to first: the first event seen of a table is its latest, and decides.
/// A table whose latest event is `remove` is gone; one whose latest event is `insert` or
/// `update` is live with that event's level and snapshots.
///
/// Protocol: `init(newest:oldest:…)`, then while `nextBlock` is not nil, read that block and
/// pass it to `replay(block:)`; then `liveTables()`. After an error the replay is not usable.
///
/// Memory: `tablesMax` distinct tables (live or removed) in a flat array, plus an open-addressed
/// index of twice that many `Int32` slots, hashed on the address (deterministic: no `Dictionary`,
/// whose order is random per process). Allocated at init.
public struct ManifestLogReplay {
    public let levelCount: Int
    public let tablesMax: Int
    public let blocksMax: Int
    private let oldest: BlockReference
    /// The block to read next; nil once the oldest block is replayed.
    public private(set) var nextBlock: BlockReference?
    public private(set) var blockCount = 0
    /// The latest event of each table seen so far, in discovery order.
    private var latest: [TableInfo]
    /// Open addressing on the address: an index into `latest`, or -1 for an empty slot.
    private var slots: [Int32]
    private let slotShift: UInt64

    public init(
        newest: BlockReference, oldest: BlockReference, blocksMax: Int, tablesMax: Int, levelCount: Int
    ) throws(ManifestLogError) {
        precondition(blocksMax >= 1, "the log may have a block")
        precondition(tablesMax >= 1, "the log may name a table")
        precondition(tablesMax < Int(Int32.max) / 2, "table count fits the Int32 index")
        guard newest.isNull == oldest.isNull else { throw .chainEnds }
        self.levelCount = levelCount
        self.tablesMax = tablesMax
        self.blocksMax = blocksMax
        self.oldest = oldest
        nextBlock = newest.isNull ? nil : newest
        var slotBits: UInt64 = 1
        while (1 << slotBits) < 2 * tablesMax { slotBits += 1 }
        slotShift = 64 - slotBits
        latest = []
        latest.reserveCapacity(tablesMax)
        slots = Array(repeating: -1, count: 1 << slotBits)
    }

    public var isDone: Bool { nextBlock == nil }

    /// Replays the block `nextBlock` names: verifies it is that block, decodes it, records its
    /// events newest first, and moves `nextBlock` to the previous block.
    public mutating func replay(block: UnsafeRawBufferPointer) throws(ManifestLogError) {
        guard let reference = nextBlock else { preconditionFailure("replay only while a block is due") }
        if let fault = BlockSealing.verify(block: block, expected: reference) { throw .block(fault) }
        let view = try ManifestLogBlock.decode(block: block, levelCount: levelCount)
        var index = view.entryCount
        while index > 0 {
            index -= 1
            try record(view[index])
        }
        blockCount += 1
        if reference == oldest {
            nextBlock = nil
        } else if view.previous.isNull {
            throw .chainEnded
        } else if blockCount == blocksMax {
            throw .chainTooLong
        } else {
            nextBlock = view.previous
        }
    }

    /// The live tables (latest event `insert` or `update`), ordered by tree id, level and
    /// address. Rejects two live tables with one index block address.
    public func liveTables() throws(ManifestLogError) -> [TableInfo] {
        for position in 0..<latest.count where latest[position].event != .remove {
            let address = latest[position].address
            var slot = homeSlot(address)
            for _ in 0..<slots.count {
                let other = Int(slots[slot])
                if other < 0 { break }
                if other != position, latest[other].address == address, latest[other].event != .remove {
                    throw .duplicateAddress(address)
                }
                slot = (slot + 1) & (slots.count - 1)
            }
        }
        var live = latest.filter { $0.event != .remove }
        live.sort { ($0.treeId, $0.level, $0.address) < ($1.treeId, $1.level, $1.address) }
        return live
    }

    /// Keeps `entry` if it is the first (so latest) event seen of its table.
    private mutating func record(_ entry: TableInfo) throws(ManifestLogError) {
        var slot = homeSlot(entry.address)
        // At most tablesMax of the 2 × tablesMax slots are used: an empty slot comes first.
        for _ in 0..<slots.count {
            let position = Int(slots[slot])
            if position < 0 { break }
            if latest[position].isSameTable(as: entry) {
                guard entry.event != .remove else { throw .eventAfterRemove(entry.identity) }
                return  // An older event: the newer one already decided.
            }
            slot = (slot + 1) & (slots.count - 1)
        }
        precondition(slots[slot] < 0, "the replay index always has an empty slot")
        guard latest.count < tablesMax else { throw .tooManyTables }
        slots[slot] = Int32(latest.count)
        latest.append(entry)
    }

    /// Fibonacci hashing of the address: addresses are dense and sequential, and the multiply
    /// spreads them over the slots.
    private func homeSlot(_ address: UInt64) -> Int {
        Int((address &* 0x9E37_79B9_7F4A_7C15) >> slotShift)  // Wrapping multiply is the hash.
    }
}

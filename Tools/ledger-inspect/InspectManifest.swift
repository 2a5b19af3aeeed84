import LedgerCommandLine
import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerVSR

/// `ledger-inspect <path> manifest [--verbose]` and `tables [--tree=] [--level=]`: the manifest
/// log of the working superblock's checkpoint (storage spec §5 "Manifest", §11), walked newest to
/// oldest exactly as a replica opens it (`ManifestLogReplay`: each block verified against the
/// reference its successor or the superblock holds, decoded, its events replayed newest first),
/// then the live tables it describes.
///
/// Damage (a superblock whose checkpoint fields disagree, a block that fails its checksum, a
/// broken chain, a block count that is not the superblock's, events that contradict each other)
/// stops the walk: the blocks verified so far are listed, the replayed manifest is not (a partial
/// replay would present wrong tables as good), and the exit status is 1.
///
/// Sketch: one block read at a time (each block names the previous one), 512 KiB each; a
/// production log holds a few blocks per checkpoint interval after compaction, so this is a few
/// MiB of reads. The replay tracks at most `tablesTrackedMax` tables (see below).
struct ManifestInspection {
    /// One verified block of the chain.
    struct Block {
        let reference: BlockReference
        let snapshot: UInt64
        let previous: BlockReference
        /// Oldest first, as stored.
        let events: [TableInfo]
    }

    /// Distinct tables the replay tracks at most: every event of the log could name a new
    /// table, but a million is beyond any log this tool is meant to read (128 MiB of entries).
    static let tablesTrackedMax = 1 << 20

    let blockSize: Int
    /// nil when the superblock has no quorum.
    let checkpoint: CheckpointState?
    let expectedBlockCount: UInt32
    /// Newest first; only blocks that verified.
    private(set) var blocks: [Block] = []
    /// The live tables (tree id, level, address order); empty when `damage` is set.
    private(set) var tables: [TableInfo] = []
    /// What stopped the walk, if anything.
    private(set) var damage: String?

    init(reader: DataFileReader, superblock: SuperblockHeader?) throws {
        let layout = reader.layout
        blockSize = layout.configuration.blockSize
        guard let superblock else {
            checkpoint = nil
            expectedBlockCount = 0
            damage = "no superblock quorum: there is no checkpoint to read"
            return
        }
        let state = superblock.vsrState.checkpoint
        checkpoint = state
        expectedBlockCount = state.manifestBlockCount
        let forest: ForestCheckpoint
        do {
            forest = try ForestCheckpoint(checkpointState: state, layout: layout)
        } catch {
            damage = "the superblock's checkpoint state is inconsistent: \(error)"
            return
        }
        guard !forest.manifestNewest.isNull else { return }
        do {
            try walk(reader: reader, forest: forest)
        } catch let error as ManifestLogError {
            damage = Self.describe(error, next: nil)
        }
    }

    /// Reads and replays the chain; sets `damage` on a block that does not verify or decode.
    private mutating func walk(reader: DataFileReader, forest: ForestCheckpoint) throws {
        let entriesPerBlock = ManifestLogBlock.entryCountMax(blockSize: blockSize)
        let tablesMax = min(Int(forest.manifestBlockCount) * entriesPerBlock, Self.tablesTrackedMax)
        var replay = try ManifestLogReplay(
            newest: forest.manifestNewest, oldest: forest.manifestOldest, blocksMax: Int(forest.manifestBlockCount),
            tablesMax: tablesMax, levelCount: Constants.lsmLevels)
        let buffer = AlignedBuffer(count: blockSize)
        // Each turn reads one block: the replay stops at `manifestBlockCount` blocks (chainTooLong).
        while let reference = replay.nextBlock {
            // A checksum-valid block can still link anywhere: only the acquired grid is read.
            guard reference.address >= 1, reference.address <= forest.highestAcquiredAddress else {
                let after = blocks.last.map { "block \($0.reference.address)" } ?? "the superblock"
                damage = "\(after) links to block \(reference.address), outside the acquired grid "
                    + "(1...\(forest.highestAcquiredAddress))"
                return
            }
            buffer.zero()
            try reader.read(
                zone: .grid, offset: reader.layout.gridBlockOffset(address: reference.address), into: buffer.bytes)
            let bytes = UnsafeRawBufferPointer(buffer.bytes)
            do {
                try replay.replay(block: bytes)
            } catch {
                damage = Self.describe(error, next: reference)
                return
            }
            // Decoded once more for the listing: the replay verified and validated it.
            let view = try ManifestLogBlock.decode(block: bytes, levelCount: Constants.lsmLevels)
            blocks.append(Block(
                reference: reference, snapshot: Header(from: bytes).asBlock.snapshot, previous: view.previous,
                events: (0..<view.entryCount).map { view[$0] }))
        }
        guard replay.blockCount == Int(forest.manifestBlockCount) else {
            damage = "the chain has \(replay.blockCount) blocks, the superblock says \(forest.manifestBlockCount)"
            return
        }
        let live = try replay.liveTables()
        for table in live {
            if let fault = TreeKeyKind(treeId: table.treeId).keyFault(table) {
                damage = "table \(table.address) of tree \(treeLabel(table.treeId)): \(fault)"
                return
            }
        }
        tables = live
    }

    private static func describe(_ error: ManifestLogError, next: BlockReference?) -> String {
        let block = next.map { "block \($0.address) (expected checksum \(hex128($0.checksum))): " } ?? ""
        switch error {
        case .block(let fault): return block + "CORRUPT: \(fault)"
        case .chainTooLong: return block + "the chain goes on past the superblock's block count"
        case .chainEnded: return block + "the chain ends before the superblock's oldest block"
        default: return block + "\(error)"
        }
    }

    var isHealthy: Bool { damage == nil }

    /// Live tables of one tree, by level.
    struct TreeSummary {
        let treeId: UInt16
        let tables: [TableInfo]
        var valueCount: UInt64 { tables.reduce(0) { $0 + UInt64($1.valueCount) } }
        /// Bytes of the values (value count × value size), nil for a tree of unknown value size.
        var valueBytes: UInt64? { TreeKeyKind.valueSize(treeId: treeId).map { valueCount * UInt64($0) } }
        func tables(level: Int) -> [TableInfo] { tables.filter { Int($0.level) == level } }
        var levels: [Int] { Array(Set(tables.map { Int($0.level) })).sorted() }
    }

    /// The live tables grouped by tree (tree id order), filtered.
    func trees(treeId: UInt16? = nil, level: Int? = nil) -> [TreeSummary] {
        let selected = tables.filter { table in
            (treeId == nil || table.treeId == treeId) && (level == nil || Int(table.level) == level)
        }
        let ids = Array(Set(selected.map(\.treeId))).sorted()
        return ids.map { id in TreeSummary(treeId: id, tables: selected.filter { $0.treeId == id }) }
    }

    // MARK: Text

    private var headline: [String] {
        guard let checkpoint else { return [] }
        var line = "checkpoint op \(checkpoint.header.op), manifest log: \(expectedBlockCount) blocks"
        if expectedBlockCount > 0 {
            line += " (newest \(checkpoint.manifestNewestAddress) \(shortHex(checkpoint.manifestNewestChecksum)),"
                + " oldest \(checkpoint.manifestOldestAddress) \(shortHex(checkpoint.manifestOldestChecksum)))"
        }
        return [line]
    }

    private var damageLines: [String] { damage.map { ["DAMAGED: \($0)", "  (the replayed manifest is not shown)"] } ?? [] }

    func manifestText(verbose: Bool) -> [String] {
        var lines = ["manifest:"] + headline.map { "  " + $0 }
        if checkpoint != nil && expectedBlockCount == 0 && damage == nil {
            lines.append("  empty: no manifest log blocks, no tables")
        }
        for block in blocks {
            let previous = block.previous.isNull ? "none" : "\(block.previous.address)"
            lines.append("  block \(block.reference.address): \(block.events.count) entries, snapshot \(block.snapshot),"
                + " checksum \(shortHex(block.reference.checksum)), previous \(previous)")
            guard verbose else { continue }
            for event in block.events { lines.append("    " + eventText(event)) }
        }
        lines += damageLines
        guard damage == nil, checkpoint != nil else { return lines }
        lines.append("replayed manifest: \(tables.count) live tables")
        for tree in trees() {
            let levels = tree.levels.map { "level \($0): \(tree.tables(level: $0).count)" }.joined(separator: ", ")
            lines.append("  tree \(treeLabel(tree.treeId)): \(tree.tables.count) tables (\(levels)), \(tree.valueCount) values")
        }
        return lines
    }

    func tablesText(treeId: UInt16?, level: Int?) -> [String] {
        var lines = ["tables:"] + headline.map { "  " + $0 }
        lines += damageLines
        guard damage == nil, checkpoint != nil else { return lines }
        let trees = trees(treeId: treeId, level: level)
        let shown = trees.reduce(0) { $0 + $1.tables.count }
        lines.append("  \(shown) of \(tables.count) live tables shown")
        for tree in trees {
            let bytes = tree.valueBytes.map { "\($0) bytes" } ?? "? bytes"
            lines.append("tree \(treeLabel(tree.treeId)): \(tree.tables.count) tables, \(tree.valueCount) values, \(bytes)")
            for level in tree.levels {
                lines.append("  level \(level):")
                let kind = TreeKeyKind(treeId: tree.treeId)
                for table in tree.tables(level: level) {
                    lines.append("    index \(table.address) \(hex128(table.checksum)) keys \(kind.render(table.keyMin))"
                        + "...\(kind.render(table.keyMax)) snapshots \(snapshotsText(table)) values \(table.valueCount)")
                }
            }
        }
        return lines
    }

    private func eventText(_ event: TableInfo) -> String {
        let name = event.event.map { "\($0)" } ?? "?"
        return "\(name) tree \(treeLabel(event.treeId)) level \(event.level) index \(event.address) "
            + "\(shortHex(event.checksum)) values \(event.valueCount) snapshots \(snapshotsText(event))"
    }

    // MARK: JSON

    private var headlineFields: [(String, JSON)] {
        guard let checkpoint else { return [("checkpoint_op", .null)] }
        return [
            ("checkpoint_op", .unsigned(checkpoint.header.op)),
            ("block_count", .unsigned(UInt64(expectedBlockCount))),
            ("newest", reference(checkpoint.manifestNewestAddress, checkpoint.manifestNewestChecksum)),
            ("oldest", reference(checkpoint.manifestOldestAddress, checkpoint.manifestOldestChecksum)),
        ]
    }

    func manifestJSON(verbose: Bool) -> JSON {
        let blocksJSON: [JSON] = blocks.map { block in
            var fields: [(String, JSON)] = [
                ("address", .unsigned(block.reference.address)),
                ("checksum", .hex(block.reference.checksum)),
                ("entry_count", .unsigned(UInt64(block.events.count))),
                ("snapshot", .unsigned(block.snapshot)),
                ("previous", reference(block.previous.address, block.previous.checksum)),
            ]
            if verbose { fields.append(("events", .array(block.events.map { tableJSON($0, withEvent: true) }))) }
            return .object(fields)
        }
        let treesJSON: [JSON] = damage == nil ? trees().map { tree in
            .object([
                ("tree_id", .unsigned(UInt64(tree.treeId))),
                ("tree", .string(treeLabel(tree.treeId))),
                ("table_count", .unsigned(UInt64(tree.tables.count))),
                ("value_count", .unsigned(tree.valueCount)),
                ("levels", .array(tree.levels.map { level in
                    .object([("level", .unsigned(UInt64(level))),
                             ("table_count", .unsigned(UInt64(tree.tables(level: level).count)))])
                })),
            ])
        } : []
        return .object(headlineFields + [
            ("damage", damage.map { .string($0) } ?? .null),
            ("blocks", .array(blocksJSON)),
            ("table_count", damage == nil ? .unsigned(UInt64(tables.count)) : .null),
            ("trees", .array(treesJSON)),
        ])
    }

    func tablesJSON(treeId: UInt16?, level: Int?) -> JSON {
        let treesJSON: [JSON] = damage == nil ? trees(treeId: treeId, level: level).map { tree in
            .object([
                ("tree_id", .unsigned(UInt64(tree.treeId))),
                ("tree", .string(treeLabel(tree.treeId))),
                ("table_count", .unsigned(UInt64(tree.tables.count))),
                ("value_count", .unsigned(tree.valueCount)),
                ("value_bytes", tree.valueBytes.map { .unsigned($0) } ?? .null),
                ("tables", .array(tree.tables.map { tableJSON($0, withEvent: false) })),
            ])
        } : []
        return .object(headlineFields + [
            ("damage", damage.map { .string($0) } ?? .null),
            ("table_count", damage == nil ? .unsigned(UInt64(tables.count)) : .null),
            ("trees", .array(treesJSON)),
        ])
    }

    private func reference(_ address: UInt64, _ checksum: UInt128) -> JSON {
        .object([("address", .unsigned(address)), ("checksum", .hex(checksum))])
    }

    private func tableJSON(_ table: TableInfo, withEvent: Bool) -> JSON {
        let kind = TreeKeyKind(treeId: table.treeId)
        var fields: [(String, JSON)] = []
        if withEvent { fields.append(("event", .string(table.event.map { "\($0)" } ?? "?"))) }
        fields += [
            ("tree_id", .unsigned(UInt64(table.treeId))),
            ("level", .unsigned(UInt64(table.level))),
            ("index_address", .unsigned(table.address)),
            ("index_checksum", .hex(table.checksum)),
            ("key_min", .string(kind.render(table.keyMin))),
            ("key_max", .string(kind.render(table.keyMax))),
            ("snapshot_min", .unsigned(table.snapshotMin)),
            ("snapshot_max", .unsigned(table.snapshotMax)),
            ("value_count", .unsigned(UInt64(table.valueCount))),
        ]
        return .object(fields)
    }
}

private func snapshotsText(_ table: TableInfo) -> String {
    "\(table.snapshotMin)..<\(table.snapshotMax == TableInfo.snapshotMaxLive ? "live" : String(table.snapshotMax))"
}

/// A tree id with its name: `18 (transfersObject)`.
private func treeLabel(_ id: UInt16) -> String {
    TreeId(rawValue: id).map { "\(id) (\($0.name))" } ?? "\(id) (unknown)"
}

/// How a tree's keys are laid out (storage spec §5 "Grooves"): object trees by u64 timestamp,
/// id trees by u128 id, index trees by `(field, timestamp)` with a u64 or u128 field. The
/// manifest does not record it (only the tree knows its key type), so it comes from the tree id;
/// an unknown tree's keys are shown as raw bytes.
enum TreeKeyKind {
    case timestamp
    case id
    case composite64
    case composite128
    case unknown

    init(treeId: UInt16) {
        guard let tree = TreeId(rawValue: treeId) else { self = .unknown; return }
        switch tree {
        case .accountsObject, .transfersObject, .transfersPendingObject, .accountEventsObject:
            self = .timestamp
        case .accountsId, .transfersId:
            self = .id
        case .accountsUserData128, .transfersDebitAccountId, .transfersCreditAccountId, .transfersAmount,
             .transfersPendingId, .transfersUserData128, .accountEventsExpiredDebitAccountId,
             .accountEventsExpiredCreditAccountId, .accountEventsExpiredPendingId:
            self = .composite128
        default:
            self = .composite64
        }
    }

    /// Bytes of a key.
    var keySize: Int {
        switch self {
        case .timestamp: MemoryLayout<UInt64>.size
        case .id: MemoryLayout<UInt128>.size
        case .composite64: MemoryLayout<CompositeKey64>.size
        case .composite128: MemoryLayout<CompositeKey128>.size
        case .unknown: TableKeyBytes.sizeMax
        }
    }

    /// Bytes of one value of tree `treeId`, where its value type is known.
    static func valueSize(treeId: UInt16) -> Int? {
        switch TreeId(rawValue: treeId) {
        case .accountsObject: return Account.valueSize
        case .transfersObject: return Transfer.valueSize
        case .transfersPendingObject: return TransferPendingRecord.valueSize
        case .accountEventsObject: return AccountEventRecord.valueSize
        default: break
        }
        switch TreeKeyKind(treeId: treeId) {
        case .id: return IdTreeValue.valueSize
        case .composite64: return CompositeKey64.valueSize
        case .composite128: return CompositeKey128.valueSize
        case .timestamp, .unknown: return nil  // Trees this release does not have.
        }
    }

    /// What is wrong with a live table's keys (bytes past the key, key min above key max).
    func keyFault(_ table: TableInfo) -> String? {
        guard table.keyMin.isZeroPadded(keySize: keySize), table.keyMax.isZeroPadded(keySize: keySize) else {
            return "non-zero bytes past its \(keySize)-byte keys"
        }
        let ordered: Bool
        switch self {
        case .timestamp: ordered = table.keyMin(as: UInt64.self) <= table.keyMax(as: UInt64.self)
        case .id: ordered = table.keyMin(as: UInt128.self) <= table.keyMax(as: UInt128.self)
        case .composite64: ordered = table.keyMin(as: CompositeKey64.self) <= table.keyMax(as: CompositeKey64.self)
        case .composite128: ordered = table.keyMin(as: CompositeKey128.self) <= table.keyMax(as: CompositeKey128.self)
        case .unknown: ordered = true
        }
        return ordered ? nil : "key min above key max"
    }

    func render(_ key: TableKeyBytes) -> String {
        switch self {
        case .timestamp:
            return "\(key.load(as: UInt64.self))"
        case .id:
            return "\(key.load(as: UInt128.self))"
        case .composite64:
            let composite = key.load(as: CompositeKey64.self)
            return "(\(composite.field), \(composite.timestamp))"
        case .composite128:
            let composite = key.load(as: CompositeKey128.self)
            return "(\(composite.field), \(composite.timestamp))"
        case .unknown:
            return "0x" + hex128(key.high) + hex128(key.low)
        }
    }
}

extension ManifestInspection {
    /// `--tree=<id|name>`: a number (any u16, known or not) or a `TreeId` name, any case.
    static func parseTree(_ text: String) -> UInt16? {
        if let id = UInt16(text) { return id }
        return TreeId.allCases.first { $0.name.lowercased() == text.lowercased() }?.rawValue
    }
}

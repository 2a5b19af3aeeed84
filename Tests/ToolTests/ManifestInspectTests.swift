import Foundation
import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerVSR
import Testing

/// `ledger-inspect manifest | tables` on real data files: a fresh one (empty manifest), one a
/// forest of three trees checkpointed in this process (the tool must list exactly the tables the
/// in-process manifests hold, then report a corrupted manifest block), and hand-made manifest
/// chains whose superblock disagrees with them.
@Suite(.serialized) struct ManifestInspectTests {
    static let layout = Fixture.layout

    @Test func freshFileHasAnEmptyManifest() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/fresh.ledger"
        try Fixture.format(path)

        let manifest = try Tools.inspect([path, "manifest"])
        #expect(manifest.exited(0), "\(manifest.summary)")
        #expect(manifest.stdout.contains("checkpoint op 0, manifest log: 0 blocks"), "\(manifest.stdout)")
        #expect(manifest.stdout.contains("empty: no manifest log blocks, no tables"), "\(manifest.stdout)")

        let tables = try Tools.inspect([path, "tables", "--json"])
        #expect(tables.exited(0), "\(tables.summary)")
        let document = try InspectDocument(tables)
        #expect(try document.isHealthy)
        let section = try document.section("tables")
        #expect(try field(section, "table_count", as: Int.self) == 0)
        #expect(try field(section, "trees", as: [Any].self).isEmpty)
        #expect(section["damage"] is NSNull)
    }

    @Test func badArgumentsExit64() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/args.ledger"
        try Fixture.format(path)
        for arguments in [
            ["tables", "--tree=noSuchTree"], ["tables", "--level=8"], ["manifest", "--tree=18"],
            ["tables", "--verbose"], ["grid", "--level=0"],
        ] {
            let result = try Tools.inspect([path] + arguments)
            #expect(result.exited(64), "\(result.summary)")
        }
    }

    /// A forest on the real file through io_uring, run past its first checkpoint trigger; the
    /// superblock then records the checkpoint (`CheckpointState(header:forest:layout:)`).
    @Test func listsTheCheckpointedTablesAndReportsACorruptBlock() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/forest.ledger"
        try Fixture.format(path)
        let run = try ForestFileRun.checkpoint(path: path)
        let expected = Set(run.tables.map(TableRow.init))
        #expect(run.forest.manifestBlockCount >= 1)
        #expect(run.tables.count >= 3, "every tree flushed tables: \(run.tables.count)")
        #expect(Set(run.tables.map(\.treeId)).count == 3)

        let tables = try Tools.inspect([path, "tables", "--json"])
        #expect(tables.exited(0), "\(tables.summary)")
        let section = try InspectDocument(tables).section("tables")
        #expect(try field(section, "checkpoint_op", as: Int.self) == Int(run.forest.op))
        var listed: [TableRow] = []
        for tree in try field(section, "trees", as: [[String: Any]].self) {
            let rows = try field(tree, "tables", as: [[String: Any]].self).map(TableRow.init(json:))
            #expect(try field(tree, "table_count", as: Int.self) == rows.count)
            #expect(try field(tree, "value_count", as: Int.self) == rows.reduce(0) { $0 + Int($1.valueCount) })
            listed += rows
        }
        #expect(listed.count == expected.count, "no table listed twice or missing")
        #expect(Set(listed) == expected, "the tool lists exactly the in-process manifests' tables")

        // Keys decoded per tree: the object tree's timestamps, the id tree's ids, the index's pairs.
        let objectTable = try #require(run.tables.first { $0.treeId == TreeId.transfersObject.rawValue })
        let objectRow = try #require(
            try field(section, "trees", as: [[String: Any]].self)
                .first { try field($0, "tree_id", as: Int.self) == Int(TreeId.transfersObject.rawValue) })
        let objectRows = try field(objectRow, "tables", as: [[String: Any]].self)
        let shown = try #require(try objectRows.first { try field($0, "index_address", as: Int.self) == Int(objectTable.address) })
        #expect(try field(shown, "key_min", as: String.self) == "\(objectTable.keyMin(as: UInt64.self))")
        let indexTable = try #require(run.tables.first { $0.treeId == TreeId.transfersLedger.rawValue })
        let indexKey = indexTable.keyMin(as: CompositeKey64.self)

        let text = try Tools.inspect([path, "tables", "--tree=transfersLedger"])
        #expect(text.exited(0), "\(text.summary)")
        #expect(text.stdout.contains("tree 16 (transfersLedger): "), "\(text.stdout)")
        #expect(!text.stdout.contains("tree 18 (transfersObject)"), "--tree filters: \(text.stdout)")
        #expect(text.stdout.contains("index \(indexTable.address) \(hex(indexTable.checksum)) keys (\(indexKey.field), \(indexKey.timestamp))"),
                "\(text.stdout)")

        let level0 = try Tools.inspect([path, "tables", "--level=0", "--json"])
        let level0Rows = try field(try InspectDocument(level0).section("tables"), "trees", as: [[String: Any]].self)
            .flatMap { try field($0, "tables", as: [[String: Any]].self).map(TableRow.init(json:)) }
        #expect(Set(level0Rows) == Set(expected.filter { $0.level == 0 }), "--level filters")

        let manifest = try Tools.inspect([path, "manifest", "--verbose"])
        #expect(manifest.exited(0), "\(manifest.summary)")
        let newest = run.forest.manifestNewest
        #expect(manifest.stdout.contains("block \(newest.address): "), "\(manifest.stdout)")
        #expect(manifest.stdout.contains("replayed manifest: \(expected.count) live tables"), "\(manifest.stdout)")
        #expect(manifest.stdout.contains("insert tree 8 (transfersId) level 0"), "events listed: \(manifest.stdout)")
        let manifestJSON = try InspectDocument(try Tools.inspect([path, "manifest", "--json"])).section("manifest")
        let blocks = try field(manifestJSON, "blocks", as: [[String: Any]].self)
        #expect(blocks.count == Int(run.forest.manifestBlockCount))
        #expect(try field(blocks[0], "address", as: Int.self) == Int(newest.address))

        // One flipped byte in the newest manifest block's header: the chain cannot be trusted.
        let offset = Self.layout.offset(of: .grid) + Self.layout.gridBlockOffset(address: newest.address)
        try Fixture.flipWithDD(path, sectorOffset: offset, bytes: 100..<101, scratchDirectory: directory)
        for section in ["manifest", "tables"] {
            let damaged = try Tools.inspect([path, section])
            #expect(damaged.exited(1), "\(damaged.summary)")
            #expect(damaged.stdout.contains("DAMAGED: block \(newest.address) (expected checksum \(hex(newest.checksum))): CORRUPT"),
                    "\(damaged.stdout)")
            #expect(!damaged.stdout.contains("index "), "no table is presented as good: \(damaged.stdout)")
        }
        let damagedJSON = try Tools.inspect([path, "tables", "--json"])
        #expect(damagedJSON.exited(1), "\(damagedJSON.summary)")
        let damagedDocument = try InspectDocument(damagedJSON)
        #expect(try !damagedDocument.isHealthy)
        #expect(try field(damagedDocument.section("tables"), "damage", as: String.self).contains("CORRUPT"))
        #expect(try field(damagedDocument.section("tables"), "trees", as: [Any].self).isEmpty)
    }

    /// Two hand-made manifest blocks (1 ← 2) and superblocks that describe them right, then wrong.
    @Test func reportsChainsTheSuperblockDoesNotDescribe() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/chain.ledger"
        try Fixture.format(path)
        let blockSize = Self.layout.configuration.blockSize
        let tableA = TableInfo(
            treeId: TreeId.accountsObject.rawValue, level: 0, keyMin: UInt64(10), keyMax: UInt64(20),
            index: BlockReference(address: 5, checksum: 55), snapshotMin: 3, valueCount: 11)
        let tableB = TableInfo(
            treeId: TreeId.accountsId.rawValue, level: 1, keyMin: UInt128(7), keyMax: UInt128(1) << 100,
            index: BlockReference(address: 6, checksum: 66), snapshotMin: 4, valueCount: 2)
        let block = AlignedBuffer(count: blockSize)
        let first = ManifestLogBlock.encode([tableA, tableB], into: block.bytes, previous: .null, address: 1, snapshot: 3)
        try Fixture.writeBytes(path, offset: Self.layout.offset(of: .grid) + Self.layout.gridBlockOffset(address: 1),
                               bytes: Array(block.bytes))
        block.zero()
        let second = ManifestLogBlock.encode(
            [tableA.with(event: .remove)], into: block.bytes, previous: first, address: 2, snapshot: 4)
        try Fixture.writeBytes(path, offset: Self.layout.offset(of: .grid) + Self.layout.gridBlockOffset(address: 2),
                               bytes: Array(block.bytes))

        let checkpointOps = UInt64(Self.layout.configuration.vsrCheckpointOps)
        func checkpoint(_ index: UInt64, oldest: BlockReference, blockCount: UInt32, highest: UInt64) -> ForestCheckpoint {
            ForestCheckpoint(
                op: index * checkpointOps - 1, manifestNewest: second, manifestOldest: oldest,
                manifestBlockCount: blockCount, freeSetAcquired: .empty, freeSetReleased: .empty,
                highestAcquiredAddress: highest)
        }

        try ForestFileRun.writeCheckpoint(path: path, forest: checkpoint(1, oldest: first, blockCount: 2, highest: 6))
        let good = try Tools.inspect([path, "manifest"])
        #expect(good.exited(0), "\(good.summary)")
        #expect(good.stdout.contains("block 2: 1 entries"), "\(good.stdout)")
        #expect(good.stdout.contains("block 1: 2 entries"), "\(good.stdout)")
        #expect(good.stdout.contains("replayed manifest: 1 live tables"), "the removed table is gone: \(good.stdout)")
        let tables = try Tools.inspect([path, "tables"])
        #expect(tables.exited(0), "\(tables.summary)")
        #expect(tables.stdout.contains("keys 7...\(UInt128(1) << 100)"), "id keys as u128: \(tables.stdout)")
        #expect(tables.stdout.contains("tree 1 (accountsId): 1 tables, 2 values, 64 bytes"), "\(tables.stdout)")

        try ForestFileRun.writeCheckpoint(path: path, forest: checkpoint(2, oldest: first, blockCount: 3, highest: 6))
        let short = try Tools.inspect([path, "manifest"])
        #expect(short.exited(1), "\(short.summary)")
        #expect(short.stdout.contains("DAMAGED: the chain has 2 blocks, the superblock says 3"), "\(short.stdout)")
        #expect(!short.stdout.contains("replayed manifest:"), "\(short.stdout)")

        let elsewhere = BlockReference(address: 4, checksum: 44)
        try ForestFileRun.writeCheckpoint(path: path, forest: checkpoint(3, oldest: elsewhere, blockCount: 2, highest: 6))
        let broken = try Tools.inspect([path, "tables"])
        #expect(broken.exited(1), "\(broken.summary)")
        #expect(broken.stdout.contains("DAMAGED: block 1 (expected checksum \(hex(first.checksum))): the chain ends before the superblock's oldest block"),
                "\(broken.stdout)")

        // A checksum-valid block linking past the acquired grid (6 blocks) is not followed.
        block.zero()
        let stray = ManifestLogBlock.encode(
            [tableA.with(event: .remove)], into: block.bytes, previous: BlockReference(address: 5000, checksum: 1),
            address: 3, snapshot: 4)
        try Fixture.writeBytes(path, offset: Self.layout.offset(of: .grid) + Self.layout.gridBlockOffset(address: 3),
                               bytes: Array(block.bytes))
        try ForestFileRun.writeCheckpoint(path: path, forest: ForestCheckpoint(
            op: 4 * checkpointOps - 1, manifestNewest: stray, manifestOldest: first, manifestBlockCount: 2,
            freeSetAcquired: .empty, freeSetReleased: .empty, highestAcquiredAddress: 6))
        let outside = try Tools.inspect([path, "manifest"])
        #expect(outside.exited(1), "\(outside.summary)")
        #expect(outside.stdout.contains("DAMAGED: block 3 links to block 5000, outside the acquired grid (1...6)"),
                "\(outside.stdout)")

        // Checksum-valid superblock fields that contradict each other: two ends, one block.
        try ForestFileRun.writeCheckpoint(
            path: path, forest: checkpoint(5, oldest: first, blockCount: 2, highest: 6), blockCountOverride: 1)
        let inconsistent = try Tools.inspect([path, "manifest", "--json"])
        #expect(inconsistent.exited(1), "\(inconsistent.summary)")
        let damage = try field(InspectDocument(inconsistent).section("manifest"), "damage", as: String.self)
        #expect(damage.contains("inconsistent: manifestBlockCount(1)"), "\(damage)")
    }
}

/// What the tool and the in-process manifest must agree on for one table.
private struct TableRow: Hashable {
    let treeId: UInt16
    let level: UInt8
    let address: UInt64
    let checksum: String
    let snapshotMin: UInt64
    let snapshotMax: UInt64
    let valueCount: UInt32

    init(_ table: TableInfo) {
        treeId = table.treeId
        level = table.level
        address = table.address
        checksum = hex(table.checksum)
        snapshotMin = table.snapshotMin
        snapshotMax = table.snapshotMax
        valueCount = table.valueCount
    }

    init(json: [String: Any]) throws {
        treeId = UInt16(try field(json, "tree_id", as: Int.self))
        level = UInt8(try field(json, "level", as: Int.self))
        address = UInt64(try field(json, "index_address", as: Int.self))
        checksum = try field(json, "index_checksum", as: String.self)
        snapshotMin = try field(json, "snapshot_min", as: UInt64.self)
        snapshotMax = try field(json, "snapshot_max", as: UInt64.self)
        valueCount = UInt32(try field(json, "value_count", as: Int.self))
    }
}

private func hex(_ value: UInt128) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 32 - digits.count) + digits
}

/// A forest on a formatted data file, in this process (FileStorage over io_uring), and the
/// superblock update that records its checkpoint.
private enum ForestFileRun {
    /// A real device answers in milliseconds; a minute means it is stuck.
    static let timeoutNs: UInt64 = 60 * 1_000_000_000
    static let valuesPerBeat = 4

    static func treeConfiguration() -> TreeConfiguration {
        let storage = Fixture.layout.configuration
        return TreeConfiguration(
            valuesPerBeatMax: valuesPerBeat, compactionOps: storage.lsmCompactionOps,
            manifest: ManifestConfiguration(tablesMax: 64), blockSize: storage.blockSize, lookupsMax: 4)
    }

    /// Runs a transfers-like forest (id, ledger index and object trees) up to its first
    /// checkpoint trigger, writes the checkpoint into the superblock, and returns it with every
    /// table the trees' manifests hold at that point.
    static func checkpoint(path: String) throws -> (forest: ForestCheckpoint, tables: [TableInfo]) {
        let file = try DataFile.open(path: path, layout: Fixture.layout, mode: .readWrite)
        defer { file.close() }
        let io = try IOUring(entries: 256)
        let storage = FileStorage(io: io, file: file)
        let tree = treeConfiguration()
        let forest = Forest(storage: storage, configuration: ForestConfiguration(trees: [tree, tree, tree], cacheBlocks: 16))
        let ids = Tree<IdTreeValue, FileStorage>(
            treeId: TreeId.transfersId.rawValue, grid: forest.grid, freeSet: forest.freeSet, configuration: tree)
        let ledgers = Tree<CompositeKey64, FileStorage>(
            treeId: TreeId.transfersLedger.rawValue, grid: forest.grid, freeSet: forest.freeSet, configuration: tree)
        let objects = Tree<Transfer, FileStorage>(
            treeId: TreeId.transfersObject.rawValue, grid: forest.grid, freeSet: forest.freeSet, configuration: tree)
        forest.add(ids)
        forest.add(ledgers)
        forest.add(objects)

        var written: ForestCheckpoint?
        let trigger = forest.checkpointTriggerOp
        // Each turn commits one op: bounded by the trigger.
        for op in 1...trigger {
            for index in 0..<valuesPerBeat {
                let timestamp = op * 10 + UInt64(index)
                let id = UInt128(timestamp) * 1_000_003
                ids.put(IdTreeValue(id: id, timestamp: timestamp))
                ledgers.put(CompositeKey64(field: 1 + op % 3, timestamp: timestamp))
                objects.put(Transfer(
                    id: id, debitAccountId: 1, creditAccountId: 2, amount: 1, ledger: UInt32(1 + op % 3), code: 1,
                    timestamp: timestamp))
            }
            var result: Result<ForestCheckpoint?, ForestFault>?
            forest.compact(op: op) { result = $0 }
            guard io.run(until: { result != nil }, timeoutNs: timeoutNs) else {
                _ = Unmanaged.passRetained(storage)
                throw ToolTestError("op \(op): the beat did not finish")
            }
            switch result! {
            case .failure(let fault): throw ToolTestError("op \(op): forest fault \(fault)")
            case .success(let checkpoint): if let checkpoint { written = checkpoint }
            }
        }
        guard let checkpoint = written else { throw ToolTestError("no checkpoint at the trigger \(trigger)") }
        // The beat calls back before the log's last writes may have landed: let them finish.
        guard io.run(until: { storage.inFlightCount == 0 }, timeoutNs: timeoutNs) else {
            throw ToolTestError("grid writes did not finish")
        }
        var tables: [TableInfo] = []
        tables += allTables(ids.manifest)
        tables += allTables(ledgers.manifest)
        tables += allTables(objects.manifest)
        try writeCheckpoint(storage: storage, io: io, forest: checkpoint, commitMax: trigger)
        return (checkpoint, tables)
    }

    static func allTables<Key: Comparable & BitwiseCopyable>(_ manifest: Manifest<Key>) -> [TableInfo] {
        var tables: [TableInfo] = []
        for level in 0..<manifest.levelCount {
            for index in 0..<manifest.tableCount(level: level) { tables.append(manifest.level(level).table(at: index)) }
        }
        return tables
    }

    /// Records `forest` as the next checkpoint of the superblock at `path`.
    static func writeCheckpoint(path: String, forest: ForestCheckpoint, blockCountOverride: UInt32? = nil) throws {
        let file = try DataFile.open(path: path, layout: Fixture.layout, mode: .readWrite)
        defer { file.close() }
        let io = try IOUring(entries: 32)
        let storage = FileStorage(io: io, file: file)
        try writeCheckpoint(
            storage: storage, io: io, forest: forest, commitMax: forest.op, blockCountOverride: blockCountOverride)
    }

    private static func writeCheckpoint(
        storage: FileStorage, io: IOUring, forest: ForestCheckpoint, commitMax: UInt64,
        blockCountOverride: UInt32? = nil
    ) throws {
        let superblock = Superblock(storage: storage)
        var opened: Result<SuperblockHeader, SuperblockError>?
        superblock.open { opened = $0 }
        guard io.run(until: { opened != nil }, timeoutNs: timeoutNs) else { throw ToolTestError("open did not finish") }
        let working = try opened!.get()
        var header = PrepareHeader()
        header.frame.cluster = working.cluster
        header.op = forest.op
        header.operation = VSROperation.noop.rawValue
        header.sealWithoutBody()
        var state = CheckpointState(header: header, forest: forest, layout: Fixture.layout)
        state.parentCheckpointId = working.checkpointId
        state.release = working.vsrState.checkpoint.release
        if let blockCountOverride { state.manifestBlockCount = blockCountOverride }
        var done = false
        superblock.checkpoint(update: CheckpointUpdate(
            checkpoint: state, commitMax: max(commitMax, working.vsrState.commitMax),
            viewHeaders: SuperblockViewHeaders([header])
        )) { done = true }
        guard io.run(until: { done }, timeoutNs: timeoutNs) else { throw ToolTestError("checkpoint did not finish") }
    }
}

import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

@Suite struct ManifestLogTests {
    static let blockSize = 4096
    static let levelCount = 7

    static func table(
        address: UInt64, treeId: UInt16 = 1, level: UInt8 = 0, checksum: UInt128? = nil, event: TableEvent = .insert
    ) -> TableInfo {
        TableInfo(
            treeId: treeId, level: level, keyMin: UInt64(address * 10), keyMax: UInt64(address * 10 + 5),
            index: BlockReference(address: address, checksum: checksum ?? UInt128(address) * 31 + 7), snapshotMin: 3,
            valueCount: 100, event: event)
    }

    /// Seals `entries` in a fresh block at `address`.
    static func block(_ entries: [TableInfo], address: UInt64, previous: BlockReference = .null) -> (AlignedBuffer, BlockReference) {
        let buffer = AlignedBuffer(count: blockSize)
        let reference = ManifestLogBlock.encode(entries, into: buffer.bytes, previous: previous, address: address, snapshot: 9)
        return (buffer, reference)
    }

    /// A block sealed with any metadata and body, valid checksums: for malformed contents.
    static func rawBlock(
        address: UInt64 = 1, type: BlockType = .manifest, entryCount: UInt32, bodySize: Int, metadataEdit: (inout BlockMetadata) -> Void = { _ in },
        bodyEdit: (UnsafeMutableRawBufferPointer) -> Void = { _ in }
    ) -> (AlignedBuffer, BlockReference) {
        let buffer = AlignedBuffer(count: blockSize)
        var metadata = BlockMetadata()
        metadata.store(entryCount, at: 0)
        metadataEdit(&metadata)
        bodyEdit(buffer.bytes)
        let reference = BlockSealing.seal(
            block: buffer.bytes, address: address, snapshot: 1, type: type, metadata: metadata, bodySize: bodySize)
        return (buffer, reference)
    }

    static func decode(_ buffer: AlignedBuffer) throws(ManifestLogError) -> ManifestLogBlockView {
        try ManifestLogBlock.decode(block: UnsafeRawBufferPointer(buffer.bytes), levelCount: levelCount)
    }

    @Test func capacityAndMetadataLayout() throws {
        #expect(ManifestLogBlock.entryCountMax(blockSize: 512 << 10) == 4094)
        #expect(ManifestLogBlock.entryCountMax(blockSize: 4096) == 30)
        let previous = BlockReference(address: 77, checksum: 0x1234_5678_9ABC)
        let entries = (1...30).map { Self.table(address: UInt64($0), event: $0 % 3 == 0 ? .update : .insert) }
        let (buffer, reference) = Self.block(entries, address: 5, previous: previous)
        #expect(BlockSealing.verify(block: UnsafeRawBufferPointer(buffer.bytes), expected: reference) == nil)
        let header = Header(from: UnsafeRawBufferPointer(buffer.bytes)).asBlock
        #expect(header.blockType == BlockType.manifest.rawValue)
        #expect(header.frame.size == UInt32(256 + 30 * 128))
        let metadata = BlockMetadata(header.metadata)
        #expect(metadata.load(UInt32.self, at: 0) == 30)
        #expect(metadata.load(UInt64.self, at: 8) == 77)
        #expect(metadata.load(UInt128.self, at: 16) == 0x1234_5678_9ABC)
        // Entry 2 sits at body offset 2 × 128, byte for byte.
        let third = buffer.bytes.loadUnaligned(fromByteOffset: 256 + 2 * 128, as: TableInfo.self)
        #expect(third == entries[2])
        let view = try Self.decode(buffer)
        #expect(view.entryCount == 30)
        #expect(view.previous == previous)
        #expect((0..<30).map { view[$0] } == entries)
    }

    @Test func malformedBlocksAreRejectedWithTypedErrors() {
        func expectError(_ expected: ManifestLogError, _ made: (AlignedBuffer, BlockReference), _ note: Comment) {
            #expect(throws: expected, note) { try Self.decode(made.0) }
        }
        let good = Self.table(address: 4)
        func body(_ entries: [TableInfo]) -> (UnsafeMutableRawBufferPointer) -> Void {
            { bytes in
                for (index, entry) in entries.enumerated() {
                    bytes.storeBytes(of: entry, toByteOffset: 256 + index * 128, as: TableInfo.self)
                }
            }
        }
        expectError(.notAManifestBlock(blockType: BlockType.index.rawValue),
            Self.rawBlock(type: .index, entryCount: 1, bodySize: 128, bodyEdit: body([good])), "block type")
        expectError(.entryCount(0), Self.rawBlock(entryCount: 0, bodySize: 0), "empty block")
        expectError(.entryCount(31), Self.rawBlock(entryCount: 31, bodySize: 128), "more than fit")
        expectError(.entryCount(UInt32.max), Self.rawBlock(entryCount: .max, bodySize: 128), "huge count")
        expectError(.size(256 + 256), Self.rawBlock(entryCount: 1, bodySize: 256, bodyEdit: body([good])), "size vs count")
        expectError(.metadataReserved,
            Self.rawBlock(entryCount: 1, bodySize: 128, metadataEdit: { $0.store(UInt32(1), at: 4) }, bodyEdit: body([good])),
            "reserved metadata word")
        expectError(.metadataReserved,
            Self.rawBlock(entryCount: 1, bodySize: 128, metadataEdit: { $0.store(UInt8(1), at: 95) }, bodyEdit: body([good])),
            "reserved metadata tail")
        expectError(.metadataReserved,
            Self.rawBlock(entryCount: 1, bodySize: 128, metadataEdit: { $0.store(UInt128(5), at: 16) }, bodyEdit: body([good])),
            "a previous checksum without a previous address")

        var cases: [(TableInfo, TableInfoFault)] = []
        var zeroEvent = good
        zeroEvent.eventCode = 0
        cases.append((zeroEvent, .event(0)))
        var badEvent = good
        badEvent.eventCode = 4
        cases.append((badEvent, .event(4)))
        var reserved = good
        reserved.reserved = 1 << 120
        cases.append((reserved, .reserved))
        var level = good
        level.level = 7
        cases.append((level, .level(7)))
        var tree = good
        tree.treeId = 0
        cases.append((tree, .treeId))
        var address = good
        address.address = 0
        cases.append((address, .address))
        var snapshots = good
        snapshots.snapshotMax = snapshots.snapshotMin
        cases.append((snapshots, .snapshots))
        var values = good
        values.valueCount = 0
        cases.append((values, .valueCount))
        for (entry, fault) in cases {
            expectError(.entry(index: 1, fault),
                Self.rawBlock(entryCount: 3, bodySize: 384, bodyEdit: body([good, entry, good])), "\(fault)")
        }
        let zeros = AlignedBuffer(count: Self.blockSize)
        #expect(throws: ManifestLogError.notABlock) { try Self.decode(zeros) }
    }

    @Test(arguments: UInt64(1)...30)
    func decodingRandomBytesNeverTraps(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let count = UInt32(prng.int(in: 0...32))
        let (buffer, _) = Self.rawBlock(
            entryCount: count, bodySize: Int(min(count, 30)) * 128,
            metadataEdit: { metadata in
                if prng.chance(percent: 30) { metadata.store(UInt64(prng.next()), at: 8) }
            },
            bodyEdit: { bytes in
                for index in 0..<Int(min(count, 30)) {
                    var entry = Self.table(address: UInt64(index + 1))
                    withUnsafeMutableBytes(of: &entry) { raw in
                        // Flip a few random bytes of a valid entry.
                        for _ in 0..<prng.int(in: 0...3) {
                            raw[prng.int(in: 0...127)] = UInt8(truncatingIfNeeded: prng.next())
                        }
                    }
                    bytes.storeBytes(of: entry, toByteOffset: 256 + index * 128, as: TableInfo.self)
                }
            })
        do {
            let view = try Self.decode(buffer)
            for index in 0..<view.entryCount {
                #expect(ManifestLogBlock.entryFault(view[index], levelCount: Self.levelCount) == nil, "seed \(seed)")
            }
        } catch {
            // The compiler types `error` as ManifestLogError (typed throws): never a trap.
            #expect(count == 0 || count > 30 || error != .entryCount(count), "seed \(seed)")
        }
    }

    // MARK: Replay

    /// A chronological event log over several trees, as a manifest would append it.
    static func randomEvents(_ prng: inout PRNG, count: Int) -> [TableInfo] {
        var live: [TableInfo] = []
        var events: [TableInfo] = []
        var nextAddress: UInt64 = 1000
        for _ in 0..<count {
            let choice = prng.int(in: 0...99)
            if choice < 45 || live.isEmpty {
                nextAddress += UInt64(prng.int(in: 1...3))
                let keyMin = prng.next() >> 1
                let table = TableInfo(
                    treeId: UInt16(prng.int(in: 1...3)), level: UInt8(prng.int(in: 0...6)), keyMin: keyMin,
                    keyMax: keyMin + UInt64(prng.int(in: 0...1000)),
                    index: BlockReference(address: nextAddress, checksum: UInt128(prng.next()) << 64 | UInt128(prng.next())),
                    snapshotMin: UInt64(prng.int(in: 1...100)), valueCount: UInt32(prng.int(in: 1...4094)))
                live.append(table)
                events.append(table.with(event: .insert))
            } else if choice < 75 {
                let position = prng.int(in: 0...(live.count - 1))
                var table = live[position]
                if prng.chance(percent: 50), table.snapshotMax == TableInfo.snapshotMaxLive {
                    table.snapshotMax = table.snapshotMin + UInt64(prng.int(in: 1...50))
                } else {
                    table.level = UInt8((Int(table.level) + 1) % 7)
                }
                live[position] = table
                events.append(table.with(event: .update))
            } else {
                let table = live.remove(at: prng.int(in: 0...(live.count - 1)))
                events.append(table.with(event: .remove))
            }
        }
        return events
    }

    /// The model: the last event of each table decides; removed tables are gone.
    static func expectedLive(_ events: [TableInfo]) -> [TableInfo] {
        var latest: [TableIdentity: TableInfo] = [:]
        for event in events { latest[event.identity] = event }
        return latest.values.filter { $0.event != .remove }
            .sorted { ($0.treeId, $0.level, $0.address) < ($1.treeId, $1.level, $1.address) }
    }

    /// Splits `events` into a chain of blocks at addresses 1, 2, … (oldest first).
    static func chain(_ events: [TableInfo], _ prng: inout PRNG) -> (blocks: [UInt64: AlignedBuffer], references: [BlockReference], split: [Int]) {
        var blocks: [UInt64: AlignedBuffer] = [:]
        var references: [BlockReference] = []
        var split: [Int] = []
        var start = 0
        var previous = BlockReference.null
        while start < events.count {
            let count = min(events.count - start, prng.int(in: 1...30))
            let address = UInt64(references.count + 1)
            let (buffer, reference) = block(Array(events[start..<(start + count)]), address: address, previous: previous)
            blocks[address] = buffer
            references.append(reference)
            split.append(start)
            previous = reference
            start += count
        }
        return (blocks, references, split)
    }

    static func replay(
        _ blocks: [UInt64: AlignedBuffer], newest: BlockReference, oldest: BlockReference, blocksMax: Int = 1000, tablesMax: Int = 4096
    ) throws(ManifestLogError) -> (ManifestLogReplay, [TableInfo]) {
        var replay = try ManifestLogReplay(
            newest: newest, oldest: oldest, blocksMax: blocksMax, tablesMax: tablesMax, levelCount: levelCount)
        for _ in 0..<blocksMax {
            guard let next = replay.nextBlock else { break }
            try replay.replay(block: UnsafeRawBufferPointer(blocks[next.address]!.bytes))
        }
        #expect(replay.isDone)
        return (replay, try replay.liveTables())
    }

    @Test(arguments: UInt64(1)...30)
    func replayNewestToOldestEqualsTheModel(seed: UInt64) throws {
        var prng = PRNG(seed: seed)
        let events = Self.randomEvents(&prng, count: prng.int(in: 1...400))
        let (blocks, references, split) = Self.chain(events, &prng)
        let (replay, live) = try Self.replay(blocks, newest: references.last!, oldest: references.first!)
        #expect(replay.blockCount == references.count, "seed \(seed)")
        #expect(live == Self.expectedLive(events), "seed \(seed)")

        // A compacted log: the superblock's oldest block is a later one; its older
        // predecessors are not read even though its previous pointer names them.
        let cut = prng.int(in: 0...(references.count - 1))
        let (shorter, kept) = try Self.replay(blocks, newest: references.last!, oldest: references[cut])
        #expect(shorter.blockCount == references.count - cut, "seed \(seed)")
        #expect(kept == Self.expectedLive(Array(events[split[cut]...])), "seed \(seed)")
    }

    @Test func anEmptyLogHasNoTables() throws {
        let (replay, live) = try Self.replay([:], newest: .null, oldest: .null)
        #expect(replay.blockCount == 0)
        #expect(live.isEmpty)
        #expect(throws: ManifestLogError.chainEnds) {
            _ = try ManifestLogReplay(
                newest: .null, oldest: BlockReference(address: 1, checksum: 1), blocksMax: 1, tablesMax: 1, levelCount: 7)
        }
    }

    @Test func replayRejectsBrokenChainsAndContradictions() throws {
        let (first, firstReference) = Self.block([Self.table(address: 10)], address: 1)
        let (second, secondReference) = Self.block([Self.table(address: 11)], address: 2, previous: firstReference)
        let blocks: [UInt64: AlignedBuffer] = [1: first, 2: second]

        // A flipped body byte: the block is not the one the chain names.
        second.bytes[300] ^= 1
        #expect(throws: ManifestLogError.block(.bodyChecksum)) {
            _ = try Self.replay(blocks, newest: secondReference, oldest: firstReference)
        }
        second.bytes[300] ^= 1
        #expect(throws: ManifestLogError.block(.checksumMismatch)) {
            _ = try Self.replay(blocks, newest: BlockReference(address: 2, checksum: 1), oldest: firstReference)
        }
        // The chain ends (previous null) before the superblock's oldest block.
        #expect(throws: ManifestLogError.chainEnded) {
            _ = try Self.replay(blocks, newest: secondReference, oldest: BlockReference(address: 9, checksum: 9))
        }
        #expect(throws: ManifestLogError.chainTooLong) {
            _ = try Self.replay(blocks, newest: secondReference, oldest: firstReference, blocksMax: 1)
        }
        #expect(throws: ManifestLogError.tooManyTables) {
            _ = try Self.replay(blocks, newest: secondReference, oldest: firstReference, tablesMax: 1)
        }

        // insert, remove, insert again of one table: removal is final.
        let table = Self.table(address: 10)
        let (revived, revivedReference) = Self.block(
            [table, table.with(event: .remove), table.with(event: .insert)], address: 3)
        #expect(throws: ManifestLogError.eventAfterRemove(table.identity)) {
            _ = try Self.replay([3: revived], newest: revivedReference, oldest: revivedReference)
        }

        // Two live tables on one index block address.
        let (twins, twinsReference) = Self.block(
            [Self.table(address: 10, treeId: 1), Self.table(address: 10, treeId: 2)], address: 4)
        #expect(throws: ManifestLogError.duplicateAddress(10)) {
            _ = try Self.replay([4: twins], newest: twinsReference, oldest: twinsReference)
        }
        // A reused address is fine once the old table is removed.
        let old = Self.table(address: 10, checksum: 1)
        let reused = Self.table(address: 10, checksum: 2)
        let (reuse, reuseReference) = Self.block([old, old.with(event: .remove), reused], address: 5)
        let (_, live) = try Self.replay([5: reuse], newest: reuseReference, oldest: reuseReference)
        #expect(live == [reused])
    }

    @Test func replayedTablesRebuildEachTreeManifest() throws {
        // Three tables of tree 1 over levels 0 and 1, one moved, one removed.
        let a = TableInfo(treeId: 1, level: 0, keyMin: UInt64(0), keyMax: UInt64(9),
            index: BlockReference(address: 10, checksum: 1), snapshotMin: 1, valueCount: 5)
        let b = TableInfo(treeId: 1, level: 0, keyMin: UInt64(10), keyMax: UInt64(19),
            index: BlockReference(address: 11, checksum: 2), snapshotMin: 1, valueCount: 5)
        let c = TableInfo(treeId: 1, level: 1, keyMin: UInt64(5), keyMax: UInt64(15),
            index: BlockReference(address: 12, checksum: 3), snapshotMin: 1, valueCount: 5)
        var moved = b
        moved.level = 2
        let (first, firstReference) = Self.block([a, b, c], address: 1)
        let (second, secondReference) = Self.block(
            [moved.with(event: .update), c.with(event: .remove)], address: 2, previous: firstReference)
        let (_, live) = try Self.replay([1: first, 2: second], newest: secondReference, oldest: firstReference)
        var manifest = Manifest<UInt64>(treeId: 1, configuration: ManifestConfiguration(tablesMax: 4))
        for table in live where table.treeId == 1 {
            #expect(manifest.fault(inserting: table) == nil)
            manifest.insert(table)
        }
        #expect(manifest.checkInvariants() == nil)
        #expect(Array(manifest.lookupTables(key: 12, snapshot: 5)).map(\.address) == [11])
        #expect(Array(manifest.lookupTables(key: 3, snapshot: 5)).map(\.address) == [10])
        #expect(manifest.tableCount(level: 1) == 0)
    }
}

import LedgerKit
import LedgerLSM
import Testing

@Suite struct ManifestTests {
    static let treeId: UInt16 = 4

    static func table(
        address: UInt64, level: UInt8, keyMin: UInt64, keyMax: UInt64, snapshotMin: UInt64 = 1,
        snapshotMax: UInt64 = TableInfo.snapshotMaxLive, treeId: UInt16 = treeId
    ) -> TableInfo {
        TableInfo(
            treeId: treeId, level: level, keyMin: keyMin, keyMax: keyMax,
            index: BlockReference(address: address, checksum: UInt128(address) << 64 | 0xABCD), snapshotMin: snapshotMin,
            snapshotMax: snapshotMax, valueCount: 10)
    }

    @Test func productionLevelLimitsAreGrowthFactorPowers() {
        let configuration = ManifestConfiguration(tablesMax: 4)
        #expect(configuration.levelCount == 8)
        #expect(configuration.growthFactor == 8)
        // The landing level 0 (2 tables), then the spec's 7 levels (Tree.swift "Level 0").
        #expect((0..<8).map { configuration.tableCountMax(level: $0) } == [2, 8, 64, 512, 4096, 32768, 262_144, 2_097_152])
        // The spec's total of 2,396,744 tables per tree, plus the landing level's 2.
        #expect((0..<8).reduce(0) { $0 + configuration.tableCountMax(level: $1) } == 2_396_746)
        let huge = ManifestConfiguration(levelCount: 40, growthFactor: 8, tablesMax: 1)
        #expect(huge.tableCountMax(level: 39) == Int.max, "saturates instead of overflowing")
    }

    @Test func lookupWalksLevelsShallowestFirstAtMostOnePerLevel() {
        var manifest = Manifest<UInt64>(treeId: Self.treeId, configuration: ManifestConfiguration(levelCount: 4, tablesMax: 8))
        manifest.insert(Self.table(address: 1, level: 0, keyMin: 10, keyMax: 20))
        manifest.insert(Self.table(address: 2, level: 1, keyMin: 0, keyMax: 15))
        manifest.insert(Self.table(address: 3, level: 1, keyMin: 16, keyMax: 30))
        manifest.insert(Self.table(address: 4, level: 3, keyMin: 0, keyMax: 100))
        #expect(manifest.checkInvariants() == nil)
        #expect(Array(manifest.lookupTables(key: 12, snapshot: 5)).map(\.address) == [1, 2, 4])
        #expect(Array(manifest.lookupTables(key: 18, snapshot: 5)).map(\.address) == [1, 3, 4])
        #expect(Array(manifest.lookupTables(key: 50, snapshot: 5)).map(\.address) == [4])
        #expect(Array(manifest.lookupTables(key: 500, snapshot: 5)).isEmpty)
        #expect(Array(manifest.lookupTables(key: 12, snapshot: 0)).isEmpty, "snapshot 0 predates every table")
        #expect(manifest.table(containing: 20, level: 1, snapshot: 5)?.address == 3)
        #expect(manifest.tableCount(level: 1) == 2)
        #expect(manifest.visibleTableCount(level: 1, snapshot: 0) == 0)
    }

    @Test func compactionEventsKeepEverySnapshotConsistent() {
        var manifest = Manifest<UInt64>(treeId: Self.treeId, configuration: ManifestConfiguration(levelCount: 3, tablesMax: 8))
        let input = Self.table(address: 1, level: 0, keyMin: 10, keyMax: 20)
        let below = Self.table(address: 2, level: 1, keyMin: 15, keyMax: 40)
        manifest.insert(input)
        manifest.insert(below)
        let choice = manifest.chooseCompaction(level: 0, snapshot: TableInfo.snapshotLatest)
        #expect(choice?.table == input)
        #expect(choice?.overlapCount == 1)
        #expect(choice?.keyMin == 10 && choice?.keyMax == 40)

        // The compaction at snapshot 8 merges both into one output in level 1.
        manifest.updateSnapshotMax(input, to: 8)
        manifest.apply(Self.table(address: 2, level: 1, keyMin: 15, keyMax: 40, snapshotMax: 8).with(event: .update))
        let output = Self.table(address: 3, level: 1, keyMin: 10, keyMax: 40, snapshotMin: 8)
        manifest.apply(output.with(event: .insert))
        #expect(manifest.checkInvariants() == nil)
        #expect(Array(manifest.lookupTables(key: 16, snapshot: 7)).map(\.address) == [1, 2])
        #expect(Array(manifest.lookupTables(key: 16, snapshot: 8)).map(\.address) == [3])
        #expect(Array(manifest.lookupTables(key: 16, snapshot: TableInfo.snapshotLatest)).map(\.address) == [3])

        // Snapshot 7 released: the inputs leave.
        manifest.apply(Self.table(address: 1, level: 0, keyMin: 10, keyMax: 20, snapshotMax: 8).with(event: .remove))
        manifest.remove(Self.table(address: 2, level: 1, keyMin: 15, keyMax: 40))
        #expect(manifest.checkInvariants() == nil)
        #expect(manifest.tableCount(level: 0) == 0)
        #expect(manifest.tableCount(level: 1) == 1)
        #expect(Array(manifest.lookupTables(key: 16, snapshot: 7)).isEmpty)

        // A table overlapping nothing below moves by metadata: an update carrying the new level.
        let lone = Self.table(address: 4, level: 0, keyMin: 100, keyMax: 110)
        manifest.insert(lone)
        let move = manifest.chooseCompaction(level: 0, snapshot: TableInfo.snapshotLatest)
        #expect(move?.isMove == true)
        var moved = lone
        moved.level = 1
        manifest.apply(moved.with(event: .update))
        #expect(manifest.locate(lone)?.level == 1)
        #expect(manifest.checkInvariants() == nil)
        let movedAgain = manifest.move(moved, toLevel: 2)
        #expect(movedAgain.level == 2)
        #expect(manifest.table(containing: 105, level: 2, snapshot: 9) == movedAgain)
        #expect(manifest.checkInvariants() == nil)
    }

    @Test func tablesFromDiskAreCheckedBeforeInsert() {
        var manifest = Manifest<UInt64>(treeId: Self.treeId, configuration: ManifestConfiguration(levelCount: 3, tablesMax: 2))
        let present = Self.table(address: 1, level: 1, keyMin: 0, keyMax: 10)
        manifest.insert(present)
        let foreign = Self.table(address: 2, level: 0, keyMin: 0, keyMax: 1, treeId: 5)
        #expect(manifest.fault(inserting: foreign) == .treeMismatch(foreign.identity))
        #expect(manifest.fault(inserting: Self.table(address: 2, level: 3, keyMin: 0, keyMax: 1)) == .levelOutOfRange(level: 3))
        var elsewhere = present
        elsewhere.level = 0
        #expect(manifest.fault(inserting: elsewhere) == .duplicate(present.identity), "one table, one level")
        let clash = Self.table(address: 3, level: 1, keyMin: 10, keyMax: 12)
        #expect(manifest.fault(inserting: clash) == .overlap(clash.identity, present.identity))
        let inverted = Self.table(address: 4, level: 0, keyMin: 9, keyMax: 8)
        #expect(manifest.fault(inserting: inverted) == .keyRangeInverted(inverted.identity))
        manifest.insert(Self.table(address: 5, level: 1, keyMin: 20, keyMax: 30))
        #expect(manifest.fault(inserting: Self.table(address: 6, level: 1, keyMin: 40, keyMax: 50)) == .levelFull(level: 1))
        #expect(manifest.fault(inserting: Self.table(address: 6, level: 0, keyMin: 40, keyMax: 50)) == nil)
    }

    @Test(arguments: UInt64(1)...20)
    func randomEventsAgreeWithABruteForceModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let configuration = ManifestConfiguration(levelCount: 4, growthFactor: 4, tablesMax: 12)
        var manifest = Manifest<UInt64>(treeId: Self.treeId, configuration: configuration)
        var model: [TableInfo] = []
        var nextAddress: UInt64 = 1
        for step in 0..<300 {
            let choice = prng.int(in: 0...99)
            if choice < 45 {
                let keyMin = UInt64(prng.int(in: 0...150))
                let snapshotMin = UInt64(prng.int(in: 0...10))
                let candidate = Self.table(
                    address: nextAddress, level: UInt8(prng.int(in: 0...3)), keyMin: keyMin,
                    keyMax: keyMin + UInt64(prng.int(in: 0...12)), snapshotMin: snapshotMin,
                    snapshotMax: prng.chance(percent: 60) ? TableInfo.snapshotMaxLive : snapshotMin + UInt64(prng.int(in: 1...5)))
                nextAddress += 1
                let sameLevel = model.filter { $0.level == candidate.level }
                let conflicts = sameLevel.count == configuration.tablesMax || sameLevel.contains {
                    $0.overlaps(candidate, as: UInt64.self) && $0.sharesSnapshots(with: candidate)
                }
                #expect((manifest.fault(inserting: candidate) == nil) == !conflicts, "seed \(seed) step \(step)")
                if !conflicts {
                    manifest.apply(candidate.with(event: .insert))
                    model.append(candidate)
                }
            } else if choice < 60, !model.isEmpty {
                let victim = model.remove(at: prng.int(in: 0...(model.count - 1)))
                manifest.apply(victim.with(event: .remove))
            } else if choice < 75, !model.isEmpty {
                let position = prng.int(in: 0...(model.count - 1))
                let current = model[position]
                let ceiling = min(current.snapshotMax - 1, current.snapshotMin + 8)
                if current.snapshotMin + 1 <= ceiling {
                    var updated = current
                    updated.snapshotMax = UInt64(prng.int(in: Int(current.snapshotMin + 1)...Int(ceiling)))
                    manifest.apply(updated.with(event: .update))
                    model[position] = updated
                }
            } else if choice < 85, !model.isEmpty {
                // A move, when the destination level has room and nothing in the way.
                let position = prng.int(in: 0...(model.count - 1))
                var moved = model[position]
                moved.level = UInt8((Int(moved.level) + prng.int(in: 1...3)) % 4)
                let others = model.filter { $0.level == moved.level }
                let blocked = others.count == configuration.tablesMax || others.contains {
                    $0.overlaps(moved, as: UInt64.self) && $0.sharesSnapshots(with: moved)
                }
                if !blocked {
                    manifest.apply(moved.with(event: .update))
                    model[position] = moved
                }
            }
            #expect(manifest.checkInvariants() == nil, "seed \(seed) step \(step)")
            let snapshot = UInt64(prng.int(in: 0...16))
            let key = UInt64(prng.int(in: 0...165))
            let expected = (0..<4).compactMap { level in
                model.first {
                    Int($0.level) == level && $0.isVisible(snapshot: snapshot)
                        && TableInfo.rangesOverlap($0.keyMin(as: UInt64.self), $0.keyMax(as: UInt64.self), key, key)
                }
            }
            #expect(Array(manifest.lookupTables(key: key, snapshot: snapshot)) == expected, "seed \(seed) step \(step)")
            for level in 0..<4 {
                #expect(manifest.tableCount(level: level) == model.filter { Int($0.level) == level }.count, "seed \(seed)")
            }
        }
    }
}

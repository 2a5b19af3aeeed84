import LedgerKit
import LedgerLSM
import Testing

@Suite struct ManifestLevelTests {
    /// A table of tree 1 whose checksum derives from its address.
    static func table(
        address: UInt64, keyMin: UInt64, keyMax: UInt64, snapshotMin: UInt64 = 1,
        snapshotMax: UInt64 = TableInfo.snapshotMaxLive, level: UInt8 = 0
    ) -> TableInfo {
        TableInfo(
            treeId: 1, level: level, keyMin: keyMin, keyMax: keyMax,
            index: BlockReference(address: address, checksum: UInt128(address) &* 0x1_0000_0001), snapshotMin: snapshotMin,
            snapshotMax: snapshotMax, valueCount: 1)
    }

    /// What the brute-force model says about inserting `candidate`.
    static func modelConflicts(_ model: [TableInfo], _ candidate: TableInfo, tablesMax: Int) -> Bool {
        if model.count == tablesMax { return true }
        return model.contains { $0.overlaps(candidate, as: UInt64.self) && $0.sharesSnapshots(with: candidate) }
    }

    static func modelVisible(_ model: [TableInfo], snapshot: UInt64, range: ClosedRange<UInt64>?) -> [TableInfo] {
        model.filter { table in
            guard table.isVisible(snapshot: snapshot) else { return false }
            guard let range else { return true }
            return TableInfo.rangesOverlap(
                table.keyMin(as: UInt64.self), table.keyMax(as: UInt64.self), range.lowerBound, range.upperBound)
        }.sorted { $0.keyMin(as: UInt64.self) < $1.keyMin(as: UInt64.self) }
    }

    /// A random table; conflicts with the model are likely (small key and snapshot spaces).
    static func randomTable(_ prng: inout PRNG, address: UInt64, keySpace: Int = 200, width: Int = 15, level: UInt8 = 0) -> TableInfo {
        let keyMin = UInt64(prng.int(in: 0...keySpace))
        let keyMax = keyMin + UInt64(prng.int(in: 0...width))
        let snapshotMin = UInt64(prng.int(in: 0...12))
        let snapshotMax = prng.chance(percent: 50) ? TableInfo.snapshotMaxLive : snapshotMin + UInt64(prng.int(in: 1...6))
        return table(address: address, keyMin: keyMin, keyMax: keyMax, snapshotMin: snapshotMin, snapshotMax: snapshotMax, level: level)
    }

    /// Fills a level and its model with random non-conflicting tables.
    static func randomLevel(_ prng: inout PRNG, tablesMax: Int, attempts: Int, addressBase: UInt64, keySpace: Int, width: Int)
        -> (ManifestLevel<UInt64>, [TableInfo])
    {
        var level = ManifestLevel<UInt64>(tablesMax: tablesMax)
        var model: [TableInfo] = []
        for attempt in 0..<attempts {
            let candidate = randomTable(&prng, address: addressBase + UInt64(attempt), keySpace: keySpace, width: width)
            if level.fault(inserting: candidate) == nil {
                level.insert(candidate)
                model.append(candidate)
            }
        }
        return (level, model)
    }

    @Test(arguments: UInt64(1)...40)
    func randomOperationsAgreeWithABruteForceModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let tablesMax = 24
        var level = ManifestLevel<UInt64>(tablesMax: tablesMax)
        var model: [TableInfo] = []
        var nextAddress: UInt64 = 1
        for step in 0..<400 {
            let choice = prng.int(in: 0...99)
            if choice < 50 {
                let candidate = Self.randomTable(&prng, address: nextAddress)
                nextAddress += 1
                let conflicts = Self.modelConflicts(model, candidate, tablesMax: tablesMax)
                #expect((level.fault(inserting: candidate) == nil) == !conflicts, "seed \(seed) step \(step)")
                if !conflicts {
                    level.insert(candidate)
                    model.append(candidate)
                }
            } else if choice < 70, !model.isEmpty {
                let victim = model.remove(at: prng.int(in: 0...(model.count - 1)))
                let removed = level.remove(victim)
                #expect(removed == victim, "seed \(seed) step \(step)")
                #expect(!level.contains(victim), "seed \(seed) step \(step)")
            } else if choice < 85, !model.isEmpty {
                let position = prng.int(in: 0...(model.count - 1))
                let current = model[position]
                let ceiling = min(current.snapshotMax - 1, current.snapshotMin + 10)
                if current.snapshotMin + 1 <= ceiling {
                    let snapshotMax = UInt64(prng.int(in: Int(current.snapshotMin + 1)...Int(ceiling)))
                    let updated = level.updateSnapshotMax(current, to: snapshotMax)
                    model[position].snapshotMax = snapshotMax
                    #expect(updated == model[position], "seed \(seed) step \(step)")
                }
            }
            #expect(level.checkInvariants() == nil, "seed \(seed) step \(step)")
            #expect(level.count == model.count, "seed \(seed) step \(step)")
            #expect(level.liveCount == model.filter { $0.snapshotMax == TableInfo.snapshotMaxLive }.count, "seed \(seed)")
            checkQueries(level, model, &prng, seed: seed)
        }
    }

    func checkQueries(_ level: ManifestLevel<UInt64>, _ model: [TableInfo], _ prng: inout PRNG, seed: UInt64) {
        let snapshot = prng.chance(percent: 10) ? TableInfo.snapshotLatest : UInt64(prng.int(in: 0...20))
        let low = UInt64(prng.int(in: 0...220))
        let range = low...(low + UInt64(prng.int(in: 0...40)))
        let expected = Self.modelVisible(model, snapshot: snapshot, range: range)
        #expect(Array(level.tables(visibleAt: snapshot, overlapping: range)) == expected, "seed \(seed)")
        #expect(
            Array(level.tables(visibleAt: snapshot, overlapping: range, direction: .descending)) == expected.reversed(),
            "seed \(seed)")
        #expect(level.overlapCount(keyMin: range.lowerBound, keyMax: range.upperBound, snapshot: snapshot) == expected.count)
        let all = Self.modelVisible(model, snapshot: snapshot, range: nil)
        #expect(Array(level.tables(visibleAt: snapshot)) == all, "seed \(seed)")
        #expect(Array(level.tables(visibleAt: snapshot, direction: .descending)) == all.reversed(), "seed \(seed)")
        #expect(level.visibleCount(snapshot: snapshot) == all.count, "seed \(seed)")
        let key = UInt64(prng.int(in: 0...220))
        let holding = Self.modelVisible(model, snapshot: snapshot, range: key...key)
        #expect(holding.count <= 1, "tables visible at one snapshot are disjoint (seed \(seed))")
        #expect(level.table(containing: key, snapshot: snapshot) == holding.first, "seed \(seed)")
        for table in model.prefix(3) {
            #expect(level.contains(table), "seed \(seed)")
        }
    }

    @Test func storageIsSortedByKeyMinAndKeepsBothGenerationsOfACompaction() {
        var level = ManifestLevel<UInt64>(tablesMax: 8)
        let retired = Self.table(address: 1, keyMin: 0, keyMax: 100, snapshotMin: 1)
        level.insert(retired)
        level.updateSnapshotMax(retired, to: 10)
        let left = Self.table(address: 2, keyMin: 0, keyMax: 40, snapshotMin: 10)
        let right = Self.table(address: 3, keyMin: 41, keyMax: 100, snapshotMin: 10)
        level.insert(right)
        level.insert(left)
        #expect(level.checkInvariants() == nil)
        #expect(level.table(at: 0).address == 1, "equal key min: older snapshot min first")
        #expect(level.table(at: 1).address == 2)
        #expect(level.table(at: 2).address == 3)
        #expect(level.table(containing: 50, snapshot: 9)?.address == 1)
        #expect(level.table(containing: 50, snapshot: 10)?.address == 3)
        #expect(level.table(containing: 50, snapshot: TableInfo.snapshotLatest)?.address == 3)
        #expect(level.liveCount == 2)
        // The wide retired table does not hide the right table from a search near its end.
        #expect(Array(level.tables(visibleAt: 12, overlapping: 90...200)).map(\.address) == [3])
        // A table seen by snapshot 5 over the retired table's keys conflicts; at 10 it does not.
        #expect(level.fault(inserting: Self.table(address: 9, keyMin: 50, keyMax: 50, snapshotMin: 5, snapshotMax: 6)) != nil)
        #expect(
            level.fault(inserting: Self.table(address: 9, keyMin: 101, keyMax: 101, snapshotMin: 5))
                == nil)
        #expect(level.fault(inserting: left) == .duplicate(left.identity))
        let inverted = Self.table(address: 9, keyMin: 200, keyMax: 150)
        #expect(level.fault(inserting: inverted) == .keyRangeInverted(inverted.identity))
        let empty = Self.table(address: 9, keyMin: 200, keyMax: 250, snapshotMin: 4, snapshotMax: 4)
        #expect(level.fault(inserting: empty) == .snapshotRangeEmpty(empty.identity))
        level.remove(retired)
        #expect(level.checkInvariants() == nil)
        #expect(level.table(containing: 50, snapshot: 9) == nil)
    }

    @Test func aFullLevelRefusesAnotherTable() {
        var level = ManifestLevel<UInt64>(tablesMax: 2)
        level.insert(Self.table(address: 1, keyMin: 0, keyMax: 1))
        level.insert(Self.table(address: 2, keyMin: 2, keyMax: 3))
        #expect(level.isFull)
        #expect(level.fault(inserting: Self.table(address: 3, keyMin: 5, keyMax: 6)) == .levelFull(level: 0))
    }

    @Test func compactionTakesTheFewestOverlapsThenTheLowestKey() {
        var a = ManifestLevel<UInt64>(tablesMax: 8)
        var b = ManifestLevel<UInt64>(tablesMax: 8)
        for (address, range) in [(1, 0...9), (2, 20...29), (3, 40...49)] as [(UInt64, ClosedRange<UInt64>)] {
            a.insert(Self.table(address: address, keyMin: range.lowerBound, keyMax: range.upperBound))
        }
        for (address, range) in [(11, 5...21), (12, 25...26), (13, 45...46), (14, 47...48)] as [(UInt64, ClosedRange<UInt64>)] {
            b.insert(Self.table(address: address, keyMin: range.lowerBound, keyMax: range.upperBound, level: 1))
        }
        // Overlaps: [0,9] → 1, [20,29] → 2, [40,49] → 2.
        let choice = a.chooseCompaction(into: b, snapshot: 5)
        #expect(choice?.table.address == 1)
        #expect(choice?.overlapCount == 1)
        #expect(choice?.keyMin == 0)
        #expect(choice?.keyMax == 21)
        #expect(choice?.isMove == false)

        // Retire [5,21] at snapshot 6: at 6, [0,9] overlaps nothing and moves.
        b.updateSnapshotMax(Self.table(address: 11, keyMin: 5, keyMax: 21), to: 6)
        let move = a.chooseCompaction(into: b, snapshot: 6)
        #expect(move?.table.address == 1)
        #expect(move?.isMove == true)
        #expect(move?.keyMin == 0 && move?.keyMax == 9)
        #expect(a.chooseCompaction(into: b, snapshot: 5)?.table.address == 1, "older snapshots keep their view")

        // Equal counts: the lowest key min wins.
        var c = ManifestLevel<UInt64>(tablesMax: 8)
        c.insert(Self.table(address: 21, keyMin: 8, keyMax: 8))
        c.insert(Self.table(address: 22, keyMin: 28, keyMax: 28))
        c.insert(Self.table(address: 23, keyMin: 48, keyMax: 48))
        let tie = a.chooseCompaction(into: c, snapshot: 7)
        #expect(tie?.table.address == 1)
        #expect(tie?.overlapCount == 1)
        #expect(ManifestLevel<UInt64>(tablesMax: 1).chooseCompaction(into: c, snapshot: 7) == nil)
    }

    @Test(arguments: UInt64(1)...40)
    func compactionChoiceAgreesWithABruteForceModel(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let (a, modelA) = Self.randomLevel(&prng, tablesMax: 16, attempts: 40, addressBase: 1, keySpace: 300, width: 20)
        let (b, modelB) = Self.randomLevel(&prng, tablesMax: 32, attempts: 80, addressBase: 1000, keySpace: 300, width: 30)
        for snapshot in [UInt64(0), 3, 6, 9, 12, 15, TableInfo.snapshotLatest] {
            let candidates = Self.modelVisible(modelA, snapshot: snapshot, range: nil)
            var best: (table: TableInfo, count: Int, keyMin: UInt64, keyMax: UInt64)? = nil
            for table in candidates {
                let range = table.keyMin(as: UInt64.self)...table.keyMax(as: UInt64.self)
                let below = Self.modelVisible(modelB, snapshot: snapshot, range: range)
                if best == nil || below.count < best!.count {
                    let keyMin = min(range.lowerBound, below.first?.keyMin(as: UInt64.self) ?? .max)
                    let keyMax = max(range.upperBound, below.last?.keyMax(as: UInt64.self) ?? 0)
                    best = (table, below.count, keyMin, keyMax)
                }
            }
            let choice = a.chooseCompaction(into: b, snapshot: snapshot)
            #expect(choice?.table == best?.table, "seed \(seed) snapshot \(snapshot)")
            #expect(choice?.overlapCount == best?.count, "seed \(seed) snapshot \(snapshot)")
            #expect(choice?.keyMin == best?.keyMin, "seed \(seed) snapshot \(snapshot)")
            #expect(choice?.keyMax == best?.keyMax, "seed \(seed) snapshot \(snapshot)")
        }
    }

    @Test func keysCompareAsTheTreeKeyType() {
        // Composite keys order by field, then timestamp: not by their raw bytes.
        var level = ManifestLevel<CompositeKey64>(tablesMax: 4)
        func table(_ address: UInt64, _ low: CompositeKey64, _ high: CompositeKey64) -> TableInfo {
            TableInfo(
                treeId: 9, level: 0, keyMin: low, keyMax: high, index: BlockReference(address: address, checksum: 1),
                snapshotMin: 1, valueCount: 1)
        }
        level.insert(table(1, CompositeKey64(field: 2, timestamp: 0), CompositeKey64(field: 2, timestamp: 500)))
        level.insert(table(2, CompositeKey64(field: 1, timestamp: 900), CompositeKey64(field: 1, timestamp: 1000)))
        level.insert(table(3, CompositeKey64(field: 256, timestamp: 1), CompositeKey64(field: 256, timestamp: 2)))
        #expect(level.checkInvariants() == nil)
        #expect((0..<3).map { level.table(at: $0).address } == [2, 1, 3])
        #expect(level.table(containing: CompositeKey64(field: 2, timestamp: 100), snapshot: 5)?.address == 1)
        #expect(level.table(containing: CompositeKey64(field: 1, timestamp: 100), snapshot: 5) == nil)
    }
}

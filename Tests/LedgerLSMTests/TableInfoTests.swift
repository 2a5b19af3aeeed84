import LedgerKit
import LedgerLSM
import Testing

@Suite struct TableInfoTests {
    @Test func layoutMatchesTheDocumentedOffsets() {
        #expect(MemoryLayout<TableInfo>.size == 128)
        #expect(MemoryLayout<TableInfo>.stride == 128)
        #expect(MemoryLayout<TableInfo>.alignment == 16)
        #expect(TableInfo.size == 128)
        #expect(MemoryLayout<TableInfo>.offset(of: \.keyMin) == 0)
        #expect(MemoryLayout<TableInfo>.offset(of: \.keyMax) == 32)
        #expect(MemoryLayout<TableInfo>.offset(of: \.checksum) == 64)
        #expect(MemoryLayout<TableInfo>.offset(of: \.address) == 80)
        #expect(MemoryLayout<TableInfo>.offset(of: \.snapshotMin) == 88)
        #expect(MemoryLayout<TableInfo>.offset(of: \.snapshotMax) == 96)
        #expect(MemoryLayout<TableInfo>.offset(of: \.valueCount) == 104)
        #expect(MemoryLayout<TableInfo>.offset(of: \.treeId) == 108)
        #expect(MemoryLayout<TableInfo>.offset(of: \.level) == 110)
        #expect(MemoryLayout<TableInfo>.offset(of: \.eventCode) == 111)
        #expect(MemoryLayout<TableInfo>.offset(of: \.reserved) == 112)
        #expect(MemoryLayout<TableKeyBytes>.size == 32)
        #expect(MemoryLayout<TableKeyBytes>.stride == 32)
    }

    @Test func everyByteBelongsToAField() {
        // All fields at their maximum: if any byte were hidden padding it would stay zero.
        var info = TableInfo(
            treeId: .max, level: .max, keyMin: (UInt128.max, UInt128.max), keyMax: (UInt128.max, UInt128.max),
            index: BlockReference(address: .max, checksum: .max), snapshotMin: .max, snapshotMax: .max,
            valueCount: .max)
        info.eventCode = .max
        info.reserved = .max
        withUnsafeBytes(of: info) { bytes in
            #expect(bytes.count == 128)
            #expect(bytes.allSatisfy { $0 == 0xFF })
        }
    }

    @Test func fieldsAreLittleEndianAtTheirOffsets() {
        let info = TableInfo(
            treeId: 0x0102, level: 3, keyMin: UInt64(0x1122), keyMax: UInt64(0x3344),
            index: BlockReference(address: 0x55, checksum: 0x66), snapshotMin: 0x77, snapshotMax: 0x88,
            valueCount: 0x99, event: .remove)
        withUnsafeBytes(of: info) { bytes in
            #expect(bytes[0] == 0x22 && bytes[1] == 0x11 && bytes[2] == 0)
            #expect(bytes[32] == 0x44 && bytes[33] == 0x33)
            #expect(bytes[64] == 0x66)
            #expect(bytes[80] == 0x55)
            #expect(bytes[88] == 0x77)
            #expect(bytes[96] == 0x88)
            #expect(bytes[104] == 0x99)
            #expect(bytes[108] == 0x02 && bytes[109] == 0x01)
            #expect(bytes[110] == 3)
            #expect(bytes[111] == TableEvent.remove.rawValue)
            #expect(bytes[112..<128].allSatisfy { $0 == 0 })
        }
    }

    @Test func keysRoundTripZeroPadded() {
        let small = TableKeyBytes(UInt64(0xDEAD_BEEF))
        #expect(small.load(as: UInt64.self) == 0xDEAD_BEEF)
        #expect(small.isZeroPadded(keySize: 8))
        #expect(!small.isZeroPadded(keySize: 0))
        let wide = CompositeKey128(field: UInt128.max - 5, timestamp: 77)
        let bytes = TableKeyBytes(wide)
        #expect(bytes.load(as: CompositeKey128.self) == wide)
        #expect(bytes.isZeroPadded(keySize: 32))
        let composite = CompositeKey64(field: 9, timestamp: 10)
        let info = TableInfo(
            treeId: 9, level: 0, keyMin: composite, keyMax: CompositeKey64(field: 9, timestamp: 20),
            index: BlockReference(address: 1, checksum: 2), snapshotMin: 1, valueCount: 1)
        #expect(info.keyMin(as: CompositeKey64.self) == composite)
        #expect(info.keyMax(as: CompositeKey64.self).timestamp == 20)
        #expect(info.keyMin.isZeroPadded(keySize: 16))
        #expect(info.index == BlockReference(address: 1, checksum: 2))
        #expect(info.snapshotMax == TableInfo.snapshotMaxLive)
        #expect(info.event == .insert)
    }

    @Test func visibilityIsHalfOpen() {
        let info = table(keyMin: 0, keyMax: 1, snapshotMin: 10, snapshotMax: 20)
        #expect(!info.isVisible(snapshot: 9))
        #expect(info.isVisible(snapshot: 10))
        #expect(info.isVisible(snapshot: 19))
        #expect(!info.isVisible(snapshot: 20))
        let live = table(keyMin: 0, keyMax: 1, snapshotMin: 10, snapshotMax: TableInfo.snapshotMaxLive)
        #expect(live.isVisible(snapshot: TableInfo.snapshotLatest))
        #expect(!info.isVisible(snapshot: TableInfo.snapshotLatest))
        // A compaction at 20: the retired input and its output are never both, never neither.
        let output = table(keyMin: 0, keyMax: 1, snapshotMin: 20, snapshotMax: TableInfo.snapshotMaxLive)
        for snapshot in UInt64(10)..<30 {
            #expect(info.isVisible(snapshot: snapshot) != output.isVisible(snapshot: snapshot))
        }
        #expect(!info.sharesSnapshots(with: output))
        #expect(info.sharesSnapshots(with: table(keyMin: 5, keyMax: 6, snapshotMin: 19, snapshotMax: 21)))
        #expect(!info.sharesSnapshots(with: table(keyMin: 5, keyMax: 6, snapshotMin: 0, snapshotMax: 10)))
    }

    @Test func overlapComparesAsTheKeyType() {
        let a = table(keyMin: 10, keyMax: 20)
        #expect(a.overlaps(table(keyMin: 20, keyMax: 30), as: UInt64.self))
        #expect(a.overlaps(table(keyMin: 0, keyMax: 10), as: UInt64.self))
        #expect(a.overlaps(table(keyMin: 12, keyMax: 13), as: UInt64.self))
        #expect(!a.overlaps(table(keyMin: 21, keyMax: 30), as: UInt64.self))
        #expect(!a.overlaps(table(keyMin: 0, keyMax: 9), as: UInt64.self))
        // 256 and 1 compare 256 > 1 as integers, though byte 0 of 256 (0x00) is below 0x01.
        let high = table(keyMin: 256, keyMax: 300)
        #expect(!high.overlaps(table(keyMin: 1, keyMax: 255), as: UInt64.self))
        #expect(TableInfo.rangesOverlap(1, 5, 5, 9))
        #expect(!TableInfo.rangesOverlap(1, 4, 5, 9))
    }

    @Test func identityIgnoresWhatChangesOverALife() {
        let a = table(keyMin: 1, keyMax: 2, address: 7)
        var b = a
        b.level = 3
        b.snapshotMax = 40
        b = b.with(event: .update)
        #expect(a.isSameTable(as: b))
        #expect(a.identity == b.identity)
        #expect(a != b)
        var other = a
        other.checksum &+= 1
        #expect(!a.isSameTable(as: other), "a reused address with another checksum is another table")
        var otherTree = a
        otherTree.treeId = 2
        #expect(!a.isSameTable(as: otherTree))
        var broken = a
        broken.eventCode = 0
        #expect(broken.event == nil)
        broken.eventCode = 4
        #expect(broken.event == nil)
    }

    private func table(
        keyMin: UInt64, keyMax: UInt64, snapshotMin: UInt64 = 1, snapshotMax: UInt64 = TableInfo.snapshotMaxLive,
        address: UInt64 = 1
    ) -> TableInfo {
        TableInfo(
            treeId: 1, level: 0, keyMin: keyMin, keyMax: keyMax,
            index: BlockReference(address: address, checksum: UInt128(address) &* 7919), snapshotMin: snapshotMin,
            snapshotMax: snapshotMax, valueCount: 1)
    }
}

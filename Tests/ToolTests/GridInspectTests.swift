import Foundation
import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

/// `ledger-inspect grid --block=A` decodes every block type the forest writes: a value block, an
/// index block naming it, and a manifest log block naming the table, written into the grid zone
/// of a real data file.
@Suite struct GridInspectTests {
    static let layout = DataFileLayout(.production)

    @Test func decodesValueIndexAndManifestBlocks() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/grid.ledger"
        try Fixture.format(path, extra: ["--size=\(Self.layout.sizeMin + 4 * 512 * 1024)"])
        let blockSize = Self.layout.configuration.blockSize

        let valueBlock = AlignedBuffer(count: blockSize)
        let values = ValueBlock<CompositeKey64>.body(of: valueBlock.bytes)
        for index in 0..<10 { values[index] = CompositeKey64(field: 5, timestamp: UInt64(100 + index)) }
        let valueReference = ValueBlock<CompositeKey64>.seal(
            block: valueBlock.bytes, treeId: TreeId.transfersLedger.rawValue, valueCount: 10, address: 1, snapshot: 3)

        let indexBlock = AlignedBuffer(count: blockSize)
        let keysMin = [CompositeKey64(field: 5, timestamp: 100)]
        let keysMax = [CompositeKey64(field: 5, timestamp: 109)]
        let references = [valueReference]
        let indexReference = keysMin.withUnsafeBufferPointer { minima in
            keysMax.withUnsafeBufferPointer { maxima in
                references.withUnsafeBufferPointer { refs in
                    IndexBlock<CompositeKey64>.seal(
                        block: indexBlock.bytes, treeId: TreeId.transfersLedger.rawValue, keysMin: minima,
                        keysMax: maxima, references: refs, valueCount: 10, snapshotMin: 4, address: 2, snapshot: 3)
                }
            }
        }

        let manifestBlock = AlignedBuffer(count: blockSize)
        let table = TableInfo(
            treeId: TreeId.transfersLedger.rawValue, level: 0, keyMin: keysMin[0], keyMax: keysMax[0],
            index: indexReference, snapshotMin: 4, valueCount: 10, event: .insert)
        _ = ManifestLogBlock.encode([table], into: manifestBlock.bytes, previous: .null, address: 3, snapshot: 3)

        for (address, block) in [(UInt64(1), valueBlock), (2, indexBlock), (3, manifestBlock)] {
            let offset = Self.layout.offset(of: .grid) + Self.layout.gridBlockOffset(address: address)
            try Fixture.writeBytes(path, offset: offset, bytes: Array(block.bytes))
        }

        let value = try Tools.inspect([path, "grid", "--block=1"])
        #expect(value.exited(0), "\(value.summary)")
        #expect(value.stdout.contains("value block: tree 16 (transfersLedger), 10 values of 16 bytes"), "\(value.stdout)")

        let index = try Tools.inspect([path, "grid", "--block=2"])
        #expect(index.exited(0), "\(index.summary)")
        #expect(index.stdout.contains("index block: tree 16 (transfersLedger), 1 value blocks, 10 values"), "\(index.stdout)")
        #expect(index.stdout.contains("value block 0: address 1"), "\(index.stdout)")

        let manifest = try Tools.inspect([path, "grid", "--block=3", "--json"])
        #expect(manifest.exited(0), "\(manifest.summary)")
        let document = try InspectDocument(manifest)
        let block = try field(document.section("grid"), "block", as: [String: Any].self)
        let state = try field(block, "state", as: [String: Any].self)
        let decoded = try field(state, "decoded", as: [String: Any].self)
        #expect(try field(decoded, "entry_count", as: Int.self) == 1)
        let entries = try field(decoded, "entries", as: [[String: Any]].self)
        #expect(try field(entries[0], "index_address", as: Int.self) == 2)
        #expect(try field(entries[0], "tree_id", as: Int.self) == 16)
    }
}

// The data-file layout, the storage configuration and the 256-byte header layouts, checked
// against numbers copied from the specs (storage-and-consensus.md §1, §3, §12; wire-protocol.md
// §4.1), never derived from the source.

import Testing

@testable import LedgerKit

@Suite struct DataFileLayoutTests {
    @Test func productionZonesMatchTheSpec() {
        let layout = DataFileLayout(.production)
        #expect(layout.size(of: .superblock) == 96 * 1024)
        #expect(layout.size(of: .walHeaders) == 256 * 1024)
        #expect(layout.size(of: .walPrepares) == 1 << 30)
        #expect(layout.size(of: .clientReplies) == 64 << 20)
        #expect(layout.size(of: .gridPadding) == 160 * 1024)
        #expect(layout.sizeMin == 1_141_374_976, "spec §1: minimum file size")
        #expect(layout.offset(of: .superblock) == 0)
        #expect(layout.offset(of: .walHeaders) == 96 * 1024)
        #expect(layout.offset(of: .grid) % UInt64(512 * 1024) == 0, "the grid starts on a block")
        #expect(layout.size(of: .grid) == 16 << 40, "16 TiB default storage limit")
    }

    @Test func zonesAreContiguousAndAligned() {
        for configuration in [StorageConfiguration.production, .testing] {
            let layout = DataFileLayout(configuration)
            var expected: UInt64 = 0
            for zone in Zone.allCases {
                #expect(layout.offset(of: zone) == expected, "\(zone) follows the previous zone")
                #expect(layout.offset(of: zone) % UInt64(Constants.sectorSize) == 0)
                expected += layout.size(of: zone)
            }
            #expect(layout.offset(of: .grid) % UInt64(configuration.blockSize) == 0)
            #expect(layout.sizeMax == expected)
        }
    }

    @Test func slotOffsets() {
        let layout = DataFileLayout(.production)
        #expect(layout.walPrepareOffset(slot: 3) == 3 << 20)
        #expect(layout.walHeaderSectorOffset(slot: 15) == 0, "16 headers per sector")
        #expect(layout.walHeaderSectorOffset(slot: 16) == 4096)
        #expect(layout.clientReplyOffset(slot: 2) == 2 << 20)
        #expect(layout.superblockCopyOffset(copy: 3) == 3 * 24 * 1024)
        #expect(layout.gridBlockOffset(address: 1) == 0, "address 1 is the first block")
        #expect(layout.gridBlockOffset(address: 3) == 2 * 512 * 1024)
    }

    @Test func ioValidity() {
        let layout = DataFileLayout(.testing)
        #expect(layout.isValidIO(zone: .walHeaders, offset: 0, length: 4096))
        #expect(!layout.isValidIO(zone: .walHeaders, offset: 0, length: 0), "empty IO")
        #expect(!layout.isValidIO(zone: .walHeaders, offset: 512, length: 4096), "unaligned offset")
        #expect(!layout.isValidIO(zone: .walHeaders, offset: 0, length: 100), "unaligned length")
        let size = layout.size(of: .walHeaders)
        #expect(layout.isValidIO(zone: .walHeaders, offset: size - 4096, length: 4096))
        #expect(!layout.isValidIO(zone: .walHeaders, offset: size, length: 4096), "past the zone")
        #expect(!layout.isValidIO(zone: .grid, offset: UInt64.max - 4095, length: 8192), "overflow")
    }
}

@Suite struct StorageConfigurationTests {
    @Test func productionCheckpointGeometryMatchesTheSpec() {
        let configuration = StorageConfiguration.production
        #expect(configuration.vsrCheckpointOps == 960)
        #expect(configuration.checkpointAfter(0) == 959)
        #expect(configuration.checkpointAfter(959) == 1919)
        #expect(configuration.checkpointTrigger(after: 0) == 991)
        #expect(configuration.opPrepareMax(checkpoint: 0) == 1007)
        #expect(configuration.opPrepareOkMax(checkpoint: 0) == 999)
        #expect(configuration.journalWritesMax == 32)
        #expect(configuration.walHeaderSectorCount == 64)
    }

    @Test func testingConfigurationIsSmallButConsistent() {
        let configuration = StorageConfiguration.testing
        #expect(configuration.vsrCheckpointOps == 20)
        #expect(configuration.checkpointAfter(0) == 19)
        #expect(configuration.opPrepareMax(checkpoint: 0) == 31)
        #expect(configuration.opPrepareMax(checkpoint: 19) - 19 <= 32)
        #expect(configuration.journalWritesMax == 1, "fewer writes than the two header sectors")
        #expect(DataFileLayout(configuration).sizeMax < 64 << 20, "a test data file stays small")
    }
}

@Suite struct HeaderLayoutTests {
    @Test func frameMatchesWireSpec() {
        #expect(MemoryLayout<HeaderFrame>.size == 128)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.checksum) == 0)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.checksumBody) == 32)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.nonceReserved) == 64)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.cluster) == 80)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.size) == 96)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.epoch) == 100)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.view) == 104)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.release) == 108)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.protocol) == 112)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.command) == 114)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.replica) == 115)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.reservedFrame0) == 116)
    }

    @Test func headersAre256Bytes() {
        #expect(MemoryLayout<Header>.size == 256)
        #expect(MemoryLayout<PrepareHeader>.size == 256)
        #expect(MemoryLayout<BlockHeader>.size == 256)
        #expect(MemoryLayout<PrepareHeader>.offset(of: \.parent) == 128)
        #expect(MemoryLayout<PrepareHeader>.offset(of: \.op) == 208)
        #expect(MemoryLayout<PrepareHeader>.offset(of: \.operation) == 236)
        #expect(MemoryLayout<BlockHeader>.offset(of: \.address) == 224)
        #expect(MemoryLayout<BlockHeader>.offset(of: \.blockType) == 240)
    }

    @Test func sealAndVerify() {
        var header = PrepareHeader()
        header.frame.cluster = 9
        header.op = 5
        var body: [UInt8] = Array(repeating: 7, count: 300)
        header.frame.size = UInt32(256 + body.count)
        body.withUnsafeBytes { header.seal(body: $0) }
        #expect(header.isChecksumValid)
        #expect(body.withUnsafeBytes { header.isBodyValid($0) })
        body[299] = 8
        #expect(!body.withUnsafeBytes { header.isBodyValid($0) }, "a changed body fails")
        var tampered = header
        tampered.op = 6
        #expect(!tampered.isChecksumValid, "a changed header fails")
        let untyped = header.untyped
        #expect(untyped.command == .prepare)
        #expect(untyped.asPrepare == header)
    }

    @Test func reservedAndRootHeaders() {
        let reserved = PrepareHeader.reserved(cluster: 3, slot: 17)
        #expect(reserved.isChecksumValid)
        #expect(reserved.isReserved)
        #expect(reserved.op == 17)
        #expect(reserved.frame.checksumBody == ChecksumConstants.empty)
        #expect(reserved.hasZeroPadding)
        let root = PrepareHeader.root(cluster: 3, release: 1)
        #expect(root.isChecksumValid)
        #expect(!root.isReserved)
        #expect(root.op == 0)
        #expect(root != PrepareHeader.root(cluster: 4, release: 1), "the cluster is in the root")
    }
}

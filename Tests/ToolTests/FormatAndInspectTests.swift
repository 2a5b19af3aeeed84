import Foundation
import LedgerKit
import LedgerVSR
import Testing

/// A fresh data file, made by the real `ledger-format` on a regular file and on a loop device,
/// reads back healthy in every section of the real `ledger-inspect`, and is never formatted
/// twice.
@Suite struct FormatAndInspectTests {
    /// A cluster id beyond 64 bits, given in hex: the superblock must carry all 128 bits.
    static let clusterHex = "0xA1B2C3D4E5F60718293A4B5C6D7E8F90"
    static let cluster: UInt128 = 0xA1B2_C3D4_E5F6_0718_293A_4B5C_6D7E_8F90

    @Test func formatRegularFileThenInspectEverySection() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/replica1.ledger"

        let formatted = try Fixture.format(path, cluster: Self.clusterHex, replica: 1, replicaCount: 3)
        #expect(formatted.stdout.isEmpty, "\(formatted.summary)")
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(UInt64(status.st_size) == Fixture.layout.sizeMin, "the default size is the minimum")

        try expectHealthyFormat(path, replica: 1, replicaCount: 3, blockDevice: false)

        // Formatting again: refused, one line, and not a byte changed.
        let before = try Fixture.fingerprint(path)
        let again = try Tools.format(["--cluster=1", "--replica=0", "--replica-count=1", path])
        #expect(!again.signaled && again.status != 0, "\(again.summary)")
        #expect(again.stderrLines.count == 1, "\(again.summary)")
        #expect(again.stderr.hasPrefix("ledger-format: error: "), "\(again.summary)")
        #expect(again.stderr.contains("already exists"), "\(again.summary)")
        #expect(again.stdout.isEmpty, "\(again.summary)")
        #expect(try Fixture.fingerprint(path) == before, "a refused format leaves the file unchanged")
        #expect(stat(path, &status) == 0)
        #expect(UInt64(status.st_size) == Fixture.layout.sizeMin)
    }

    @Test func formatWithExplicitSizePreallocatesIt() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/sized.ledger"
        let size = Fixture.layout.sizeMin + 4 * UInt64(Fixture.layout.configuration.blockSize)
        try Fixture.format(path, extra: ["--size=\(size)"])
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(UInt64(status.st_size) == size)
        let grid = try Tools.inspect([path, "grid", "--json"])
        #expect(grid.exited(0), "\(grid.summary)")
        let section = try InspectDocument(grid).section("grid")
        #expect(try field(section, "blocks_in_file", as: Int.self) == 4)
    }

    @Test(.enabled(if: LoopDevice.isAvailable, LoopDevice.unavailableReason))
    func formatLoopDeviceThenRefuseToFormatItAgain() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let loop = try LoopDevice.attach(
            backingPath: "\(directory)/loop.img", sizeBytes: Fixture.layout.sizeMin + (4 << 20))
        defer { loop.detach() }

        let formatted = try Fixture.format(loop.devicePath, cluster: Self.clusterHex, replica: 1, replicaCount: 3)
        #expect(formatted.stderr.contains("block device"), "\(formatted.summary)")

        let text = try Tools.inspect([loop.devicePath, "superblock"])
        #expect(text.exited(0), "\(text.summary)")
        #expect(text.stdout.hasPrefix("\(loop.devicePath): block device"), "\(text.summary)")
        try expectHealthyFormat(loop.devicePath, replica: 1, replicaCount: 3, blockDevice: true)

        // The device now holds a superblock: format must refuse it rather than zero it.
        let before = try Fixture.fingerprint(loop.devicePath)
        let again = try Tools.format(["--cluster=1", "--replica=0", "--replica-count=1", loop.devicePath])
        #expect(!again.signaled && again.status != 0, "\(again.summary)")
        #expect(again.stderrLines.count == 1, "\(again.summary)")
        #expect(again.stderr.hasPrefix("ledger-format: error: "), "\(again.summary)")
        #expect(again.stderr.contains("not zeroed"), "\(again.summary)")
        #expect(try Fixture.fingerprint(loop.devicePath) == before, "a refused format leaves the device unchanged")
        let still = try Tools.inspect([loop.devicePath, "superblock", "--json"])
        #expect(still.exited(0), "\(still.summary)")
    }

    /// Every section of a freshly formatted file, text and JSON: 4 valid copies of sequence 1
    /// with the given identity, no bad WAL slot, empty replies, an empty grid block.
    private func expectHealthyFormat(
        _ path: String, replica: Int, replicaCount: Int, blockDevice: Bool,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        // superblock, text
        let text = try Tools.inspect([path, "superblock"])
        #expect(text.exited(0), "\(text.summary)", sourceLocation: sourceLocation)
        for copy in 0..<Constants.superblockCopies {
            #expect(text.stdout.contains("copy \(copy): ok sequence=1 "), "\(text.summary)", sourceLocation: sourceLocation)
        }
        #expect(text.stdout.contains("quorum: sequence 1, 4 of 4 copies; all copies agree"), "\(text.summary)", sourceLocation: sourceLocation)
        #expect(text.stdout.contains("cluster: \(Self.cluster)"), "\(text.summary)", sourceLocation: sourceLocation)
        #expect(text.stdout.contains("replica: \(replica) of \(replicaCount) "), "\(text.summary)", sourceLocation: sourceLocation)

        // superblock, JSON
        let json = try Tools.inspect([path, "superblock", "--json"])
        #expect(json.exited(0), "\(json.summary)", sourceLocation: sourceLocation)
        let document = try InspectDocument(json)
        #expect(try document.isHealthy, sourceLocation: sourceLocation)
        #expect(try document.isBlockDevice == blockDevice, sourceLocation: sourceLocation)
        let superblock = try SuperblockReport(document)
        #expect(superblock.validSlots == [0, 1, 2, 3], sourceLocation: sourceLocation)
        #expect(superblock.copies.allSatisfy { $0.sequence == 1 }, sourceLocation: sourceLocation)
        #expect(superblock.repairSlots == [], sourceLocation: sourceLocation)
        let working = try #require(superblock.working, sourceLocation: sourceLocation)
        #expect(try field(working, "sequence", as: Int.self) == 1, sourceLocation: sourceLocation)
        #expect(try field(working, "cluster", as: String.self) == String(Self.cluster), sourceLocation: sourceLocation)
        #expect(try field(working, "replica_count", as: Int.self) == replicaCount, sourceLocation: sourceLocation)
        let members = try field(working, "members", as: [String].self)
        let replicaId = try field(working, "replica_id", as: String.self)
        #expect(members.count == replicaCount, sourceLocation: sourceLocation)
        #expect(members.firstIndex(of: replicaId) == replica, "the replica id is member \(replica)", sourceLocation: sourceLocation)
        #expect(try field(working, "checkpoint_op", as: Int.self) == 0, sourceLocation: sourceLocation)

        // wal, text and JSON
        let walText = try Tools.inspect([path, "wal"])
        #expect(walText.exited(0), "\(walText.summary)", sourceLocation: sourceLocation)
        #expect(walText.stdout.contains("bad slots: none"), "\(walText.summary)", sourceLocation: sourceLocation)
        let walJSON = try Tools.inspect([path, "wal", "--json"])
        #expect(walJSON.exited(0), "\(walJSON.summary)", sourceLocation: sourceLocation)
        let wal = try WALReport(InspectDocument(walJSON))
        #expect(wal.badSlots == [], sourceLocation: sourceLocation)
        #expect(wal.slots.count == Fixture.layout.configuration.journalSlotCount, sourceLocation: sourceLocation)
        #expect(try wal.slot(0).recoveryCase == "@P", "slot 0 holds the root prepare twice", sourceLocation: sourceLocation)
        #expect(wal.slots.dropFirst().allSatisfy { $0.recoveryCase == "@L" && $0.decision == "nothing" }, sourceLocation: sourceLocation)

        // replies and one grid block
        for arguments in [["replies"], ["replies", "--json"], ["grid", "--block=1"], ["grid", "--block=1", "--json"]] {
            let result = try Tools.inspect([path] + arguments)
            #expect(result.exited(0), "\(result.summary)", sourceLocation: sourceLocation)
            #expect(!result.stdout.isEmpty, "\(result.summary)", sourceLocation: sourceLocation)
        }
    }
}

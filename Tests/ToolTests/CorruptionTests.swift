import Foundation
import LedgerKit
import LedgerVSR
import Testing

/// Damage made with the real `dd` on a formatted data file (regular file and loop device):
/// `ledger-inspect` shows exactly what is damaged and what a restart would do, and the
/// superblock and journal of a starting replica, run in-process on the same file, repair it so
/// that `ledger-inspect` then finds it healthy.
@Suite struct CorruptionTests {
    static let cluster: UInt128 = 7
    /// The damaged superblock copy and WAL slots.
    static let superblockCopy = 2
    static let headerSlot = 7
    static let prepareSlot = 9

    enum Target: String, CustomTestStringConvertible, Sendable {
        case regularFile, loopDevice
        var testDescription: String { rawValue }
    }

    // MARK: Superblock copy 2 and the redundant header of slot 7

    @Test func damagedSuperblockCopyAndHeaderShownOnRegularFile() throws {
        try withFormattedTarget(.regularFile) { path, directory in
            try damageSuperblockCopyAndHeader(path, directory: directory)
            try expectDamageShown(path)
        }
    }

    @Test(.enabled(if: LoopDevice.isAvailable, LoopDevice.unavailableReason))
    func damagedSuperblockCopyAndHeaderShownOnLoopDevice() throws {
        try withFormattedTarget(.loopDevice) { path, directory in
            try damageSuperblockCopyAndHeader(path, directory: directory)
            try expectDamageShown(path)
        }
    }

    @Test func recoveryRepairsRegularFile() throws {
        try withFormattedTarget(.regularFile) { path, directory in
            try damageSuperblockCopyAndHeader(path, directory: directory)
            try expectRecoveryRepairs(path)
        }
    }

    @Test(.enabled(if: LoopDevice.isAvailable, LoopDevice.unavailableReason))
    func recoveryRepairsLoopDevice() throws {
        try withFormattedTarget(.loopDevice) { path, directory in
            try damageSuperblockCopyAndHeader(path, directory: directory)
            try expectRecoveryRepairs(path)
        }
    }

    /// Flips one sector of superblock copy 2 and the 256 bytes of slot 7's redundant header.
    private func damageSuperblockCopyAndHeader(_ path: String, directory: String) throws {
        try Fixture.flipWithDD(
            path, sectorOffset: Fixture.superblockCopyOffset(Self.superblockCopy), scratchDirectory: directory)
        let header = Fixture.walHeaderOffset(slot: Self.headerSlot)
        let sectorStart = header / UInt64(Fixture.sector) * UInt64(Fixture.sector)
        let inSector = Int(header - sectorStart)
        try Fixture.flipWithDD(
            path, sectorOffset: sectorStart, bytes: inSector..<inSector + Constants.messageHeaderSize,
            scratchDirectory: directory)
    }

    private func expectDamageShown(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let superblockJSON = try Tools.inspect([path, "superblock", "--json"])
        #expect(superblockJSON.exited(1), "\(superblockJSON.summary)", sourceLocation: sourceLocation)
        let document = try InspectDocument(superblockJSON)
        #expect(try document.isHealthy == false, sourceLocation: sourceLocation)
        let superblock = try SuperblockReport(document)
        #expect(superblock.copies.count == Constants.superblockCopies, sourceLocation: sourceLocation)
        #expect(superblock.copies.first { $0.slot == Self.superblockCopy }?.isValid == false, sourceLocation: sourceLocation)
        #expect(superblock.validSlots == [0, 1, 3], sourceLocation: sourceLocation)
        #expect(superblock.repairSlots == [Self.superblockCopy], sourceLocation: sourceLocation)

        let superblockText = try Tools.inspect([path, "superblock"])
        #expect(superblockText.exited(1), "\(superblockText.summary)", sourceLocation: sourceLocation)
        #expect(superblockText.stdout.contains("copy 2: BAD"), "\(superblockText.summary)", sourceLocation: sourceLocation)
        #expect(superblockText.stdout.contains("copies to repair: 2"), "\(superblockText.summary)", sourceLocation: sourceLocation)

        let walJSON = try Tools.inspect([path, "wal", "--json"])
        #expect(walJSON.exited(1), "\(walJSON.summary)", sourceLocation: sourceLocation)
        let wal = try WALReport(InspectDocument(walJSON))
        #expect(wal.badSlots == [Self.headerSlot], sourceLocation: sourceLocation)
        let slot = try wal.slot(Self.headerSlot)
        #expect(slot.headerStatus == "corrupt", sourceLocation: sourceLocation)
        #expect(slot.prepareStatus == "reserved", sourceLocation: sourceLocation)
        #expect(slot.recoveryCase == "@D", sourceLocation: sourceLocation)
        #expect(slot.decision == "fix", "a solo replica fixes the header", sourceLocation: sourceLocation)
        #expect(wal.fixedCount == 1, sourceLocation: sourceLocation)
        #expect(wal.faultyCount == 0, sourceLocation: sourceLocation)

        let walText = try Tools.inspect([path, "wal", "--slot=\(Self.headerSlot)"])
        #expect(walText.exited(1), "\(walText.summary)", sourceLocation: sourceLocation)
        #expect(walText.stdout.contains("bad slots: \(Self.headerSlot)"), "\(walText.summary)", sourceLocation: sourceLocation)
        #expect(walText.stdout.contains("slot \(Self.headerSlot): @D fix"), "\(walText.summary)", sourceLocation: sourceLocation)
    }

    private func expectRecoveryRepairs(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // The damage is there before recovery (the same checks as above, briefly).
        let before = try SuperblockReport(InspectDocument(Tools.inspect([path, "superblock", "--json"])))
        #expect(before.repairSlots == [Self.superblockCopy], sourceLocation: sourceLocation)

        let outcome = try InProcessRecovery.run(path: path)
        #expect(outcome.superblock.sequence == 1, sourceLocation: sourceLocation)
        #expect(outcome.superblock.cluster == Self.cluster, sourceLocation: sourceLocation)
        #expect(outcome.superblock.vsrState.checkpoint.header.op == 0, sourceLocation: sourceLocation)
        #expect(outcome.superblock.vsrState.replicaCount == 1, sourceLocation: sourceLocation)
        #expect(outcome.superblockRepairWrites == 1, "one copy rewritten", sourceLocation: sourceLocation)
        #expect(outcome.superblockOpenReport?.copies[Self.superblockCopy].isValid == false, sourceLocation: sourceLocation)
        let recovery = try outcome.journal.get()
        #expect(recovery.slots[Self.headerSlot].recoveryCase == .headerCorruptPrepareReserved, sourceLocation: sourceLocation)
        #expect(recovery.slots[Self.headerSlot].decision == .fixHeaderFromPrepare, sourceLocation: sourceLocation)
        #expect(recovery.fixedCount == 1, sourceLocation: sourceLocation)
        #expect(recovery.opHead == 0, sourceLocation: sourceLocation)

        // The bytes on disk: slot 7's redundant header is the reserved header again.
        let header = try Fixture.readBytes(path, offset: Fixture.walHeaderOffset(slot: Self.headerSlot), count: Constants.messageHeaderSize)
        let expected = withUnsafeBytes(of: PrepareHeader.reserved(cluster: Self.cluster, slot: Self.headerSlot)) { Array($0) }
        #expect(header == expected, "recovery rewrote the header from the (reserved) prepare", sourceLocation: sourceLocation)

        let superblockJSON = try Tools.inspect([path, "superblock", "--json"])
        #expect(superblockJSON.exited(0), "\(superblockJSON.summary)", sourceLocation: sourceLocation)
        let superblock = try SuperblockReport(InspectDocument(superblockJSON))
        #expect(superblock.validSlots == [0, 1, 2, 3], sourceLocation: sourceLocation)
        #expect(superblock.repairSlots == [], sourceLocation: sourceLocation)
        #expect(superblock.copies.allSatisfy { $0.sequence == 1 }, sourceLocation: sourceLocation)

        let walJSON = try Tools.inspect([path, "wal", "--json"])
        #expect(walJSON.exited(0), "\(walJSON.summary)", sourceLocation: sourceLocation)
        let wal = try WALReport(InspectDocument(walJSON))
        #expect(wal.badSlots == [], sourceLocation: sourceLocation)
        #expect(try wal.slot(Self.headerSlot).recoveryCase == "@L", sourceLocation: sourceLocation)

        // A second start finds nothing to do.
        let second = try InProcessRecovery.run(path: path)
        #expect(second.superblockRepairWrites == 0, sourceLocation: sourceLocation)
        #expect(try second.journal.get().fixedCount == 0, sourceLocation: sourceLocation)
    }

    // MARK: The prepare of slot 9: a torn append past the head

    /// A corrupt prepare under a reserved header past the head (@B) is what a crash during the
    /// first append to that slot leaves: recovery truncates it (a solo replica can start) by
    /// writing the reserved entry into both rings, so `ledger-inspect` then shows a clean slot.
    @Test func corruptPrepareIsTruncatedAsATornAppend() throws {
        try withFormattedTarget(.regularFile) { path, directory in
            try Fixture.flipWithDD(
                path, sectorOffset: Fixture.walPrepareOffset(slot: Self.prepareSlot), scratchDirectory: directory)

            let superblock = try Tools.inspect([path, "superblock", "--json"])
            #expect(superblock.exited(0), "the superblock is untouched: \(superblock.summary)")

            try expectTornAppendShown(path)

            let outcome = try InProcessRecovery.run(path: path)
            let recovery = try outcome.journal.get()
            #expect(recovery.slots[Self.prepareSlot].recoveryCase == .prepareCorruptHeaderReserved)
            #expect(recovery.slots[Self.prepareSlot].decision == .truncate)
            #expect(recovery.slots[Self.prepareSlot].isTornAppend)
            #expect(recovery.truncatedCount == 1)
            #expect(recovery.faultyCount == 0)

            let walJSON = try Tools.inspect([path, "wal", "--json"])
            #expect(walJSON.exited(0), "\(walJSON.summary)")
            let wal = try WALReport(InspectDocument(walJSON))
            #expect(wal.badSlots == [])
            #expect(try wal.slot(Self.prepareSlot).recoveryCase == "@L")

            // A second start finds nothing to do.
            let second = try InProcessRecovery.run(path: path)
            #expect(try second.journal.get().truncatedCount == 0)
        }
    }

    private func expectTornAppendShown(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let walJSON = try Tools.inspect([path, "wal", "--json"])
        #expect(walJSON.exited(1), "\(walJSON.summary)", sourceLocation: sourceLocation)
        let wal = try WALReport(InspectDocument(walJSON))
        #expect(wal.badSlots == [Self.prepareSlot], sourceLocation: sourceLocation)
        let slot = try wal.slot(Self.prepareSlot)
        #expect(slot.headerStatus == "reserved", sourceLocation: sourceLocation)
        #expect(slot.prepareStatus == "corrupt", sourceLocation: sourceLocation)
        #expect(slot.recoveryCase == "@B", sourceLocation: sourceLocation)
        #expect(slot.decision == "truncate", sourceLocation: sourceLocation)
        #expect(slot.isTornAppend, sourceLocation: sourceLocation)
        #expect(wal.truncatedCount == 1, sourceLocation: sourceLocation)
        #expect(wal.faultyCount == 0, sourceLocation: sourceLocation)

        let walText = try Tools.inspect([path, "wal"])
        #expect(walText.exited(1), "\(walText.summary)", sourceLocation: sourceLocation)
        #expect(walText.stdout.contains("@B truncate (torn append)"), "\(walText.summary)", sourceLocation: sourceLocation)
    }

    // MARK: Targets

    /// Formats a solo replica (cluster 7) on a new regular file or loop device and runs `body`
    /// with its path and a scratch directory; removes everything afterwards.
    private func withFormattedTarget(_ target: Target, _ body: (_ path: String, _ directory: String) throws -> Void) throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        switch target {
        case .regularFile:
            let path = "\(directory)/data.ledger"
            try Fixture.format(path, cluster: String(Self.cluster))
            try body(path, directory)
        case .loopDevice:
            let loop = try LoopDevice.attach(
                backingPath: "\(directory)/loop.img", sizeBytes: Fixture.layout.sizeMin + (4 << 20))
            defer { loop.detach() }
            try Fixture.format(loop.devicePath, cluster: String(Self.cluster))
            try body(loop.devicePath, directory)
        }
    }
}

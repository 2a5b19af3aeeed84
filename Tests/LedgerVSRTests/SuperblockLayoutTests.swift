// The superblock's on-disk layout: sizes and offsets (the table in SuperblockHeader.swift), the
// checksum that ignores `copy`, and padding checks.

import LedgerKit
import Testing

@testable import LedgerVSR

private func expectOffset<Root, Value>(
    _ keyPath: KeyPath<Root, Value>, _ offset: Int, size: Int,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(MemoryLayout<Root>.offset(of: keyPath) == offset, "offset of \(keyPath)",
            sourceLocation: sourceLocation)
    #expect(MemoryLayout<Value>.size == size, "size of \(keyPath)", sourceLocation: sourceLocation)
}

@Suite struct SuperblockLayoutTests {
    @Test func sizes() {
        #expect(MemoryLayout<SuperblockHeader>.size == Constants.superblockHeaderSize)
        #expect(MemoryLayout<SuperblockHeader>.stride == 8192)
        #expect(MemoryLayout<VSRState>.size == 2048)
        #expect(MemoryLayout<CheckpointState>.size == 1024)
        #expect(MemoryLayout<TrailerReference>.size == 48)
        #expect(MemoryLayout<SuperblockViewHeaders>.size == 4096)
        #expect(SuperblockViewHeaders.capacity == Constants.viewHeadersMax)
        #expect(MemoryLayout<SuperblockMembers>.size == Constants.membersMax * 16)
    }

    @Test func headerOffsets() {
        expectOffset(\SuperblockHeader.checksum, 0, size: 16)
        expectOffset(\SuperblockHeader.checksumPadding, 16, size: 16)
        expectOffset(\SuperblockHeader.copy, SuperblockHeader.copyOffset, size: 2)
        expectOffset(\SuperblockHeader.version, 34, size: 2)
        expectOffset(\SuperblockHeader.releaseFormat, 36, size: 4)
        expectOffset(\SuperblockHeader.sequence, 40, size: 8)
        expectOffset(\SuperblockHeader.cluster, 48, size: 16)
        expectOffset(\SuperblockHeader.parent, 64, size: 16)
        expectOffset(\SuperblockHeader.vsrState, 80, size: 2048)
        expectOffset(\SuperblockHeader.reserved0, 2128, size: 48)
        expectOffset(\SuperblockHeader.reserved1, 2176, size: 896)
        expectOffset(\SuperblockHeader.reserved2, 3072, size: 1024)
        // The view headers fill the second sector exactly.
        expectOffset(\SuperblockHeader.viewHeaders, Constants.sectorSize, size: Constants.sectorSize)
    }

    @Test func vsrStateOffsets() {
        expectOffset(\VSRState.checkpoint, 0, size: 1024)
        expectOffset(\VSRState.replicaId, 1024, size: 16)
        expectOffset(\VSRState.members, 1040, size: 192)
        expectOffset(\VSRState.commitMax, 1232, size: 8)
        expectOffset(\VSRState.syncOpMin, 1240, size: 8)
        expectOffset(\VSRState.syncOpMax, 1248, size: 8)
        expectOffset(\VSRState.logView, 1256, size: 4)
        expectOffset(\VSRState.view, 1260, size: 4)
        expectOffset(\VSRState.replicaCount, 1264, size: 1)
        expectOffset(\VSRState.reserved0, 1265, size: 1)
        expectOffset(\VSRState.reserved1, 1266, size: 2)
        expectOffset(\VSRState.reserved2, 1268, size: 4)
        expectOffset(\VSRState.reserved3, 1272, size: 8)
        expectOffset(\VSRState.reserved4, 1280, size: 768)
    }

    @Test func checkpointStateOffsets() {
        expectOffset(\CheckpointState.header, 0, size: 256)
        expectOffset(\CheckpointState.parentCheckpointId, 256, size: 16)
        expectOffset(\CheckpointState.grandparentCheckpointId, 272, size: 16)
        expectOffset(\CheckpointState.freeSetAcquired, 288, size: 48)
        expectOffset(\CheckpointState.freeSetReleased, 336, size: 48)
        expectOffset(\CheckpointState.clientSessions, 384, size: 48)
        expectOffset(\CheckpointState.manifestOldestChecksum, 432, size: 16)
        expectOffset(\CheckpointState.manifestNewestChecksum, 448, size: 16)
        expectOffset(\CheckpointState.manifestOldestAddress, 464, size: 8)
        expectOffset(\CheckpointState.manifestNewestAddress, 472, size: 8)
        expectOffset(\CheckpointState.manifestBlockCount, 480, size: 4)
        expectOffset(\CheckpointState.release, 484, size: 4)
        expectOffset(\CheckpointState.storageSize, 488, size: 8)
        expectOffset(\CheckpointState.reserved0, 496, size: 16)
        expectOffset(\CheckpointState.reserved1, 512, size: 512)
        expectOffset(\TrailerReference.checksum, 0, size: 16)
        expectOffset(\TrailerReference.lastBlockChecksum, 16, size: 16)
        expectOffset(\TrailerReference.lastBlockAddress, 32, size: 8)
        expectOffset(\TrailerReference.size, 40, size: 8)
    }

    @Test func viewHeaderOffsets() {
        expectOffset(\SuperblockViewHeaders.headers, 0, size: Constants.viewHeadersMax * 256)
        expectOffset(\SuperblockViewHeaders.count, 2816, size: 4)
        expectOffset(\SuperblockViewHeaders.reserved0, 2820, size: 4)
        expectOffset(\SuperblockViewHeaders.reserved1, 2824, size: 8)
        expectOffset(\SuperblockViewHeaders.reserved2, 2832, size: 112)
        expectOffset(\SuperblockViewHeaders.reserved3, 2944, size: 128)
        expectOffset(\SuperblockViewHeaders.reserved4, 3072, size: 1024)
    }

    /// The view headers and the checkpoint embed `PrepareHeader`s, so their bytes are part of
    /// the superblock checksum: the header must have no implicit alignment gap (undefined bytes).
    @Test func embeddedPrepareHeaderHasNoHiddenPadding() {
        expectOffset(\PrepareHeader.request, 232, size: 4)
        expectOffset(\PrepareHeader.operation, 236, size: 1)
        expectOffset(\PrepareHeader.reserved0, 237, size: 1)
        expectOffset(\PrepareHeader.reserved1, 238, size: 2)
        expectOffset(\PrepareHeader.reserved2, 240, size: 4)
        expectOffset(\PrepareHeader.reserved4, 244, size: 4)
        expectOffset(\PrepareHeader.reserved3, 248, size: 8)
        #expect(MemoryLayout<PrepareHeader>.size == Constants.messageHeaderSize)
    }

    @Test func checksumIgnoresOnlyTheCopyField() {
        var header = SuperblockHeader(vsrState: VSRState(checkpoint: CheckpointState(header: PrepareHeader())))
        header.sequence = 9
        header.cluster = 5
        header.seal()
        #expect(header.isChecksumValid)
        // Equal to the one-shot checksum of bytes 16..<8192 with copy = 0.
        let oneShot = withUnsafeBytes(of: header) { checksum(UnsafeRawBufferPointer(rebasing: $0[16..<8192])) }
        #expect(header.checksum == oneShot)

        var copied = header
        copied.copy = 3
        #expect(copied.isChecksumValid, "copy is outside the checksum")
        #expect(copied.computeChecksum() == header.checksum)

        var changed = header
        changed.viewHeaders.reserved1 = 1
        #expect(!changed.isChecksumValid, "the second sector is covered")
        var changedFirst = header
        changedFirst.checksumPadding = 1
        #expect(!changedFirst.isChecksumValid, "bytes 16..<32 are covered")
        var changedVersion = header
        changedVersion.version = 2
        #expect(!changedVersion.isChecksumValid, "the bytes right after copy are covered")
    }

    @Test func paddingChecks() {
        var header = SuperblockHeader(vsrState: VSRState(checkpoint: CheckpointState(header: PrepareHeader())))
        #expect(header.hasZeroPadding)
        header.vsrState.reserved4.5.7 = 1
        #expect(!header.hasZeroPadding, "VSRState reserved")
        header.vsrState.reserved4.5.7 = 0
        header.vsrState.checkpoint.reserved1.3.0 = 1
        #expect(!header.hasZeroPadding, "CheckpointState reserved")
        header.vsrState.checkpoint.reserved1.3.0 = 0
        header.reserved2.7.7 = 1
        #expect(!header.hasZeroPadding, "header reserved, end of sector 0")
        header.reserved2.7.7 = 0
        header.viewHeaders.reserved4.0.0 = 1
        #expect(!header.hasZeroPadding, "view headers reserved")
        header.viewHeaders.reserved4.0.0 = 0
        #expect(header.hasZeroPadding)

        // An unused view-header slot must be zero, and the count within range.
        var views = SuperblockViewHeaders([SuperblockFixture.prepare(op: 4)])
        #expect(views.hasZeroPadding)
        views.headers.5.op = 1
        #expect(!views.hasZeroPadding, "unused slot")
        views.headers.5.op = 0
        views.count = UInt32(Constants.viewHeadersMax + 1)
        #expect(!views.hasZeroPadding, "count beyond capacity")
    }

    @Test func viewHeadersAndMembersRoundTrip() {
        var views = SuperblockViewHeaders()
        for op in 0..<UInt64(Constants.viewHeadersMax) { views.append(SuperblockFixture.prepare(op: 100 + op)) }
        #expect(views.count == UInt32(Constants.viewHeadersMax))
        #expect(views.all.map(\.op) == (0..<UInt64(Constants.viewHeadersMax)).map { 100 + $0 })
        #expect(views[3] == SuperblockFixture.prepare(op: 103))

        var state = VSRState(checkpoint: CheckpointState(header: PrepareHeader()))
        let members = Members.root(cluster: 3, replicaCount: 5)
        state.setMembers(members)
        #expect((0..<Constants.membersMax).map { state.member($0) } == members)
    }

    @Test func checkpointIdCoversTheWholeState() {
        let base = CheckpointState(header: SuperblockFixture.prepare(op: 7))
        var other = base
        #expect(base.id == other.id)
        other.clientSessions.size = 1
        #expect(base.id != other.id)
        other = base
        other.storageSize = 1
        #expect(base.id != other.id)
        let bytesChecksum = withUnsafeBytes(of: base) { checksum($0) }
        #expect(base.id == bytesChecksum)
    }
}

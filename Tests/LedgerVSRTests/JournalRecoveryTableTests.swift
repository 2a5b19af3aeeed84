import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

/// One test per case @A…@P of the recovery table: each builds the slot's state on the simulated
/// disk (real appends, then corruption, forged or stale entries, or a crash between the two
/// writes) and checks the case, the decision, the journal's state and what went back to disk.
@Suite struct JournalRecoveryTableTests {
    typealias F = JournalFixture

    func expectSlot(
        _ report: JournalRecovery, _ journal: Journal<SimulatedStorage>, slot: Int,
        _ expectedCase: JournalRecoveryCase, _ decision: JournalRecoveryDecision,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let found = report.slots[slot]
        #expect(found.recoveryCase == expectedCase,
                "slot \(slot): \(found.recoveryCase) instead of \(expectedCase)", sourceLocation: sourceLocation)
        #expect(found.decision == decision, "slot \(slot)", sourceLocation: sourceLocation)
        switch decision {
        case .repair:
            #expect(journal.isFaulty(slot: slot), sourceLocation: sourceLocation)
            #expect(journal.isDirty(slot: slot), sourceLocation: sourceLocation)
            #expect(journal.header(slot: slot) == nil, "a faulty slot loads no header",
                    sourceLocation: sourceLocation)
            #expect(journal.redundantHeader(slot: slot) == .corrupt(.headerChecksum),
                    "a faulty slot goes to disk as an invalid header", sourceLocation: sourceLocation)
        case .nothing, .fixHeaderFromPrepare, .truncate:
            #expect(!journal.isFaulty(slot: slot), sourceLocation: sourceLocation)
            #expect(!journal.isDirty(slot: slot), sourceLocation: sourceLocation)
        }
    }

    /// A solo replica's recovery error, and whether it left the header ring untouched.
    func soloRefusal(_ storage: SimulatedStorage, opCheckpoint: UInt64 = 0) -> (JournalError?, Bool) {
        let ring = Array(storage.bytes(zone: .walHeaders, offset: 0, count: 2 * Constants.sectorSize))
        let (journal, result) = F.recover(storage, opCheckpoint: opCheckpoint, replicaCount: 1)
        let untouched = ring == Array(storage.bytes(zone: .walHeaders, offset: 0, count: 2 * Constants.sectorSize))
        guard case .failure(let error)? = result else { return (nil, untouched) }
        #expect(!journal.isRecovered)
        return (error, untouched)
    }

    func corruptPrepare(_ storage: SimulatedStorage, slot: Int) {
        storage.corruptSector(zone: .walPrepares, offset: storage.layout.walPrepareOffset(slot: slot))
    }

    /// Ops 1…40 with checkpoint 19 (op_prepare_max 51), then op 41's first sector only lands in
    /// slot 9 (a torn append over op 9, the older wrap).
    func tornAppendOverOlderWrap(seed: UInt64) throws -> (SimulatedStorage, JournalTestChain) {
        var (storage, _, chain) = try F.storageWithOps(seed: seed, count: 40)
        let torn = chain.next(bodySize: 6_000)
        F.storePrepare(storage, slot: 9, torn.buffer, count: Constants.sectorSize)
        return (storage, chain)
    }

    @Test func caseA_bothCorrupt() throws {
        let (storage, _, _) = try F.storageWithOps(seed: 10, count: 8)
        F.corruptHeader(storage, slot: 5)
        corruptPrepare(storage, slot: 5)
        let (error, untouched) = soloRefusal(storage)
        #expect(error == .repairNeededButSolo(slots: [5]))
        #expect(untouched, "a refused recovery writes nothing")

        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 5, .prepareCorruptHeaderCorrupt, .repair)
        #expect(journal.prepareChecksum(slot: 5) == nil)
        #expect(report.faultyCount == 1)
        #expect(report.opHead == 8)
    }

    @Test func caseB_headerReservedPrepareCorrupt() throws {
        let (storage, _, _) = try F.storageWithOps(seed: 11, count: 8)
        F.storeHeader(storage, slot: 5, PrepareHeader.reserved(cluster: F.cluster, slot: 5))
        corruptPrepare(storage, slot: 5)
        #expect(soloRefusal(storage).0 == .repairNeededButSolo(slots: [5]))

        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 5, .prepareCorruptHeaderReserved, .repair)
        #expect(!report.slots[5].isTornAppend, "op 5 is below the head: it may be committed")
    }

    @Test func caseB_tornFirstWrapAppendIsTruncated() throws {
        var (storage, _, chain) = try F.storageWithOps(seed: 12, count: 8)
        let nine = chain.next(bodySize: 6_000)
        F.storePrepare(storage, slot: 9, nine.buffer, count: Constants.sectorSize)

        let (journal, report) = try F.recovered(storage, replicaCount: 1)
        expectSlot(report, journal, slot: 9, .prepareCorruptHeaderReserved, .truncate)
        #expect(report.slots[9].isTornAppend)
        #expect(report.truncatedCount == 1)
        #expect(report.opHead == 8)
        #expect(journal.header(slot: 9) == nil)
        #expect(F.headerOnDisk(storage, slot: 9) == .reserved)
        // The replica appends op 9 again, over the torn one.
        #expect(F.append(journal, nine))
        let (_, again) = try F.recovered(storage, replicaCount: 1)
        #expect(again.opHead == 9)
    }

    @Test func caseC_headerValidPrepareCorrupt() throws {
        let (storage, _, _) = try F.storageWithOps(seed: 13, count: 8)
        corruptPrepare(storage, slot: 5)
        #expect(soloRefusal(storage).0 == .repairNeededButSolo(slots: [5]))

        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 5, .prepareCorruptHeaderValid, .repair)
        #expect(report.opHead == 8)
    }

    @Test func caseC_tornAppendOverOlderWrapIsTruncated() throws {
        let (storage, _) = try tornAppendOverOlderWrap(seed: 14)
        let (journal, report) = try F.recovered(storage, opCheckpoint: 19, replicaCount: 1)
        expectSlot(report, journal, slot: 9, .prepareCorruptHeaderValid, .truncate)
        #expect(report.slots[9].isTornAppend)
        #expect(report.opHead == 40)
        #expect(journal.header(slot: 9) == nil, "neither the torn op 41 nor the overwritten op 9")
        #expect(F.headerOnDisk(storage, slot: 9) == .reserved, "truncated slots become reserved")
    }

    @Test func caseC_tornAppendIsNotTruncatedWhenTheHeadIsUncertain() throws {
        // Another fault past the head (a corrupt header over a valid prepare) could hide the
        // true head: repair everything, truncate nothing.
        let (storage, _) = try tornAppendOverOlderWrap(seed: 15)
        F.corruptHeader(storage, slot: 11)
        let (journal, report) = try F.recovered(storage, opCheckpoint: 19)
        expectSlot(report, journal, slot: 9, .prepareCorruptHeaderValid, .repair)
        expectSlot(report, journal, slot: 11, .headerCorruptPrepareBehind, .repair)
        #expect(report.truncatedCount == 0)
    }

    @Test func caseC_moreTornAppendsThanWritesInFlightAreNotTruncated() throws {
        var (storage, chain) = try tornAppendOverOlderWrap(seed: 16)
        let tenTorn = chain.next(bodySize: 6_000)
        F.storePrepare(storage, slot: 10, tenTorn.buffer, count: Constants.sectorSize)
        #expect(F.configuration.journalWritesMax == 1)
        let (journal, report) = try F.recovered(storage, opCheckpoint: 19)
        expectSlot(report, journal, slot: 9, .prepareCorruptHeaderValid, .repair)
        expectSlot(report, journal, slot: 10, .prepareCorruptHeaderValid, .repair)
        #expect(report.truncatedCount == 0)
    }

    @Test func caseD_headerCorruptPrepareReserved() throws {
        let (storage, _, _) = try F.storageWithOps(seed: 17, count: 8)
        F.corruptHeader(storage, slot: 20)
        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 20, .headerCorruptPrepareReserved, .repair)

        let (solo, soloReport) = try F.recovered(storage, replicaCount: 1)
        expectSlot(soloReport, solo, slot: 20, .headerCorruptPrepareReserved, .fixHeaderFromPrepare)
        #expect(solo.header(slot: 20) == nil)
        #expect(F.headerOnDisk(storage, slot: 20) == .reserved, "the header is rewritten")
    }

    @Test func caseE_headerCorruptPrepareBehindTheHead() throws {
        let (storage, prepares, _) = try F.storageWithOps(seed: 18, count: 8)
        let five = try #require(prepares[5])
        F.corruptHeader(storage, slot: 5)
        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 5, .headerCorruptPrepareBehind, .repair)
        #expect(journal.prepareChecksum(slot: 5) == five.checksum, "the intact prepare can still be served")
        #expect(F.readsIntact(journal, five))

        let (solo, soloReport) = try F.recovered(storage, replicaCount: 1)
        expectSlot(soloReport, solo, slot: 5, .headerCorruptPrepareBehind, .fixHeaderFromPrepare)
        #expect(solo.header(slot: 5) == five.header)
        #expect(F.headerOnDisk(storage, slot: 5) == .prepare(five.header))
    }

    @Test func caseF_headerCorruptPrepareAtTheHead() throws {
        let (storage, prepares, _) = try F.storageWithOps(seed: 19, count: 8)
        let eight = try #require(prepares[8])
        F.corruptHeader(storage, slot: 8)
        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 8, .headerCorruptPrepareAtMax, .fixHeaderFromPrepare)
        #expect(journal.header(slot: 8) == eight.header)
        #expect(report.fixedCount == 1)
        #expect(F.headerOnDisk(storage, slot: 8) == .prepare(eight.header), "the header is rewritten")
    }

    @Test func caseG_crashBetweenPrepareAndHeaderInTheFirstWrap() throws {
        var (storage, _, chain) = try F.storageWithOps(seed: 20, count: 8)
        let (writer, _) = try F.recovered(storage)
        let nine = chain.next()
        F.appendCrashingBeforeHeader(writer, nine)
        #expect(F.headerOnDisk(storage, slot: 9) == .reserved)

        let (journal, report) = try F.recovered(storage, replicaCount: 1)
        expectSlot(report, journal, slot: 9, .headerReservedPrepareValid, .fixHeaderFromPrepare)
        #expect(journal.header(slot: 9) == nine.header)
        #expect(report.opHead == 9)
        #expect(F.headerOnDisk(storage, slot: 9) == .prepare(nine.header))
    }

    @Test func caseH_prepareBeyondPrepareMax() throws {
        let (storage, _, _) = try F.storageWithOps(seed: 21, count: 35)
        #expect(F.configuration.opPrepareMax(checkpoint: 0) == 31)
        let (journal, report) = try F.recovered(storage, opCheckpoint: 0, replicaCount: 1)
        for slot in 0...3 {
            expectSlot(report, journal, slot: slot, .prepareBeyondPrepareMax, .truncate)
            #expect(journal.header(slot: slot) == nil)
            #expect(F.headerOnDisk(storage, slot: slot) == .reserved)
        }
        #expect(report.truncatedCount == 4)
        #expect(report.opHead == 31)
    }

    @Test func caseI_headerBeyondPrepareMax() throws {
        var (storage, _, chain) = try F.storageWithOps(seed: 22, count: 8)
        F.storeHeader(storage, slot: 5, chain.make(op: 37, parent: 0).header)
        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 5, .headerBeyondPrepareMax, .truncate)
        #expect(journal.header(slot: 5) == nil)
        #expect(F.headerOnDisk(storage, slot: 5) == .reserved)
    }

    @Test func caseJ_headerBeyondPrepareMaxPrepareReserved() throws {
        var (storage, _, chain) = try F.storageWithOps(seed: 23, count: 8)
        F.storeHeader(storage, slot: 20, chain.make(op: 52, parent: 0).header)
        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 20, .headerBeyondPrepareMaxPrepareReserved, .truncate)
        #expect(journal.header(slot: 20) == nil)
        #expect(F.headerOnDisk(storage, slot: 20) == .reserved)
    }

    @Test func caseK_headerValidPrepareReserved() throws {
        let (storage, _, _) = try F.storageWithOps(seed: 24, count: 8)
        F.storePrepare(storage, slot: 5, F.reservedSector(slot: 5))
        #expect(soloRefusal(storage).0 == .repairNeededButSolo(slots: [5]))
        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 5, .prepareReservedHeaderValid, .repair)
    }

    @Test func caseL_bothReserved() throws {
        let (storage, _, _) = try F.storageWithOps(seed: 25, count: 8)
        let (journal, report) = try F.recovered(storage, replicaCount: 1)
        for slot in 9..<F.slotCount {
            expectSlot(report, journal, slot: slot, .bothReserved, .nothing)
            #expect(journal.header(slot: slot) == nil)
        }
    }

    @Test func caseM_crashBetweenPrepareAndHeaderAfterAWrap() throws {
        var (storage, prepares, chain) = try F.storageWithOps(seed: 26, count: 40)
        #expect(F.headerOnDisk(storage, slot: 9) == .prepare(try #require(prepares[41 - 32]).header))
        let (writer, _) = try F.recovered(storage, opCheckpoint: 19)
        let fortyOne = chain.next()
        F.appendCrashingBeforeHeader(writer, fortyOne)

        let (journal, report) = try F.recovered(storage, opCheckpoint: 19, replicaCount: 1)
        expectSlot(report, journal, slot: 9, .prepareOpHigher, .fixHeaderFromPrepare)
        #expect(journal.header(slot: 9) == fortyOne.header)
        #expect(report.opHead == 41)
        #expect(F.headerOnDisk(storage, slot: 9) == .prepare(fortyOne.header))
    }

    @Test func caseN_headerOpHigher() throws {
        let (storage, prepares, _) = try F.storageWithOps(seed: 27, count: 41)
        // The stale op 9 reappears under op 41's header (a lost write of op 41's prepare).
        F.storePrepare(storage, slot: 9, try #require(prepares[9]).buffer)
        #expect(soloRefusal(storage, opCheckpoint: 19).0 == .repairNeededButSolo(slots: [9]))
        let (journal, report) = try F.recovered(storage, opCheckpoint: 19)
        expectSlot(report, journal, slot: 9, .headerOpHigher, .repair)
        #expect(journal.header(op: 9) == nil)
    }

    @Test func caseO_sameOpDifferentView() throws {
        var (storage, prepares, chain) = try F.storageWithOps(seed: 28, count: 8)
        let (writer, _) = try F.recovered(storage)
        // A view change replaced op 8; its prepare landed, its header did not.
        let seven = try #require(prepares[7])
        let eightInViewOne = chain.make(op: 8, parent: seven.checksum, view: 1)
        F.appendCrashingBeforeHeader(writer, eightInViewOne)

        #expect(soloRefusal(storage).0 == .repairNeededButSolo(slots: [8]))
        let (journal, report) = try F.recovered(storage)
        expectSlot(report, journal, slot: 8, .sameOpDifferentView, .repair)
        #expect(journal.prepareChecksum(slot: 8) == eightInViewOne.checksum)
    }

    @Test func caseP_identical() throws {
        let (storage, prepares, _) = try F.storageWithOps(seed: 29, count: 8)
        let (journal, report) = try F.recovered(storage, replicaCount: 1)
        for op: UInt64 in 1...8 {
            expectSlot(report, journal, slot: Int(op), .identical, .nothing)
            #expect(journal.header(slot: Int(op)) == prepares[op]?.header)
        }
    }

    @Test func allSlotsFaultyIsAnInvalidWAL() {
        // A WAL of another cluster: nothing validates.
        let storage = SimulatedStorage(layout: F.layout, seed: 30)
        var done = false
        JournalFormatter.format(storage: storage, cluster: F.cluster + 1, release: F.release) { done = true }
        storage.runUntilIdle()
        #expect(done)
        let (journal, result) = F.recover(storage)
        guard case .failure(let error)? = result else {
            Issue.record("a foreign WAL does not recover")
            return
        }
        #expect(error == .walInvalid)
        #expect(!journal.isRecovered)
    }

    /// `ledger-inspect wal` classifies from raw bytes and reaches the journal's verdict.
    @Test func classifyingRawBytesMatchesRecovery() throws {
        let (storage, _) = try tornAppendOverOlderWrap(seed: 31)
        F.corruptHeader(storage, slot: 3)
        corruptPrepare(storage, slot: 30)
        let ring = UnsafeRawBufferPointer(storage.bytes(
            zone: .walHeaders, offset: 0, count: F.slotCount * Constants.messageHeaderSize))
        let fromBytes = JournalRecovery.classify(
            cluster: F.cluster, configuration: F.configuration, opCheckpoint: 19, replicaCount: 3,
            headerRing: ring, prepareSlot: { UnsafeRawBufferPointer(F.prepareBytes(storage, slot: $0)) })
        let (_, report) = try F.recovered(storage, opCheckpoint: 19)
        #expect(fromBytes.slots == report.slots)
        #expect(fromBytes.opHead == report.opHead)
        #expect(fromBytes.faultyCount == report.faultyCount)
    }
}

import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

/// Format, append, read back and recover the WAL on a simulated disk without faults.
@Suite struct JournalTests {
    typealias F = JournalFixture

    @Test func formatThenRecoverGivesRootAndReservedSlots() throws {
        let storage = F.formattedStorage(seed: 1)
        let root = PrepareHeader.root(cluster: F.cluster, release: F.release)
        #expect(F.headerOnDisk(storage, slot: 0) == .prepare(root))
        #expect(F.prepareOnDisk(storage, slot: 0) == .prepare(root))
        for slot in 1..<F.slotCount {
            #expect(F.headerOnDisk(storage, slot: slot) == .reserved, "slot \(slot)")
            #expect(F.prepareOnDisk(storage, slot: slot) == .reserved, "slot \(slot)")
        }

        let (journal, report) = try F.recovered(storage)
        #expect(report.opHead == 0)
        #expect(report.faultyCount == 0)
        #expect(report.fixedCount == 0)
        #expect(report.truncatedCount == 0)
        #expect(report.slots[0].recoveryCase == .identical)
        #expect(journal.header(slot: 0) == root)
        for slot in 1..<F.slotCount {
            #expect(report.slots[slot].recoveryCase == .bothReserved)
            #expect(journal.header(slot: slot) == nil)
        }
        #expect(journal.dirtyCount == 0)
        #expect(journal.faultyCount == 0)
    }

    @Test func appendedPreparesComeBackExactly() throws {
        let storage = F.formattedStorage(seed: 2)
        let (journal, _) = try F.recovered(storage)
        var chain = JournalTestChain(seed: 2)
        var prepares: [JournalTestPrepare] = []
        for _ in 1...20 {
            let prepare = chain.next()
            let slot = Int(prepare.op) % F.slotCount
            var durableAtCallback = false
            journal.write(prepare: prepare.bytes) { written in
                // Only now is it acknowledged: both copies must be on disk.
                durableAtCallback = written == prepare.header
                    && F.prepareOnDisk(storage, slot: slot) == .prepare(prepare.header)
                    && F.headerOnDisk(storage, slot: slot) == .prepare(prepare.header)
            }
            #expect(journal.isDirty(slot: slot), "dirty while written")
            #expect(journal.header(op: prepare.op) == prepare.header)
            storage.runUntilIdle()
            #expect(durableAtCallback, "op \(prepare.op)")
            #expect(!journal.isDirty(slot: slot), "clean once durable")
            prepares.append(prepare)
        }
        #expect(prepares.contains { $0.header.frame.size > UInt32(Constants.sectorSize) }, "multi-sector prepares")

        let (restarted, report) = try F.recovered(storage)
        #expect(report.opHead == 20)
        #expect(report.faultyCount == 0)
        for prepare in prepares {
            #expect(restarted.header(op: prepare.op) == prepare.header, "op \(prepare.op)")
            #expect(F.readsIntact(restarted, prepare), "op \(prepare.op) reads back intact")
        }
        // The recovered log is the chain that was appended.
        var parent = PrepareHeader.root(cluster: F.cluster, release: F.release).frame.checksum
        for op: UInt64 in 1...20 {
            let header = try #require(restarted.header(op: op))
            #expect(header.parent == parent, "op \(op) chains to op \(op - 1)")
            parent = header.frame.checksum
        }
    }

    @Test func recoveryAfterWrappingTheRing() throws {
        let storage = F.formattedStorage(seed: 3)
        let (journal, _) = try F.recovered(storage)
        var chain = JournalTestChain(seed: 3)
        // Checkpoint 39 allows ops up to op_prepare_max = 71: the ring wraps twice.
        let opCheckpoint: UInt64 = 39
        #expect(F.configuration.opPrepareMax(checkpoint: opCheckpoint) == 71)
        let prepares = F.append(journal, chain: &chain, count: 70)

        let (restarted, report) = try F.recovered(storage, opCheckpoint: opCheckpoint)
        #expect(report.opHead == 70)
        #expect(report.faultyCount == 0)
        #expect(report.truncatedCount == 0)
        for op: UInt64 in 39...70 {
            let prepare = try #require(prepares[op])
            #expect(restarted.header(op: op) == prepare.header, "op \(op)")
            #expect(F.readsIntact(restarted, prepare), "op \(op)")
        }
        #expect(restarted.header(op: 38) == nil, "op 38 was overwritten by op 70")
    }

    @Test func readsReportWhatTheyFind() throws {
        let (storage, prepares, _) = try F.storageWithOps(seed: 4, count: 8)
        let (journal, _) = try F.recovered(storage)
        let five = try #require(prepares[5])
        let (start, _, _) = F.readBack(journal, op: 5, checksum: five.checksum &+ 1)
        #expect(start == .notFound, "another checksum is not there")

        // Repair reads leave `journalReadsReservedForCommit` reads to commits.
        let buffers = (0..<Constants.journalReadsMax).map { _ in AlignedBuffer(count: Constants.messageSizeMax) }
        var completed = 0
        let repairMax = Constants.journalReadsMax - Constants.journalReadsReservedForCommit
        for index in 0..<repairMax {
            #expect(journal.read(op: 5, checksum: five.checksum, into: buffers[index].bytes,
                                 purpose: .repair) { _ in completed += 1 } == .started)
        }
        #expect(journal.read(op: 5, checksum: five.checksum, into: buffers[repairMax].bytes,
                             purpose: .repair) { _ in completed += 1 } == .busy)
        #expect(journal.read(op: 5, checksum: five.checksum, into: buffers[repairMax].bytes,
                             purpose: .commit) { _ in completed += 1 } == .started)
        storage.runUntilIdle()
        #expect(completed == repairMax + 1)

        // Corruption after recovery is a result, not a crash.
        storage.corruptSector(zone: .walPrepares, offset: storage.layout.walPrepareOffset(slot: 5))
        let (_, result, _) = F.readBack(journal, op: 5, checksum: five.checksum)
        guard case .corrupt? = result else {
            Issue.record("a corrupt prepare reads as corrupt, got \(String(describing: result))")
            return
        }
    }

    /// Several writes in flight whose headers share a sector: the sector writes serialize, every
    /// header reaches the disk, and no redundant header is ever on disk before its prepare.
    @Test func concurrentWritesToOneHeaderSector() throws {
        let configuration = StorageConfiguration(
            journalSlotCount: 64, clientsMax: 4, pipelinePrepareQueueMax: 4, lsmCompactionOps: 4,
            blockSize: 4096, gridBlockCountMax: 1024)
        #expect(configuration.journalWritesMax == 3)
        let layout = DataFileLayout(configuration)
        for seed: UInt64 in 1...20 {
            let storage = F.formattedStorage(seed: seed, layout: layout)
            let (journal, _) = try F.recovered(storage)
            var chain = JournalTestChain(seed: seed)
            var written: [PrepareHeader] = []
            let prepares = (0..<3).map { _ in chain.next() }
            for prepare in prepares { journal.write(prepare: prepare.bytes) { written.append($0) } }
            #expect(journal.writesInFlight == 3)

            func entry(_ zone: Zone, slot: Int) -> JournalEntry {
                if zone == .walHeaders {
                    return .header(UnsafeRawBufferPointer(storage.bytes(
                        zone: .walHeaders, offset: UInt64(slot * Constants.messageHeaderSize),
                        count: Constants.messageHeaderSize)), cluster: F.cluster, slot: slot, slotCount: 64)
                }
                return .prepare(UnsafeRawBufferPointer(storage.bytes(
                    zone: .walPrepares, offset: layout.walPrepareOffset(slot: slot),
                    count: 4 * Constants.sectorSize)), cluster: F.cluster, slot: slot, slotCount: 64)
            }
            var ticks = 0
            while storage.pendingCount > 0 && ticks < 1_000 {
                storage.tick()
                ticks += 1
                for prepare in prepares {
                    let slot = Int(prepare.op)
                    if entry(.walHeaders, slot: slot) == .prepare(prepare.header) {
                        #expect(entry(.walPrepares, slot: slot) == .prepare(prepare.header),
                                "seed \(seed): header of op \(prepare.op) on disk before its prepare")
                    }
                }
            }
            #expect(written.count == 3, "seed \(seed)")
            #expect(journal.dirtyCount == 0, "seed \(seed)")
            let (restarted, report) = try F.recovered(storage)
            #expect(report.opHead == 3, "seed \(seed)")
            for prepare in prepares {
                #expect(restarted.header(op: prepare.op) == prepare.header, "seed \(seed)")
            }
        }
    }

    // MARK: Misdirected IO (spec §13 item 9)

    @Test func prepareMisdirectedIntoAnotherSlotIsNotLoaded() throws {
        let (storage, prepares, _) = try F.storageWithOps(seed: 5, count: 8)
        let five = try #require(prepares[5])
        F.storePrepare(storage, slot: 6, five.buffer)

        let (journal, report) = try F.recovered(storage)
        #expect(report.slots[6].prepare == .corrupt(.slot), "op 5 in slot 6 is detected")
        #expect(report.slots[6].recoveryCase == .prepareCorruptHeaderValid)
        #expect(report.slots[6].decision == .repair)
        #expect(journal.header(slot: 6) == nil)
        #expect(journal.isFaulty(slot: 6))
        #expect(journal.header(op: 5) == five.header, "the real slot 5 is untouched")
    }

    @Test func headerMisdirectedIntoAnotherSlotIsNotLoaded() throws {
        let (storage, prepares, _) = try F.storageWithOps(seed: 6, count: 8)
        F.headerBytes(storage, slot: 6).copyMemory(
            from: UnsafeRawBufferPointer(F.headerBytes(storage, slot: 5)))

        let (journal, report) = try F.recovered(storage)
        #expect(report.slots[6].header == .corrupt(.slot))
        #expect(report.slots[6].recoveryCase == .headerCorruptPrepareBehind)
        #expect(journal.header(slot: 6) == nil)
        #expect(journal.isFaulty(slot: 6))

        // A solo replica trusts its intact prepare and rewrites the header.
        let (solo, soloReport) = try F.recovered(storage, replicaCount: 1)
        #expect(soloReport.slots[6].decision == .fixHeaderFromPrepare)
        #expect(solo.header(slot: 6) == prepares[6]?.header)
        #expect(F.headerOnDisk(storage, slot: 6) == .prepare(try #require(prepares[6]).header))
    }

    @Test func misdirectedPrepareWriteIsDetectedAndNotLoaded() throws {
        for seed: UInt64 in 1...10 {
            let (storage, _, chain) = try F.storageWithOps(seed: seed, count: 8)
            var chainMore = chain
            let (journal, _) = try F.recovered(storage)
            storage.options.faultyZones = [.walPrepares]
            storage.options.writeMisdirectProbability = 1
            let nine = chainMore.next()
            #expect(F.append(journal, nine), "the storage reports the misdirected write as done")
            storage.options.writeMisdirectProbability = 0

            let (restarted, report) = try F.recovered(storage)
            // Usually @K (the slot kept format's reserved prepare); @C if the stray write
            // happened to cover the slot's first sector.
            #expect([.prepareReservedHeaderValid, .prepareCorruptHeaderValid]
                .contains(report.slots[9].recoveryCase), "seed \(seed)")
            #expect(report.slots[9].decision == .repair, "seed \(seed)")
            #expect(restarted.isFaulty(slot: 9), "seed \(seed)")
            for slot in 0..<F.slotCount {
                if let header = restarted.header(slot: slot) {
                    #expect(header.op % UInt64(F.slotCount) == UInt64(slot), "seed \(seed)")
                    #expect(header.op != 9, "seed \(seed): op 9 loaded from slot \(slot)")
                }
            }
        }
    }
}

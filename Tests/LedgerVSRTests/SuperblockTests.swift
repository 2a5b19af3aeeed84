// The superblock over simulated storage: format, open, staged updates and their queue, and open
// after each kind of fault (corrupt copies, a crash in the middle of an update, misdirects,
// forks, broken chains, regressions), including the repair that follows.

import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

private typealias F = SuperblockFixture

private func openedHeader(
    _ storage: SimulatedStorage, sourceLocation: SourceLocation = #_sourceLocation
) -> (Superblock<SimulatedStorage>, SuperblockHeader?) {
    let (superblock, result) = F.open(storage)
    switch result {
    case .success(let header)?:
        #expect(superblock.isOpen, sourceLocation: sourceLocation)
        #expect(superblock.working == header, sourceLocation: sourceLocation)
        return (superblock, header)
    case .failure(let error)?:
        Issue.record("open failed: \(error)", sourceLocation: sourceLocation)
    case nil:
        Issue.record("open did not call back", sourceLocation: sourceLocation)
    }
    return (superblock, nil)
}

private func openError(_ storage: SimulatedStorage) -> SuperblockError? {
    let (superblock, result) = F.open(storage)
    #expect(!superblock.isOpen)
    if case .failure(let error)? = result { return error }
    Issue.record("open should fail, got \(String(describing: result))")
    return nil
}

@Suite struct SuperblockTests {
    @Test func formatThenOpenReturnsTheFormattedHeader() throws {
        let storage = F.storage(seed: 11)
        let formatted = F.format(storage, replicaIndex: 2, replicaCount: 3).working
        #expect(formatted.sequence == 1)
        #expect(formatted.parent == 0)
        #expect(formatted.cluster == F.cluster)
        #expect(formatted.releaseFormat == F.release)
        #expect(formatted.version == SuperblockHeader.versionCurrent)
        let root = PrepareHeader.root(cluster: F.cluster, release: F.release)
        #expect(formatted.vsrState.checkpoint.header == root)
        #expect(formatted.vsrState.checkpoint.header.op == 0)
        #expect(formatted.vsrState.checkpoint.release == F.release)
        #expect(formatted.vsrState.checkpoint.storageSize == F.layout.sizeMin)
        let members = Members.root(cluster: F.cluster, replicaCount: 3)
        #expect((0..<Constants.membersMax).map { formatted.vsrState.member($0) } == members)
        #expect(formatted.vsrState.replicaId == members[2])
        #expect(formatted.vsrState.replicaCount == 3)
        #expect(formatted.vsrState.view == 0 && formatted.vsrState.commitMax == 0)
        #expect(formatted.viewHeaders.all == [root])
        #expect(formatted.isChecksumValid && formatted.hasZeroPadding)
        // Four copies, identical but for `copy`, each in its own slot.
        F.expectAllCopies(storage, equal: formatted)

        let (superblock, opened) = openedHeader(storage)
        #expect(opened == formatted)
        #expect(superblock.openRepairWrites == 0)
        let report = try #require(superblock.openReport)
        #expect(report.copies.allSatisfy { $0.isValid && $0.holdsWorking })
    }

    @Test func updatesAdvanceTheSequenceAndHashChain() throws {
        let storage = F.storage(seed: 12)
        let superblock = F.format(storage)
        let formatted = superblock.working

        F.checkpoint(superblock, F.checkpointUpdate(after: formatted, op: 19, commitMax: 25))
        let checkpointed = superblock.working
        #expect(checkpointed.sequence == 2)
        #expect(checkpointed.parent == formatted.checksum)
        #expect(checkpointed.vsrState.checkpoint.header.op == 19)
        #expect(checkpointed.vsrState.checkpoint.parentCheckpointId == formatted.checkpointId)
        #expect(checkpointed.checkpointId != formatted.checkpointId)
        #expect(checkpointed.vsrState.commitMax == 25)
        #expect(checkpointed.vsrState.replicaId == formatted.vsrState.replicaId)

        F.viewChange(superblock, F.viewChangeUpdate(view: 4, logView: 3, commitMax: 27))
        let changed = superblock.working
        #expect(changed.sequence == 3)
        #expect(changed.parent == checkpointed.checksum)
        #expect(changed.vsrState.view == 4 && changed.vsrState.logView == 3)
        #expect(changed.vsrState.commitMax == 27)
        #expect(changed.vsrState.checkpoint == checkpointed.vsrState.checkpoint, "a view change keeps the checkpoint")
        #expect(changed.viewHeaders.all.map(\.op) == [27, 26, 25])
        F.expectAllCopies(storage, equal: changed)

        let (_, opened) = openedHeader(storage)
        #expect(opened == changed)
    }

    @Test func updatesQueueAndRunInRequestOrder() {
        let storage = F.storage(seed: 13)
        let superblock = F.format(storage)
        let formatted = superblock.working
        var order: [String] = []
        superblock.viewChange(update: F.viewChangeUpdate(view: 1, logView: 1, commitMax: 3)) {
            order.append("view 1")
            #expect(superblock.working.sequence == 2)
            // A request made in a callback queues behind the one already waiting.
            superblock.viewChange(update: F.viewChangeUpdate(view: 2, logView: 2, commitMax: 40)) {
                order.append("view 2")
                #expect(superblock.working.sequence == 4)
            }
        }
        superblock.checkpoint(update: F.checkpointUpdate(after: formatted, op: 19, commitMax: 30)) {
            order.append("checkpoint")
            #expect(superblock.working.sequence == 3)
            #expect(superblock.working.vsrState.view == 1, "the view change ran first")
        }
        #expect(superblock.isBusy)
        storage.runUntilIdle()
        #expect(order == ["view 1", "checkpoint", "view 2"])
        #expect(!superblock.isBusy)
        let working = superblock.working
        #expect(working.sequence == 4)
        #expect(working.vsrState.view == 2 && working.vsrState.commitMax == 40)
        #expect(working.vsrState.checkpoint.header.op == 19)
        let (_, opened) = openedHeader(storage)
        #expect(opened == working)
    }

    @Test(arguments: 0..<Constants.superblockCopies)
    func oneCorruptCopyIsRepaired(slot: Int) throws {
        for sector in 0..<2 {
            let storage = F.storage(seed: 20 + UInt64(slot))
            let working = F.format(storage).working
            storage.corruptSector(
                zone: .superblock,
                offset: F.layout.superblockCopyOffset(copy: slot) + UInt64(sector * Constants.sectorSize))
            let (superblock, opened) = openedHeader(storage)
            #expect(opened == working)
            let report = try #require(superblock.openReport)
            #expect(report.copies[slot].validity == .invalidChecksum)
            #expect(superblock.openRepairWrites == 1)
            F.expectAllCopies(storage, equal: working)
        }
    }

    @Test func twoCorruptCopiesAreRepaired() {
        for first in 0..<4 {
            for second in (first + 1)..<4 {
                let storage = F.storage(seed: UInt64(30 + first * 4 + second))
                let working = F.format(storage).working
                storage.corruptSector(zone: .superblock, offset: F.layout.superblockCopyOffset(copy: first))
                storage.corruptSector(
                    zone: .superblock,
                    offset: F.layout.superblockCopyOffset(copy: second) + UInt64(Constants.sectorSize))
                let (superblock, opened) = openedHeader(storage)
                #expect(opened == working, "slots \(first), \(second)")
                #expect(superblock.openRepairWrites == 2)
                F.expectAllCopies(storage, equal: working)
                // The second open finds nothing to do.
                let (again, reopened) = openedHeader(storage)
                #expect(reopened == working)
                #expect(again.openRepairWrites == 0)
            }
        }
    }

    @Test func threeCorruptCopiesAreNoQuorum() {
        for intact in 0..<4 {
            let storage = F.storage(seed: UInt64(50 + intact))
            _ = F.format(storage)
            for slot in 0..<4 where slot != intact {
                storage.corruptSector(zone: .superblock, offset: F.layout.superblockCopyOffset(copy: slot))
            }
            #expect(openError(storage) == .noQuorum(validCopies: 1))
        }
    }

    /// A crash while the copies of sequence n+1 are being written, after `written` of them
    /// completed: open finds n (fewer than 2 copies of n+1) or n+1 (2 or more), then repairs so
    /// that a second open sees four identical copies. With `torn`, the write in flight at the
    /// crash leaves a random mix of its sectors.
    @Test(arguments: [false, true])
    func crashWhileWritingLeavesAStaleMinority(torn: Bool) throws {
        for written in 0...Constants.superblockCopies {
            var options = SimulatedStorage.Options()
            if torn {
                options.faultyZones = [.superblock]
                options.crashTornWriteProbability = 1
            }
            let storage = F.storage(seed: UInt64(60 + written), options: options)
            let superblock = F.format(storage)
            F.checkpoint(superblock, F.checkpointUpdate(after: superblock.working, op: 19, commitMax: 20))
            let before = superblock.working
            var completed = false
            superblock.viewChange(update: F.viewChangeUpdate(view: 1, logView: 1, commitMax: 20)) {
                completed = true
            }
            let newCopies = {
                (0..<4).filter { slot in
                    let header = F.header(storage, slot: slot)
                    return header.isChecksumValid && header.sequence == before.sequence + 1
                }.count
            }
            storage.run(until: { newCopies() == written })
            #expect(!completed)
            storage.crash()
            // A torn write may still have carried both sectors of its copy.
            let durable = newCopies()
            #expect(durable == written || (torn && durable == written + 1))

            let (_, opened) = openedHeader(storage)
            let header = try #require(opened)
            if durable >= Constants.superblockQuorumRead {
                #expect(header.sequence == before.sequence + 1, "written \(written)")
                #expect(header.parent == before.checksum)
                #expect(header.vsrState.view == 1)
            } else {
                #expect(header == before, "written \(written)")
            }
            F.expectAllCopies(storage, equal: header)
            let (again, reopened) = openedHeader(storage)
            #expect(reopened == header)
            #expect(again.openRepairWrites == 0)
        }
    }

    @Test func crashDuringRepairKeepsTheQuorum() throws {
        // Sequence n+1 in slots 0 and 1, n in slots 2 and 3: open picks n+1 and rewrites 2 and 3.
        // Crash at every point of that repair (tearing the write in flight): the next open still
        // finds n+1.
        for crashTick in 1...40 {
            var options = SimulatedStorage.Options()
            options.faultyZones = [.superblock]
            options.crashTornWriteProbability = 1
            let storage = F.storage(seed: UInt64(70 + crashTick), options: options)
            let base = F.format(storage).working
            let next = F.successor(of: base)
            F.place(next, storage, slot: 0)
            F.place(next, storage, slot: 1)
            let superblock = Superblock(storage: storage)
            var result: Result<SuperblockHeader, SuperblockError>?
            superblock.open { result = $0 }
            storage.run(until: { result != nil }, tickLimit: crashTick)
            storage.crash()
            if let result { #expect(try result.get() == next) }
            let (_, opened) = openedHeader(storage)
            #expect(opened == next, "crash at tick \(crashTick)")
            F.expectAllCopies(storage, equal: next)
        }
    }

    @Test func misdirectedCopyDoesNotMakeAQuorum() {
        let storage = F.storage(seed: 80)
        let working = F.format(storage).working
        let next = F.successor(of: working)
        // Copy 0 of sequence 2 landed in slot 1 as well as slot 0: one distinct copy only.
        F.place(next, storage, slot: 0, copy: 0)
        F.place(next, storage, slot: 1, copy: 0)
        let (superblock, opened) = openedHeader(storage)
        #expect(opened == working)
        #expect(superblock.openRepairWrites == 2)
        F.expectAllCopies(storage, equal: working)
    }

    @Test func forkIsReported() {
        let storage = F.storage(seed: 81)
        let working = F.format(storage).working
        let x = F.successor(of: working) { $0.vsrState.view = 1 }
        let y = F.successor(of: working) { $0.vsrState.view = 2 }
        for slot in 0..<4 { F.place(slot < 2 ? x : y, storage, slot: slot) }
        #expect(openError(storage) == .fork(sequence: 2))
    }

    @Test func disconnectedParentIsReported() {
        let storage = F.storage(seed: 82)
        let working = F.format(storage).working
        let x = F.successor(of: working) { $0.parent = working.checksum ^ 1 }
        F.place(x, storage, slot: 0)
        F.place(x, storage, slot: 3)
        #expect(openError(storage) == .parentNotConnected(sequence: 2))
    }

    @Test func regressionIsReported() {
        let storage = F.storage(seed: 83)
        let superblock = F.format(storage)
        F.viewChange(superblock, F.viewChangeUpdate(view: 6, logView: 6, commitMax: 2))
        let working = superblock.working
        let smallerView = F.successor(of: working) {
            $0.vsrState.view = 5
            $0.vsrState.logView = 5
        }
        F.place(smallerView, storage, slot: 1)
        F.place(smallerView, storage, slot: 2)
        #expect(openError(storage) == .stateRegression(sequence: 3, field: .view))
    }

    @Test func wholeZoneAnalysisMatchesOpen() throws {
        let storage = F.storage(seed: 84)
        let superblock = F.format(storage)
        F.viewChange(superblock, F.viewChangeUpdate(view: 2, logView: 2, commitMax: 5))
        let report = F.analyze(storage)
        let chosen = try report.working.get()
        #expect(chosen.header == superblock.working)
        #expect(report.copies.map(\.sequence) == [2, 2, 2, 2])
        #expect(report.copies.map(\.description).allSatisfy { $0.contains("[working]") })
    }
}

// The quorum rules as a pure function of forged copies: distinct copy counting, misdirects,
// the unchecksummed copy field, forks, broken chains, regressions, skipped sequences, the
// repair order, and hostile bytes (never a crash).

import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

private typealias F = SuperblockFixture

/// A formatted storage and its working header (sequence 1 in all four slots).
private func formattedStorage(seed: UInt64 = 1) -> (SimulatedStorage, SuperblockHeader) {
    let storage = F.storage(seed: seed)
    let superblock = F.format(storage)
    return (storage, superblock.working)
}

private func quorum(_ report: SuperblockQuorumReport, sourceLocation: SourceLocation = #_sourceLocation)
    -> SuperblockQuorum?
{
    guard case .success(let quorum) = report.working else {
        Issue.record("expected a quorum, got \(report.working)", sourceLocation: sourceLocation)
        return nil
    }
    return quorum
}

private func error(_ report: SuperblockQuorumReport) -> SuperblockError? {
    if case .failure(let error) = report.working { return error }
    return nil
}

@Suite struct SuperblockQuorumsTests {
    @Test func intactCopiesNeedNoRepair() throws {
        let (storage, working) = formattedStorage()
        let report = F.analyze(storage)
        let chosen = try #require(quorum(report))
        #expect(chosen.header == working)
        #expect(chosen.copyCount == 4)
        #expect(chosen.slotsToRepair.isEmpty)
        #expect(chosen.nextRepairSlot == nil)
        #expect(report.copies.allSatisfy { $0.isValid && $0.holdsWorking && $0.sequence == 1 })
    }

    @Test func misdirectedCopyCountsOnce() throws {
        // Copy 1 of sequence 2 written into slots 0 and 1 (a misdirect): one distinct copy, so
        // sequence 2 has no quorum and sequence 1 (slots 2, 3) is the working header.
        let (storage, working) = formattedStorage()
        let next = F.successor(of: working)
        F.place(next, storage, slot: 0, copy: 1)
        F.place(next, storage, slot: 1, copy: 1)
        let report = F.analyze(storage)
        let chosen = try #require(quorum(report))
        #expect(chosen.header == working)
        #expect(chosen.slotsToRepair == [0, 1])
        #expect(report.copies[0].isValid && !report.copies[0].holdsWorking)
        #expect(report.copies[0].description.contains("misdirected"))

        // Three distinct copies of sequence 2 (0, 2, and 0 again in slot 1) make a quorum; the
        // duplicate in slot 1 is repaired only after slot 3, whose copy is missing.
        F.place(next, storage, slot: 0, copy: 0)
        F.place(next, storage, slot: 1, copy: 0)
        F.place(next, storage, slot: 2, copy: 2)
        let second = try #require(quorum(F.analyze(storage)))
        #expect(second.header == next)
        #expect(second.copyCount == 2)
        #expect(second.slotsToRepair == [1, 3])
        #expect(second.nextRepairSlot == 3)
    }

    @Test func sameCopyReadFromEverySlotIsNoQuorum() {
        let (storage, working) = formattedStorage()
        for slot in 0..<4 { F.place(working, storage, slot: slot, copy: 2) }
        #expect(error(F.analyze(storage)) == .noQuorum(validCopies: 4))
    }

    @Test func corruptCopyFieldIsRepairedInPlace() throws {
        // `copy` is outside the checksum: a corrupt value leaves a valid copy, assumed to be in
        // its own slot, which is then rewritten with the right index.
        let (storage, working) = formattedStorage()
        F.place(working, storage, slot: 2, copy: 200)
        let report = F.analyze(storage)
        let chosen = try #require(quorum(report))
        #expect(chosen.header == working)
        #expect(chosen.copyCount == 4)
        #expect(chosen.slotsToRepair == [2])
        #expect(chosen.nextRepairSlot == 2)
        #expect(report.copies[2].isValid && report.copies[2].copy == 200)
    }

    @Test func repairNeverRewritesTheOnlySlotOfACopy() throws {
        // Sequence B over A: B₀ in slot 0, A₁ in slot 1, B₁ misdirected into slot 2, A₃ in slot 3.
        // B has copies {0, 1}. Rewriting slot 2 first would risk B (a torn write there leaves one
        // copy of B and two of A); slot 3 (copy 3 missing) goes first, then slot 1.
        let (storage, a) = formattedStorage()
        let b = F.successor(of: a)
        F.place(b, storage, slot: 0)
        F.place(a, storage, slot: 1)
        F.place(b, storage, slot: 2, copy: 1)
        F.place(a, storage, slot: 3)
        let first = try #require(quorum(F.analyze(storage)))
        #expect(first.header == b)
        #expect(first.slotsToRepair == [1, 2, 3])
        #expect(first.nextRepairSlot == 3)

        F.place(b, storage, slot: 3)
        let second = try #require(quorum(F.analyze(storage)))
        #expect(second.nextRepairSlot == 1)
        F.place(b, storage, slot: 1)
        let third = try #require(quorum(F.analyze(storage)))
        #expect(third.nextRepairSlot == 2, "the duplicate of copy 1 goes last")
        F.place(b, storage, slot: 2)
        let done = try #require(quorum(F.analyze(storage)))
        #expect(done.slotsToRepair.isEmpty && done.nextRepairSlot == nil)
    }

    @Test func forkIsAnError() {
        let (storage, working) = formattedStorage()
        let x = F.successor(of: working) { $0.vsrState.view = 1 }
        let y = F.successor(of: working) { $0.vsrState.view = 2 }
        F.place(x, storage, slot: 0)
        F.place(x, storage, slot: 1)
        F.place(y, storage, slot: 2)
        F.place(y, storage, slot: 3)
        let failure = error(F.analyze(storage))
        #expect(failure == .fork(sequence: 2))
        #expect(failure?.description.contains("fork") == true)
    }

    @Test func disconnectedParentIsAnError() {
        let (storage, working) = formattedStorage()
        let x = F.successor(of: working) { $0.parent = 0xBAD }
        F.place(x, storage, slot: 0)
        F.place(x, storage, slot: 1)
        #expect(error(F.analyze(storage)) == .parentNotConnected(sequence: 2))
        // A lone older copy is no group: nothing to chain to, so the newer quorum stands.
        F.place(x, storage, slot: 2)
        let report = F.analyze(storage)
        if case .success(let chosen) = report.working { #expect(chosen.header == x) } else {
            Issue.record("a lone stale copy does not block the quorum: \(report.working)")
        }
    }

    @Test func stateRegressionIsAnError() {
        let (storage, working) = formattedStorage()
        // Sequence 2 (the parent) in slots 0 and 1, a sequence 3 that moves one field back in
        // slots 2 and 3.
        let parent = F.successor(of: working) {
            $0.vsrState.view = 5
            $0.vsrState.logView = 5
            $0.vsrState.commitMax = 10
            $0.vsrState.checkpoint.header = F.prepare(op: 3)
        }
        let regressions: [(VSRStateField, (inout SuperblockHeader) -> Void)] = [
            (.view, { $0.vsrState.view = 4; $0.vsrState.logView = 4 }),
            (.logView, { $0.vsrState.logView = 3 }),
            (.commitMax, { $0.vsrState.commitMax = 9 }),
            (.checkpointOp, { $0.vsrState.checkpoint.header = F.prepare(op: 2) }),
            (.checkpoint, { $0.vsrState.checkpoint.storageSize += 1 }),
        ]
        for (field, regress) in regressions {
            F.place(parent, storage, slot: 0)
            F.place(parent, storage, slot: 1)
            F.place(F.successor(of: parent, regress), storage, slot: 2)
            F.place(F.successor(of: parent, regress), storage, slot: 3)
            #expect(error(F.analyze(storage)) == .stateRegression(sequence: 3, field: field), "\(field)")
        }
        // The same step without a regression is accepted.
        F.place(F.successor(of: parent), storage, slot: 2)
        F.place(F.successor(of: parent), storage, slot: 3)
        #expect(error(F.analyze(storage)) == nil)
    }

    @Test func skippedSequenceIsAnError() {
        // A copy two sequences ahead means sequence + 1 was written completely and then lost.
        let (storage, working) = formattedStorage()
        let skipped = F.successor(of: F.successor(of: working))
        F.place(skipped, storage, slot: 0)
        #expect(error(F.analyze(storage)) == .parentSkipped(working: 1, sequence: 3))
    }

    @Test func otherClusterCopiesAreIgnored() throws {
        let (storage, working) = formattedStorage()
        let stranger = F.successor(of: F.successor(of: working)) { $0.cluster = 99 }
        F.place(stranger, storage, slot: 0)
        let chosen = try #require(quorum(F.analyze(storage)))
        #expect(chosen.header == working)
        #expect(chosen.slotsToRepair == [0])
    }

    @Test func nonZeroPaddingAndMalformedCopiesDoNotCount() {
        let (storage, working) = formattedStorage()
        var padded = working
        padded.vsrState.reserved3 = 1
        padded.seal()
        var malformed = working
        malformed.vsrState.logView = 9  // log_view > view: no writer produces it
        malformed.seal()
        var future = working
        future.version = 2
        future.seal()
        F.place(padded, storage, slot: 0)
        F.place(malformed, storage, slot: 1)
        F.place(future, storage, slot: 2)
        let report = F.analyze(storage)
        #expect(report.copies.map(\.validity) == [.nonZeroPadding, .malformed, .unsupportedVersion, .valid])
        #expect(error(report) == .noQuorum(validCopies: 1))
    }

    @Test func zeroedZoneIsNoQuorum() {
        let storage = F.storage(seed: 3)
        let report = F.analyze(storage)
        #expect(report.copies.allSatisfy { $0.validity == .invalidChecksum })
        #expect(error(report) == .noQuorum(validCopies: 0))
        #expect(error(report)?.description.contains("no quorum") == true)
    }

    /// Random mixes of valid, stale, future, misdirected, foreign and corrupt copies (including
    /// sequences near UInt64.max): the analysis never traps, and what it returns is consistent.
    @Test(arguments: 0..<300) func hostileCopiesNeverCrash(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let (storage, base) = formattedStorage(seed: seed)
        var pool = [base, F.successor(of: base), F.successor(of: F.successor(of: base))]
        pool.append(F.successor(of: base) { $0.sequence = UInt64.max })
        pool.append(F.successor(of: base) { $0.sequence = UInt64.max - 1 })
        pool.append(F.successor(of: base) { $0.vsrState.view = 3 })
        for slot in 0..<4 {
            switch prng.below(4) {
            case 0:
                let bytes = F.slotBytes(storage, slot: slot)
                for word in 0..<bytes.count / 8 {
                    bytes.storeBytes(of: prng.next(), toByteOffset: word * 8, as: UInt64.self)
                }
            case 1:
                F.place(pool[Int(prng.below(UInt64(pool.count)))], storage, slot: slot)
            default:
                F.place(
                    pool[Int(prng.below(UInt64(pool.count)))], storage, slot: slot,
                    copy: Int(prng.below(6)))
            }
        }
        let report = F.analyze(storage)
        #expect(report.copies.count == 4, "seed \(seed)")
        if case .success(let chosen) = report.working {
            #expect(chosen.copyCount >= Constants.superblockQuorumRead, "seed \(seed)")
            #expect(chosen.header.isChecksumValid, "seed \(seed)")
            if let next = chosen.nextRepairSlot {
                #expect(chosen.slotsToRepair.contains(next), "seed \(seed)")
            }
            #expect(chosen.slotsToRepair.isEmpty == (chosen.nextRepairSlot == nil), "seed \(seed)")
        }
    }
}

import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

/// Randomized crash tests: append, crash at a random tick (writes in flight torn, sector by
/// sector), recover, check, repeat. Every seed is printed with a failing expectation; rerun one
/// with `JournalCrashRun(seed:…).run()`.
@Suite struct JournalCrashTests {
    @Test func soloReplicaSurvivesCrashesAlone() {
        var tornAppends = 0
        var fixes = 0
        for seed: UInt64 in 1...30 {
            let run = JournalCrashRun(seed: seed, replicaCount: 1, bitFlipProbability: 0)
            run.run()
            #expect(run.refusals == 0, "seed \(seed): a crash alone never stops a solo replica")
            #expect(run.recoveries >= run.rounds, "seed \(seed)")
            tornAppends += run.tornAppends
            fixes += run.fixes
        }
        // The crashes must reach the interesting cases for the test to mean much.
        #expect(tornAppends > 0, "some crash tore an append, and recovery truncated it")
        #expect(fixes > 0, "some crash fell between a prepare and its header")
    }

    @Test func soloReplicaRefusesOnlyAfterAnInjectedFault() {
        var refusals = 0
        for seed: UInt64 in 100...125 {
            let run = JournalCrashRun(seed: seed, replicaCount: 1, bitFlipProbability: 0.05)
            run.run()
            refusals += run.refusals
        }
        // Not a requirement, but the faults must be able to matter for the test to mean much.
        #expect(refusals > 0, "bit flips on completed writes make some solo replica refuse")
    }

    @Test func clusterReplicaRepairsInsteadOfLosingAcknowledgedPrepares() {
        for seed: UInt64 in 200...220 {
            let run = JournalCrashRun(seed: seed, replicaCount: 3, bitFlipProbability: 0.05)
            run.run()
            #expect(run.refusals == 0, "seed \(seed)")
        }
    }
}

/// One randomized run over one simulated disk. The test plays the replica: it appends a
/// hash-chained log with at most one write in flight (a solo replica appends strictly in
/// sequence; the testing configuration allows one write anyway), advances the checkpoint as ops
/// commit so that it never writes beyond `op_prepare_max`, and, for a cluster replica, repairs
/// faulty slots from its own record (as peers would).
final class JournalCrashRun {
    typealias F = JournalFixture

    let seed: UInt64
    let replicaCount: Int
    let rounds = 8
    var prng: PRNG
    let storage: SimulatedStorage
    var chain: JournalTestChain

    /// Every version of every op written (by checksum), to check what recovery loads.
    var issued: [UInt128: JournalTestPrepare] = [:]
    /// The last prepare written to each slot, and whether its write callback ran.
    var slotLatest: [Int: (prepare: JournalTestPrepare, acknowledged: Bool)] = [:]
    var opCheckpoint: UInt64 = 0
    private(set) var recoveries = 0
    private(set) var refusals = 0
    private(set) var tornAppends = 0
    private(set) var fixes = 0
    /// Prints each recovery's non-trivial slots: set it when rerunning one failing seed.
    var verbose = false

    init(seed: UInt64, replicaCount: Int, bitFlipProbability: Double) {
        self.seed = seed
        self.replicaCount = replicaCount
        prng = PRNG(seed: seed)
        storage = F.formattedStorage(seed: seed)
        // Faults only after format: format is not what these tests are about.
        storage.options.faultyZones = [.walPrepares, .walHeaders]
        storage.options.crashTornWriteProbability = 1
        storage.options.writeBitFlipProbability = bitFlipProbability
        chain = JournalTestChain(seed: seed ^ 0x5EED)
    }

    var slotCount: Int { F.slotCount }

    func run() {
        var round = 0
        while round < rounds {
            round += 1
            // Sometimes crash during recovery itself (while it rewrites header sectors).
            if prng.chance(percent: 20) {
                let journal = Journal(storage: storage, cluster: F.cluster)
                journal.recover(opCheckpoint: opCheckpoint, replicaCount: replicaCount) { _ in }
                storage.run(until: { false }, tickLimit: prng.int(in: 1...12))
                storage.crash()
            }
            guard let journal = recoverAndCheck() else { return }
            repairFaultySlots(journal)
            appendUntilCrash(journal, ticks: prng.int(in: 1...120))
            storage.crash()
        }
        _ = recoverAndCheck()
    }

    /// Recovers a fresh journal and checks everything the brief promises; nil if it refused.
    func recoverAndCheck() -> Journal<SimulatedStorage>? {
        let (journal, result) = F.recover(storage, opCheckpoint: opCheckpoint, replicaCount: replicaCount)
        guard let result else {
            Issue.record("seed \(seed): recovery did not finish")
            return nil
        }
        let report: JournalRecovery
        switch result {
        case .success(let recovered): report = recovered
        case .failure(let error):
            refusals += 1
            guard case .repairNeededButSolo = error, replicaCount == 1 else {
                Issue.record("seed \(seed): unexpected \(error)")
                return nil
            }
            #expect(storage.faults.writeBitFlips > 0,
                    "seed \(seed): a solo replica refuses only after an injected fault")
            return nil
        }
        recoveries += 1
        tornAppends += report.slots.filter(\.isTornAppend).count
        fixes += report.fixedCount
        if verbose {
            print("seed \(seed) recovery \(recoveries): checkpoint \(opCheckpoint)",
                  "head \(String(describing: report.opHead)) flips \(storage.faults.writeBitFlips)")
            for (slot, found) in report.slots.enumerated() where found.decision != .nothing {
                print("  slot \(slot): \(found.recoveryCase) \(found.decision)",
                      "torn \(found.isTornAppend) header \(found.header.kind)",
                      "\(found.header.prepareHeader?.op ?? 0) prepare \(found.prepare.kind)",
                      "\(found.prepare.prepareHeader?.op ?? 0)")
            }
        }

        for slot in 0..<slotCount {
            let loaded = journal.header(slot: slot)
            if journal.isFaulty(slot: slot) {
                #expect(loaded == nil, "seed \(seed): faulty slot \(slot) has a loaded header")
            }
            if let loaded {
                #expect(issued[loaded.frame.checksum] != nil || loaded.op == 0,
                        "seed \(seed): slot \(slot) loaded op \(loaded.op) that was never written")
            }
            // A prepare whose write callback ran is never lost and never truncated. (With
            // injected faults, an op the checkpoint covers may be: a corrupt old-wrap prepare
            // past the head looks like a torn append, and replay no longer needs it.)
            if let latest = slotLatest[slot], latest.acknowledged, !mayBeDropped(op: latest.prepare.op) {
                if journal.isFaulty(slot: slot) {
                    #expect(replicaCount > 1, "seed \(seed): solo replicas have no faulty slots")
                } else {
                    #expect(loaded == latest.prepare.header,
                            "seed \(seed): acknowledged op \(latest.prepare.op) lost from slot \(slot)")
                    #expect(F.readsIntact(journal, latest.prepare),
                            "seed \(seed): acknowledged op \(latest.prepare.op) reads back intact")
                }
            }
        }
        checkHashChain(journal, report: report)
        chain.last = journal.header(op: report.opHead ?? 0) ?? chain.last
        advanceCheckpoint(head: report.opHead ?? 0)
        return journal
    }

    /// The loaded ops form one hash chain, without gaps over the last lap (unless faulty).
    func checkHashChain(_ journal: Journal<SimulatedStorage>, report: JournalRecovery) {
        guard let head = report.opHead else { return }
        let lapStart = head >= UInt64(slotCount - 1) ? head - UInt64(slotCount - 2) : 0
        var op = head
        while op > lapStart {  // At most one lap.
            let slot = Int(op % UInt64(slotCount))
            let previousSlot = Int((op - 1) % UInt64(slotCount))
            if let header = journal.header(op: op), let previous = journal.header(op: op - 1) {
                #expect(header.parent == previous.frame.checksum, "seed \(seed): op \(op) chains to op \(op - 1)")
            } else {
                #expect(journal.isFaulty(slot: slot) || journal.isFaulty(slot: previousSlot)
                            || mayBeDropped(op: op - 1),
                        "seed \(seed): op \(op - 1) or \(op) missing below the head \(head)")
            }
            op -= 1
        }
    }

    /// Whether recovery may have dropped `op`: only under injected faults, and only an op the
    /// checkpoint covers.
    func mayBeDropped(op: UInt64) -> Bool {
        storage.faults.writeBitFlips > 0 && op <= opCheckpoint
    }

    /// The checkpoint follows the commits: once the trigger op is durable, the next checkpoint
    /// is (in this test) durable too.
    func advanceCheckpoint(head: UInt64) {
        let configuration = F.configuration
        while head >= configuration.checkpointTrigger(after: opCheckpoint) {
            opCheckpoint = configuration.checkpointAfter(opCheckpoint)
        }
    }

    /// As peers would: rewrite each faulty slot with the latest prepare written there.
    func repairFaultySlots(_ journal: Journal<SimulatedStorage>) {
        for slot in 0..<slotCount where journal.isFaulty(slot: slot) {
            guard let latest = slotLatest[slot] else { continue }
            var repaired = false
            journal.write(prepare: latest.prepare.bytes) { _ in repaired = true }
            storage.run(until: { repaired })
            // A bit flip may hit the repair itself; then the slot simply stays dirty.
            if repaired && storage.faults.writeBitFlips == 0 {
                #expect(!journal.isFaulty(slot: slot), "seed \(seed): slot \(slot) repaired")
            }
            slotLatest[slot] = (latest.prepare, repaired)
            if latest.prepare.op > chain.last.op { chain.last = latest.prepare.header }
        }
    }

    /// Appends the next ops, one write at a time, for `ticks` ticks (then the caller crashes).
    func appendUntilCrash(_ journal: Journal<SimulatedStorage>, ticks: Int) {
        var remaining = ticks
        while remaining > 0 {
            remaining -= 1
            if journal.writesInFlight == 0 {
                let op = chain.last.op + 1
                guard op <= F.configuration.opPrepareMax(checkpoint: opCheckpoint) else { return }
                let prepare = chain.next()
                issued[prepare.checksum] = prepare
                let slot = Int(prepare.op % UInt64(slotCount))
                slotLatest[slot] = (prepare, false)
                let header = prepare.header
                journal.write(prepare: prepare.bytes) { [self] written in
                    precondition(written == header, "the callback names its prepare")
                    if let latest = slotLatest[slot], latest.prepare.header == written {
                        slotLatest[slot] = (latest.prepare, true)
                    }
                    advanceCheckpoint(head: written.op)
                }
            }
            storage.tick()
        }
    }
}

import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

/// A solo replica may hand the journal several prepares at once (its pipeline), but the journal
/// writes their prepares strictly one after another, overlapping only the redundant header write
/// of op n with the prepare write of op n + 1. So a crash leaves the durable prepares a prefix of
/// the log: recovery truncates at most the torn head and never finds a gap no peer could fill.
@Suite struct JournalSoloPipelineTests {
    typealias F = JournalFixture

    /// 64 slots: 3 journal writes may be in flight (the testing configuration allows only 1).
    static let layout = DataFileLayout(StorageConfiguration(
        journalSlotCount: 64, clientsMax: 4, pipelinePrepareQueueMax: 4, lsmCompactionOps: 4,
        blockSize: 4096, gridBlockCountMax: 1024))

    @Test func queuedPreparesCompleteInOrder() throws {
        let storage = F.formattedStorage(seed: 1, layout: Self.layout)
        let (journal, _) = try F.recovered(storage, replicaCount: 1)
        var chain = JournalTestChain(seed: 1)
        let prepares = (0..<3).map { _ in chain.next() }
        var written: [UInt64] = []
        for prepare in prepares { journal.write(prepare: prepare.bytes) { written.append($0.op) } }
        #expect(journal.writesInFlight == 3)
        storage.runUntilIdle()
        #expect(written == [1, 2, 3], "a solo replica's prepares become durable in order")
        let (_, report) = try F.recovered(storage, replicaCount: 1)
        #expect(report.opHead == 3)
        #expect(report.faultyCount == 0)
    }

    /// Crash at every possible moment of three overlapping appends, many seeds: a solo replica
    /// always recovers, keeps every acknowledged op, and its log has no gap.
    @Test func crashesNeverLeaveAGap() throws {
        var truncations = 0
        var fixes = 0
        for seed: UInt64 in 1...40 {
            var prng = PRNG(seed: seed)
            let storage = F.formattedStorage(seed: seed, layout: Self.layout)
            storage.options.faultyZones = [.walPrepares, .walHeaders]
            storage.options.crashTornWriteProbability = 1
            let (journal, _) = try F.recovered(storage, replicaCount: 1)
            var chain = JournalTestChain(seed: seed)
            let prepares = (0..<3).map { _ in chain.next(bodySize: 3 * Constants.sectorSize) }
            var acknowledged: [UInt64] = []
            for prepare in prepares { journal.write(prepare: prepare.bytes) { acknowledged.append($0.op) } }
            storage.run(until: { false }, tickLimit: prng.int(in: 1...15))
            storage.crash()

            let (recoveredJournal, result) = F.recover(storage, replicaCount: 1)
            guard case .success(let report) = result else {
                Issue.record("seed \(seed): a crash alone made a solo replica refuse: \(String(describing: result))")
                continue
            }
            truncations += report.truncatedCount
            fixes += report.fixedCount
            let head = report.opHead ?? 0
            #expect(head >= acknowledged.last ?? 0, "seed \(seed): every acknowledged op survives")
            for op in 1...max(head, 1) where op <= head {
                #expect(recoveredJournal.header(op: op) != nil, "seed \(seed): op \(op) below the head \(head) is present")
            }
            #expect(acknowledged == (0..<acknowledged.count).map { UInt64($0 + 1) },
                    "seed \(seed): acknowledgements come in op order")
        }
        #expect(truncations > 0, "some crash tore the head, and recovery truncated it")
        #expect(fixes > 0, "some crash fell between a prepare and its redundant header")
    }
}

import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting

/// What every forest-level model test does around its own batches: a simulated disk with random
/// latencies, the replica's view of checkpoints (the "superblock" it would write, when it would
/// declare a checkpoint durable), one op's compaction beat with an optional crash in the middle,
/// and a restart that opens the last checkpoint and replays the ops after it. Subclasses supply
/// the batches (prefetch, checks, writes) and the model.
class ForestRunHarness {
    let layout: DataFileLayout
    let storage: SimulatedStorage
    var committedOp: UInt64 = 0
    var highestCommittedOp: UInt64 = 0
    /// The last checkpoint a superblock would hold.
    var superblock = ForestCheckpoint.formatted
    var checkpoints: [UInt64: ForestCheckpoint] = [:]
    /// When the replica would learn that the last checkpoint is durable (spec §3: its trigger
    /// plus a pipeline plus one).
    var durableAtOp: UInt64?
    let durableDelay: UInt64
    var crashes = 0
    /// Crashes that struck a committed op's detached beat (its trees' IO still in flight).
    var crashesDuringDetachedBeat = 0
    var failure: String?

    /// A simulated disk with 1–8 tick latencies (subclasses build their nodes on it first).
    static func makeStorage(seed: UInt64) -> SimulatedStorage {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...8
        options.writeLatencyTicks = 1...8
        return SimulatedStorage(layout: DataFileLayout(.testing), seed: seed, options: options)
    }

    init(storage: SimulatedStorage) {
        self.storage = storage
        layout = storage.layout
        durableDelay = UInt64(layout.configuration.pipelinePrepareQueueMax) + 1
    }

    /// At the start of op `op`: declares the last checkpoint durable when its time has come.
    func beginOp(_ op: UInt64, forest: Forest<SimulatedStorage>) {
        precondition(op == committedOp + 1, "ops commit in order")
        if durableAtOp == op {
            forest.checkpointDurable()
            durableAtOp = nil
        }
    }

    /// The whole grid zone, to compare two runs byte for byte.
    func gridBytes() -> [UInt8] {
        Array(storage.bytes(zone: .grid, offset: 0, count: Int(layout.size(of: .grid))))
    }

    /// Prefetches `ids` into `groove` for op `op` and runs the disk until it is done. Returns
    /// false (with `failure`) if it never finished or reported a fault.
    func prefetch<Object: GrooveObject>(
        _ groove: Groove<Object, SimulatedStorage>, ids: [UInt128], op: UInt64
    ) -> Bool {
        if let error = prefetchAndWait(groove, ids: ids) {
            failure = "op \(op): \(error)"
            return false
        }
        return true
    }

    /// One prefetch round of a new batch: `ids` and `timestamps` enqueued, the disk run until
    /// the groove calls back. Returns why it failed, or nil.
    func prefetchAndWait<Object: GrooveObject>(
        _ groove: Groove<Object, SimulatedStorage>, ids: [UInt128], timestamps: [UInt64] = []
    ) -> String? {
        groove.prefetchStart()
        for id in ids { groove.prefetchEnqueue(id: id) }
        for timestamp in timestamps { groove.prefetchEnqueue(timestamp: timestamp) }
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        guard storage.run(until: { prefetched != nil }) else { return "the prefetch never finished" }
        if case .failure(let fault) = prefetched! { return "prefetch fault \(fault)" }
        return nil
    }

    /// Runs op `op`'s beat; crashes the disk after `crashTicks` ticks of it if given. Returns
    /// false if it crashed or failed (`failure` says why), true once the op is committed.
    func runBeat(_ op: UInt64, forest: Forest<SimulatedStorage>, crashTicks: Int?) -> Bool {
        var result: Result<ForestCheckpoint?, ForestFault>?
        forest.compact(op: op) { result = $0 }
        // A crash after the beat called back but while its detached trees still run (Forest
        // "Detached beats") strikes once the op is committed.
        var crashesAfterCommit = false
        if let crashTicks {
            _ = storage.run(until: { result != nil && !forest.isCompacting }, tickLimit: crashTicks)
            if result == nil {
                storage.crash()
                crashes += 1
                return false
            }
            crashesAfterCommit = forest.isCompacting
        }
        guard storage.run(until: { result != nil }) else {
            failure = "op \(op): the beat never finished"
            return false
        }
        switch result! {
        case .failure(let fault):
            failure = "op \(op): forest fault \(fault)"
            return false
        case .success(let checkpoint):
            if let checkpoint {
                superblock = checkpoint
                checkpoints[checkpoint.op] = checkpoint
                durableAtOp = op + durableDelay
            }
        }
        committedOp = op
        highestCommittedOp = max(highestCommittedOp, op)
        if crashesAfterCommit {
            storage.crash()
            crashes += 1
            crashesDuringDetachedBeat += 1
            return false
        }
        return true
    }

    /// A new process: `forest` (fresh, its trees added) opens the superblock's checkpoint, then
    /// `commit` replays every op up to the highest committed one.
    func openAndReplay(forest: Forest<SimulatedStorage>, commit: (UInt64) -> Bool) -> String? {
        var outcome: Result<Void, ForestOpenError>?
        forest.open(checkpoint: superblock) { outcome = $0 }
        guard storage.run(until: { outcome != nil }) else { return "open never finished" }
        if case .failure(let error) = outcome! { return "open of checkpoint \(superblock.op) failed: \(error)" }
        let trigger = superblock.op + UInt64(layout.configuration.lsmCompactionOps)
        durableAtOp = superblock.op == 0 ? nil : trigger + durableDelay
        committedOp = superblock.op
        // Each turn replays one op: bounded by the WAL.
        while committedOp < highestCommittedOp {
            guard commit(committedOp + 1) else { return failure ?? "the replay crashed" }
        }
        return nil
    }
}

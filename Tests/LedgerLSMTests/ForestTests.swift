import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerTesting
import Testing

/// What one op puts into the forest's two trees: the test's WAL entry.
struct ForestOpPuts {
    var keys: [CompositeKey64] = []
    var objects: [TreeTestObject] = []
}

/// How a run crashes during one op's beat.
enum ForestCrash {
    /// After `ticks` storage ticks of the beat, if it has not finished.
    case afterTicks(Int)
    /// Once the checkpoint is being written (log flush, trailers), after `ticks` more ticks.
    case duringCheckpoint(Int)
    /// After the beat called back (the manifest log's writes may still be in flight).
    case afterBeat
    /// After the beat called back detached (Forest "Detached beats"), `ticks` ticks into its
    /// trees' IO, if they have not finished; the op is committed.
    case duringDetachedBeat(Int)
}

/// How a restart ended.
enum ForestRestart: Equatable {
    case replayed
    /// The process crashed again during the replay.
    case crashed
    case failed(String)
}

/// A forest of two trees (an index tree and an object tree) on one process's storage.
final class ForestNode {
    static let indexTreeId: UInt16 = 10
    static let objectTreeId: UInt16 = 18

    static let configuration = ForestConfiguration(trees: [
        TreeHarness<CompositeKey64>.configuration(valuesPerBeatMax: 32, growthFactor: 4),
        TreeHarness<TreeTestObject>.configuration(valuesPerBeatMax: 16, growthFactor: 4),
    ])

    let forest: Forest<SimulatedStorage>
    let index: Tree<CompositeKey64, SimulatedStorage>
    let objects: Tree<TreeTestObject, SimulatedStorage>

    init(storage: SimulatedStorage) {
        let configuration = Self.configuration
        forest = Forest(storage: storage, configuration: configuration)
        index = Tree(
            treeId: Self.indexTreeId, grid: forest.grid, freeSet: forest.freeSet, configuration: configuration.trees[0])
        objects = Tree(
            treeId: Self.objectTreeId, grid: forest.grid, freeSet: forest.freeSet, configuration: configuration.trees[1])
        forest.add(index)
        forest.add(objects)
    }
}

/// Drives a forest op by op against a model, with crashes and restarts from the last durable
/// checkpoint (WAL-style replay of the ops after it).
final class ForestHarness {
    static let fields: UInt64 = 16
    static let timestamps: UInt64 = 64

    let layout = DataFileLayout(.testing)
    let storage: SimulatedStorage
    var node: ForestNode
    let wal: [ForestOpPuts]
    var indexModel: Set<CompositeKey64> = []
    var objectModel: [UInt64: TreeTestObject] = [:]
    var objectIdsMax: UInt64 = 0
    var modelOp: UInt64 = 0
    /// The last op whose beat called back.
    var committedOp: UInt64 = 0
    /// The highest op ever committed (a restart replays up to it).
    var highestCommittedOp: UInt64 = 0
    /// What the superblock holds: the last checkpoint whose writes completed.
    var superblock = ForestCheckpoint.formatted
    /// The op before whose beat `checkpointDurable` is called (trigger + pipeline + 1).
    var durableAtOp: UInt64?
    /// The op of the latest checkpoint declared durable.
    var durableCheckpointOp: UInt64 = 0
    /// Every checkpoint written, by checkpoint op (the latest write of each).
    var checkpoints: [UInt64: ForestCheckpoint] = [:]
    /// Ops from a checkpoint's trigger to the op before whose beat it is declared durable: the
    /// spec's pipeline + 1 (odd delays land mid-half-bar, where the forest defers the effect).
    var durableDelay: UInt64
    var crashes = 0
    var crashesDuringCheckpoint = 0
    /// Crashes that struck a committed op's detached beat (its trees' IO still in flight).
    var crashesDuringDetachedBeat = 0
    /// Blocks seen going from released to free (`trackFreeSet`).
    var blocksFreed = 0
    var failure: String?

    // Free-set protocol tracking (`trackFreeSet`).
    var trackFreeSet = false
    /// Per block index: the checkpoint op written before the beat that released it.
    var releasedAfter: [UInt64?]
    var wasAcquired: [Bool]

    init(storageSeed: UInt64, wal: [ForestOpPuts], tornWrites: Bool) {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...8
        options.writeLatencyTicks = 1...8
        if tornWrites {
            options.crashTornWriteProbability = 1
            options.faultyZones = [.grid]
        }
        storage = SimulatedStorage(layout: layout, seed: storageSeed, options: options)
        node = ForestNode(storage: storage)
        durableDelay = UInt64(layout.configuration.pipelinePrepareQueueMax) + 1
        self.wal = wal
        let blocks = layout.configuration.gridBlockCountMax
        releasedAfter = Array(repeating: nil, count: blocks)
        wasAcquired = Array(repeating: false, count: blocks)
    }

    /// The WAL of `count` ops: index keys put and deleted at random in a small key space; objects
    /// mostly created with increasing ids, some updated or deleted.
    static func makeWAL(seed: UInt64, count: Int) -> [ForestOpPuts] {
        var prng = PRNG(seed: seed)
        var wal: [ForestOpPuts] = []
        var nextId: UInt64 = 1
        var version: UInt64 = 0
        for _ in 0..<count {
            var puts = ForestOpPuts()
            for _ in 0..<prng.int(in: 1...32) {
                let key = CompositeKey64(field: prng.below(fields), timestamp: prng.below(timestamps))
                puts.keys.append(prng.chance(percent: 25) ? .tombstone(key: key) : key)
            }
            for _ in 0..<prng.int(in: 1...16) {
                version += 1
                let roll = prng.int(in: 0...99)
                if roll < 70 || nextId == 1 {
                    puts.objects.append(TreeTestObject(id: nextId, version: version))
                    nextId += 1
                } else if roll < 90 {
                    puts.objects.append(TreeTestObject(id: 1 + prng.below(nextId - 1), version: version))
                } else {
                    puts.objects.append(.tombstone(key: 1 + prng.below(nextId - 1)))
                }
            }
            wal.append(puts)
        }
        return wal
    }

    // MARK: Ops

    /// Puts op `op`'s WAL entry and runs its beat; false if the run crashed (or failed).
    func commit(_ op: UInt64, crash: ForestCrash? = nil) -> Bool {
        precondition(op == committedOp + 1, "ops commit in order")
        let puts = wal[Int(op - 1)]
        for key in puts.keys { node.index.put(key) }
        for object in puts.objects { node.objects.put(object) }
        if durableAtOp == op {
            node.forest.checkpointDurable()
            durableAtOp = nil
            durableCheckpointOp = node.forest.checkpointOp
        }
        let checkpointBefore = node.forest.checkpointOp
        var result: Result<ForestCheckpoint?, ForestFault>?
        node.forest.compact(op: op) { result = $0 }
        // A crash after the beat called back but while its detached trees still run (Forest
        // "Detached beats") strikes once the op is committed.
        var crashesAfterCommit = false
        switch crash {
        case .afterTicks(let ticks):
            _ = storage.run(until: { result != nil && !self.node.forest.isCompacting }, tickLimit: ticks)
            if result == nil { return crashNow(duringCheckpoint: false) }
            crashesAfterCommit = node.forest.isCompacting
        case .duringDetachedBeat(let ticks):
            _ = storage.run(until: { result != nil })
            _ = storage.run(until: { !self.node.forest.isCompacting }, tickLimit: ticks)
            crashesAfterCommit = node.forest.isCompacting
        case .duringCheckpoint(let ticks):
            _ = storage.run(until: { result != nil || self.node.forest.isCheckpointing })
            _ = storage.run(until: { result != nil }, tickLimit: ticks)
            if result == nil { return crashNow(duringCheckpoint: true) }
        case .afterBeat, nil:
            break
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
        if op > modelOp { applyToModel(op) }
        if trackFreeSet, let violation = checkFreeSet(checkpointBefore: checkpointBefore) {
            failure = "op \(op): \(violation)"
            return false
        }
        if case .afterBeat = crash { return crashNow(duringCheckpoint: false) }
        if crashesAfterCommit {
            crashesDuringDetachedBeat += 1
            return crashNow(duringCheckpoint: false)
        }
        return true
    }

    private func applyToModel(_ op: UInt64) {
        precondition(op == modelOp + 1, "the model follows the ops")
        modelOp = op
        for key in wal[Int(op - 1)].keys {
            if key.isTombstone { indexModel.remove(key.key) } else { indexModel.insert(key) }
        }
        for object in wal[Int(op - 1)].objects {
            objectIdsMax = max(objectIdsMax, object.id)
            objectModel[object.id] = object.isTombstone ? nil : object
        }
    }

    private func crashNow(duringCheckpoint: Bool) -> Bool {
        storage.crash()
        crashes += 1
        if duringCheckpoint { crashesDuringCheckpoint += 1 }
        return false
    }

    /// A new process: a fresh forest opens the superblock's checkpoint and replays the WAL up
    /// to the highest committed op; it crashes again during the beat of `crashAt`, if given.
    func restart(crashAt: UInt64? = nil, crashTicks: Int = 1) -> ForestRestart {
        node = ForestNode(storage: storage)
        var outcome: Result<Void, ForestOpenError>?
        node.forest.open(checkpoint: superblock) { outcome = $0 }
        guard storage.run(until: { outcome != nil }) else { return .failed("open never finished") }
        if case .failure(let error) = outcome! { return .failed("open of checkpoint \(superblock.op) failed: \(error)") }
        let trigger = superblock.op + UInt64(layout.configuration.lsmCompactionOps)
        durableAtOp = superblock.op == 0 ? nil : trigger + durableDelay
        committedOp = superblock.op
        // Each turn replays one op: bounded by the WAL.
        while committedOp < highestCommittedOp {
            let op = committedOp + 1
            guard commit(op, crash: op == crashAt ? .afterTicks(crashTicks) : nil) else {
                return failure.map { .failed($0) } ?? .crashed
            }
        }
        return .replayed
    }

    // MARK: Checks

    /// Nil when the forest agrees with the model on `count` random keys of each tree.
    func checkSample(prng: inout PRNG, count: Int) -> String? {
        for _ in 0..<count {
            let key = CompositeKey64(field: prng.below(Self.fields), timestamp: prng.below(Self.timestamps))
            if let failure = checkIndex(key) { return failure }
            if objectIdsMax > 0, let failure = checkObject(1 + prng.below(objectIdsMax)) { return failure }
        }
        return nil
    }

    /// Nil when the forest agrees with the model on every key.
    func checkAll() -> String? {
        for field in 0..<Self.fields {
            for timestamp in 0..<Self.timestamps {
                if let failure = checkIndex(CompositeKey64(field: field, timestamp: timestamp)) { return failure }
            }
        }
        var id: UInt64 = 1
        while id <= objectIdsMax {
            if let failure = checkObject(id) { return failure }
            id += 1
        }
        return nil
    }

    func checkIndex(_ key: CompositeKey64) -> String? {
        var answer: TreeLookupResult<CompositeKey64>?
        node.index.lookup(key) { answer = $0 }
        guard storage.run(until: { answer != nil }) else { return "index lookup never finished" }
        return TreeHarness<CompositeKey64>.compare(key, answer!, indexModel.contains(key) ? key : nil)
            .map { "index tree at op \(committedOp): \($0)" }
    }

    func checkObject(_ id: UInt64) -> String? {
        var answer: TreeLookupResult<TreeTestObject>?
        node.objects.lookup(id) { answer = $0 }
        guard storage.run(until: { answer != nil }) else { return "object lookup never finished" }
        return TreeHarness<TreeTestObject>.compare(id, answer!, objectModel[id])
            .map { "object tree at op \(committedOp): \($0)" }
    }

    /// Released blocks become free only once a checkpoint written after their release is
    /// durable, and never without having been released first.
    private func checkFreeSet(checkpointBefore: UInt64) -> String? {
        let freeSet = node.forest.freeSet
        guard freeSet.verifyInvariants() else { return "free set invariants" }
        for index in 0..<freeSet.blockCount {
            let address = UInt64(index + 1)
            let isFree = freeSet.isFree(address)
            if isFree {
                if let released = releasedAfter[index] {
                    guard durableCheckpointOp > released else {
                        return "block \(address), released after checkpoint \(released), freed while checkpoint \(durableCheckpointOp) is the durable one"
                    }
                    blocksFreed += 1
                } else if wasAcquired[index] {
                    return "block \(address) freed within the beat that released it"
                }
                releasedAfter[index] = nil
                wasAcquired[index] = false
                continue
            }
            wasAcquired[index] = true
            if freeSet.isReleased(address) && releasedAfter[index] == nil { releasedAfter[index] = checkpointBefore }
        }
        return nil
    }

    /// Each tree's manifest, level by level.
    func manifests() -> [[TableInfo]] {
        var result: [[TableInfo]] = []
        for manifest in [node.index.manifest.levelsTables(), node.objects.manifest.levelsTables()] {
            result.append(contentsOf: manifest)
        }
        return result
    }

    /// Addresses of the blocks whose bytes differ.
    static func differentBlocks(_ a: [UInt8], _ b: [UInt8], blockSize: Int) -> [Int] {
        precondition(a.count == b.count, "two grids of one layout")
        return stride(from: 0, to: a.count, by: blockSize).filter { start in
            a[start..<(start + blockSize)] != b[start..<(start + blockSize)]
        }.map { $0 / blockSize + 1 }
    }

    func gridBytes() -> [UInt8] {
        Array(storage.bytes(zone: .grid, offset: 0, count: Int(layout.size(of: .grid))))
    }

    func freeSetState() -> [UInt8] {
        let freeSet = node.forest.freeSet
        return (1...UInt64(freeSet.blockCount)).map { address in
            freeSet.isFree(address) ? 0 : (freeSet.isReleased(address) ? 2 : 1)
        }
    }
}

extension Manifest {
    /// The tables of every level, in storage order.
    func levelsTables() -> [[TableInfo]] {
        (0..<levelCount).map { level in (0..<tableCount(level: level)).map { self.level(level).table(at: $0) } }
    }
}

@Suite struct ForestTests {
    static let opCount: UInt64 = 210

    /// Runs every op without a crash.
    static func runWithoutCrashes(_ harness: ForestHarness, through lastOp: UInt64) -> String? {
        var prng = PRNG(seed: 99)
        // Each turn commits one op: bounded by lastOp.
        while harness.committedOp < lastOp {
            guard harness.commit(harness.committedOp + 1) else { return harness.failure ?? "unexpected crash" }
            if harness.committedOp % 16 == 0, let failure = harness.checkSample(prng: &prng, count: 20) {
                return failure
            }
        }
        harness.storage.runUntilIdle()
        return nil
    }

    /// Runs every op with crashes: at random points, and while the 2nd and 5th checkpoints are
    /// being written; after each restart the forest must agree with the model.
    static func runWithCrashes(_ harness: ForestHarness, seed: UInt64, through lastOp: UInt64) -> String? {
        var prng = PRNG(seed: seed ^ 0x5eed)
        let configuration = harness.layout.configuration
        let forcedTriggers: Set<UInt64> = [
            configuration.checkpointTrigger(after: configuration.checkpointAfter(0)),
            configuration.checkpointTrigger(after: configuration.checkpointAfter(0) + 3 * UInt64(configuration.vsrCheckpointOps)),
        ]
        var forcedDone: Set<UInt64> = []
        var pendingDetachedCrash: Int?
        // Each turn commits an op or crashes and restarts; crashes are capped, so ops advance.
        while harness.committedOp < lastOp {
            let op = harness.committedOp + 1
            var crash: ForestCrash?
            if forcedTriggers.contains(op) && !forcedDone.contains(op) {
                forcedDone.insert(op)
                crash = .duringCheckpoint(prng.int(in: 0...6))
            } else if harness.crashes < 16 && prng.chance(percent: 5) {
                switch prng.below(3) {
                case 0: crash = .afterTicks(prng.int(in: 1...24))
                case 1:
                    // Tried at every op until a beat detaches with IO left at the tick.
                    pendingDetachedCrash = prng.int(in: 0...2)
                    crash = .duringDetachedBeat(pendingDetachedCrash!)
                default: crash = .afterBeat
                }
            } else if let ticks = pendingDetachedCrash {
                crash = .duringDetachedBeat(ticks)
            }
            let superblockBefore = harness.superblock
            let detachedCrashesBefore = harness.crashesDuringDetachedBeat
            if harness.commit(op, crash: crash) { continue }
            if harness.crashesDuringDetachedBeat > detachedCrashesBefore { pendingDetachedCrash = nil }
            if let failure = harness.failure { return failure }
            if case .duringCheckpoint = crash, harness.superblock != superblockBefore {
                return "seed \(seed): a crash during checkpoint writes changed the superblock"
            }
            // Sometimes the replay itself crashes (during a beat after the trigger); the next
            // restart replays again, from the same superblock.
            var crashAt: UInt64?
            let replayFirst = harness.superblock.op + 1
            if prng.chance(percent: 30) && harness.highestCommittedOp >= replayFirst {
                crashAt = replayFirst + prng.below(harness.highestCommittedOp - replayFirst + 1)
            }
            var outcome = harness.restart(crashAt: crashAt, crashTicks: prng.int(in: 1...12))
            for _ in 0..<3 where outcome == .crashed { outcome = harness.restart() }
            switch outcome {
            case .replayed: break
            case .crashed: return "seed \(seed): the replay crashed without a crash planned"
            case .failed(let failure): return "seed \(seed) after crash \(harness.crashes): \(failure)"
            }
            if let failure = harness.checkSample(prng: &prng, count: 40) {
                return "seed \(seed) after restart \(harness.crashes): \(failure)"
            }
        }
        harness.storage.runUntilIdle()
        return nil
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func restartsReplayToTheModelAndTheSameGrid(seed: UInt64) {
        let wal = ForestHarness.makeWAL(seed: seed, count: Int(Self.opCount))
        let straight = ForestHarness(storageSeed: seed &* 31, wal: wal, tornWrites: false)
        straight.durableDelay += seed % 2
        straight.trackFreeSet = true
        let straightFailure = Self.runWithoutCrashes(straight, through: Self.opCount)
        #expect(straightFailure == nil, "seed \(seed): \(straightFailure ?? "")")
        guard straightFailure == nil else { return }
        let allFailure = straight.checkAll()
        #expect(allFailure == nil, "seed \(seed): \(allFailure ?? "")")

        let crashing = ForestHarness(storageSeed: seed &* 57 &+ 3, wal: wal, tornWrites: true)
        crashing.durableDelay = straight.durableDelay
        let crashFailure = Self.runWithCrashes(crashing, seed: seed, through: Self.opCount)
        #expect(crashFailure == nil, "seed \(seed): \(crashFailure ?? "")")
        guard crashFailure == nil else { return }
        let crashAllFailure = crashing.checkAll()
        #expect(crashAllFailure == nil, "seed \(seed): \(crashAllFailure ?? "")")

        #expect(crashing.crashes >= 3, "seed \(seed): the run crashed (\(crashing.crashes))")
        #expect(crashing.crashesDuringCheckpoint >= 1, "seed \(seed): a crash hit a checkpoint's writes")
        #expect(crashing.crashesDuringDetachedBeat >= 1,
                "seed \(seed): a crash hit a detached beat (\(crashing.crashesDuringDetachedBeat) of \(crashing.crashes), detached \(crashing.node.forest.detachedBeatCount))")
        #expect(crashing.storage.faults.writesTorn > 0, "seed \(seed): crashes tore grid writes")
        #expect(straight.checkpoints.count >= 9, "seed \(seed): several checkpoints (\(straight.checkpoints.count))")
        let differentCheckpoints = straight.checkpoints.keys.sorted().filter { crashing.checkpoints[$0] != straight.checkpoints[$0] }
        #expect(differentCheckpoints.isEmpty, "seed \(seed): the same checkpoints, byte for byte (differ: \(differentCheckpoints))")
        let sameManifests = crashing.manifests() == straight.manifests()
        #expect(sameManifests, "seed \(seed): the same manifests")
        let sameFreeSet = crashing.freeSetState() == straight.freeSetState()
        #expect(sameFreeSet, "seed \(seed): the same free set")
        let highest = straight.node.forest.freeSet.highestAcquiredAddress
        #expect(crashing.node.forest.freeSet.highestAcquiredAddress == highest, "seed \(seed): the same grid extent")
        let differentBlocks = ForestHarness.differentBlocks(crashing.gridBytes(), straight.gridBytes(), blockSize: 4096)
        #expect(differentBlocks.isEmpty, "seed \(seed): byte-identical grid zones (blocks differ: \(differentBlocks.prefix(10)))")
        let levels = straight.manifests().map(\.count)
        #expect(levels.enumerated().contains { $0.offset % 7 != 0 && $0.element > 0 },
                "seed \(seed): tables reached levels below 0 (\(levels))")
    }

    /// Detached beats change when the trees' IO runs, never what it writes (Forest "Detached
    /// beats"): the same ops with beats that detach and with beats that run to their end give
    /// the same checkpoints, manifests, free set and grid bytes.
    @Test func detachedBeatsWriteTheSameGridAsBeatsThatRunToTheirEnd() {
        let wal = ForestHarness.makeWAL(seed: 11, count: Int(Self.opCount))
        let detaching = ForestHarness(storageSeed: 5, wal: wal, tornWrites: false)
        let attached = ForestHarness(storageSeed: 5, wal: wal, tornWrites: false)
        attached.node.forest.detachesBeats = false
        for harness in [detaching, attached] {
            let failure = Self.runWithoutCrashes(harness, through: Self.opCount)
            #expect(failure == nil, "\(failure ?? "")")
            guard failure == nil else { return }
            let allFailure = harness.checkAll()
            #expect(allFailure == nil, "\(allFailure ?? "")")
        }
        #expect(detaching.node.forest.detachedBeatCount >= 20, "beats detached (\(detaching.node.forest.detachedBeatCount))")
        #expect(attached.node.forest.detachedBeatCount == 0)
        #expect(detaching.checkpoints.count >= 9 && detaching.checkpoints == attached.checkpoints, "the same checkpoints")
        let sameManifests = detaching.manifests() == attached.manifests()
        #expect(sameManifests, "the same manifests")
        let sameFreeSet = detaching.freeSetState() == attached.freeSetState()
        #expect(sameFreeSet, "the same free set")
        let differentBlocks = ForestHarness.differentBlocks(detaching.gridBytes(), attached.gridBytes(), blockSize: 4096)
        #expect(differentBlocks.isEmpty, "byte-identical grid zones (blocks differ: \(differentBlocks.prefix(10)))")
    }

    /// Blocks released in checkpoint interval N stay acquired until checkpoint N+1 is durable,
    /// whether the durability arrives between half-bars or inside one (deferred).
    @Test(arguments: [UInt64(0), 1])
    func releasedBlocksWaitForTheNextDurableCheckpoint(extraDelay: UInt64) {
        let ops: UInt64 = 130
        let harness = ForestHarness(storageSeed: 41 + extraDelay, wal: ForestHarness.makeWAL(seed: 40, count: Int(ops)), tornWrites: false)
        harness.durableDelay += extraDelay
        harness.trackFreeSet = true
        var durableSeen = false
        // Each turn commits one op: bounded by ops.
        while harness.committedOp < ops {
            let op = harness.committedOp + 1
            let isDurableOp = harness.durableAtOp == op
            guard harness.commit(op) else { break }
            if isDurableOp {
                durableSeen = true
                #expect(harness.node.forest.isCheckpointDurable, "op \(op): the checkpoint is durable")
            }
        }
        #expect(harness.failure == nil, "extra delay \(extraDelay): \(harness.failure ?? "")")
        #expect(durableSeen, "checkpoints became durable")
        #expect(harness.blocksFreed > 0, "released blocks were freed (\(harness.blocksFreed))")
        #expect(harness.node.forest.freeSet.releasedCount > 0, "blocks wait for a durable checkpoint")
    }

    @Test func openAndReplayToTheTriggerRestoresTheCheckpointedState() {
        let configuration = DataFileLayout(.testing).configuration
        let checkpointOp = configuration.checkpointAfter(configuration.checkpointAfter(0))
        let trigger = configuration.checkpointTrigger(after: configuration.checkpointAfter(0))
        let wal = ForestHarness.makeWAL(seed: 7, count: Int(trigger))
        let original = ForestHarness(storageSeed: 7, wal: wal, tornWrites: false)
        let failure = Self.runWithoutCrashes(original, through: trigger)
        #expect(failure == nil, "\(failure ?? "")")
        guard failure == nil, let checkpoint = original.checkpoints[checkpointOp] else {
            Issue.record("the trigger wrote checkpoint \(checkpointOp)")
            return
        }
        #expect(original.superblock == checkpoint, "the trigger's checkpoint is the latest")

        // A second process over the same disk, opened from the checkpoint, replays to the trigger.
        let restarted = ForestHarness(storageSeed: 8, wal: wal, tornWrites: false)
        restarted.storage.bytes(zone: .grid, offset: 0, count: Int(restarted.layout.size(of: .grid)))
            .copyMemory(from: UnsafeRawBufferPointer(original.storage.bytes(
                zone: .grid, offset: 0, count: Int(original.layout.size(of: .grid)))))
        restarted.superblock = checkpoint
        restarted.applyModel(through: checkpoint.op)
        restarted.highestCommittedOp = trigger
        let restartOutcome = restarted.restart()
        #expect(restartOutcome == .replayed, "\(restartOutcome)")
        #expect(restarted.node.forest.replayThroughOp == trigger, "replay skips up to the trigger")
        let sameManifests = restarted.manifests() == original.manifests()
        #expect(sameManifests, "the same manifests")
        let sameFreeSet = restarted.freeSetState() == original.freeSetState()
        #expect(sameFreeSet, "the same free set")
        #expect(restarted.node.forest.freeSet.isCheckpointDurable == original.node.forest.freeSet.isCheckpointDurable,
                "both wait for the checkpoint to be durable")
        #expect(restarted.node.index.memtableCounts == original.node.index.memtableCounts, "the same index memtables")
        #expect(restarted.node.objects.memtableCounts == original.node.objects.memtableCounts, "the same object memtables")
        #expect(restarted.node.forest.manifestLog.newest == original.node.forest.manifestLog.newest, "the same log chain")
        #expect(restarted.node.forest.manifestLog.blockCount == original.node.forest.manifestLog.blockCount,
                "the same log chain")
        let allFailure = restarted.checkAll()
        #expect(allFailure == nil, "\(allFailure ?? "")")
    }

    @Test func corruptCheckpointsAreRejectedWithTypedErrors() {
        let configuration = DataFileLayout(.testing).configuration
        let checkpointOp = configuration.checkpointAfter(0)
        let trigger = configuration.checkpointTrigger(after: 0)
        let wal = ForestHarness.makeWAL(seed: 3, count: Int(trigger))
        let original = ForestHarness(storageSeed: 3, wal: wal, tornWrites: false)
        let failure = Self.runWithoutCrashes(original, through: trigger)
        #expect(failure == nil, "\(failure ?? "")")
        guard let checkpoint = original.checkpoints[checkpointOp] else {
            Issue.record("the trigger wrote a checkpoint")
            return
        }
        func open(_ tampered: ForestCheckpoint) -> Result<Void, ForestOpenError>? {
            let node = ForestNode(storage: original.storage)
            var outcome: Result<Void, ForestOpenError>?
            node.forest.open(checkpoint: tampered) { outcome = $0 }
            _ = original.storage.run(until: { outcome != nil })
            return outcome
        }
        func openError(_ tampered: ForestCheckpoint) -> ForestOpenError? {
            if case .failure(let error) = open(tampered) { return error }
            return nil
        }
        var badManifest = checkpoint
        badManifest.manifestNewest.checksum ^= 1
        guard case .failure(.manifestLog) = open(badManifest) else {
            Issue.record("a wrong manifest checksum is a manifest log error")
            return
        }
        var badFreeSet = checkpoint
        badFreeSet.freeSetAcquired.checksum ^= 1
        guard case .failure(.freeSet) = open(badFreeSet) else {
            Issue.record("a wrong trailer checksum is a free set error")
            return
        }
        var badExtent = checkpoint
        badExtent.highestAcquiredAddress += 1
        #expect(openError(badExtent) ==
            .highestAcquiredAddress(expected: checkpoint.highestAcquiredAddress + 1, found: checkpoint.highestAcquiredAddress))
        var badOp = checkpoint
        badOp.op += 1
        #expect(openError(badOp) == .checkpointOp(checkpointOp + 1))
        var notFormatted = ForestCheckpoint.formatted
        notFormatted.manifestBlockCount = 1
        #expect(openError(notFormatted) == .checkpointOp(0))
        // The genuine checkpoint still opens.
        guard case .success = open(checkpoint) else {
            Issue.record("the checkpoint opens")
            return
        }
    }
}

extension ForestHarness {
    /// Brings the model to `op` without running the forest (for a harness that opens another
    /// process's checkpoint).
    func applyModel(through op: UInt64) {
        while modelOp < op {
            let next = modelOp + 1
            for key in wal[Int(next - 1)].keys {
                if key.isTombstone { indexModel.remove(key.key) } else { indexModel.insert(key) }
            }
            for object in wal[Int(next - 1)].objects {
                objectIdsMax = max(objectIdsMax, object.id)
                objectModel[object.id] = object.isTombstone ? nil : object
            }
            modelOp = next
        }
    }
}

extension ForestTests {
    /// How a run with the index tree's tables corrupted after `warmUp` ops ended.
    struct CompactionFaultRun {
        var failedOp: UInt64?
        var failure: String?
        var fault: ForestFault?
        var nextBeatFailed = false
        /// Beats that detached between the corruption and the fault.
        var detachedBeats = 0
        var isCompactingAfter = true
    }

    static func runWithCorruptIndexTables(warmUp: UInt64) -> CompactionFaultRun {
        let wal = ForestHarness.makeWAL(seed: 7, count: 400)
        let harness = ForestHarness(storageSeed: 70, wal: wal, tornWrites: false)
        var run = CompactionFaultRun()
        if let failure = Self.runWithoutCrashes(harness, through: warmUp) {
            run.failure = "warm-up: \(failure)"
            return run
        }
        // Every table of the index tree: whichever a compaction reads next is corrupt.
        let manifest = harness.node.index.manifest
        for level in 0..<manifest.levelCount {
            for position in 0..<manifest.level(level).count {
                let table = manifest.level(level).table(at: position)
                harness.storage.corruptSector(zone: .grid, offset: harness.layout.gridBlockOffset(address: table.address))
                _ = harness.node.forest.grid.cache.remove(table.address)
            }
        }
        let detachedBefore = harness.node.forest.detachedBeatCount
        // Each turn commits one op: bounded by the WAL.
        while harness.committedOp < UInt64(wal.count) {
            let op = harness.committedOp + 1
            if !harness.commit(op) {
                run.failedOp = op
                break
            }
        }
        run.failure = harness.failure
        run.fault = harness.node.forest.fault
        run.detachedBeats = harness.node.forest.detachedBeatCount - detachedBefore
        harness.storage.runUntilIdle()
        var next: Result<ForestCheckpoint?, ForestFault>?
        harness.node.forest.compact(op: harness.node.forest.opLast + 1) { next = $0 }
        if case .failure = next { run.nextBeatFailed = true }
        run.isCompactingAfter = harness.node.forest.isCompacting
        return run
    }

    /// A corrupt block that a compaction job meets is a fault of its tree, reported by a beat,
    /// while beats detach (Forest "Detached beats"): the job reads it in a detached beat and
    /// stops; the tree takes the job's failure as its fault at the half-bar's last beat, which
    /// never detaches, so that beat reports it. Never lost, never a crash, nothing applied, and
    /// every beat after it fails too. The warm-ups end at different beats of a half-bar.
    @Test func aCompactionFaultIsReportedByABeatWhileBeatsDetach() {
        var detachedBeats = 0
        for warmUp in UInt64(160)...167 {
            let run = Self.runWithCorruptIndexTables(warmUp: warmUp)
            #expect(run.failedOp != nil, "warm-up \(warmUp): a beat reported a corrupt table (\(run.failure ?? ""))")
            #expect(run.failure?.contains("forest fault") == true, "warm-up \(warmUp): \(run.failure ?? "")")
            if case .tree(let treeId, _)? = run.fault {
                #expect(treeId == ForestNode.indexTreeId, "warm-up \(warmUp)")
            } else {
                Issue.record("warm-up \(warmUp): the forest's fault is a tree's: \(String(describing: run.fault))")
            }
            #expect(run.nextBeatFailed, "warm-up \(warmUp): the beat after a fault fails")
            #expect(!run.isCompactingAfter, "warm-up \(warmUp): a failed forest runs no trees")
            detachedBeats += run.detachedBeats
        }
        #expect(detachedBeats > 0, "beats detached between a corruption and its fault")
    }
}

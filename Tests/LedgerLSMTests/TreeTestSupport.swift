import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting

/// A 128-byte object value (like an account or transfer) keyed by a u64, with tombstones.
struct TreeTestObject: TreeValue {
    var id: UInt64
    var version: UInt64
    /// Bit 0: tombstone.
    var flags: UInt64
    var payload: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    init(id: UInt64, version: UInt64) {
        self.id = id
        self.version = version
        flags = 0
        let v = id &* 31 &+ version
        payload = (v, v &+ 1, v &+ 2, v &+ 3, v &+ 4, v &+ 5, v &+ 6, v &+ 7, v &+ 8, v &+ 9, v &+ 10, v &+ 11, v &+ 12)
    }

    var key: UInt64 { id }
    var isTombstone: Bool { flags & 1 != 0 }
    static func tombstone(key: UInt64) -> TreeTestObject {
        var value = TreeTestObject(id: key, version: 0)
        value.flags = 1
        return value
    }
}

/// Byte equality of two values (test values have no padding).
func treeValuesEqual<Value: TreeValue>(_ a: Value, _ b: Value) -> Bool {
    withUnsafeBytes(of: a) { x in withUnsafeBytes(of: b) { y in x.elementsEqual(y) } }
}

/// A tree on a simulated disk with a sorted-dictionary model, driven batch by batch.
final class TreeHarness<Value: TreeValue> {
    let layout = DataFileLayout(.testing)
    let storage: SimulatedStorage
    let grid: Grid<SimulatedStorage>
    let freeSet: FreeSet
    let tree: Tree<Value, SimulatedStorage>
    var model: [Value.Key: Value] = [:]
    var op: UInt64 = 0
    var events: [TableInfo] = []

    init(storageSeed: UInt64, configuration: TreeConfiguration, cacheBlocks: Int = 16) {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...8
        options.writeLatencyTicks = 1...8
        storage = SimulatedStorage(layout: layout, seed: storageSeed, options: options)
        grid = Grid(storage: storage, cacheBlocks: cacheBlocks, readsMax: 8, writesMax: 16, readQueueMax: 64)
        freeSet = FreeSet(blockCount: layout.configuration.gridBlockCountMax)
        tree = Tree(treeId: 9, grid: grid, freeSet: freeSet, configuration: configuration)
    }

    static func configuration(
        valuesPerBeatMax: Int, compactionOps: Int = 4, levelCount: Int = 7, growthFactor: Int,
        tablesMax: Int = 64
    ) -> TreeConfiguration {
        TreeConfiguration(
            valuesPerBeatMax: valuesPerBeatMax, compactionOps: compactionOps,
            manifest: ManifestConfiguration(levelCount: levelCount, growthFactor: growthFactor, tablesMax: tablesMax),
            blockSize: DataFileLayout(.testing).configuration.blockSize, lookupsMax: 8)
    }

    func put(_ value: Value) {
        tree.put(value)
        if value.isTombstone { model[value.key] = nil } else { model[value.key] = value }
    }

    /// Commits the batch: one compaction beat, run to completion; at each bar's end a
    /// checkpoint becomes durable (so released blocks are freed and the small grid lasts).
    func commit() -> Bool {
        op += 1
        var done = false
        tree.compact(op: op) { done = true }
        guard storage.run(until: { done }) else { return false }
        events.append(contentsOf: tree.takeManifestEvents())
        if (op + 1) % UInt64(tree.configuration.compactionOps) == 0 && !freeSet.isReserving {
            freeSet.markCheckpointNotDurable()
            freeSet.markCheckpointDurable()
        }
        return true
    }

    /// Commits the batch like `commit()`, with lookups of `keys` started while the beat's IO is
    /// in flight (they may straddle the half-bar's manifest changes); nil when all agree with
    /// the model.
    func commit(lookingUp keys: [Value.Key]) -> String? {
        op += 1
        var done = false
        var answers: [(Value.Key, TreeLookupResult<Value>)] = []
        tree.compact(op: op) { done = true }
        for key in keys { tree.lookup(key) { answers.append((key, $0)) } }
        guard storage.run(until: { done && answers.count == keys.count }) else {
            return "beat or lookups of op \(op) never finished"
        }
        events.append(contentsOf: tree.takeManifestEvents())
        if (op + 1) % UInt64(tree.configuration.compactionOps) == 0 && !freeSet.isReserving {
            freeSet.markCheckpointNotDurable()
            freeSet.markCheckpointDurable()
        }
        for (key, answer) in answers {
            if let failure = Self.compare(key, answer, model[key]) { return "during the beat: \(failure)" }
        }
        return nil
    }

    /// Looks `key` up and waits for the answer.
    func lookup(_ key: Value.Key) -> TreeLookupResult<Value>? {
        var answer: TreeLookupResult<Value>?
        tree.lookup(key) { answer = $0 }
        _ = storage.run(until: { answer != nil })
        return answer
    }

    /// Nil when the tree agrees with the model about `key`, else a description.
    func check(_ key: Value.Key) -> String? {
        guard let answer = lookup(key) else { return "lookup of \(key) never finished" }
        return Self.compare(key, answer, model[key])
    }

    static func compare(_ key: Value.Key, _ answer: TreeLookupResult<Value>, _ expected: Value?) -> String? {
        switch (answer, expected) {
        case (.found(let found), .some(let expected)):
            return treeValuesEqual(found, expected) ? nil : "key \(key): wrong value"
        case (.notFound, .none):
            return nil
        case (.found, .none):
            return "key \(key): found a deleted or never-put key"
        case (.notFound, .some):
            return "key \(key): not found"
        case (.fault(let fault), _):
            return "key \(key): fault \(fault)"
        case (.corrupt(let error), _):
            return "key \(key): corrupt \(error)"
        }
    }

    func levelCounts() -> [Int] {
        (0..<tree.manifest.levelCount).map {
            tree.manifest.visibleTableCount(level: $0, snapshot: TableInfo.snapshotLatest)
        }
    }
}

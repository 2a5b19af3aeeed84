import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerStateMachine
import LedgerTesting
import Testing

/// An object-tree value: 128 bytes keyed by a u64, never a tombstone (like an account).
struct CappedTestObject: TreeValue {
    var id: UInt64
    var version: UInt64
    var payload: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    init(id: UInt64, version: UInt64) {
        self.id = id
        self.version = version
        let v = id &* 131 &+ version
        payload = (v, v &+ 1, v &+ 2, v &+ 3, v &+ 4, v &+ 5, v &+ 6, v &+ 7, v &+ 8, v &+ 9, v &+ 10, v &+ 11, v &+ 12, v &+ 13)
    }

    var key: UInt64 { id }
    var isTombstone: Bool { false }
    static func tombstone(key: UInt64) -> CappedTestObject {
        preconditionFailure("capped test objects are never deleted")
    }
}

/// `TreeConfiguration.scanValuesMax`: a tombstone-free tree's scan copies at most its cap.
@Suite struct ScanCopyCapTests {
    static let keys: UInt64 = 3000
    static let cap = 24

    static func harness(seed: UInt64) -> TreeHarness<CappedTestObject> {
        var configuration = TreeHarness<CappedTestObject>.configuration(
            valuesPerBeatMax: 90, levelCount: 4, growthFactor: 2)
        configuration.scanValuesMax = cap
        return TreeHarness<CappedTestObject>(storageSeed: seed &+ 900, configuration: configuration, cacheBlocks: 64)
    }

    static func randomRequest(_ prng: inout PRNG) -> TreeScanRequest<UInt64> {
        var a = prng.below(keys + 10)
        var b = prng.chance(percent: 20) ? a + prng.below(5) : prng.below(keys + 10)
        if prng.chance(percent: 10) {
            a = 0
            b = keys
        }
        if b < a { swap(&a, &b) }
        // Limits up to the cap, the cap itself often (the copy's whole capacity).
        let limit = prng.chance(percent: 40) ? cap : prng.int(in: 0...cap)
        return TreeScanRequest(
            keyMin: a, keyMax: b, direction: prng.chance(percent: 50) ? .ascending : .descending, limit: limit)
    }

    /// Puts (new keys and new versions of old ones, several per key in one memtable) over many
    /// bars; scans at the cap, during beats and between them, agree with the model, and the
    /// contexts' copies hold the cap, not both memtables.
    @Test(arguments: [UInt64(61), 62])
    func cappedScansMatchTheModel(seed: UInt64) {
        let harness = Self.harness(seed: seed)
        let output = UnsafeMutableBufferPointer<CappedTestObject>.allocate(capacity: Self.cap)
        let outputB = UnsafeMutableBufferPointer<CappedTestObject>.allocate(capacity: Self.cap)
        defer {
            output.deallocate()
            outputB.deallocate()
        }
        var prng = PRNG(seed: seed)
        let ops = harness.tree.configuration.compactionOps
        var failure: String?
        var version: UInt64 = 0
        // Each turn is one batch and its beat: bounded by 30 bars.
        for _ in 0..<(30 * ops) where failure == nil {
            for _ in 0..<prng.int(in: 1...harness.tree.configuration.valuesPerBeatMax) {
                version += 1
                harness.put(CappedTestObject(id: prng.below(Self.keys), version: version))
            }
            let sortedKeys = harness.model.keys.sorted(by: <)
            let concurrent = [Self.randomRequest(&prng), Self.randomRequest(&prng)]
            var answers: [TreeScanResult?] = [nil, nil]
            var done = false
            harness.op += 1
            harness.tree.compact(op: harness.op) { done = true }
            for (index, buffer) in [output, outputB].enumerated() {
                let request = concurrent[index]
                harness.tree.scan(
                    keyMin: request.keyMin, keyMax: request.keyMax, direction: request.direction, limit: request.limit,
                    into: buffer
                ) { answers[index] = $0 }
            }
            guard harness.storage.run(until: { done && answers[0] != nil && answers[1] != nil }) else {
                failure = "seed \(seed) op \(harness.op): beat or scans never finished"
                break
            }
            if (harness.op + 1) % UInt64(ops) == 0 && !harness.freeSet.isReserving {
                harness.freeSet.markCheckpointNotDurable()
                harness.freeSet.markCheckpointDurable()
            }
            for (index, buffer) in [output, outputB].enumerated() {
                if let mismatch = harness.compareScan(
                    concurrent[index], result: answers[index], values: buffer, sortedKeys: sortedKeys)
                {
                    failure = "seed \(seed) op \(harness.op) during the beat: \(mismatch)"
                }
            }
            for _ in 0..<3 where failure == nil {
                let request = Self.randomRequest(&prng)
                let result = harness.scan(request, into: output)
                if let mismatch = harness.compareScan(request, result: result, values: output, sortedKeys: sortedKeys) {
                    failure = "seed \(seed) op \(harness.op): \(mismatch)"
                }
            }
        }
        #expect(failure == nil, "\(failure ?? "")")
        let counts = harness.levelCounts()
        #expect(counts[0] > 0 && counts[1] > 0, "values in several levels: \(counts)")
        let memtableValues = harness.tree.memtableCounts.mutable + harness.tree.memtableCounts.immutable
        #expect(memtableValues > Self.cap, "the memtables hold more values than a copy (\(memtableValues))")
        guard let scans = harness.tree.scans else {
            Issue.record("the tree allocated its scan contexts")
            return
        }
        for context in scans.contexts {
            #expect(context.memtableValuesMax == Self.cap, "a capped context copies at most the cap")
        }
        #expect(harness.tree.configuration.scanCopyValuesMax == Self.cap)
        #expect(harness.tree.scansPending == 0)
    }

    /// The whole range at the cap, with every value in the memtables: the first `cap` keys in
    /// either direction, each key's newest version (duplicates across runs counted once).
    @Test func aCappedCopyTakesTheNewestVersionOfEachKey() {
        let harness = Self.harness(seed: 3)
        let output = UnsafeMutableBufferPointer<CappedTestObject>.allocate(capacity: Self.cap)
        defer { output.deallocate() }
        var version: UInt64 = 0
        // Three runs (two beats' sorts and the unsorted suffix), each putting every key 0..<40.
        for round in 0..<3 {
            for key in UInt64(0)..<40 {
                version += 1
                harness.put(CappedTestObject(id: key, version: version))
            }
            if round < 2 { #expect(harness.commit()) }
        }
        let sortedKeys = harness.model.keys.sorted(by: <)
        for direction in [ScanDirection.ascending, .descending] {
            let request = TreeScanRequest<UInt64>(keyMin: 0, keyMax: 100, direction: direction, limit: Self.cap)
            let result = harness.scan(request, into: output)
            #expect(result == .done(Self.cap))
            let mismatch = harness.compareScan(request, result: result, values: output, sortedKeys: sortedKeys)
            #expect(mismatch == nil, "\(direction): \(mismatch ?? "")")
            #expect(output[0].version > 80, "the newest run's version wins")
        }
    }

    /// A limit above the cap is a caller bug; so is a tombstone in a capped tree.
    @Test func aLimitAboveTheCapTraps() async {
        await #expect(processExitsWith: .failure) {
            let harness = ScanCopyCapTests.harness(seed: 4)
            let output = UnsafeMutableBufferPointer<CappedTestObject>.allocate(capacity: ScanCopyCapTests.cap + 1)
            _ = harness.scan(
                TreeScanRequest(keyMin: 0, keyMax: 10, direction: .ascending, limit: ScanCopyCapTests.cap + 1),
                into: output)
        }
    }

    @Test func aTombstoneInACappedTreeTraps() async {
        await #expect(processExitsWith: .failure) {
            var configuration = TreeHarness<TreeTestObject>.configuration(valuesPerBeatMax: 16, growthFactor: 2)
            configuration.scanValuesMax = 8
            let harness = TreeHarness<TreeTestObject>(storageSeed: 5, configuration: configuration)
            harness.put(TreeTestObject(id: 1, version: 1))
            harness.put(.tombstone(key: 2))
            let output = UnsafeMutableBufferPointer<TreeTestObject>.allocate(capacity: 8)
            _ = harness.scan(TreeScanRequest(keyMin: 0, keyMax: 10, direction: .ascending, limit: 8), into: output)
        }
    }

    /// The production forest's object trees: scan context bytes before (both memtables) and after
    /// the cap. Printed for the record; the cap must shrink them to the cap's worth.
    @Test func productionScanContextBytes() {
        let store = ForestStoreConfiguration(storage: .production, caches: .production)
        func uncapped(_ configuration: TreeConfiguration) -> TreeConfiguration {
            var copy = configuration
            copy.scanValuesMax = nil
            return copy
        }
        let transfers = store.transfers.objectTree
        let events = store.accountEvents.objectTree
        let rows: [(String, before: Int, after: Int, copy: Int, valueSize: Int)] = [
            ("transfers object", uncapped(transfers).scanContextBytes(Transfer.self),
             transfers.scanContextBytes(Transfer.self), transfers.scanCopyValuesMax, Transfer.valueSize),
            ("accounts object", uncapped(store.accounts.objectTree).scanContextBytes(Account.self),
             store.accounts.objectTree.scanContextBytes(Account.self), store.accounts.objectTree.scanCopyValuesMax,
             Account.valueSize),
            ("account events", uncapped(events).scanContextBytes(AccountEventRecord.self),
             events.scanContextBytes(AccountEventRecord.self), events.scanCopyValuesMax, AccountEventRecord.valueSize),
        ]
        let blocks = 2 * transfers.manifest.levelCount * transfers.blockSize
        for row in rows {
            print("scan context \(row.0): \(row.before >> 10) KiB before, \(row.after >> 10) KiB after "
                + "(copy \(row.copy) × \(row.valueSize) B; \(blocks >> 10) KiB of blocks)")
            #expect(row.after < row.before, "\(row.0): the cap shrinks the context")
        }
        #expect(transfers.scanValuesMax == Constants.queryResultsMax)
        #expect(events.scanValuesMax == Constants.changeEventsMax)
        #expect(store.expiries.scanValuesMax == nil, "the expiry tree has tombstones: uncapped")
        #expect(transfers.scanCopyValuesMax == Constants.queryResultsMax)
        #expect(uncapped(transfers).scanCopyValuesMax == 2 * transfers.memtableCapacity)
        #expect(rows[0].before - rows[0].after == (2 * transfers.memtableCapacity - Constants.queryResultsMax) * 128)
        // Index trees keep tombstones (updates re-key them): uncapped.
        #expect(store.transfers.indexTree.scanValuesMax == nil)
        #expect(store.accounts.idTree.scanValuesMax == nil)
    }
}

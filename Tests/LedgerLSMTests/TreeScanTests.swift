import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

/// One scan request and where its answer goes.
struct TreeScanRequest<Key> {
    var keyMin: Key
    var keyMax: Key
    var direction: ScanDirection
    var limit: Int
}

extension TreeHarness {
    /// Runs a scan to its end.
    func scan(_ request: TreeScanRequest<Value.Key>, into output: UnsafeMutableBufferPointer<Value>) -> TreeScanResult? {
        var answer: TreeScanResult?
        tree.scan(
            keyMin: request.keyMin, keyMax: request.keyMax, direction: request.direction, limit: request.limit,
            into: output
        ) { answer = $0 }
        _ = storage.run(until: { answer != nil })
        return answer
    }

    /// Nil when `values` (the scan's output, `result` its outcome) is what the model says.
    func compareScan(
        _ request: TreeScanRequest<Value.Key>, result: TreeScanResult?, values: UnsafeMutableBufferPointer<Value>,
        sortedKeys: [Value.Key]
    ) -> String? {
        let expected = Self.expectedKeys(request, sortedKeys: sortedKeys)
        guard let result else { return "scan \(request) never finished" }
        guard case .done(let count) = result else { return "scan \(request): \(result)" }
        guard count == expected.count else { return "scan \(request): \(count) values, model has \(expected.count)" }
        for (index, key) in expected.enumerated() {
            guard let value = model[key], treeValuesEqual(values[index], value) else {
                return "scan \(request): value \(index) is key \(values[index].key), model says \(key)"
            }
        }
        return nil
    }

    /// The model's live keys of `request`, in its direction, at most its limit.
    static func expectedKeys(_ request: TreeScanRequest<Value.Key>, sortedKeys: [Value.Key]) -> ArraySlice<Value.Key> {
        guard request.keyMin <= request.keyMax else { return [] }
        let low = sortedKeys.partitioningIndex { $0 >= request.keyMin }
        let high = sortedKeys.partitioningIndex { $0 > request.keyMax }
        guard low < high else { return [] }
        let range = sortedKeys[low..<high]
        if request.direction == .ascending { return range.prefix(request.limit) }
        return ArraySlice(range.reversed().prefix(request.limit))
    }
}

extension Array {
    /// The first index whose element satisfies `predicate` (false then true along the array).
    func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if predicate(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}

@Suite struct TreeScanTests {
    static let fields: UInt64 = 150
    static let timestamps: UInt64 = 100

    static func randomKey(_ prng: inout PRNG) -> CompositeKey64 {
        CompositeKey64(field: prng.below(fields), timestamp: prng.below(timestamps))
    }

    /// A random request: narrow, wide (many value blocks), empty or inverted ranges; limits 0,
    /// 1, small and unbounded.
    static func randomRequest(_ prng: inout PRNG, outputCount: Int) -> TreeScanRequest<CompositeKey64> {
        var a = randomKey(&prng)
        var b = randomKey(&prng)
        switch prng.int(in: 0...5) {
        case 0:  // Within one field.
            b.field = a.field
        case 1:  // Everything.
            a = CompositeKey64(field: 0, timestamp: 0)
            b = CompositeKey64(field: fields, timestamp: 0)
        case 2:  // Above every key.
            a.field = fields + 1
            b.field = fields + 3
        case 3:  // One key.
            b = a
        default:
            break
        }
        // Inverted ranges stay inverted now and then: a scan of nothing.
        if b < a && !prng.chance(percent: 10) { swap(&a, &b) }
        let limit: Int
        switch prng.int(in: 0...5) {
        case 0: limit = 0
        case 1: limit = 1
        case 2: limit = prng.int(in: 2...20)
        case 3: limit = prng.int(in: 21...500)
        default: limit = outputCount
        }
        return TreeScanRequest(
            keyMin: a, keyMax: b, direction: prng.chance(percent: 50) ? .ascending : .descending, limit: limit)
    }

    static func harness(seed: UInt64, levelCount: Int = 4, growthFactor: Int = 2) -> TreeHarness<CompositeKey64> {
        let configuration = TreeHarness<CompositeKey64>.configuration(
            valuesPerBeatMax: 120, levelCount: levelCount, growthFactor: growthFactor)
        return TreeHarness<CompositeKey64>(storageSeed: seed &+ 500, configuration: configuration, cacheBlocks: 64)
    }

    /// Random puts and deletes for `bars` bars; after each batch, `scansPerBatch` scans run
    /// between beats and 2 more while the next beat's compaction IO is in flight.
    static func runModel(
        harness: TreeHarness<CompositeKey64>, seed: UInt64, bars: Int, scansPerBatch: Int,
        output: UnsafeMutableBufferPointer<CompositeKey64>, outputB: UnsafeMutableBufferPointer<CompositeKey64>
    ) -> String? {
        var prng = PRNG(seed: seed)
        let ops = harness.tree.configuration.compactionOps
        let perBeat = harness.tree.configuration.valuesPerBeatMax
        for _ in 0..<(bars * ops) {
            for _ in 0..<prng.int(in: 1...perBeat) {
                let key = randomKey(&prng)
                harness.put(prng.chance(percent: 25) ? CompositeKey64.tombstone(key: key) : key)
            }
            // Scans issued with the beat's compaction in flight see the state when they start:
            // the model now (the beat changes where values live, not what they are).
            var sortedKeys = harness.model.keys.sorted(by: <)
            let concurrent = (0..<2).map { _ in randomRequest(&prng, outputCount: output.count) }
            var answers: [TreeScanResult?] = [nil, nil]
            var done = false
            harness.op += 1
            harness.tree.compact(op: harness.op) { done = true }
            harness.tree.scan(
                keyMin: concurrent[0].keyMin, keyMax: concurrent[0].keyMax, direction: concurrent[0].direction,
                limit: concurrent[0].limit, into: output
            ) { answers[0] = $0 }
            harness.tree.scan(
                keyMin: concurrent[1].keyMin, keyMax: concurrent[1].keyMax, direction: concurrent[1].direction,
                limit: concurrent[1].limit, into: outputB
            ) { answers[1] = $0 }
            guard harness.storage.run(until: { done && answers[0] != nil && answers[1] != nil }) else {
                return "seed \(seed) op \(harness.op): beat or scans never finished"
            }
            harness.events.append(contentsOf: harness.tree.takeManifestEvents())
            if (harness.op + 1) % UInt64(ops) == 0 && !harness.freeSet.isReserving {
                harness.freeSet.markCheckpointNotDurable()
                harness.freeSet.markCheckpointDurable()
            }
            if let fault = harness.tree.fault { return "seed \(seed) op \(harness.op): tree fault \(fault)" }
            for (index, buffer) in [output, outputB].enumerated() {
                if let failure = harness.compareScan(
                    concurrent[index], result: answers[index], values: buffer, sortedKeys: sortedKeys)
                {
                    return "seed \(seed) op \(harness.op) during the beat: \(failure)"
                }
            }
            #expect(harness.tree.scansPending == 0, "finished scans return their contexts")
            sortedKeys = harness.model.keys.sorted(by: <)
            for _ in 0..<scansPerBatch {
                let request = randomRequest(&prng, outputCount: output.count)
                let result = harness.scan(request, into: output)
                if let failure = harness.compareScan(request, result: result, values: output, sortedKeys: sortedKeys) {
                    return "seed \(seed) op \(harness.op): \(failure)"
                }
            }
        }
        return nil
    }

    // MARK: Model

    @Test(arguments: [UInt64(41), 42, 43])
    func scansMatchTheModelAcrossMemtablesAndLevels(seed: UInt64) {
        let harness = Self.harness(seed: seed)
        let output = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: Int(Self.fields * Self.timestamps))
        let outputB = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: Int(Self.fields * Self.timestamps))
        defer {
            output.deallocate()
            outputB.deallocate()
        }
        let failure = Self.runModel(
            harness: harness, seed: seed, bars: 40, scansPerBatch: 4, output: output, outputB: outputB)
        #expect(failure == nil, "\(failure ?? "")")
        let counts = harness.levelCounts()
        #expect(counts[0] > 0 && counts[1] > 0 && counts[2] > 0, "data in several levels: \(counts)")
        let memtables = harness.tree.memtableCounts
        #expect(memtables.mutable > 0, "data in the mutable memtable")

        // A final sweep: every field in both directions, then the whole range at small limits.
        let sortedKeys = harness.model.keys.sorted(by: <)
        var requests: [TreeScanRequest<CompositeKey64>] = []
        for field in 0..<Self.fields {
            let low = CompositeKey64(field: field, timestamp: 0)
            let high = CompositeKey64(field: field, timestamp: Self.timestamps)
            requests.append(TreeScanRequest(keyMin: low, keyMax: high, direction: .ascending, limit: output.count))
            requests.append(TreeScanRequest(keyMin: low, keyMax: high, direction: .descending, limit: 7))
        }
        let all = (CompositeKey64(field: 0, timestamp: 0), CompositeKey64(field: Self.fields, timestamp: 0))
        for limit in [1, 2, 100, output.count] {
            for direction in [ScanDirection.ascending, .descending] {
                requests.append(TreeScanRequest(keyMin: all.0, keyMax: all.1, direction: direction, limit: limit))
            }
        }
        for request in requests {
            let result = harness.scan(request, into: output)
            let failure = harness.compareScan(request, result: result, values: output, sortedKeys: sortedKeys)
            #expect(failure == nil, "seed \(seed) final: \(failure ?? "")")
            if failure != nil { return }
        }
        #expect(harness.tree.scansPending == 0)
    }

    /// Memtables only (nothing flushed yet): the runs of the mutable memtable, newest wins.
    @Test func scansOfTheMemtablesAlone() {
        let harness = Self.harness(seed: 7)
        let output = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: 64)
        defer { output.deallocate() }
        for timestamp in UInt64(0)..<10 { harness.put(CompositeKey64(field: 1, timestamp: timestamp)) }
        #expect(harness.commit())
        harness.put(.tombstone(key: CompositeKey64(field: 1, timestamp: 3)))
        harness.put(CompositeKey64(field: 2, timestamp: 0))
        // Unsorted suffix: a put, its delete, and a put again.
        harness.put(CompositeKey64(field: 1, timestamp: 20))
        harness.put(.tombstone(key: CompositeKey64(field: 1, timestamp: 20)))
        harness.put(CompositeKey64(field: 1, timestamp: 20))
        let request = TreeScanRequest(
            keyMin: CompositeKey64(field: 1, timestamp: 2), keyMax: CompositeKey64(field: 1, timestamp: 50),
            direction: .descending, limit: 64)
        let result = harness.scan(request, into: output)
        #expect(result == .done(8), "keys 2, 4…9 and 20")
        #expect(output[0].key == CompositeKey64(field: 1, timestamp: 20))
        #expect(output[7].key == CompositeKey64(field: 1, timestamp: 2))
        let failure = harness.compareScan(
            request, result: result, values: output, sortedKeys: harness.model.keys.sorted(by: <))
        #expect(failure == nil, "\(failure ?? "")")
        // A put after the scan does not change what the scan returned, and the next scan sees it.
        harness.put(CompositeKey64(field: 1, timestamp: 30))
        #expect(harness.scan(request, into: output) == .done(9))
    }

    // MARK: Faults

    @Test func corruptValueBlockInRangeIsAFaultOutsideIsNotRead() {
        // Growth factor 64: every table stays in level 0.
        let harness = Self.harness(seed: 9, levelCount: 7, growthFactor: 64)
        let output = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: Int(Self.fields * Self.timestamps))
        let outputB = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: output.count)
        defer {
            output.deallocate()
            outputB.deallocate()
        }
        let failure = Self.runModel(harness: harness, seed: 9, bars: 10, scansPerBatch: 1, output: output, outputB: outputB)
        #expect(failure == nil, "\(failure ?? "")")
        let level = harness.tree.manifest.level(0)
        guard level.count >= 1 else {
            Issue.record("tables reached level 0")
            return
        }
        // Level 0's value blocks in key order (tables hold 2 blocks here), from the disk.
        let layout = harness.layout
        var blocks: [(keyMin: CompositeKey64, keyMax: CompositeKey64, address: UInt64)] = []
        for position in 0..<level.count {
            let table = level.table(at: position)
            let indexBytes = UnsafeRawBufferPointer(harness.storage.bytes(
                zone: .grid, offset: layout.gridBlockOffset(address: table.address),
                count: layout.configuration.blockSize))
            guard let index = try? IndexBlock<CompositeKey64>.decode(block: indexBytes, treeId: 9) else {
                Issue.record("the index block on disk decodes")
                return
            }
            for entry in 0..<index.valueBlockCount {
                blocks.append((index.keysMin[entry], index.keysMax[entry], index.reference(entry).address))
            }
        }
        guard blocks.count >= 3 else {
            Issue.record("level 0 holds 3 value blocks")
            return
        }
        let corrupt = 1
        let corruptAddress = blocks[corrupt].address
        harness.storage.corruptSector(zone: .grid, offset: layout.gridBlockOffset(address: corruptAddress))
        _ = harness.grid.cache.remove(corruptAddress)
        let sortedKeys = harness.model.keys.sorted(by: <)

        // The neighbours' ranges, both directions: the corrupt block is never read.
        let faultsBefore = harness.grid.statistics.readFaults
        for entry in [corrupt - 1, corrupt + 1] {
            for direction in [ScanDirection.ascending, .descending] {
                let request = TreeScanRequest(
                    keyMin: blocks[entry].keyMin, keyMax: blocks[entry].keyMax, direction: direction, limit: output.count)
                let result = harness.scan(request, into: output)
                let failure = harness.compareScan(request, result: result, values: output, sortedKeys: sortedKeys)
                #expect(failure == nil, "block \(entry): \(failure ?? "")")
            }
        }
        #expect(harness.grid.statistics.readFaults == faultsBefore, "the corrupt block was not read")

        // Its own range, and a range across it: a fault, never wrong values.
        for (keyMin, keyMax) in [
            (blocks[corrupt].keyMin, blocks[corrupt].keyMax), (blocks[corrupt - 1].keyMin, blocks[corrupt + 1].keyMax),
        ] {
            for direction in [ScanDirection.ascending, .descending] {
                let request = TreeScanRequest(keyMin: keyMin, keyMax: keyMax, direction: direction, limit: output.count)
                guard case .fault = harness.scan(request, into: output) else {
                    Issue.record("a corrupt value block in range is a fault (\(direction))")
                    return
                }
            }
        }
        #expect(harness.grid.statistics.readFaults > faultsBefore)
        #expect(harness.tree.scansPending == 0, "faulted scans return their contexts")
    }

    // MARK: Early stop

    @Test(arguments: [ScanDirection.ascending, .descending])
    func smallLimitsReadFewBlocks(direction: ScanDirection) {
        let harness = Self.harness(seed: 17)
        let output = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: Int(Self.fields * Self.timestamps))
        let outputB = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: Int(Self.fields * Self.timestamps))
        defer {
            output.deallocate()
            outputB.deallocate()
        }
        let failure = Self.runModel(harness: harness, seed: 17, bars: 30, scansPerBatch: 0, output: output, outputB: outputB)
        #expect(failure == nil, "\(failure ?? "")")
        func reads() -> Int {
            let statistics = harness.grid.statistics
            return statistics.readsFromStorage + statistics.readsFromCache + statistics.readsFromWrites
        }
        let all = TreeScanRequest(
            keyMin: CompositeKey64(field: 0, timestamp: 0), keyMax: CompositeKey64(field: Self.fields, timestamp: 0),
            direction: direction, limit: 5)
        let sortedKeys = harness.model.keys.sorted(by: <)
        let before = reads()
        let small = harness.scan(all, into: output)
        let smallReads = reads() - before
        #expect(harness.compareScan(all, result: small, values: output, sortedKeys: sortedKeys) == nil)
        var full = all
        full.limit = output.count
        let middle = reads()
        let fullResult = harness.scan(full, into: output)
        let fullReads = reads() - middle
        #expect(harness.compareScan(full, result: fullResult, values: output, sortedKeys: sortedKeys) == nil)
        let levels = harness.tree.manifest.levelCount
        // Per level its first table's index block and first value block in range (5 values
        // fit in one block), where the full range reads every block of every level.
        #expect(smallReads <= 2 * levels, "limit 5 read \(smallReads) blocks")
        #expect(fullReads >= 4 * smallReads, "the full range read \(fullReads) blocks, limit 5 read \(smallReads)")

        // A scan waiting for IO sees the tree as it was when it started: puts and deletes of
        // keys in its range made meanwhile do not show.
        // Empty the cache so the scan must wait for storage.
        for address in 1...max(1, harness.freeSet.highestAcquiredAddress) { _ = harness.grid.cache.remove(address) }
        let modelBefore = harness.model
        var answer: TreeScanResult?
        harness.tree.scan(keyMin: full.keyMin, keyMax: full.keyMax, direction: direction, limit: full.limit, into: output) {
            answer = $0
        }
        #expect(answer == nil, "the scan waits for a block from storage")
        for key in sortedKeys.prefix(50) { harness.put(.tombstone(key: key)) }
        for timestamp in UInt64(0)..<50 { harness.put(CompositeKey64(field: Self.fields + 1, timestamp: timestamp)) }
        _ = harness.storage.run(until: { answer != nil })
        let saved = harness.model
        harness.model = modelBefore
        let failureBefore = harness.compareScan(full, result: answer, values: output, sortedKeys: sortedKeys)
        harness.model = saved
        #expect(failureBefore == nil, "the scan saw puts made after it started: \(failureBefore ?? "")")
        let after = harness.scan(full, into: output)
        let failureAfter = harness.compareScan(
            full, result: after, values: output, sortedKeys: harness.model.keys.sorted(by: <))
        #expect(failureAfter == nil, "\(failureAfter ?? "")")
    }
}

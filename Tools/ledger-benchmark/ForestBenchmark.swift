// The end-to-end store benchmark: the state machine on the LSM forest (`ForestStore`) over a
// real data file through io_uring, production geometry (512 KiB blocks, 32-beat bars,
// checkpoints every 960 ops), production caches. It creates `accounts` accounts, then
// `transfers` transfers in batches of 8189 (random distinct debit/credit accounts, amount 1,
// sequential ids), each op driven as a replica commits it: prepare → prefetch (io loop until
// the callback) → execute → compaction beat (io loop until the callback; a detached beat calls
// back before its trees' IO is done, which then overlaps the next op's prefetch and execute,
// and the next beat waits for it: so "beat" times include the previous beat's rest), with
// `checkpointDurable()` pipeline + 1 ops after each checkpoint trigger. Then random
// `lookup_transfers` batches of ids it created.
//
// Prints sustained transfers/s (transfer ops only), per-batch latency (prefetch + execute +
// beat) p50/p99/p100 overall and per 10 % slice of the run, the time split between the three
// phases, the slowest ops with their beat in the bar, lookups/s, and RSS against what the
// configuration allocates (grid cache, object caches, memtables, compaction buffers).
//
// Sketch (10 M transfers): ~1 221 ops of 8189; per transfer ~128 B object + id, debit, credit,
// amount, ledger and code index keys (~150 B) + a ~200 B account event: ~5 GB of table data,
// written once by the flush and again by each level's compaction. Requests are encoded before
// the timed phases (as a replica receives them), so the numbers are the store's.

import Glibc
import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerStateMachine
import LedgerVSR

/// One op's timing, nanoseconds.
private struct OpTiming {
    var op: UInt64 = 0
    var prefetchNs: UInt64 = 0
    var executeNs: UInt64 = 0
    var beatNs: UInt64 = 0
    /// CPU time of this thread during the beat: the rest of `beatNs` is waiting for the disk.
    var beatCpuNs: UInt64 = 0
    var totalNs: UInt64 { prefetchNs + executeNs + beatNs }
}

/// This thread's CPU time (the whole benchmark runs on one thread).
private func threadCpuNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Drives `StateMachine<ForestStore<FileStorage>>` the way a replica commits: one op at a time.
private final class ForestHost {
    let layout: DataFileLayout
    let io: IOUring
    let store: ForestStore<FileStorage>
    let machine: StateMachine<ForestStore<FileStorage>>
    let request = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    var op: UInt64 = 0
    /// Deterministic wall clock: 1 ms per op (prepare keeps timestamps increasing anyway).
    var realtime: UInt64 = 1_700_000_000_000_000_000
    var durableAtOp: UInt64?
    var checkpoints = 0
    var checkpointLast = ForestCheckpoint.formatted
    var pulses = 0
    var replySize = 0
    // The callbacks' results; the closures are made once here (no capture per op).
    var prefetched: Result<Void, ForestStoreFault>?
    var beat: Result<ForestCheckpoint?, ForestFault>?
    var prefetchCallback: ((Result<Void, ForestStoreFault>) -> Void)!
    var beatCallback: Forest<FileStorage>.BeatCallback!

    init(layout: DataFileLayout, io: IOUring, storage: FileStorage, configuration: ForestStoreConfiguration) {
        self.layout = layout
        self.io = io
        store = ForestStore(storage: storage, configuration: configuration)
        machine = StateMachine(store: store)
        prefetchCallback = { [unowned self] in prefetched = $0 }
        beatCallback = { [unowned self] in beat = $0 }
    }

    deinit {
        request.deallocate()
        reply.deallocate()
    }

    /// Commits the request of `size` bytes in `request`, after a pulse op if one is due (as a
    /// replica's primary inserts it); returns the request's op timing.
    func commit(_ operation: LedgerKit.Operation, size: Int) -> OpTiming {
        precondition(operation != .pulse, "pulses are the host's own ops")
        realtime += 1_000_000
        if machine.pulseNeeded(timestamp: realtime) {
            pulses += 1
            _ = run(.pulse, size: 0)
        }
        return run(operation, size: size)
    }

    /// One op: prepare, prefetch (io loop until the callback), execute, beat (io loop until
    /// the callback); `checkpointDurable` first if the last checkpoint became durable.
    private func run(_ operation: LedgerKit.Operation, size: Int) -> OpTiming {
        op += 1
        if durableAtOp == op {
            store.forest.checkpointDurable()
            durableAtOp = nil
        }
        var timing = OpTiming(op: op)
        let body = UnsafeRawBufferPointer(rebasing: request[0..<size])
        precondition(machine.isValidRequest(operation: operation, body: body), "the benchmark encodes valid requests")
        let timestamp = machine.prepare(operation: operation, body: body, realtime: realtime)
        let start = monotonicNs()
        prefetched = nil
        machine.prefetch(operation: operation, body: body, timestamp: timestamp, callback: prefetchCallback)
        wait(for: "prefetch") { self.prefetched != nil }
        if case .failure(let fault) = prefetched! { fail("op \(op): prefetch fault \(fault)") }
        let prefetchEnd = monotonicNs()
        replySize = machine.execute(operation: operation, timestamp: timestamp, body: body, output: reply)
        let executeEnd = monotonicNs()
        let beatCpuStart = threadCpuNs()
        beat = nil
        store.compact(op: op, callback: beatCallback)
        wait(for: "compaction beat") { self.beat != nil }
        switch beat! {
        case .failure(let fault): fail("op \(op): forest fault \(fault)")
        case .success(let checkpoint):
            if let checkpoint {
                checkpoints += 1
                checkpointLast = checkpoint
                durableAtOp = op + UInt64(layout.configuration.pipelinePrepareQueueMax) + 1
            }
        }
        let beatEnd = monotonicNs()
        timing.beatCpuNs = threadCpuNs() - beatCpuStart
        timing.prefetchNs = prefetchEnd - start
        timing.executeNs = executeEnd - prefetchEnd
        timing.beatNs = beatEnd - executeEnd
        return timing
    }

    /// Waits until the last beat's detached work is done.
    func finishCompaction() {
        wait(for: "the last beat's compaction") { !self.store.forest.isCompacting }
    }

    private func wait(for what: String, _ condition: () -> Bool) {
        guard io.run(until: condition, timeoutNs: 300 * 1_000_000_000) else {
            fail("op \(op): the \(what) did not finish within 300 s")
        }
    }

    /// Results in the reply of `count` create events that are not `created` (accounts and
    /// transfers share the layout); a missing result counts as a failure with index -1.
    func failures(count: Int) -> [(index: Int, status: String)] {
        let body = UnsafeRawBufferPointer(rebasing: reply[0..<replySize])
        guard let reader = MultiBatchReader(body: body, elementSize: Constants.createResultSize) else {
            fail("op \(op): the reply is not a multi-batch of results")
        }
        var failed: [(index: Int, status: String)] = []
        var results = 0
        reader.forEachBatch { _, batch in
            for result in batch.bindMemory(to: CreateTransferResult.self) {
                if result.status != .created { failed.append((results, "\(result.status)")) }
                results += 1
            }
        }
        for _ in results..<max(results, count) { failed.append((-1, "missing")) }
        return failed
    }

    /// Encodes one batch of `count` elements into `request`; returns its size.
    func encode<Element>(_ type: Element.Type, count: Int, _ fill: (UnsafeMutableBufferPointer<Element>) -> Void) -> Int {
        var writer = MultiBatchWriter(buffer: request, elementSize: MemoryLayout<Element>.stride, batchCount: 1)
        fill(writer.freeSpace.bindMemory(to: Element.self))
        writer.finishBatch(elementCount: count)
        return writer.finish()
    }
}

/// The data file of the running benchmark, deleted by `fail` too (exit skips `defer`).
nonisolated(unsafe) private var forestDataFilePath: String?

private func fail(_ message: String) -> Never {
    printError("ledger-benchmark forest: \(message)")
    if let path = forestDataFilePath { _ = unlink(path) }
    exit(1)
}

func runForestBenchmark(directory: String, transferCount: Int, accountCount: Int, lookupBatches: Int) {
    let layout = DataFileLayout(.production)
    let batchSize = Constants.batchEventsMax
    let blockSize = UInt64(layout.configuration.blockSize)
    let path = createBenchmarkDataFile(
        directory: directory, name: "forest", layout: layout, transferCount: transferCount)
    forestDataFilePath = path
    defer { _ = unlink(path) }
    let (file, io, storage) = openBenchmarkDataFile(path: path, layout: layout)
    defer { file.close() }
    let configuration = ForestStoreConfiguration(storage: layout.configuration, caches: .production)
    let rssStart = ResidentMemory.read()
    let host = ForestHost(layout: layout, io: io, storage: storage, configuration: configuration)
    print("forest: \(transferCount) transfers over \(accountCount) accounts, batches of \(batchSize), "
        + "512 KiB blocks, \(layout.configuration.lsmCompactionOps)-beat bars, file \(path) "
        + "(\(file.sizeBytes >> 30) GiB preallocated, direct IO \(file.isDirectIO))")
    printConfiguredMemory(host.store, configuration: configuration)
    print("forest: rss at start \(rssStart.description), after ForestStore.init \(ResidentMemory.read().description)")

    // Accounts, in full batches.
    var failures = 0
    var printed = 0
    var created = 0
    let accountsBegin = monotonicNs()
    while created < accountCount {
        let count = min(batchSize, accountCount - created)
        let size = host.encode(Account.self, count: count) { accounts in
            for index in 0..<count { accounts[index] = Account(id: UInt128(created + index + 1), ledger: 1, code: 1) }
        }
        _ = host.commit(.createAccounts, size: size)
        failures += report(host.failures(count: count), op: host.op, what: "create_accounts", printed: &printed)
        created += count
    }
    let accountsSeconds = Double(monotonicNs() - accountsBegin) / 1e9
    print("forest: \(accountCount) accounts in \(formatFixed(accountsSeconds, digits: 2)) s; rss \(ResidentMemory.read().description)")

    // Transfers.
    let transferOps = (transferCount + batchSize - 1) / batchSize
    var timings: [OpTiming] = []
    timings.reserveCapacity(transferOps)
    var prng = PRNG(seed: 42)
    var nextId: UInt128 = 1
    var encodeNs: UInt64 = 0
    let loadBegin = monotonicNs()
    for batch in 0..<transferOps {
        let count = min(batchSize, transferCount - batch * batchSize)
        let encodeStart = monotonicNs()
        let size = host.encode(Transfer.self, count: count) { transfers in
            for index in 0..<count {
                let debit = UInt128(prng.below(UInt64(accountCount))) + 1
                var credit = UInt128(prng.below(UInt64(accountCount - 1))) + 1
                if credit >= debit { credit += 1 }
                transfers[index] = Transfer(
                    id: nextId, debitAccountId: debit, creditAccountId: credit, amount: 1, ledger: 1, code: 1)
                nextId += 1
            }
        }
        encodeNs += monotonicNs() - encodeStart
        timings.append(host.commit(.createTransfers, size: size))
        if (batch + 1) % max(1, transferOps / 10) == 0 {
            // Progress on stderr (unbuffered): a 10 M run takes minutes.
            printError("forest: \(batch + 1)/\(transferOps) transfer ops, \(formatFixed(Double(monotonicNs() - loadBegin) / 1e9, digits: 1)) s")
        }
        failures += report(host.failures(count: count), op: host.op, what: "create_transfers", printed: &printed)
    }
    // The last beat may be detached (Forest.swift "Detached beats"): the load ends when its
    // compaction does, so the time and the grid counts below include it.
    host.finishCompaction()
    let loadNs = monotonicNs() - loadBegin - encodeNs
    let rssLoad = ResidentMemory.read()
    printLoad(timings, transferCount: transferCount, loadNs: loadNs, ops: layout.configuration.lsmCompactionOps)
    let grid = host.store.forest.grid.statistics
    print("forest: \(host.op) ops (\(host.pulses) pulse), \(host.checkpoints) checkpoints, \(failures) failed results, "
        + "\(host.store.forest.detachedBeatCount) beats detached; "
        + "free set: \(host.store.forest.freeSet.acquiredCount) blocks acquired "
        + "(\((UInt64(host.store.forest.freeSet.acquiredCount) * blockSize) >> 20) MiB), highest acquired address "
        + "\(host.store.forest.freeSet.highestAcquiredAddress) now (\((host.store.forest.freeSet.highestAcquiredAddress * blockSize) >> 20) MiB "
        + "extent), \(host.checkpointLast.highestAcquiredAddress) at checkpoint "
        + "\(host.checkpointLast.op); "
        + "grid reads: \(grid.readsFromCache) cache, \(grid.readsFromStorage) disk (\(grid.readsWarmed) warming), "
        + "\(grid.readsFromWrites) write buffers; "
        + "\(grid.writes) block writes")
    printCompactionBlocks(host.store.forest.compactionBlockCounts, transferCount: transferCount, blockSize: blockSize)
    print("forest: rss after load \(rssLoad.description)")

    // Random lookups of transfers that exist, through the state machine (one op per batch).
    var lookupNs: UInt64 = 0
    var lookupLatencies: [UInt64] = []
    lookupLatencies.reserveCapacity(lookupBatches)
    var found = 0
    let statisticsBefore = host.store.forest.grid.statistics
    for _ in 0..<lookupBatches {
        var ids: [UInt128] = []
        let size = host.encode(UInt128.self, count: batchSize) { slots in
            for index in 0..<batchSize { slots[index] = UInt128(prng.below(UInt64(transferCount))) + 1 }
            ids = Array(slots)
        }
        let timing = host.commit(.lookupTransfers, size: size)
        lookupNs += timing.totalNs
        lookupLatencies.append(timing.totalNs)
        found += checkLookups(host, ids: ids)
    }
    let statisticsAfter = host.store.forest.grid.statistics
    if lookupBatches > 0 {
        let lookups = lookupBatches * batchSize
        print("forest: lookup_transfers \(lookupBatches) batches of \(batchSize) random existing ids: "
            + "\(formatFixed(Double(lookups) / (Double(lookupNs) / 1e9) / 1e3, digits: 1)) k lookups/s, "
            + "batch \(percentiles(&lookupLatencies)); \(found)/\(lookups) found; block reads \(statisticsAfter.readsFromCache - statisticsBefore.readsFromCache) cache, "
            + "\(statisticsAfter.readsFromStorage - statisticsBefore.readsFromStorage) disk")
        if found != lookups { failures += lookups - found }
    }
    print("forest: rss after lookups \(ResidentMemory.read().description)")
    if failures > 0 { fail("\(failures) results were not created/found: a bug") }
    // The last beat may be detached (Forest.swift "Detached beats"): FileStorage must be idle
    // when it goes.
    guard io.run(until: { storage.inFlightCount == 0 }, timeoutNs: 300 * 1_000_000_000) else {
        fail("the last beat's IO did not finish within 300 s")
    }
}

/// Prints the run's first 20 failures; returns how many there were.
private func report(_ failed: [(index: Int, status: String)], op: UInt64, what: String, printed: inout Int) -> Int {
    for failure in failed where printed < 20 {
        printError("ledger-benchmark forest: op \(op) \(what) event \(failure.index): \(failure.status)")
        printed += 1
    }
    return failed.count
}

/// How many of `ids` the last lookup reply holds, in order.
private func checkLookups(_ host: ForestHost, ids: [UInt128]) -> Int {
    let body = UnsafeRawBufferPointer(rebasing: host.reply[0..<host.replySize])
    guard let reader = MultiBatchReader(body: body, elementSize: Constants.transferSize) else {
        fail("op \(host.op): the lookup reply is not a multi-batch of transfers")
    }
    var found = 0
    reader.forEachBatch { _, batch in
        let transfers = batch.bindMemory(to: Transfer.self)
        for index in 0..<min(transfers.count, ids.count) where transfers[index].id == ids[index] { found += 1 }
    }
    return found
}

// MARK: Printing

private func milliseconds(_ ns: UInt64) -> String { formatFixed(Double(ns) / 1e6, digits: 2) }

/// p50/p99/p100 of `values` (sorted in place).
private func percentiles(_ values: inout [UInt64]) -> String {
    values.sort()
    func at(_ p: Double) -> UInt64 { values[min(values.count - 1, Int(Double(values.count) * p))] }
    return "p50 \(milliseconds(at(0.5))) p99 \(milliseconds(at(0.99))) p100 \(milliseconds(values[values.count - 1])) ms"
}

private func printLoad(_ timings: [OpTiming], transferCount: Int, loadNs: UInt64, ops: Int) {
    guard !timings.isEmpty else { return }
    let batchSize = Double(Constants.batchEventsMax)
    var totals = timings.map(\.totalNs)
    let timedNs = totals.reduce(0, +)
    print("forest: load \(formatFixed(Double(transferCount) / (Double(loadNs) / 1e9) / 1e6, digits: 3)) M transfers/s "
        + "(wall clock, encoding excluded; \(formatFixed(Double(loadNs) / 1e9, digits: 1)) s), "
        + "\(formatFixed(Double(transferCount) / (Double(timedNs) / 1e9) / 1e6, digits: 3)) M/s over the timed phases")
    let sum = timings.reduce(into: (prefetch: UInt64(0), execute: UInt64(0), beat: UInt64(0))) {
        $0.prefetch += $1.prefetchNs
        $0.execute += $1.executeNs
        $0.beat += $1.beatNs
    }
    let n = UInt64(timings.count)
    print("forest: batch (prefetch + execute + beat) \(percentiles(&totals)); mean split prefetch \(milliseconds(sum.prefetch / n)) "
        + "execute \(milliseconds(sum.execute / n)) beat \(milliseconds(sum.beat / n)) ms")
    var prefetches = timings.map(\.prefetchNs)
    var executes = timings.map(\.executeNs)
    var beats = timings.map(\.beatNs)
    print("forest:   prefetch \(percentiles(&prefetches)); execute \(percentiles(&executes)); beat \(percentiles(&beats))")
    // Over time: each tenth of the transfer ops.
    let slices = min(10, timings.count)
    for slice in 0..<slices {
        let range = (slice * timings.count / slices)..<((slice + 1) * timings.count / slices)
        var values = timings[range].map(\.totalNs)
        let ns = values.reduce(0, +)
        let split = timings[range].reduce(into: (UInt64(0), UInt64(0), UInt64(0))) {
            $0.0 += $1.prefetchNs
            $0.1 += $1.executeNs
            $0.2 += $1.beatNs
        }
        let count = UInt64(range.count)
        print("forest:   slice \(slice + 1)/\(slices) ops \(timings[range.lowerBound].op)-\(timings[range.upperBound - 1].op): "
            + "\(formatFixed(Double(range.count) * batchSize / (Double(ns) / 1e9) / 1e6, digits: 3)) M/s, "
            + "\(percentiles(&values)); mean prefetch \(milliseconds(split.0 / count)) execute \(milliseconds(split.1 / count)) "
            + "beat \(milliseconds(split.2 / count))")
    }
    var sorted = timings.map(\.totalNs)
    sorted.sort()
    let p50 = sorted[sorted.count / 2]
    let p100 = sorted[sorted.count - 1]
    let rate = Double(transferCount) / (Double(loadNs) / 1e9)
    print("forest: targets: ≥ 1 M transfers/s sustained: \(rate >= 1e6 ? "met" : "missed") (\(formatFixed(rate / 1e6, digits: 3)) M/s); "
        + "p100 ≤ 3 × p50: \(p100 <= 3 * p50 ? "met" : "missed") (p100/p50 = \(formatFixed(Double(p100) / Double(p50), digits: 1)))")
    let slowest = timings.sorted { $0.totalNs > $1.totalNs }.prefix(8).map {
        "op \($0.op) (beat \($0.op % UInt64(ops))) \(milliseconds($0.totalNs)) "
            + "[\(milliseconds($0.prefetchNs))+\(milliseconds($0.executeNs))+\(milliseconds($0.beatNs)), "
            + "beat cpu \(milliseconds($0.beatCpuNs))]"
    }
    print("forest: slowest ops (ms [prefetch+execute+beat, the beat's CPU time]): \(slowest.joined(separator: ", "))")
    var beatCpu = timings.map(\.beatCpuNs)
    var beatWait = timings.map { $0.beatNs - min($0.beatNs, $0.beatCpuNs) }
    print("forest: beat CPU \(percentiles(&beatCpu)); beat waiting for IO \(percentiles(&beatWait))")
}

/// What the configuration allocates, to compare RSS with (estimates from the sizes; Tree.swift
/// "Memory per tree", Memtable.swift, CacheMap.swift).
private func printConfiguredMemory(_ store: ForestStore<FileStorage>, configuration: ForestStoreConfiguration) {
    let blockSize = configuration.accounts.blockSize
    let forest = configuration.forest
    let cacheBytes = configuration.cacheGridBlocks * blockSize
    let ioBytes = (forest.gridReadsMax + forest.gridWritesMax) * blockSize
    var memtableBytes = 0
    var jobBytes = 0
    func tree<Value: TreeValue>(_ tree: Tree<Value, FileStorage>?) {
        guard let tree else { return }
        // Two tables' storage, one shared merge buffer, and a beat's sort scratch per table
        // (Memtable.swift "Memory"); configured, not resident: pages count once written.
        let stride = MemoryLayout<Value>.stride
        memtableBytes += (3 * tree.configuration.memtableCapacity + 2 * tree.configuration.valuesPerBeatMax) * stride
        // The half-bar's job pool (Tree.swift `jobsPerHalfBarMax`), 6 blocks each.
        jobBytes += (tree.configuration.manifest.levelCount / 2 + 1) * 6 * blockSize
    }
    var objectCacheBytes = 0
    func groove<Object: GrooveObject>(_ groove: Groove<Object, FileStorage>) {
        tree(groove.objectTree)
        tree(groove.idTree)
        for index in groove.indexTrees64 { tree(index) }
        for index in groove.indexTrees128 { tree(index) }
        // Cache, stash and undo copies of objects.
        objectCacheBytes += (groove.cache.cacheCapacity + 2 * groove.cache.stashCapacity) * MemoryLayout<Object>.stride
    }
    groove(store.accounts)
    groove(store.transfers)
    groove(store.transfersPending)
    groove(store.accountEvents)
    tree(store.expiries)
    // The manifest log's table → extent map (ManifestLog.swift `ManifestLogExtents`): 2 ×
    // `manifestLogTablesMax` slots rounded up to a power of two, identity + u64 + u32 each,
    // filled at init (so resident from the start).
    var extentSlots = 1
    while extentSlots < 2 * forest.manifestLogTablesMax { extentSlots *= 2 }
    let extentBytes = extentSlots * (MemoryLayout<TableIdentity>.stride + 8 + 4)
    let total = cacheBytes + ioBytes + memtableBytes + jobBytes + objectCacheBytes + extentBytes
    print("forest: configured memory: grid cache \(configuration.cacheGridBlocks) × \(blockSize >> 10) KiB = \(cacheBytes >> 20) MiB; "
        + "grid IO buffers \(ioBytes >> 20) MiB; object caches (accounts \(configuration.accounts.cacheCapacity), "
        + "transfers \(configuration.transfers.cacheCapacity), pending \(configuration.transfersPending.cacheCapacity), "
        + "events \(configuration.accountEvents.cacheCapacity) objects) + stashes \(objectCacheBytes >> 20) MiB; "
        + "memtables (\(forest.trees.count) trees × 2 tables + shared merge buffer + beat scratch) \(memtableBytes >> 20) MiB; "
        + "compaction job buffers \(jobBytes >> 20) MiB; manifest log extents (\(forest.manifestLogTablesMax) tables, "
        + "\(extentSlots) slots) \(extentBytes >> 20) MiB; total ≈ \(total >> 20) MiB")
}

/// Compaction's block writes and reads per tree, most written first, with the bytes written per
/// transfer: where the grid's IO goes (the trees with no compaction IO are left out).
private func printCompactionBlocks(
    _ counts: [(treeId: UInt16, written: Int, read: Int)], transferCount: Int, blockSize: UInt64
) {
    let active = counts.filter { $0.written > 0 || $0.read > 0 }.sorted { $0.written > $1.written }
    let parts = active.map { entry in
        let name = TreeId(rawValue: entry.treeId).map { "\($0.name)" } ?? "\(entry.treeId)"
        let bytesPerTransfer = Double(UInt64(entry.written) * blockSize) / Double(max(transferCount, 1))
        return "\(name) \(entry.written)w/\(entry.read)r (\(Int(bytesPerTransfer.rounded())) B/transfer)"
    }
    print("forest: compaction blocks per tree (written/read): " + parts.joined(separator: ", "))
}

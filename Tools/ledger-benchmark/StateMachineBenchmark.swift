import CAllocationCounter
import Glibc
import LedgerKit
import LedgerStateMachine

/// Execute throughput of the state machine on the in-memory store: `create_transfers` batches
/// of 8189 single-phase transfers between random accounts, over 10 000 and 1 000 000 accounts.
///
/// Prefetch and execute are timed together (requests are encoded beforehand, as the replica
/// receives them): prefetch is where the in-memory store overlaps its cache misses.
/// Heap allocations are counted around the timed calls, after one warm-up batch.
func runStateMachineBenchmark(accounts: [Int], batches: Int) {
    for accountCount in accounts {
        benchmarkCreateTransfers(accountCount: accountCount, batches: batches)
    }
}

private func benchmarkCreateTransfers(accountCount: Int, batches: Int) {
    let batchSize = Constants.batchEventsMax
    let warmupBatches = 1
    let transferCount = (batches + warmupBatches) * batchSize
    let store = MemoryStore(.sized(accounts: accountCount, transfers: transferCount))
    let machine = StateMachine(store: store)
    let request = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
    defer {
        request.deallocate()
        reply.deallocate()
    }
    var random = PRNG(seed: 42)
    var realtime: UInt64 = 1_700_000_000_000_000_000

    // Accounts, in full batches.
    var accountsCreated = 0
    while accountsCreated < accountCount {
        let count = min(batchSize, accountCount - accountsCreated)
        let size = encodeBatch(into: request, count: count) { (accounts: UnsafeMutableBufferPointer<Account>) in
            for index in 0..<count {
                accounts[index] = Account(id: UInt128(accountsCreated + index + 1), ledger: 1, code: 1)
            }
        }
        let results = run(machine, .createAccounts, request, size, reply, &realtime)
        precondition(results.failures == 0, "benchmark accounts are created")
        accountsCreated += count
    }

    // Transfers: random distinct accounts, unique ids.
    var latenciesNs: [UInt64] = []
    latenciesNs.reserveCapacity(batches)
    var executeNsTotal: UInt64 = 0
    var allocationsTimed: UInt64 = 0
    var nextTransferId: UInt128 = 1
    for batch in 0..<(warmupBatches + batches) {
        let size = encodeBatch(into: request, count: batchSize) { (transfers: UnsafeMutableBufferPointer<Transfer>) in
            for index in 0..<batchSize {
                let debit = UInt128(random.below(UInt64(accountCount))) + 1
                var credit = UInt128(random.below(UInt64(accountCount - 1))) + 1
                if credit >= debit { credit += 1 }
                transfers[index] = Transfer(
                    id: nextTransferId, debitAccountId: debit, creditAccountId: credit,
                    amount: UInt128(random.below(1000)) + 1, ledger: 1, code: 1)
                nextTransferId += 1
            }
        }
        let allocationsBefore = ledger_allocation_count()
        let results = run(machine, .createTransfers, request, size, reply, &realtime)
        let allocations = ledger_allocation_count() - allocationsBefore
        precondition(results.failures == 0, "benchmark transfers are created")
        if batch >= warmupBatches {
            latenciesNs.append(results.executeNs)
            executeNsTotal += results.executeNs
            allocationsTimed += allocations
        }
    }

    latenciesNs.sort()
    let transfersTimed = Double(batches * batchSize)
    let perSecond = transfersTimed / (Double(executeNsTotal) / 1e9)
    let counter = ledger_allocation_counter_active() != 0 ? "" : " (allocation counter inactive)"
    print(
        "state-machine create_transfers: accounts=\(accountCount) batch=\(batchSize) batches=\(batches)"
            + " throughput=\(formatFixed(perSecond / 1e6, digits: 2)) M transfers/s"
            + " batch_p50=\(formatFixed(Double(latenciesNs[latenciesNs.count / 2]) / 1e6, digits: 2)) ms"
            + " batch_p100=\(formatFixed(Double(latenciesNs[latenciesNs.count - 1]) / 1e6, digits: 2)) ms"
            + " allocations_per_batch=\(formatFixed(Double(allocationsTimed) / Double(batches), digits: 2))"
            + counter)
}

/// Fills a single-batch multi-batch request of `count` elements and returns its size.
private func encodeBatch<Element>(
    into request: UnsafeMutableRawBufferPointer, count: Int,
    _ fill: (UnsafeMutableBufferPointer<Element>) -> Void
) -> Int {
    var writer = MultiBatchWriter(
        buffer: request, elementSize: MemoryLayout<Element>.stride, batchCount: 1)
    fill(writer.freeSpace.bindMemory(to: Element.self))
    writer.finishBatch(elementCount: count)
    return writer.finish()
}

/// Prepares and executes one request; times prefetch + execute (the commit path's CPU work)
/// and counts non-`created` results.
private func run(
    _ machine: StateMachine<MemoryStore>, _ operation: LedgerKit.Operation,
    _ request: UnsafeMutableRawBufferPointer, _ size: Int, _ reply: UnsafeMutableRawBufferPointer,
    _ realtime: inout UInt64
) -> (executeNs: UInt64, failures: Int) {
    let body = UnsafeRawBufferPointer(rebasing: request[0..<size])
    realtime += 1_000_000
    let timestamp = machine.prepare(operation: operation, body: body, realtime: realtime)
    let start = monotonicNs()
    machine.prefetch(operation: operation, body: body, timestamp: timestamp) { _ in }
    let replySize = machine.execute(operation: operation, timestamp: timestamp, body: body, output: reply)
    let elapsed = monotonicNs() - start
    guard let results = MultiBatchReader(
        body: UnsafeRawBufferPointer(rebasing: reply[0..<replySize]), elementSize: Constants.createResultSize)
    else { preconditionFailure("valid reply") }
    var failures = 0
    results.forEachBatch { _, batch in
        // Account and transfer results share one layout: timestamp u64, status u32.
        for result in batch.bindMemory(to: CreateTransferResult.self) where result.status != .created {
            failures += 1
        }
    }
    return (elapsed, failures)
}

/// Nanoseconds of the monotonic clock (shared by every benchmark in this tool).
func monotonicNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

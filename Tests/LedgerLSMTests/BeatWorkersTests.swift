import Glibc
import LedgerLSM
import Testing

/// `BeatWorkers`: a fork-join over indexes on the caller and one worker thread.
@Suite struct BeatWorkersTests {
    /// Every index runs exactly once per batch, with one thread or two, over many batches (the
    /// worker parks and wakes between them), and `run` returns only once all are done.
    @Test(arguments: [1, 2])
    func everyIndexRunsOncePerBatch(threads: Int) {
        let workers = BeatWorkers(threads: threads)
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 64)
        defer { counts.deallocate() }
        for batch in 0..<500 {
            let count = batch % 64 + 1
            counts.initialize(repeating: 0)
            // Each index writes only its own slot, as a tree prepares only itself.
            workers.run(count: count) { index in
                var sum = 0
                for step in 0..<(index * 50) { sum &+= step }
                counts[index] += 1 + (sum & 0)
            }
            #expect(Array(counts[0..<count]) == Array(repeating: 1, count: count), "batch \(batch)")
            #expect(counts[count...].allSatisfy { $0 == 0 }, "batch \(batch): no index past count")
        }
    }

    /// With two threads, the worker takes part: some index runs off the calling thread.
    @Test func theWorkerTakesIndexes() {
        let workers = BeatWorkers(threads: 2)
        let callers = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 2)
        defer { callers.deallocate() }
        var workerRan = false
        let caller = pthread_self()
        // Each batch's indexes are slow enough that the woken worker finds some left.
        for _ in 0..<200 where !workerRan {
            callers.initialize(repeating: true)
            workers.run(count: 2) { index in
                callers[index] = pthread_equal(pthread_self(), caller) != 0
                var sum = 0
                for step in 0..<200_000 { sum &+= step &* step }
                if sum == 1 { callers[index] = true }
            }
            workerRan = !callers[0] || !callers[1]
        }
        #expect(workerRan, "the worker ran an index in 200 batches")
    }
}

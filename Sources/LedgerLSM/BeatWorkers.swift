import Glibc
import Synchronization

// A second thread for the per-tree CPU work at the start of a beat (Forest.swift "Beat
// preparation"): each tree sorts its mutable memtable's newest run and steps its immutable
// memtable's merge. That work is ~20 % of a loaded forest's CPU, touches only the tree's own
// memtables, and must be done before the next op's prefetch can search them; split over two
// threads, the beat waits for half of it.
//
// `run(count:_:)` is a fork-join: the calling thread and the worker take indexes from a shared
// counter until all `count` are taken, and `run` returns once both are done. The body must touch
// only what its index owns. The results do not depend on which thread ran which index, so a
// run is as deterministic as a sequential loop (`threads: 1` is one, for hosts that want it).
//
// Cost: one futex wake of the parked worker and one wait per `run` (~10–50 µs); nothing is
// allocated per run (the caller passes a closure it made once; the worker holds it for the
// run). The worker parks on a condition variable between runs; `deinit` stops and joins it.

/// Runs a batch of independent index-addressed jobs on the calling thread and one worker.
public final class BeatWorkers: @unchecked Sendable {
    /// Threads that run a batch, the caller's included: 1 (no worker) or 2.
    public let threads: Int

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var worker = pthread_t()
    // Shared under `mutex`: the batch the worker should run (its generation), whether it is
    // done with it, and whether to stop.
    private var generation: UInt64 = 0
    private var workerGeneration: UInt64 = 0
    private var workerDone = true
    private var stopping = false
    // The batch in progress, written by the caller before it wakes the worker.
    private var body: ((Int) -> Void)?
    private var count = 0
    private let next = Atomic<Int>(0)

    public init(threads: Int) {
        precondition(threads == 1 || threads == 2, "one or two threads")
        self.threads = threads
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        guard threads == 2 else { return }
        let context = Unmanaged.passUnretained(self).toOpaque()
        let created = pthread_create(&worker, nil, { context in
            Unmanaged<BeatWorkers>.fromOpaque(context!).takeUnretainedValue().workerLoop()
            return nil
        }, context)
        precondition(created == 0, "the beat worker thread starts (pthread_create: \(created))")
    }

    deinit {
        if threads == 2 {
            pthread_mutex_lock(mutex)
            stopping = true
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
            pthread_join(worker, nil)
        }
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body(i)` for every `i` in `0..<count`, on this thread and the worker, and returns
    /// once every call returned. Calls for different indexes may run at the same time.
    /// `body` is escaping so that a caller can pass a closure it made once: a closure literal
    /// here would need a heap context per run (the worker holds it for the run).
    public func run(count: Int, _ body: @escaping (Int) -> Void) {
        guard threads == 2 && count > 1 else {
            for index in 0..<count { body(index) }
            return
        }
        pthread_mutex_lock(mutex)
        precondition(workerDone, "one batch at a time")
        self.body = body
        self.count = count
        next.store(0, ordering: .relaxed)
        workerDone = false
        generation &+= 1
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        takeIndexes(body, count: count)
        pthread_mutex_lock(mutex)
        // Waits until the worker finished the indexes it took: bounded by its share.
        while !workerDone { pthread_cond_wait(condition, mutex) }
        self.body = nil
        pthread_mutex_unlock(mutex)
    }

    /// Runs indexes from the shared counter until none is left.
    private func takeIndexes(_ body: (Int) -> Void, count: Int) {
        // Each turn takes a new index: bounded by `count`.
        while true {
            let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard index < count else { return }
            body(index)
        }
    }

    private func workerLoop() {
        pthread_mutex_lock(mutex)
        // Each turn runs one batch or stops: the loop lives as long as the object.
        while true {
            while !stopping && workerGeneration == generation { pthread_cond_wait(condition, mutex) }
            if stopping { break }
            workerGeneration = generation
            guard let body else { preconditionFailure("a batch has a body") }
            let count = self.count
            pthread_mutex_unlock(mutex)
            takeIndexes(body, count: count)
            pthread_mutex_lock(mutex)
            workerDone = true
            pthread_cond_broadcast(condition)
        }
        pthread_mutex_unlock(mutex)
    }
}

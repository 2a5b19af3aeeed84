#if canImport(Glibc)
import Glibc
#endif
import CURing

/// The process's event loop: one io_uring, driven from one thread, carrying storage IO, TCP and
/// timers (specs/storage-and-consensus.md §9, specs/swift-engineering.md §4).
///
/// How a turn goes:
/// 1. Operations started since the last turn sit in the submission queue (SQ); they are handed
///    to the kernel with one `io_uring_enter` per turn (a batch, not a syscall per IO). Only a
///    full SQ is flushed early, from inside the call that needed an entry.
/// 2. The same syscall waits, with a timeout in the syscall itself (IORING_FEAT_EXT_ARG, Linux
///    5.11), for at least one completion.
/// 3. Completions are drained in batches (`io_uring_peek_batch_cqe` + `io_uring_cq_advance`) into
///    an intrusive FIFO, and only then are their callbacks run, in completion order. Callbacks
///    never run from inside an operation call or a flush, so a callback that starts another
///    operation cannot recurse into the loop.
///
/// Sketch (why this shape): a replica turn is ~10 ms; a busy one does a few hundred IOs (journal
/// 8r/32w, grid 32/32, network sends and receives). Batching keeps the syscall count at one or
/// two per turn (~1-2 µs each) instead of one per IO; dispatch from the FIFO is ~20 ns per
/// completion (specs/swift-engineering.md §4). Nothing here allocates after `init`: completions
/// are caller-owned and reused, and the user_data of an SQE is the completion's address.
///
/// Not thread-safe, by design: one ring per process, used by the thread that created it.
public final class IOUring {
    /// Entries of the submission queue (the completion queue is twice as large).
    public let entries: UInt32
    /// Operations started and not yet reaped (queued, in the kernel, or completed unreaped).
    public private(set) var inFlightCount = 0

    private let ring: UnsafeMutablePointer<io_uring>
    /// Reused array for `io_uring_peek_batch_cqe`.
    private let cqeBatch: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let cqeBatchCapacity: Int
    /// Reaped completions whose callbacks have not run yet (FIFO, linked through the completions).
    private var completedHead: IOCompletion?
    private var completedTail: IOCompletion?
    private var completedCount = 0

    /// Upper bound on flush attempts when the kernel pushes back (EBUSY/EAGAIN): far above what a
    /// healthy kernel needs; reaching it means the ring is wedged.
    private static let flushAttemptsMax = 100_000
    /// Upper bound on completion batches drained per turn; the rest wait for the next turn.
    private static let reapBatchesPerTurnMax = 64

    /// Sets up a ring with `entries` SQEs (128 for a replica, 2048 for format and recovery).
    public init(entries: UInt32 = 128) throws(IOError) {
        precondition(entries > 0, "an io_uring has at least one entry")
        precondition(entries <= 32768, "io_uring entries are at most 32768")
        self.entries = entries
        ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        let result = io_uring_queue_init(entries, ring, 0)
        guard result == 0 else {
            ring.deallocate()
            throw .os(errno: -result, operation: "io_uring_queue_init")
        }
        // EXT_ARG: the wait timeout travels in io_uring_enter instead of as a timeout SQE, whose
        // completion liburing would hand us with a user_data that is not a completion.
        // NODROP: completions beyond the CQ are kept by the kernel instead of lost.
        let required: [(UInt32, String)] = [
            (UInt32(IORING_FEAT_EXT_ARG), "IORING_FEAT_EXT_ARG"),
            (UInt32(IORING_FEAT_NODROP), "IORING_FEAT_NODROP"),
        ]
        for (feature, name) in required where ring.pointee.features & feature == 0 {
            io_uring_queue_exit(ring)
            ring.deallocate()
            throw .kernelUnsupported(feature: name)
        }
        cqeBatchCapacity = Int(ring.pointee.cq.ring_entries)
        cqeBatch = .allocate(capacity: cqeBatchCapacity)
        cqeBatch.initialize(repeating: nil, count: cqeBatchCapacity)
    }

    /// Closing the ring cancels what is still in flight; completions still referenced by the
    /// kernel are leaked on purpose (their buffers may still be written until the kernel is done).
    deinit {
        io_uring_queue_exit(ring)
        ring.deallocate()
        cqeBatch.deallocate()
    }

    // MARK: Running the loop

    /// One turn without waiting: submits what is queued, reaps what has completed, and runs those
    /// callbacks.
    public func runOnce() {
        turn(waitNs: 0)
    }

    /// Runs turns for `ns` nanoseconds of monotonic time, sleeping in the kernel while nothing
    /// completes. The replica's main loop: `tick()`, then `run(forNs: 10 ms)`, forever.
    /// At least one turn runs, so `run(forNs: 0)` is `runOnce()`.
    public func run(forNs ns: UInt64) {
        var now = SystemClock.readMonotonicNs()
        let deadline = now + ns
        // Bounded by the deadline: every turn waits at most until it.
        repeat {
            turn(waitNs: deadline - now)
            now = SystemClock.readMonotonicNs()
        } while now < deadline
    }

    /// Runs turns until `condition()` holds (checked before each turn) or `timeoutNs` pass;
    /// returns whether the condition holds. For tools and tests.
    public func run(until condition: () -> Bool, timeoutNs: UInt64) -> Bool {
        let deadline = SystemClock.readMonotonicNs() + timeoutNs
        // Bounded by the deadline.
        while !condition() {
            let now = SystemClock.readMonotonicNs()
            if now >= deadline { return false }
            turn(waitNs: deadline - now)
        }
        return true
    }

    /// Submits, waits up to `waitNs` for a completion (0: not at all), reaps, runs callbacks.
    private func turn(waitNs: UInt64) {
        if waitNs > 0 && completedCount == 0 {
            submitAndWait(timeoutNs: waitNs)
        } else {
            flushSubmissions()
        }
        reapCompletions()
        runCallbacks()
    }

    private func submitAndWait(timeoutNs: UInt64) {
        var timeout = __kernel_timespec(
            tv_sec: Int64(timeoutNs / 1_000_000_000), tv_nsec: Int64(timeoutNs % 1_000_000_000))
        var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
        let result = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &timeout, nil)
        if result >= 0 { return }
        switch -result {
        case ETIME, EINTR:
            return  // Timed out or a signal: the turn goes on with what has completed.
        case EBUSY, EAGAIN:
            return  // CQ overflow or kernel memory pressure: reaping frees space; SQEs left in the
                    // SQ are submitted by the next flush.
        default:
            fatalError("io_uring_submit_and_wait_timeout: \(errorMessage(-result)) (errno \(-result))")
        }
    }

    /// Hands every queued SQE to the kernel. Reaps (without running callbacks) when the kernel
    /// pushes back because the completion queue is full.
    private func flushSubmissions() {
        var attempts = 0
        while io_uring_sq_ready(ring) > 0 {
            attempts += 1
            precondition(attempts <= Self.flushAttemptsMax, "io_uring accepts submissions eventually")
            let result = io_uring_submit(ring)
            if result >= 0 { continue }
            switch -result {
            case EINTR:
                continue
            case EBUSY, EAGAIN:
                reapCompletions()
            default:
                fatalError("io_uring_submit: \(errorMessage(-result)) (errno \(-result))")
            }
        }
    }

    /// Moves completed CQEs into the FIFO. Never runs callbacks.
    private func reapCompletions() {
        for _ in 0..<Self.reapBatchesPerTurnMax {
            let count = Int(io_uring_peek_batch_cqe(ring, cqeBatch, UInt32(cqeBatchCapacity)))
            if count == 0 { return }
            for index in 0..<count {
                let cqe = cqeBatch[index]!
                reaped(userData: cqe.pointee.user_data, result: cqe.pointee.res)
            }
            io_uring_cq_advance(ring, UInt32(count))
        }
    }

    private func reaped(userData: UInt64, result: Int32) {
        precondition(userData != 0, "every SQE carries its completion")
        let pointer = UnsafeRawPointer(bitPattern: UInt(userData))!
        // Balances the passRetained in `stamp`.
        let completion = Unmanaged<IOCompletion>.fromOpaque(pointer).takeRetainedValue()
        precondition(completion.isBusy, "a reaped completion was in flight")
        inFlightCount -= 1
        completion.result = finished(completion.operation, result: result)
        precondition(completion.nextCompleted == nil, "a completion is queued once")
        if let tail = completedTail {
            tail.nextCompleted = completion
        } else {
            completedHead = completion
        }
        completedTail = completion
        completedCount += 1
    }

    /// The result the owner sees: timers that expired succeed, accepted sockets come configured.
    private func finished(_ operation: IOCompletion.Operation, result: Int32) -> Int32 {
        switch operation {
        case .timeout:
            return result == -ETIME ? 0 : result
        case .accept:
            guard result >= 0 else { return result }
            let configured = configureConnection(socket: result)
            if configured != 0 { Glibc.close(result) }
            return configured == 0 ? result : -configured
        default:
            return result
        }
    }

    /// Runs the callbacks reaped so far, in completion order. Completions reaped while these run
    /// (a flush that found the CQ full) wait for the next turn, which bounds the loop.
    private func runCallbacks() {
        var remaining = completedCount
        while remaining > 0, let completion = completedHead {
            remaining -= 1
            completedHead = completion.nextCompleted
            if completedHead == nil { completedTail = nil }
            completion.nextCompleted = nil
            completedCount -= 1
            completion.isBusy = false
            completion.operation = .none
            completion.callback(completion)
        }
    }

    /// Hands the kernel what is queued, reaps what has completed, and runs the callbacks of the
    /// reaped completions `isChosen` picks, in completion order; the others stay queued, in
    /// their order, for the next turn. For work that runs long without returning to the loop
    /// (`Storage.runPollableCompletions`).
    public func runCompletions(where isChosen: (IOCompletion) -> Bool) {
        flushSubmissions()
        reapCompletions()
        // Bounded by the completions queued now: those a callback's flush reaps (appended at
        // the tail) wait, as in `runCallbacks`.
        var remaining = completedCount
        var previous: IOCompletion? = nil
        var current = completedHead
        while remaining > 0, let completion = current {
            remaining -= 1
            let next = completion.nextCompleted
            guard isChosen(completion) else {
                previous = completion
                current = next
                continue
            }
            if let previous { previous.nextCompleted = next } else { completedHead = next }
            if completedTail === completion { completedTail = previous }
            completion.nextCompleted = nil
            completedCount -= 1
            completion.isBusy = false
            completion.operation = .none
            completion.callback(completion)
            // A flush inside the callback may have appended after `previous` (when `next` was
            // nil): those are left for the next turn, which the count above ensures.
            current = next
        }
    }

    // MARK: Preparing operations

    /// An SQE for `completion`'s next operation; flushes a full SQ first.
    func prepare(_ completion: IOCompletion, _ operation: IOCompletion.Operation)
        -> UnsafeMutablePointer<io_uring_sqe>
    {
        precondition(!completion.isBusy, "a completion serves one operation at a time")
        var sqe = io_uring_get_sqe(ring)
        if sqe == nil {
            flushSubmissions()
            sqe = io_uring_get_sqe(ring)
        }
        guard let sqe else { preconditionFailure("a flushed submission queue has room") }
        completion.isBusy = true
        completion.operation = operation
        completion.result = 0
        inFlightCount += 1
        return sqe
    }

    /// Stamps the SQE with the completion's address; the ring keeps it alive until reaped.
    func stamp(_ sqe: UnsafeMutablePointer<io_uring_sqe>, _ completion: IOCompletion) {
        let pointer = Unmanaged.passRetained(completion).toOpaque()
        io_uring_sqe_set_data64(sqe, UInt64(UInt(bitPattern: pointer)))
    }

    // MARK: File IO

    /// Reads up to `buffer.count` bytes at `offset` of `fd`. The result is the byte count (short
    /// at the end of the file, 0 past it) or -errno; the caller handles short reads.
    public func read(
        _ completion: IOCompletion, fd: Int32, buffer: UnsafeMutableRawBufferPointer, offset: UInt64
    ) {
        precondition(buffer.count <= Int(UInt32.max), "one read is at most 4 GiB")
        let sqe = prepare(completion, .read)
        io_uring_prep_read(sqe, fd, buffer.baseAddress, UInt32(buffer.count), offset)
        stamp(sqe, completion)
    }

    /// Writes `buffer` at `offset` of `fd`. The result is the byte count (possibly short) or
    /// -errno; the caller handles short writes.
    public func write(
        _ completion: IOCompletion, fd: Int32, buffer: UnsafeRawBufferPointer, offset: UInt64
    ) {
        precondition(buffer.count <= Int(UInt32.max), "one write is at most 4 GiB")
        let sqe = prepare(completion, .write)
        io_uring_prep_write(sqe, fd, buffer.baseAddress, UInt32(buffer.count), offset)
        stamp(sqe, completion)
    }

    // MARK: No operation

    /// Completes with result 0 on the loop's next turn, without touching a file or socket: the
    /// caller's next step then runs after the loop has submitted what is queued and reaped what
    /// completed meanwhile.
    public func nop(_ completion: IOCompletion) {
        let sqe = prepare(completion, .nop)
        io_uring_prep_nop(sqe)
        stamp(sqe, completion)
    }

    // MARK: Timers and cancellation

    /// Completes after `ns` nanoseconds with result 0 (or -ECANCELED if cancelled).
    public func timeout(_ completion: IOCompletion, ns: UInt64) {
        let sqe = prepare(completion, .timeout)
        completion.scratchTimespec.pointee = __kernel_timespec(
            tv_sec: Int64(ns / 1_000_000_000), tv_nsec: Int64(ns % 1_000_000_000))
        io_uring_prep_timeout(sqe, completion.scratchTimespec, 0, 0)
        stamp(sqe, completion)
    }

    /// Completes when CLOCK_MONOTONIC reaches `deadlineNs` (see `SystemClock.monotonicNs()`),
    /// with result 0 (or -ECANCELED). Timers with different deadlines fire in deadline order.
    public func timeout(_ completion: IOCompletion, untilMonotonicNs deadlineNs: UInt64) {
        let sqe = prepare(completion, .timeout)
        completion.scratchTimespec.pointee = __kernel_timespec(
            tv_sec: Int64(deadlineNs / 1_000_000_000), tv_nsec: Int64(deadlineNs % 1_000_000_000))
        io_uring_prep_timeout(sqe, completion.scratchTimespec, 0, UInt32(IORING_TIMEOUT_ABS))
        stamp(sqe, completion)
    }

    /// Asks the kernel to cancel `target`'s operation. `target` then completes with -ECANCELED
    /// (or its own result if it was already done); `completion` gets 0, -ENOENT (nothing to
    /// cancel) or -EALREADY (too late to stop).
    public func cancel(_ completion: IOCompletion, target: IOCompletion) {
        precondition(target.isBusy, "cancelling an operation in flight")
        precondition(completion !== target, "a completion does not cancel itself")
        let sqe = prepare(completion, .cancel)
        let pointer = Unmanaged.passUnretained(target).toOpaque()
        io_uring_prep_cancel64(sqe, UInt64(UInt(bitPattern: pointer)), 0)
        stamp(sqe, completion)
    }
}

import Glibc
import LedgerIO
import Testing

/// The event loop on the real kernel: timers, cancellation, batching and the rule that callbacks
/// run only from the loop.
@Suite struct IOUringTests {
    final class Recorder {
        var fired: [Int] = []
        var firedAtNs: [Int: UInt64] = [:]
    }

    @Test func absoluteTimersFireInDeadlineOrder() throws {
        let io = try IOUring(entries: 16)
        let clock = SystemClock()
        let recorder = Recorder()
        let offsetsMs: [UInt64] = [30, 10, 50, 20, 40, 5, 25]
        let start = clock.monotonicNs()
        let completions = offsetsMs.indices.map { index in
            let completion = IOCompletion { completion in
                #expect(completion.result == 0, "an expired timer succeeds")
                recorder.fired.append(completion.tag)
                recorder.firedAtNs[completion.tag] = SystemClock().monotonicNs()
            }
            completion.tag = index
            return completion
        }
        for (index, offset) in offsetsMs.enumerated() {
            io.timeout(completions[index], untilMonotonicNs: start + offset * 1_000_000)
        }
        #expect(io.inFlightCount == offsetsMs.count)
        let done = io.run(until: { recorder.fired.count == offsetsMs.count }, timeoutNs: 5_000_000_000)
        #expect(done)
        let expected = offsetsMs.indices.sorted { offsetsMs[$0] < offsetsMs[$1] }
        #expect(recorder.fired == expected)
        for (index, offset) in offsetsMs.enumerated() {
            let firedAt = recorder.firedAtNs[index] ?? 0
            #expect(firedAt >= start + offset * 1_000_000, "timer \(index) never fires early")
        }
        #expect(io.inFlightCount == 0)
    }

    @Test func relativeTimersFireInDeadlineOrder() throws {
        let io = try IOUring()
        let recorder = Recorder()
        // Wide gaps: all three are armed by one submit, microseconds apart.
        let delaysNs: [UInt64] = [120_000_000, 1_000_000, 60_000_000]
        let completions = delaysNs.indices.map { index in
            let completion = IOCompletion { recorder.fired.append($0.tag) }
            completion.tag = index
            return completion
        }
        for (index, delay) in delaysNs.enumerated() { io.timeout(completions[index], ns: delay) }
        #expect(io.run(until: { recorder.fired.count == 3 }, timeoutNs: 5_000_000_000))
        #expect(recorder.fired == [1, 2, 0])
    }

    @Test func cancelledTimerCompletesWithECANCELED() throws {
        let io = try IOUring()
        var timerResult: Int32?
        var cancelResult: Int32?
        let timer = IOCompletion { timerResult = $0.result }
        let cancel = IOCompletion { cancelResult = $0.result }
        io.timeout(timer, ns: 60_000_000_000)
        io.runOnce()
        io.cancel(cancel, target: timer)
        #expect(io.run(until: { timerResult != nil && cancelResult != nil }, timeoutNs: 5_000_000_000))
        #expect(timerResult == -ECANCELED)
        #expect(cancelResult == 0)
        #expect(!timer.isBusy)
    }

    @Test func callbacksRunOnlyFromTheLoop() throws {
        let io = try IOUring()
        var fired = false
        let completion = IOCompletion { _ in fired = true }
        io.timeout(completion, ns: 0)
        #expect(!fired, "callbacks never run inside an operation call")
        #expect(completion.isBusy)
        #expect(io.run(until: { fired }, timeoutNs: 5_000_000_000))
        #expect(!completion.isBusy, "the completion is free again inside and after its callback")
    }

    /// A callback that starts the next operation on its own completion: a chain of 200, driven
    /// by the loop without recursion.
    @Test func callbacksChainOperations() throws {
        let io = try IOUring(entries: 4)
        var count = 0
        let completion = IOCompletion()
        completion.callback = { [unowned io] completion in
            count += 1
            #expect(!completion.isBusy)
            if count < 200 { io.timeout(completion, ns: 0) }
        }
        io.timeout(completion, ns: 0)
        #expect(io.run(until: { count == 200 }, timeoutNs: 10_000_000_000))
        #expect(io.inFlightCount == 0)
    }

    /// More operations than submission-queue entries: a full queue is flushed at once.
    @Test func fullSubmissionQueueIsFlushed() throws {
        let io = try IOUring(entries: 4)
        var completed = 0
        let completions = (0..<100).map { _ in IOCompletion { _ in completed += 1 } }
        for (index, completion) in completions.enumerated() {
            io.timeout(completion, ns: UInt64(index % 7) * 100_000)
        }
        #expect(io.inFlightCount == 100)
        #expect(io.run(until: { completed == 100 }, timeoutNs: 10_000_000_000))
        #expect(io.inFlightCount == 0)
    }

    @Test func runForNsWaitsAtLeastThatLong() throws {
        let io = try IOUring()
        let clock = SystemClock()
        let start = clock.monotonicNs()
        io.run(forNs: 20_000_000)
        #expect(clock.monotonicNs() - start >= 20_000_000)
    }

    @Test func runUntilReportsATimeout() throws {
        let io = try IOUring()
        #expect(!io.run(until: { false }, timeoutNs: 1_000_000))
        #expect(io.run(until: { true }, timeoutNs: 0))
    }

    @Test func systemClockReadings() {
        let clock = SystemClock()
        let first = clock.monotonicNs()
        let second = clock.monotonicNs()
        #expect(second >= first)
        // 2020-01-01T00:00:00Z in ns: a wall clock before it is not this machine's.
        #expect(clock.realtimeNs() > 1_577_836_800_000_000_000)
    }

    @Test func errorsReadAsOneLine() {
        let errors: [IOError] = [
            .kernelUnsupported(feature: "IORING_FEAT_EXT_ARG"),
            .invalidAddress(host: "nowhere"),
            .os(errno: EPERM, operation: "io_uring_queue_init"),
            .os(errno: ECONNREFUSED, operation: "connect"),
        ]
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains("\n"))
        }
        #expect(IOError.os(errno: EPERM, operation: "io_uring_queue_init").description.contains("io_uring_disabled"))
    }
}

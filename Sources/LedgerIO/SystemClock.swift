#if canImport(Glibc)
import Glibc
#endif

/// The operating system's clocks, for the real event loop and the replica's time source (the
/// simulator replaces it with simulated time).
///
/// - `monotonicNs()` is CLOCK_MONOTONIC: it never jumps, so timeouts and `IOUring.run(forNs:)`
///   measure with it. It is the clock io_uring timeouts use, so an absolute timer deadline
///   (`IOUring.timeout(_:untilMonotonicNs:)`) is comparable with it.
/// - `realtimeNs()` is CLOCK_REALTIME: wall-clock time since the Unix epoch, which NTP may step
///   backwards; only the cluster clock's synchronization should read it.
public final class SystemClock {
    /// The last monotonic reading: a clock that goes backwards is a kernel or hypervisor bug that
    /// would corrupt every timeout, so it stops the process instead of being hidden.
    private var monotonicLastNs: UInt64 = 0

    public init() {}

    /// Nanoseconds since an arbitrary start (boot), never decreasing.
    public func monotonicNs() -> UInt64 {
        let now = Self.readMonotonicNs()
        precondition(now >= monotonicLastNs, "the monotonic clock never goes backwards")
        monotonicLastNs = now
        return now
    }

    /// Nanoseconds since the Unix epoch (negative before 1970), as the wall clock says.
    public func realtimeNs() -> Int64 {
        var time = timespec()
        let result = clock_gettime(CLOCK_REALTIME, &time)
        precondition(result == 0, "clock_gettime(CLOCK_REALTIME) cannot fail on Linux")
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// CLOCK_MONOTONIC without the backwards check (for the event loop's own deadlines).
    static func readMonotonicNs() -> UInt64 {
        var time = timespec()
        let result = clock_gettime(CLOCK_MONOTONIC, &time)
        precondition(result == 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux")
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

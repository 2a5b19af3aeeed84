/// Where the replica reads time: the operating system's clocks (`SystemClock`) in the server,
/// simulated time in tests and the simulator (ARCHITECTURE.md rule 1: no wall-clock reads in the
/// core). Two implementations, hence a protocol; core types are generic over it.
public protocol TimeSource: AnyObject {
    /// Nanoseconds since an arbitrary start, never decreasing (timeouts).
    func monotonicNs() -> UInt64
    /// Nanoseconds since the Unix epoch, as the wall clock says (timestamps).
    func realtimeNs() -> Int64
}

extension SystemClock: TimeSource {}

#if canImport(Glibc)
import Glibc
#endif

/// A zeroed, sector-aligned buffer for direct IO, allocated once (at start-up) and owned by one
/// component. Direct IO needs the buffer address to be a multiple of the sector size.
public final class AlignedBuffer {
    public let bytes: UnsafeMutableRawBufferPointer

    /// `count` must be a multiple of `alignment` (itself a power of two).
    public init(count: Int, alignment: Int = 4096) {
        precondition(count > 0, "an IO buffer holds something")
        precondition(alignment.nonzeroBitCount == 1, "alignment is a power of two")
        precondition(count % alignment == 0, "an IO buffer is whole sectors")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: alignment)
        // memset, not initializeMemory: the latter is a byte loop in debug builds, and tests
        // allocate many megabyte buffers.
        memset(raw, 0, count)
        bytes = UnsafeMutableRawBufferPointer(start: raw, count: count)
    }

    deinit { bytes.baseAddress!.deallocate() }

    public var count: Int { bytes.count }

    /// The first `count` bytes, for reads.
    public func prefix(_ count: Int) -> UnsafeMutableRawBufferPointer {
        precondition(count <= bytes.count, "prefix inside the buffer")
        return UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count])
    }

    /// The first `count` bytes, for writes.
    public func readOnlyPrefix(_ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(prefix(count))
    }

    public func zero() { memset(bytes.baseAddress!, 0, bytes.count) }
}

#if canImport(Glibc)
import Glibc
#endif

/// A zeroed, sector-aligned buffer for direct IO, allocated once (at start-up) and owned by one
/// component. Direct IO needs the buffer address to be a multiple of the sector size.
///
/// Buffers of `mappedBytesMin` or more are fresh anonymous mappings: the kernel zeroes each page
/// on its first touch, so a buffer sized for the worst case (a compaction job, a reply slot, the
/// manifest log) costs resident memory only for what is used. Smaller ones are malloc'd and
/// memset.
public final class AlignedBuffer {
    public let bytes: UnsafeMutableRawBufferPointer
    private let isMapped: Bool

    /// From this size on, a buffer is mapped instead of allocated (page-aligned either way).
    public static let mappedBytesMin = 1 << 20

    /// `count` must be a multiple of `alignment` (itself a power of two).
    public init(count: Int, alignment: Int = 4096) {
        precondition(count > 0, "an IO buffer holds something")
        precondition(alignment.nonzeroBitCount == 1, "alignment is a power of two")
        precondition(count % alignment == 0, "an IO buffer is whole sectors")
        let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
        if count >= Self.mappedBytesMin && alignment <= pageBytes {
            let raw = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            precondition(raw != MAP_FAILED, "mmap of \(count) bytes failed: out of memory at start-up")
            bytes = UnsafeMutableRawBufferPointer(start: raw!, count: count)
            isMapped = true
        } else {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: alignment)
            // memset, not initializeMemory: the latter is a byte loop in debug builds, and tests
            // allocate many megabyte buffers.
            memset(raw, 0, count)
            bytes = UnsafeMutableRawBufferPointer(start: raw, count: count)
            isMapped = false
        }
    }

    deinit {
        if isMapped {
            munmap(bytes.baseAddress!, bytes.count)
        } else {
            bytes.baseAddress!.deallocate()
        }
    }

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

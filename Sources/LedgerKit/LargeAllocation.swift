#if canImport(Glibc)
import Glibc
#endif

/// Allocation of large start-up buffers (caches, record arrays, indexes).
///
/// On Linux the memory is mapped directly and marked for transparent huge pages: a random
/// access into a 128 MiB table then costs one cache miss instead of a cache miss plus a page
/// walk (4 KiB pages need 32 768 TLB entries for 128 MiB). Elsewhere, and for small buffers,
/// it is an ordinary aligned allocation. Memory is zeroed either way.
public enum LargeAllocation {
    /// Buffers at least this large are huge-page backed.
    public static let hugePageThresholdBytes = 4 << 20
    static let hugePageBytes = 2 << 20

    public static func allocate<Element>(_ type: Element.Type, capacity: Int) -> UnsafeMutableBufferPointer<Element> {
        precondition(capacity > 0, "a large allocation holds something")
        let bytes = capacity * MemoryLayout<Element>.stride
        #if os(Linux)
        if bytes >= hugePageThresholdBytes {
            let mappedBytes = (bytes + hugePageBytes - 1) / hugePageBytes * hugePageBytes
            // Over-map by one huge page so the start can be aligned to a huge-page boundary.
            let raw = mmap(nil, mappedBytes + hugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            precondition(raw != MAP_FAILED, "mmap of \(bytes) bytes failed: out of memory at start-up")
            let address = Int(bitPattern: raw)
            let aligned = (address + hugePageBytes - 1) / hugePageBytes * hugePageBytes
            // Return the slack before and after the aligned range, so that the mapping is
            // exactly what `deallocate` unmaps.
            if aligned > address {
                _ = munmap(raw, aligned - address)
            }
            let slackAfter = address + mappedBytes + hugePageBytes - (aligned + mappedBytes)
            if slackAfter > 0 {
                _ = munmap(UnsafeMutableRawPointer(bitPattern: aligned + mappedBytes), slackAfter)
            }
            _ = madvise(UnsafeMutableRawPointer(bitPattern: aligned), mappedBytes, MADV_HUGEPAGE)
            // Touch every page now (writing zeros makes the kernel back it): a fresh mapping
            // costs a page fault plus a page clear on first write, which must happen at
            // start-up, not in the first batches that use the buffer (measured: 26 % of the LSM
            // benchmark's first bars went to clearing pages).
            memset(UnsafeMutableRawPointer(bitPattern: aligned)!, 0, mappedBytes)
            let pointer = UnsafeMutableRawPointer(bitPattern: aligned)!.bindMemory(to: Element.self, capacity: capacity)
            return UnsafeMutableBufferPointer(start: pointer, count: capacity)
        }
        #endif
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: bytes, alignment: max(MemoryLayout<Element>.alignment, 64))
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: Element.self, capacity: capacity), count: capacity)
    }

    /// Frees a buffer from `allocate`.
    public static func deallocate<Element>(_ buffer: UnsafeMutableBufferPointer<Element>) {
        let bytes = buffer.count * MemoryLayout<Element>.stride
        #if os(Linux)
        if bytes >= hugePageThresholdBytes {
            let mappedBytes = (bytes + hugePageBytes - 1) / hugePageBytes * hugePageBytes
            _ = munmap(UnsafeMutableRawPointer(buffer.baseAddress!), mappedBytes)
            return
        }
        #endif
        UnsafeMutableRawPointer(buffer.baseAddress!).deallocate()
    }
}

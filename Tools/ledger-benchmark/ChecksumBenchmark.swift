// Checksum (AEGIS-128L MAC) throughput. Meaningful only in a release build:
// `swift build -c release --product ledger-benchmark`.
//
// The hot loops live in functions and take their buffers as pointers, because loops in top-level
// code or closures over globals measure harness overhead instead (swift-engineering.md pitfall 9).
// Each case runs three times and reports the best run: this VM is noisy (about ±30 %).

#if canImport(Glibc)
import Glibc
#endif
import LedgerKit

func runChecksumBenchmark() {
    var sink: UInt128 = 0  // XOR of every checksum, printed, so no call can be optimized away

    // Large inputs: 2048 x 1 MiB = 2 GiB per run.
    let bigSize = 1 << 20
    let big = UnsafeMutableRawBufferPointer.allocate(byteCount: bigSize, alignment: 64)
    defer { big.deallocate() }
    fillBenchmarkBytes(big, seed: 1)
    var bestBig = UInt64.max
    for _ in 0..<3 {
        bestBig = min(bestBig, timeChecksums(UnsafeRawBufferPointer(big), recordSize: bigSize, calls: 2048, sink: &sink))
    }
    let gigabytesPerSecond = Double(2048 * bigSize) / Double(bestBig)  // bytes per ns = GB/s
    print("checksum 1 MiB: \(formatFixed(gigabytesPerSecond, digits: 2)) GB/s")

    // Small inputs: 10 M calls cycling over 8192 distinct records (1 MiB, cache-resident), like
    // checksumming 128-byte records, and 240 bytes, the span a header's `checksum` covers.
    let records = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192 * 240, alignment: 64)
    defer { records.deallocate() }
    fillBenchmarkBytes(records, seed: 2)
    for recordSize in [128, 240] {
        let calls = 10_000_000
        var best = UInt64.max
        for _ in 0..<3 {
            best = min(best, timeChecksums(UnsafeRawBufferPointer(records), recordSize: recordSize, calls: calls, sink: &sink))
        }
        let nanoseconds = Double(best) / Double(calls)
        print("checksum \(recordSize) B: \(formatFixed(nanoseconds, digits: 2)) ns")
    }

    print("checksum sink: \(String(sink, radix: 16))")
}

/// Nanoseconds for `calls` checksums of consecutive `recordSize`-byte records of `buffer`,
/// wrapping around at its end.
private func timeChecksums(
    _ buffer: UnsafeRawBufferPointer, recordSize: Int, calls: Int, sink: inout UInt128
) -> UInt64 {
    let base = buffer.baseAddress!
    let recordCount = buffer.count / recordSize
    var accumulator: UInt128 = 0
    var record = 0
    let start = monotonicNs()
    for _ in 0..<calls {
        accumulator ^= checksum(UnsafeRawBufferPointer(start: base + record &* recordSize, count: recordSize))
        record &+= 1
        if record == recordCount { record = 0 }
    }
    let elapsed = monotonicNs() - start
    sink ^= accumulator
    return elapsed
}

/// Pseudo-random bytes from the project's PRNG, so that every record differs.
private func fillBenchmarkBytes(_ buffer: UnsafeMutableRawBufferPointer, seed: UInt64) {
    var random = PRNG(seed: seed)
    for index in 0..<buffer.count {
        buffer[index] = UInt8(truncatingIfNeeded: random.next())
    }
}

/// `value` with exactly `digits` decimals (rounded half away from zero), without Foundation.
func formatFixed(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale: UInt64 = 1
    for _ in 0..<digits { scale *= 10 }
    let scaled = (value.magnitude * Double(scale)).rounded()
    guard scaled < 1.8e19 else { return "\(value)" }
    let units = UInt64(scaled)
    var text = String(units / scale)
    if digits > 0 {
        let fraction = String(units % scale)
        text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
    }
    return (value < 0 && units != 0 ? "-" : "") + text
}

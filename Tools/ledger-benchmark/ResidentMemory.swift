#if canImport(Glibc)
import Glibc
#endif

/// VmRSS and VmHWM of this process, KiB (0 if /proc is unreadable): what the disk benchmarks
/// print as their memory.
struct ResidentMemory {
    var rssKiB = 0
    var peakKiB = 0

    /// "N MiB (peak M MiB)".
    var description: String { "\(rssKiB >> 10) MiB (peak \(peakKiB >> 10) MiB)" }
    /// "VmRSS N MiB, VmHWM M MiB".
    var statusDescription: String { "VmRSS \(rssKiB >> 10) MiB, VmHWM \(peakKiB >> 10) MiB" }

    /// Reads /proc/self/status now.
    static func read() -> ResidentMemory {
        var memory = ResidentMemory()
        let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return memory }
        defer { _ = close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return memory }
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let value = Int(fields[1]) else { continue }
            if fields[0] == "VmRSS:" { memory.rssKiB = value }
            if fields[0] == "VmHWM:" { memory.peakKiB = value }
        }
        return memory
    }
}

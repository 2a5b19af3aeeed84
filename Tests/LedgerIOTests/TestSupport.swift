import Foundation
import LedgerIO
import LedgerKit

/// A fresh directory for one test's files, removed when the test lets go of it. Under $TMPDIR
/// (or /tmp): it must be a filesystem with direct IO (ext4 here and on CI).
final class TemporaryDirectory {
    let path: String

    init() throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/ledger-io-tests-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { "\(path)/\(name)" }
}

/// Runs a system tool (losetup, dmsetup) and returns its trimmed standard output, or nil if it
/// failed (its standard error is printed, so a skipped step says why).
@discardableResult
func runTool(_ executable: String, _ arguments: [String]) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    do { try process.run() } catch {
        print("\(executable) did not start: \(error)")
        return nil
    }
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        print("\(executable) \(arguments.joined(separator: " ")) failed: \(String(decoding: errorData, as: UTF8.self))")
        return nil
    }
    return String(decoding: outputData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The path of the executable `name` in the usual system directories, if installed.
func findTool(_ name: String) -> String? {
    for directory in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let path = "\(directory)/\(name)"
        if access(path, X_OK) == 0 { return path }
    }
    return nil
}

/// Fills `buffer` with bytes from `prng`.
func fillRandom(_ buffer: UnsafeMutableRawBufferPointer, _ prng: inout PRNG) {
    var index = 0
    while index < buffer.count {
        var word = prng.next()
        let count = min(8, buffer.count - index)
        withUnsafeBytes(of: &word) { bytes in
            for byte in 0..<count { buffer[index + byte] = bytes[byte] }
        }
        index += count
    }
}

/// Reads `count` bytes at `offset` of `path` with plain pread: an independent view of the file.
func readFileBytes(_ path: String, offset: UInt64, count: Int) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    precondition(fd >= 0, "test file opens")
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: count)
    let result = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
    precondition(result >= 0, "test pread")
    return bytes
}

/// Writes `bytes` at `offset` of `path` with plain pwrite and fsync.
func writeFileBytes(_ path: String, offset: UInt64, bytes: [UInt8]) {
    let fd = open(path, O_RDWR)
    precondition(fd >= 0, "test file opens for writing")
    defer { close(fd) }
    let result = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
    precondition(result == bytes.count, "test pwrite")
    precondition(fsync(fd) == 0, "test fsync")
}

/// A file of `sizeBytes` (sparse), made without DataFile.
func makeSparseFile(_ path: String, sizeBytes: UInt64) {
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
    precondition(fd >= 0, "test file is created")
    precondition(ftruncate(fd, off_t(sizeBytes)) == 0, "test file is sized")
    close(fd)
}

let isRoot = getuid() == 0

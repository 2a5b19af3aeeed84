// Data files for the tool tests: temporary directories, formatted files and loop devices, byte
// offsets computed from `DataFileLayout(.production)` (the layout both binaries use), and
// corruption written with the real `dd`.

import Foundation
import LedgerKit
import Testing

enum Fixture {
    /// The layout of every data file the binaries make.
    static let layout = DataFileLayout(.production)
    static let sector = Constants.sectorSize

    /// A new directory under $TMPDIR (or /tmp; ext4 here and on CI, so O_DIRECT works). The
    /// caller removes it with `removeDirectory` in a `defer`: an object with a deinit could be
    /// released after its last use, before the test is done with the files.
    static func makeDirectory() throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/ledger-tool-tests-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ToolTestError("mkdtemp failed: errno \(errno)") }
        return String(cString: made)
    }

    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Formats `path` with the real `ledger-format` and fails the test if it does not succeed.
    @discardableResult
    static func format(
        _ path: String, cluster: String = "7", replica: Int = 0, replicaCount: Int = 1,
        extra: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ToolResult {
        let result = try Tools.format(
            ["--cluster=\(cluster)", "--replica=\(replica)", "--replica-count=\(replicaCount)"] + extra + [path])
        guard result.exited(0) else {
            throw ToolTestError("ledger-format failed: \(result.summary)")
        }
        return result
    }

    // MARK: Offsets (from the start of the file)

    static func superblockCopyOffset(_ copy: Int) -> UInt64 {
        layout.offset(of: .superblock) + layout.superblockCopyOffset(copy: copy)
    }

    /// The byte offset of a slot's 256-byte redundant header.
    static func walHeaderOffset(slot: Int) -> UInt64 {
        layout.offset(of: .walHeaders) + UInt64(slot * Constants.messageHeaderSize)
    }

    static func walPrepareOffset(slot: Int) -> UInt64 {
        layout.offset(of: .walPrepares) + layout.walPrepareOffset(slot: slot)
    }

    static func clientReplyOffset(slot: Int) -> UInt64 {
        layout.offset(of: .clientReplies) + layout.clientReplyOffset(slot: slot)
    }

    // MARK: Bytes

    /// Reads `count` bytes at `offset` with plain pread (through the page cache, as dd writes).
    static func readBytes(_ path: String, offset: UInt64, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ToolTestError("open \(path) failed: errno \(errno)") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {  // Bounded: every pass moves at least one byte or returns.
            let result = bytes.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            guard result >= 0 else { throw ToolTestError("pread \(path) failed: errno \(errno)") }
            if result == 0 { break }  // Past the end: the rest stays zero.
            done += result
        }
        return bytes
    }

    /// A checksum of the first `count` bytes: "the file did not change".
    static func fingerprint(_ path: String, count: Int = 2 << 20) throws -> UInt128 {
        let bytes = try readBytes(path, offset: 0, count: count)
        return bytes.withUnsafeBytes { checksum($0) }
    }

    /// Writes `bytes` at `offset` of `path` with plain pwrite (for building hostile files; the
    /// corruption tests use `dd`).
    static func writeBytes(_ path: String, offset: UInt64, bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ToolTestError("open \(path) for writing failed: errno \(errno)") }
        defer { close(fd) }
        let result = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
        guard result == bytes.count else { throw ToolTestError("pwrite \(path) failed: errno \(errno)") }
    }

    /// Replaces the sector at `offset` (sector-aligned) with itself XOR `mask` (`mask` is
    /// applied to bytes `range` of the sector only), written by the real `dd` with
    /// `conv=notrunc` so that a regular file keeps its size, and `fsync` so that a block
    /// device's page cache reaches the device before anything opens it with O_DIRECT.
    static func flipWithDD(
        _ target: String, sectorOffset offset: UInt64, bytes range: Range<Int> = 0..<sector,
        mask: UInt8 = 0xA5, scratchDirectory: String
    ) throws {
        precondition(offset % UInt64(sector) == 0, "dd writes whole sectors here")
        precondition(mask != 0, "a zero mask flips nothing")
        var bytes = try readBytes(target, offset: offset, count: sector)
        for index in range { bytes[index] ^= mask }
        let patch = "\(scratchDirectory)/patch-\(UInt64.random(in: 0...UInt64.max))"
        guard FileManager.default.createFile(atPath: patch, contents: Data(bytes)) else {
            throw ToolTestError("cannot write \(patch)")
        }
        defer { unlink(patch) }
        guard let dd = Tools.system("dd") else { throw ToolTestError("dd is not installed") }
        let result = try Tools.run(dd, [
            "if=\(patch)", "of=\(target)", "bs=\(sector)", "seek=\(offset / UInt64(sector))", "count=1",
            "conv=notrunc,fsync", "status=none",
        ])
        guard result.exited(0) else { throw ToolTestError("dd failed: \(result.summary)") }
        let after = try readBytes(target, offset: offset, count: sector)
        guard after == bytes else { throw ToolTestError("dd did not change \(target) at \(offset)") }
    }

    /// A sparse file of `sizeBytes` (no blocks allocated).
    static func makeSparseFile(_ path: String, sizeBytes: UInt64) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ToolTestError("create \(path) failed: errno \(errno)") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(sizeBytes)) == 0 else { throw ToolTestError("ftruncate failed: errno \(errno)") }
    }
}

// MARK: Loop devices

/// A loop device over a sparse backing file. Always `detach()` it in a `defer`.
struct LoopDevice {
    static let losetup = Tools.system("losetup")
    /// Root, losetup and the loop driver: CI runs as root; elsewhere these tests are disabled.
    static let isAvailable =
        getuid() == 0 && losetup != nil && FileManager.default.fileExists(atPath: "/dev/loop-control")
    static let unavailableReason: Comment = "needs root, losetup and /dev/loop-control (CI runs as root)"

    let devicePath: String

    /// Attaches a new loop device to `backingPath` (created sparse, `sizeBytes`).
    static func attach(backingPath: String, sizeBytes: UInt64) throws -> LoopDevice {
        try Fixture.makeSparseFile(backingPath, sizeBytes: sizeBytes)
        let result = try Tools.run(losetup!, ["--find", "--show", backingPath])
        let device = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.exited(0), device.hasPrefix("/dev/loop") else {
            throw ToolTestError("losetup --find --show failed: \(result.summary)")
        }
        return LoopDevice(devicePath: device)
    }

    func detach() {
        let result = try? Tools.run(Self.losetup!, ["-d", devicePath])
        if result?.exited(0) != true {
            Issue.record("losetup -d \(devicePath) failed: \(result?.summary ?? "did not start")")
        }
    }
}

import Foundation
@testable import LedgerIO
import LedgerKit
import Testing

/// Data files on block devices: loop devices over sparse files, and a device-mapper device with
/// one failing sector for the EIO path. These need root, losetup and (for EIO) a kernel with
/// device-mapper; CI runs as root. Without them the tests are reported as skipped, not passed.
@Suite struct BlockDeviceTests {
    let layout = DataFileLayout(.testing)

    static let losetup = findTool("losetup")
    static let dmsetup = findTool("dmsetup")
    /// Root and losetup: loop devices can be attached.
    static let canUseLoopDevices = isRoot && losetup != nil && access("/dev/loop-control", F_OK) == 0
    /// Also dmsetup and device-mapper in the kernel (listed in /proc/misc; a /dev/mapper/control
    /// node alone proves nothing: dmsetup creates it even when the kernel has no driver).
    static let canUseDeviceMapper =
        canUseLoopDevices && dmsetup != nil
        && ((try? String(contentsOfFile: "/proc/misc", encoding: .utf8))?.contains("device-mapper") ?? false)

    /// A loop device over a sparse file; `detach()` must run (use defer).
    final class LoopDevice {
        let backingPath: String
        let devicePath: String

        init?(backingPath: String, sizeBytes: UInt64) {
            makeSparseFile(backingPath, sizeBytes: sizeBytes)
            guard let device = runTool(BlockDeviceTests.losetup!, ["--find", "--show", backingPath]),
                  device.hasPrefix("/dev/")
            else { return nil }
            self.backingPath = backingPath
            self.devicePath = device
        }

        func detach() { runTool(BlockDeviceTests.losetup!, ["-d", devicePath]) }
    }

    @Test(.enabled(if: canUseLoopDevices, "needs root, losetup and loop devices"))
    func createOnAZeroedLoopDeviceThenRefuseItOnceWritten() throws {
        let directory = try TemporaryDirectory()
        let size: UInt64 = 64 * 1024 * 1024
        // Data in the grid before format: BLKDISCARD must clear it.
        let gridOffset = layout.offset(of: .grid)
        let backing = directory.file("loop.img")
        guard let loop = LoopDevice(backingPath: backing, sizeBytes: size) else {
            Issue.record("losetup failed")
            return
        }
        defer { loop.detach() }
        writeFileBytes(loop.devicePath, offset: gridOffset, bytes: [UInt8](repeating: 0xEE, count: 4096))

        let file = try DataFile.create(path: loop.devicePath, sizeBytes: 0, layout: layout)
        #expect(file.isBlockDevice)
        #expect(file.sizeBytes == size, "BLKGETSIZE64 gives the backing file's size")
        // O_EXCL: a second read-write open of the device is refused while this one holds it.
        #expect(throws: DataFileError.locked) {
            _ = try DataFile.open(path: loop.devicePath, layout: layout)
        }
        file.close()
        #expect(readFileBytes(loop.devicePath, offset: gridOffset, count: 4096).allSatisfy { $0 == 0 },
                "format discarded the device")

        let opened = try DataFile.open(path: loop.devicePath, layout: layout)
        #expect(opened.sizeBytes == size)
        #expect(opened.isBlockDevice)
        opened.close()

        writeFileBytes(loop.devicePath, offset: 0, bytes: [UInt8](repeating: 0x01, count: 512))
        #expect(throws: DataFileError.blockDeviceNotZeroed) {
            _ = try DataFile.create(path: loop.devicePath, sizeBytes: 0, layout: layout)
        }
    }

    @Test(.enabled(if: canUseLoopDevices, "needs root, losetup and loop devices"))
    func createRefusesASmallDevice() throws {
        let directory = try TemporaryDirectory()
        let size: UInt64 = 8 * 1024 * 1024
        guard let loop = LoopDevice(backingPath: directory.file("small.img"), sizeBytes: size) else {
            Issue.record("losetup failed")
            return
        }
        defer { loop.detach() }
        #expect(throws: DataFileError.tooSmall(actual: size, required: layout.sizeMin)) {
            _ = try DataFile.create(path: loop.devicePath, sizeBytes: 0, layout: layout)
        }
    }

    /// A device whose sector 5 of the WAL prepares fails: reading 16 sectors across it through
    /// FileStorage returns exactly that sector as zeros. Needs device-mapper, which the kernel of
    /// the development VM lacks (CI has it).
    @Test(.enabled(if: canUseDeviceMapper, "needs root, losetup, dmsetup and device-mapper in the kernel"))
    func eioSectorOnADeviceMapperDeviceReadsAsZeros() throws {
        let directory = try TemporaryDirectory()
        let size: UInt64 = 64 * 1024 * 1024
        let sectors = 16
        let badSector = 5
        let sectorSize = Constants.sectorSize
        let zoneOffset = layout.offset(of: .walPrepares)
        var prng = PRNG(seed: 0xD15C)
        var pattern = [UInt8](repeating: 0, count: sectors * sectorSize)
        pattern.withUnsafeMutableBytes { fillRandom($0, &prng) }

        let backing = directory.file("dm.img")
        guard let loop = LoopDevice(backingPath: backing, sizeBytes: size) else {
            Issue.record("losetup failed")
            return
        }
        defer { loop.detach() }
        writeFileBytes(loop.devicePath, offset: zoneOffset, bytes: pattern)

        // Table in 512-byte units: linear, one 4 KiB error sector, linear.
        let badStart = (zoneOffset + UInt64(badSector * sectorSize)) / 512
        let badCount = UInt64(sectorSize / 512)
        let total = size / 512
        let table = """
            0 \(badStart) linear \(loop.devicePath) 0
            \(badStart) \(badCount) error
            \(badStart + badCount) \(total - badStart - badCount) linear \(loop.devicePath) \(badStart + badCount)
            """
        // A table file: the documented way to give dmsetup a table of several lines.
        let tablePath = directory.file("dm.table")
        try (table + "\n").write(toFile: tablePath, atomically: false, encoding: .utf8)
        let name = "ledger-io-test-\(getpid())"
        guard runTool(Self.dmsetup!, ["create", name, tablePath]) != nil else {
            Issue.record("dmsetup create failed")
            return
        }
        defer { runTool(Self.dmsetup!, ["remove", "--retry", name]) }
        let devicePath = "/dev/mapper/\(name)"

        // Read-only (no fsync, no O_EXCL) but direct: buffered readahead would touch the bad
        // sector outside this read.
        let file = try DataFile.open(path: devicePath, layout: layout, mode: .readOnly, directIO: true)
        defer { file.close() }
        let io = try IOUring()
        let storage = FileStorage(io: io, file: file)
        let target = AlignedBuffer(count: sectors * sectorSize)
        target.bytes.initializeMemory(as: UInt8.self, repeating: 0xAA)
        var done = false
        let completion = StorageCompletion { _ in done = true }
        storage.read(completion, zone: .walPrepares, offset: 0, buffer: target.bytes)
        #expect(io.run(until: { done }, timeoutNs: 10_000_000_000))
        #expect(completion.unreadableSectorCount == 1)
        for index in 0..<sectors {
            let range = (index * sectorSize)..<((index + 1) * sectorSize)
            if index == badSector {
                #expect(target.bytes[range].allSatisfy { $0 == 0 }, "the failing sector reads as zeros")
            } else {
                #expect(target.bytes[range].elementsEqual(pattern[range]), "sector \(index) reads back")
            }
        }
    }
}

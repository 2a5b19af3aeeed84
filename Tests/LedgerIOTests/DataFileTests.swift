import Glibc
@testable import LedgerIO
import LedgerKit
import Testing

/// Creating and opening data files on a real filesystem, and every refusal.
@Suite struct DataFileTests {
    let layout = DataFileLayout(.testing)

    @Test func createMakesAFileOfTheRequestedSize() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("data")
        let size = layout.sizeMin + 8 * UInt64(Constants.sectorSize)
        let file = try DataFile.create(path: path, sizeBytes: size, layout: layout)
        #expect(file.fd >= 0)
        #expect(file.sizeBytes == size)
        #expect(!file.isBlockDevice)
        #expect(file.isDirectIO)
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(UInt64(status.st_size) == size)
        #expect(status.st_mode & 0o777 == 0o600)
        file.close()
        #expect(file.fd == -1)
        file.close()  // Idempotent.

        let opened = try DataFile.open(path: path, layout: layout)
        #expect(opened.sizeBytes == size)
        #expect(opened.mode == .readWrite)
    }

    @Test func createRefusesAnExistingFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("data")
        makeSparseFile(path, sizeBytes: layout.sizeMin)
        #expect(throws: DataFileError.alreadyExists) {
            _ = try DataFile.create(path: path, sizeBytes: layout.sizeMin, layout: layout)
        }
        #expect(throws: DataFileError.notRegularOrBlockDevice) {
            _ = try DataFile.create(path: directory.path, sizeBytes: layout.sizeMin, layout: layout)
        }
        #expect(throws: DataFileError.directoryNotFound) {
            _ = try DataFile.create(path: directory.file("missing/data"), sizeBytes: layout.sizeMin, layout: layout)
        }
    }

    @Test func openRefusesMissingSmallAndOddFiles() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: DataFileError.notFound) {
            _ = try DataFile.open(path: directory.file("missing"), layout: layout)
        }
        let small = directory.file("small")
        let smallSize = layout.sizeMin - UInt64(Constants.sectorSize)
        makeSparseFile(small, sizeBytes: smallSize)
        #expect(throws: DataFileError.tooSmall(actual: smallSize, required: layout.sizeMin)) {
            _ = try DataFile.open(path: small, layout: layout)
        }
        // A reader may open a truncated file (ledger-inspect reports it); a replica may not.
        let truncated = try DataFile.open(path: small, layout: layout, mode: .readOnly, directIO: false)
        #expect(truncated.sizeBytes == smallSize)
        truncated.close()
        #expect(throws: DataFileError.notRegularOrBlockDevice) {
            _ = try DataFile.open(path: directory.path, layout: layout)
        }
        #expect(throws: DataFileError.notRegularOrBlockDevice) {
            _ = try DataFile.open(path: "/dev/null", layout: layout)
        }
    }

    /// flock belongs to the open file description, so a second open in this process conflicts
    /// exactly like another replica would.
    @Test func aSecondReadWriteOpenIsLocked() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("data")
        let first = try DataFile.create(path: path, sizeBytes: layout.sizeMin, layout: layout)
        #expect(throws: DataFileError.locked) {
            _ = try DataFile.open(path: path, layout: layout)
        }
        // A read-only tool does not take the lock.
        let inspector = try DataFile.open(path: path, layout: layout, mode: .readOnly, directIO: false)
        #expect(inspector.mode == .readOnly)
        first.close()
        let second = try DataFile.open(path: path, layout: layout)
        #expect(second.fd >= 0)
    }

    @Test func openErrorsMapToTheirCases() {
        #expect(DataFileError.fromOpen(errno: EINVAL, directIO: true) == .directIOUnsupported)
        #expect(DataFileError.fromOpen(errno: EINVAL, directIO: false) == .os(errno: EINVAL, operation: "open"))
        #expect(DataFileError.fromOpen(errno: ENOENT, directIO: true) == .notFound)
        #expect(DataFileError.fromOpen(errno: EEXIST, directIO: true) == .alreadyExists)
        #expect(DataFileError.fromOpen(errno: EACCES, directIO: true) == .permissionDenied)
        #expect(DataFileError.fromOpen(errno: EBUSY, directIO: true) == .locked)
    }

    @Test func errorsReadAsOneLine() {
        let errors: [DataFileError] = [
            .notFound, .directoryNotFound, .alreadyExists, .notRegularOrBlockDevice,
            .tooSmall(actual: 1, required: 2),
            .locked, .blockDeviceNotZeroed, .directIOUnsupported, .permissionDenied,
            .os(errno: ENOSPC, operation: "fallocate"),
        ]
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains("\n"))
        }
        #expect(DataFileError.blockDeviceNotZeroed.description.contains("not zeroed: refusing to overwrite"))
        #expect(DataFileError.os(errno: ENOSPC, operation: "fallocate").description.contains("fallocate"))
    }

    @Test func parentDirectories() {
        #expect(DataFile.parentDirectory(of: "data") == ".")
        #expect(DataFile.parentDirectory(of: "/data") == "/")
        #expect(DataFile.parentDirectory(of: "/var/lib/ledger/0_0.ledger") == "/var/lib/ledger")
        #expect(DataFile.parentDirectory(of: "replicas/0.ledger") == "replicas")
    }
}

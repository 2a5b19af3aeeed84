#if canImport(Glibc)
import Glibc
#endif
import CPlatform
import LedgerKit

/// One replica's data file, opened: a regular file or a whole block device (storage spec §1,
/// "Open and format").
///
/// Why O_DSYNC and not write-then-fsync: with O_DSYNC a write completes only once its data (and
/// the metadata needed to read it back) is on stable storage, so "the write completed" and "the
/// write is durable" are one event. There is no write/fsync ordering to get wrong, no window
/// where a completed write sits in a volatile cache while the replica acknowledges it, and on
/// NVMe the kernel turns it into FUA writes instead of whole-cache flushes. The data path never
/// calls fsync. (Format and open still fsync the file and its directory once, for the file's
/// existence and size.)
///
/// Why O_DIRECT: after an fsync error the page cache's state is unreliable (pages may be marked
/// clean yet never written), so the replica must not trust it; direct IO reads what the device
/// holds, which is what checksums are meant to check. It is mandatory for a replica; tools that
/// only read (`.readOnly`) may go through the page cache.
///
/// Why an exclusive flock: two replicas on one file would corrupt it silently. The lock is
/// retried for a short while because io_uring can keep a dead process's file open briefly.
/// Block devices are also opened O_EXCL, which the kernel refuses while they are mounted.
public final class DataFile {
    public enum Mode: Sendable, Equatable {
        /// A replica or `format`: O_DSYNC, direct IO, exclusive lock.
        case readWrite
        /// `ledger-inspect`: no lock, so it can look at a file a replica holds.
        case readOnly
    }

    public let path: String
    public let layout: DataFileLayout
    public let mode: Mode
    public let isBlockDevice: Bool
    public let isDirectIO: Bool
    /// The size when opened (a regular file grows as the grid grows; a device does not).
    public let sizeBytes: UInt64
    /// The descriptor, -1 once closed.
    public private(set) var fd: Int32

    /// Lock attempts and the pause between them: 5 × 100 ms covers the time the kernel takes to
    /// tear down a killed replica's ring.
    static let lockAttemptsMax = 5
    static let lockRetryDelayMicroseconds: UInt32 = 100_000

    private init(
        path: String, layout: DataFileLayout, mode: Mode, isBlockDevice: Bool, isDirectIO: Bool,
        sizeBytes: UInt64, fd: Int32
    ) {
        self.path = path
        self.layout = layout
        self.mode = mode
        self.isBlockDevice = isBlockDevice
        self.isDirectIO = isDirectIO
        self.sizeBytes = sizeBytes
        self.fd = fd
    }

    deinit { close() }

    /// Closes the descriptor (and so releases the lock). Idempotent.
    public func close() {
        guard fd >= 0 else { return }
        _ = Glibc.close(fd)
        fd = -1
    }

    // MARK: Create (format)

    /// Creates the data file for `format`.
    /// - A path that does not exist becomes a regular file of `sizeBytes` (reserved with
    ///   fallocate, so the zones cannot hit ENOSPC later), made durable with its directory entry.
    /// - An existing block device is used whole (`sizeBytes` is ignored: its size is the
    ///   device's), provided its superblock zone is all zeros, so that a typo in the path cannot
    ///   wipe a disk that holds something; it is then discarded.
    /// - An existing regular file is refused: format never overwrites a replica's data.
    public static func create(
        path: String, sizeBytes: UInt64, layout: DataFileLayout, directIO: Bool = true
    ) throws(DataFileError) -> DataFile {
        var status = stat()
        if stat(path, &status) == 0 {
            switch status.st_mode & S_IFMT {
            case S_IFBLK:
                return try createOnBlockDevice(path: path, layout: layout, directIO: directIO)
            case S_IFREG:
                throw .alreadyExists
            default:
                throw .notRegularOrBlockDevice
            }
        }
        let statError = errno
        guard statError == ENOENT else { throw .fromOpen(errno: statError, directIO: false) }
        return try createRegularFile(
            path: path, sizeBytes: sizeBytes, layout: layout, directIO: directIO)
    }

    private static func createRegularFile(
        path: String, sizeBytes: UInt64, layout: DataFileLayout, directIO: Bool
    ) throws(DataFileError) -> DataFile {
        precondition(sizeBytes % UInt64(Constants.sectorSize) == 0, "a data file is whole sectors")
        precondition(sizeBytes >= layout.sizeMin, "a new data file holds every zone but the grid")
        let flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_DSYNC | (directIO ? ledger_o_direct() : 0)
        // 0o600: the file holds financial data; only the replica's user reads it.
        let fd = Glibc.open(path, flags, 0o600)
        guard fd >= 0 else {
            let error = errno
            // With O_EXCL the file is ours even when O_DIRECT then fails (tmpfs, some FUSE):
            // the kernel creates it before it checks for direct IO support.
            if error == EINVAL && directIO { _ = unlink(path) }
            // ENOENT on create means the directory is missing, not the file.
            if error == ENOENT || error == ENOTDIR { throw .directoryNotFound }
            throw .fromOpen(errno: error, directIO: directIO)
        }
        do throws(DataFileError) {
            try lock(fd)
            try reserve(fd: fd, sizeBytes: sizeBytes)
            try syncFileAndDirectory(fd: fd, path: path)
        } catch {
            // A half-made file would make the next format fail with alreadyExists.
            _ = Glibc.close(fd)
            _ = unlink(path)
            throw error
        }
        return DataFile(
            path: path, layout: layout, mode: .readWrite, isBlockDevice: false,
            isDirectIO: directIO, sizeBytes: sizeBytes, fd: fd)
    }

    /// Allocates the whole file: fallocate, or, where the filesystem has none, writing the last
    /// sector (the file then has the right size, sparse).
    private static func reserve(fd: Int32, sizeBytes: UInt64) throws(DataFileError) {
        var result: Int32 = -EINTR
        for _ in 0..<8 where result == -EINTR {
            result = ledger_fallocate(fd, 0, Int64(sizeBytes))
        }
        if result == 0 { return }
        guard result == -EOPNOTSUPP || result == -ENOSYS else {
            throw .os(errno: -result, operation: "fallocate")
        }
        let sector = AlignedBuffer(count: Constants.sectorSize)
        try writeAll(fd: fd, buffer: sector.readOnlyPrefix(Constants.sectorSize),
                     offset: sizeBytes - UInt64(Constants.sectorSize))
    }

    private static func createOnBlockDevice(
        path: String, layout: DataFileLayout, directIO: Bool
    ) throws(DataFileError) -> DataFile {
        // O_EXCL on a block device: the kernel refuses it while mounted or held by another
        // exclusive opener.
        let flags = O_RDWR | O_EXCL | O_CLOEXEC | O_DSYNC | (directIO ? ledger_o_direct() : 0)
        let fd = Glibc.open(path, flags)
        guard fd >= 0 else { throw .fromOpen(errno: errno, directIO: directIO) }
        let sizeBytes: UInt64
        do throws(DataFileError) {
            sizeBytes = try verifyType(fd: fd, blockDevice: true)
            guard sizeBytes >= layout.sizeMin else {
                throw .tooSmall(actual: sizeBytes, required: layout.sizeMin)
            }
            try lock(fd)
            try verifyZeroed(fd: fd, count: Int(layout.size(of: .superblock)))
            let discard = ledger_block_device_discard(fd, 0, sizeBytes)
            guard discard == 0 || discard == -EOPNOTSUPP else {
                throw .os(errno: -discard, operation: "ioctl(BLKDISCARD)")
            }
            try sync(fd: fd)
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        return DataFile(
            path: path, layout: layout, mode: .readWrite, isBlockDevice: true,
            isDirectIO: directIO, sizeBytes: sizeBytes, fd: fd)
    }

    /// Refuses a device whose first `count` bytes are not all zero.
    private static func verifyZeroed(fd: Int32, count: Int) throws(DataFileError) {
        let buffer = AlignedBuffer(count: count)
        try readAll(fd: fd, buffer: buffer.bytes, offset: 0)
        guard buffer.bytes.allSatisfy({ $0 == 0 }) else { throw .blockDeviceNotZeroed }
    }

    // MARK: Open

    /// Opens an existing data file (regular file or block device) made by `create`.
    public static func open(
        path: String, layout: DataFileLayout, mode: Mode = .readWrite, directIO: Bool = true
    ) throws(DataFileError) -> DataFile {
        var status = stat()
        // stat first: opening a FIFO or a character device could block or have side effects.
        guard stat(path, &status) == 0 else { throw .fromOpen(errno: errno, directIO: false) }
        let type = status.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFBLK else { throw .notRegularOrBlockDevice }
        let isBlockDevice = type == S_IFBLK

        var flags = O_CLOEXEC | (directIO ? ledger_o_direct() : 0)
        switch mode {
        case .readWrite: flags |= O_RDWR | O_DSYNC | (isBlockDevice ? O_EXCL : 0)
        case .readOnly: flags |= O_RDONLY
        }
        let fd = Glibc.open(path, flags)
        guard fd >= 0 else { throw .fromOpen(errno: errno, directIO: directIO) }
        let sizeBytes: UInt64
        do throws(DataFileError) {
            sizeBytes = try verifyType(fd: fd, blockDevice: isBlockDevice)
            // A replica needs every zone. A reader (ledger-inspect) may look at a truncated
            // file: the missing bytes read as zeros, and it says the file is truncated.
            guard sizeBytes >= layout.sizeMin || mode == .readOnly else {
                throw .tooSmall(actual: sizeBytes, required: layout.sizeMin)
            }
            if mode == .readWrite {
                try lock(fd)
                // Whatever an earlier process wrote through the page cache (a tool without
                // O_DIRECT) reaches the disk before the replica relies on it.
                try syncFileAndDirectory(fd: fd, path: path)
            }
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        return DataFile(
            path: path, layout: layout, mode: mode, isBlockDevice: isBlockDevice,
            isDirectIO: directIO, sizeBytes: sizeBytes, fd: fd)
    }

    // MARK: Helpers

    /// Checks that `fd` is the kind of file we meant (the path may have changed since stat) and
    /// returns its size.
    private static func verifyType(fd: Int32, blockDevice: Bool) throws(DataFileError) -> UInt64 {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .os(errno: errno, operation: "fstat") }
        let type = status.st_mode & S_IFMT
        guard type == (blockDevice ? S_IFBLK : S_IFREG) else { throw .notRegularOrBlockDevice }
        if !blockDevice { return UInt64(status.st_size) }
        var sizeBytes: UInt64 = 0
        let result = ledger_block_device_size(fd, &sizeBytes)
        guard result == 0 else { throw .os(errno: -result, operation: "ioctl(BLKGETSIZE64)") }
        return sizeBytes
    }

    /// Takes the exclusive lock, retrying while another process (or a dying one's ring) has it.
    private static func lock(_ fd: Int32) throws(DataFileError) {
        for attempt in 1...lockAttemptsMax {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return }
            let error = errno
            guard error == EWOULDBLOCK || error == EINTR else {
                throw .os(errno: error, operation: "flock")
            }
            if attempt < lockAttemptsMax { usleep(lockRetryDelayMicroseconds) }
        }
        throw .locked
    }

    private static func sync(fd: Int32) throws(DataFileError) {
        guard fsync(fd) == 0 else { throw .os(errno: errno, operation: "fsync") }
    }

    /// fsync of the file and of its directory, so that the directory entry survives a crash too.
    private static func syncFileAndDirectory(fd: Int32, path: String) throws(DataFileError) {
        try sync(fd: fd)
        let directory = parentDirectory(of: path)
        let directoryFD = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else { throw .os(errno: errno, operation: "open directory \(directory)") }
        defer { _ = Glibc.close(directoryFD) }
        guard fsync(directoryFD) == 0 else { throw .os(errno: errno, operation: "fsync directory \(directory)") }
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// pread until `buffer` is full; bytes past the end of the file read as zeros.
    private static func readAll(
        fd: Int32, buffer: UnsafeMutableRawBufferPointer, offset: UInt64
    ) throws(DataFileError) {
        var done = 0
        // Bounded: each pass reads at least one byte or ends the loop.
        while done < buffer.count {
            let result = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw .os(errno: errno, operation: "pread")
            }
            if result == 0 {
                UnsafeMutableRawBufferPointer(rebasing: buffer[done...]).initializeMemory(as: UInt8.self, repeating: 0)
                return
            }
            done += result
        }
    }

    /// pwrite until `buffer` is written.
    private static func writeAll(
        fd: Int32, buffer: UnsafeRawBufferPointer, offset: UInt64
    ) throws(DataFileError) {
        var done = 0
        // Bounded: each pass writes at least one byte or throws.
        while done < buffer.count {
            let result = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw .os(errno: errno, operation: "pwrite")
            }
            guard result > 0 else { throw .os(errno: EIO, operation: "pwrite (no progress)") }
            done += result
        }
    }
}

/// Why a data file could not be created or opened: one line each, for the operator.
public enum DataFileError: Error, Equatable, CustomStringConvertible {
    case notFound
    case directoryNotFound
    case alreadyExists
    case notRegularOrBlockDevice
    case tooSmall(actual: UInt64, required: UInt64)
    case locked
    case blockDeviceNotZeroed
    case directIOUnsupported
    case permissionDenied
    case os(errno: Int32, operation: String)

    public var description: String {
        switch self {
        case .notFound:
            return "data file not found (create it with ledger-format)"
        case .directoryNotFound:
            return "the directory for the data file does not exist"
        case .alreadyExists:
            return "data file already exists: refusing to overwrite it"
        case .notRegularOrBlockDevice:
            return "data file is neither a regular file nor a block device"
        case .tooSmall(let actual, let required):
            return "data file is too small: \(actual) bytes, at least \(required) required"
        case .locked:
            return "data file is locked: another replica or tool has it open (or, for a block device, it is mounted)"
        case .blockDeviceNotZeroed:
            return "block device not zeroed: refusing to overwrite (zero its first sectors to confirm it holds nothing)"
        case .directIOUnsupported:
            return "the filesystem does not support direct IO (O_DIRECT): use one that does, such as ext4 or xfs"
        case .permissionDenied:
            return "permission denied on the data file"
        case .os(let errno, let operation):
            return "\(operation) failed: \(errorMessage(errno)) (errno \(errno))"
        }
    }

    /// The error for a failed open/stat/create with `errno`.
    static func fromOpen(errno: Int32, directIO: Bool) -> DataFileError {
        switch errno {
        case ENOENT, ENOTDIR: return .notFound
        case EEXIST: return .alreadyExists
        case EACCES, EPERM: return .permissionDenied
        case EBUSY: return .locked
        case EINVAL where directIO: return .directIOUnsupported
        default: return .os(errno: errno, operation: "open")
        }
    }
}

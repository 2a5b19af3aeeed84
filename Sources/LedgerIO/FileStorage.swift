#if canImport(Glibc)
import Glibc
#endif
import LedgerKit

/// `Storage` on a real data file through the process's `IOUring` (the contract is in
/// Storage.swift; this type keeps it on a real kernel).
///
/// Each storage IO may take several kernel operations:
/// - short reads and writes (the kernel may move fewer bytes than asked) resubmit the rest;
///   EINTR and EAGAIN resubmit the same range;
/// - a read that hits EOF fills the rest of the buffer with zeros (the file grows with the grid,
///   so blocks not yet written read as zeros, as on a fresh device);
/// - a read that fails with EIO is retried in halves, down to single sectors, so that one bad
///   sector costs one sector, not the whole IO: that sector becomes zeros (its checksum then fails
///   and the replica repairs it from a peer) and is counted in `unreadableSectorCount`;
/// - a write that fails with EIO stops the process: the replica cannot know what reached the disk,
///   and after a restart the cluster repairs whatever is wrong. ENOSPC exits with a message (disk
///   space is managed with the grid's size limit, so it means the operator's disk is full).
///
/// The halving is a walk over a binary tree of sector ranges, without recursion: node (start,
/// level) covers `sectorSize << level` bytes from `start` (clipped to the IO). The walk starts at
/// the root (the whole IO). A node that fails is replaced by its left half; a node that succeeds
/// (or a single sector given up as zeros) moves the walk to `start + size` at level
/// `trailingZeros(start / sectorSize)`, which is exactly the next node a recursive halving would
/// visit (a right sibling, or an ancestor's right sibling). Only (start, level) is kept per IO.
///
/// Memory: a pool of `operationCountMax` IO records and ring completions, allocated at `init`;
/// the owners' completion pools bound concurrency (storage spec §9: ~150 in a replica), and
/// exceeding the pool is a programmer error.
public final class FileStorage: Storage {
    public let layout: DataFileLayout
    public let file: DataFile
    private let io: IOUring

    /// The largest single kernel read or write (Linux moves at most 0x7ffff000 bytes per call;
    /// longer IOs proceed by short transfers anyway). Sector-aligned.
    static let transferBytesMax = 0x7fff_f000

    /// One storage IO in progress.
    private struct Operation {
        var storage: StorageCompletion?
        /// A `nextTurn`: no transfer, it finishes when its no-op completes.
        var isTurn = false
        var isWrite = false
        var buffer: UnsafeMutableRawPointer?
        var length = 0
        /// Offset of the IO's first byte in the file.
        var fileOffset: UInt64 = 0
        /// The node being transferred: [nodeStart, nodeStart + nodeLength) inside the IO, of
        /// which nodeDone bytes are done (short transfers).
        var nodeStart = 0
        var nodeLevel = 0
        var nodeDone = 0
    }

    private let operations: UnsafeMutableBufferPointer<Operation>
    private var completions: [IOCompletion] = []
    private let freeIndexes: UnsafeMutableBufferPointer<Int>
    private var freeCount: Int

    /// Tests only: rewrites the kernel's result of one transfer (isWrite, file offset, length,
    /// result) to inject EIO, EINTR or short transfers without a faulty device.
    var faultInjector: ((Bool, UInt64, Int, Int32) -> Int32)?

    public init(io: IOUring, file: DataFile, operationCountMax: Int = 256) {
        precondition(operationCountMax > 0, "FileStorage runs at least one IO at a time")
        precondition(file.fd >= 0, "FileStorage needs an open data file")
        self.io = io
        self.file = file
        self.layout = file.layout
        operations = .allocate(capacity: operationCountMax)
        operations.initialize(repeating: Operation())
        freeIndexes = .allocate(capacity: operationCountMax)
        for index in 0..<operationCountMax { freeIndexes[index] = operationCountMax - 1 - index }
        freeCount = operationCountMax
        completions.reserveCapacity(operationCountMax)
        for index in 0..<operationCountMax {
            let completion = IOCompletion { [unowned self] completion in self.transferred(completion) }
            completion.tag = index
            completions.append(completion)
        }
    }

    deinit {
        precondition(freeCount == operations.count, "FileStorage is idle when released")
        operations.deinitialize()
        operations.deallocate()
        freeIndexes.deallocate()
    }

    /// IOs started and not completed yet.
    public var inFlightCount: Int { operations.count - freeCount }

    // MARK: Storage

    public func read(
        _ completion: StorageCompletion, zone: Zone, offset: UInt64,
        buffer: UnsafeMutableRawBufferPointer
    ) {
        start(completion, zone: zone, offset: offset, buffer: buffer.baseAddress,
              length: buffer.count, isWrite: false)
    }

    public func write(
        _ completion: StorageCompletion, zone: Zone, offset: UInt64, buffer: UnsafeRawBufferPointer
    ) {
        precondition(file.mode == .readWrite, "writes need a data file opened read-write")
        start(completion, zone: zone, offset: offset, buffer: UnsafeMutableRawPointer(mutating: buffer.baseAddress),
              length: buffer.count, isWrite: true)
    }

    public func runPollableCompletions() {
        io.runCompletions { completion in isPollable(completion) }
    }

    /// Whether `completion` is one of this storage's, for an IO (not a turn) whose owner marked
    /// its completion pollable. A transfer's completion that resubmits the rest of a short
    /// transfer stays in flight either way.
    private func isPollable(_ completion: IOCompletion) -> Bool {
        let index = completion.tag
        guard index >= 0 && index < completions.count && completions[index] === completion else { return false }
        let operation = operations[index]
        return !operation.isTurn && operation.storage?.isPollable == true
    }

    public func nextTurn(_ completion: StorageCompletion) {
        precondition(freeCount > 0, "FileStorage IOs in flight stay within operationCountMax")
        completion.startTurn()
        freeCount -= 1
        let index = freeIndexes[freeCount]
        operations[index] = Operation(storage: completion, isTurn: true)
        io.nop(completions[index])
    }

    private func start(
        _ completion: StorageCompletion, zone: Zone, offset: UInt64,
        buffer: UnsafeMutableRawPointer?, length: Int, isWrite: Bool
    ) {
        precheckStorageIO(layout: layout, zone: zone, offset: offset, length: length,
                          address: UnsafeRawPointer(buffer))
        precondition(freeCount > 0, "FileStorage IOs in flight stay within operationCountMax")
        completion.start(zone: zone, offset: offset, length: length)
        freeCount -= 1
        let index = freeIndexes[freeCount]
        let sectors = length / Constants.sectorSize
        operations[index] = Operation(
            storage: completion, isWrite: isWrite, buffer: buffer, length: length,
            fileOffset: layout.offset(of: zone) + offset, nodeStart: 0,
            nodeLevel: Self.levelCovering(sectors: sectors), nodeDone: 0)
        submit(index)
    }

    // MARK: Transfers

    /// Submits the rest of the current node of operation `index`.
    private func submit(_ index: Int) {
        let operation = operations[index]
        let from = operation.nodeStart + operation.nodeDone
        let count = min(nodeLength(operation) - operation.nodeDone, Self.transferBytesMax)
        precondition(count > 0, "a submitted transfer moves bytes")
        let completion = completions[index]
        let address = operation.buffer! + from
        let fileOffset = operation.fileOffset + UInt64(from)
        if operation.isWrite {
            io.write(completion, fd: file.fd, buffer: UnsafeRawBufferPointer(start: address, count: count),
                     offset: fileOffset)
        } else {
            io.read(completion, fd: file.fd, buffer: UnsafeMutableRawBufferPointer(start: address, count: count),
                    offset: fileOffset)
        }
    }

    /// A kernel transfer of operation `completion.tag` completed: decide what comes next.
    private func transferred(_ completion: IOCompletion) {
        let index = completion.tag
        if operations[index].isTurn { return finish(index) }
        var result = completion.result
        if let faultInjector {
            let operation = operations[index]
            let from = operation.nodeStart + operation.nodeDone
            let count = min(nodeLength(operation) - operation.nodeDone, Self.transferBytesMax)
            result = faultInjector(operation.isWrite, operation.fileOffset + UInt64(from), count, result)
        }
        if operations[index].isWrite {
            writeTransferred(index, result: result)
        } else {
            readTransferred(index, result: result)
        }
    }

    private func writeTransferred(_ index: Int, result: Int32) {
        if result > 0 {
            operations[index].nodeDone += Int(result)
            precondition(operations[index].nodeDone <= nodeLength(operations[index]), "a write moves at most what was asked")
            if operations[index].nodeDone == nodeLength(operations[index]) {
                finish(index)
            } else {
                submit(index)
            }
            return
        }
        let operation = operations[index]
        let storage = operation.storage!
        switch -result {
        case EINTR, EAGAIN:
            submit(index)
        case ENOSPC:
            reportNoSpace(zone: storage.zone, offset: storage.offset)
        case 0:
            fatalError("data file write made no progress: zone \(storage.zone) offset \(storage.offset)")
        default:
            fatalError(
                "data file write failed: zone \(storage.zone) offset \(storage.offset) length "
                    + "\(storage.length): \(errorMessage(-result)) (errno \(-result)). "
                    + "Replace the disk or restart the replica; the cluster repairs its data.")
        }
    }

    private func readTransferred(_ index: Int, result: Int32) {
        let sector = Constants.sectorSize
        if result > 0 {
            operations[index].nodeDone += Int(result)
            let operation = operations[index]
            let length = nodeLength(operation)
            precondition(operation.nodeDone <= length, "a read moves at most what was asked")
            if operation.nodeDone == length {
                advance(index)
            } else if (operation.nodeStart + operation.nodeDone) % sector != 0 {
                // A partial sector: the file ends inside it (only a file truncated by hand can
                // do that); the rest of the IO lies past the end.
                zeroRest(index, from: operation.nodeStart + operation.nodeDone)
                finish(index)
            } else {
                submit(index)
            }
            return
        }
        switch -result {
        case 0:
            // End of file: everything after this point lies past it.
            zeroRest(index, from: operations[index].nodeStart + operations[index].nodeDone)
            finish(index)
        case EINTR, EAGAIN:
            submit(index)
        case EIO:
            readFailed(index)
        default:
            let storage = operations[index].storage!
            fatalError(
                "data file read failed: zone \(storage.zone) offset \(storage.offset) length "
                    + "\(storage.length): \(errorMessage(-result)) (errno \(-result))")
        }
    }

    /// EIO on the current node: halve it, or give up its single sector as zeros.
    private func readFailed(_ index: Int) {
        let sector = Constants.sectorSize
        let operation = operations[index]
        let length = nodeLength(operation)
        if length == sector {
            let address = operation.buffer! + operation.nodeStart
            address.initializeMemory(as: UInt8.self, repeating: 0, count: sector)
            operations[index].storage!.unreadableSectorCount += 1
            advance(index)
            return
        }
        // The largest aligned left child strictly smaller than this (possibly clipped) node. What
        // this node read before the error is read again: reads are idempotent, and it keeps the
        // walk's state to (start, level).
        let sectors = length / sector
        operations[index].nodeLevel = Self.levelCovering(sectors: sectors) - 1
        operations[index].nodeDone = 0
        submit(index)
    }

    /// The current node is done: move to the next node of the walk, or finish.
    private func advance(_ index: Int) {
        let next = operations[index].nodeStart + nodeLength(operations[index])
        if next == operations[index].length {
            finish(index)
            return
        }
        operations[index].nodeStart = next
        operations[index].nodeLevel = (next / Constants.sectorSize).trailingZeroBitCount
        operations[index].nodeDone = 0
        submit(index)
    }

    private func zeroRest(_ index: Int, from start: Int) {
        let operation = operations[index]
        (operation.buffer! + start).initializeMemory(
            as: UInt8.self, repeating: 0, count: operation.length - start)
    }

    private func finish(_ index: Int) {
        let storage = operations[index].storage!
        operations[index] = Operation()
        freeIndexes[freeCount] = index
        freeCount += 1
        storage.complete()
    }

    /// Bytes of the current node, clipped to the IO.
    private func nodeLength(_ operation: Operation) -> Int {
        let size = Constants.sectorSize << operation.nodeLevel
        return min(size, operation.length - operation.nodeStart)
    }

    /// The smallest level whose node (`sectorSize << level`) covers `sectors` sectors.
    static func levelCovering(sectors: Int) -> Int {
        precondition(sectors >= 1, "an IO covers at least one sector")
        return sectors == 1 ? 0 : Int.bitWidth - (sectors - 1).leadingZeroBitCount
    }

    private func reportNoSpace(zone: Zone, offset: UInt64) -> Never {
        let message = "ledger: no space left on the device holding \(file.path) "
            + "(writing zone \(zone) at offset \(offset)); free space or move the data file, then restart\n"
        message.withCString { text in _ = Glibc.write(STDERR_FILENO, text, strlen(text)) }
        exit(1)
    }
}

import LedgerIO
import LedgerKit

/// Synchronous reads of a data file for the inspector: one IO at a time through io_uring and
/// `FileStorage`, so an unreadable sector comes back as zeros (and is counted) exactly as the
/// replica would see it, and a truncated file reads as zeros past its end. Read-only: the file
/// is opened without the lock, so a running replica's file can be inspected.
final class DataFileReader {
    let file: DataFile
    let layout: DataFileLayout
    private let io: IOUring
    private let storage: FileStorage
    private let completion = StorageCompletion()
    /// Sectors that could not be read (EIO) and were shown as zeros.
    private(set) var unreadableSectorCount = 0

    init(path: String, layout: DataFileLayout) throws {
        self.layout = layout
        file = try DataFile.open(path: path, layout: layout, mode: .readOnly, directIO: false)
        io = try IOUring(entries: 32)
        storage = FileStorage(io: io, file: file)
        completion.callback = { _ in }
    }

    var isTruncated: Bool { file.sizeBytes < layout.sizeMin }

    /// Reads `buffer.count` bytes at `offset` inside `zone`.
    func read(zone: Zone, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        storage.read(completion, zone: zone, offset: offset, buffer: buffer)
        guard io.run(until: { !completion.isBusy }, timeoutNs: 30 * 1_000_000_000) else {
            throw ToolReadError.timedOut(zone: zone, offset: offset)
        }
        unreadableSectorCount += completion.unreadableSectorCount
    }

    /// Reads a whole zone, or its first `count` bytes, into a new buffer.
    func readZone(_ zone: Zone, count: Int? = nil) throws -> AlignedBuffer {
        let buffer = AlignedBuffer(count: count ?? Int(layout.size(of: zone)))
        try read(zone: zone, offset: 0, into: buffer.bytes)
        return buffer
    }
}

enum ToolReadError: Error, CustomStringConvertible {
    case timedOut(zone: Zone, offset: UInt64)
    var description: String {
        switch self {
        case .timedOut(let zone, let offset):
            return "the device did not answer a read of \(zone) at offset \(offset) within 30 s"
        }
    }
}

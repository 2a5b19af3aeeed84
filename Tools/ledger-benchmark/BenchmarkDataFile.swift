// The data file the disk benchmarks (wal, lsm) run on: created and formatted in the directory
// the user names, opened for one measurement at a time, deleted at the end. Any failure is one
// line on stderr and exit 1: a benchmark that cannot set up has nothing to measure.

import Glibc
import LedgerIO
import LedgerKit
import LedgerVSR

/// Creates and formats `<directory>/ledger-benchmark-<name>-<pid>.ledger`, preallocated with
/// room for `transferCount` transfers in the grid (0: the minimum size); returns its path.
func createBenchmarkDataFile(
    directory: String, name: String, layout: DataFileLayout, transferCount: Int = 0
) -> String {
    let path = "\(directory)/ledger-benchmark-\(name)-\(getpid()).ledger"
    var sizeBytes = layout.sizeMin
    if transferCount > 0 {
        // ~1.5 KiB of grid per transfer (table data, compaction's transient copies, blocks held
        // until the next checkpoint is durable), at least 4 GiB; preallocated as a replica's is.
        let gridBytes = max(UInt64(4) << 30, UInt64(transferCount) * 1536)
        let blockSize = UInt64(layout.configuration.blockSize)
        sizeBytes += (gridBytes + blockSize - 1) / blockSize * blockSize
    }
    do {
        _ = try DataFileFormatter.formatFile(
            path: path, layout: layout,
            options: .init(cluster: 1, replica: 0, replicaCount: 1, sizeBytes: sizeBytes))
    } catch {
        printError("ledger-benchmark: cannot create \(path): \(error)")
        exit(1)
    }
    return path
}

/// The data file at `path`, opened read-write with direct IO, on a ring of its own. The caller
/// closes `file` when the measurement ends.
func openBenchmarkDataFile(path: String, layout: DataFileLayout) -> (file: DataFile, io: IOUring, storage: FileStorage) {
    do {
        let file = try DataFile.open(path: path, layout: layout, mode: .readWrite)
        let io = try IOUring(entries: 256)
        return (file, io, FileStorage(io: io, file: file))
    } catch {
        printError("ledger-benchmark: cannot open \(path): \(error)")
        exit(1)
    }
}

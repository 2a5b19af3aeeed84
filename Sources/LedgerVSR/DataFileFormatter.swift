import LedgerIO
import LedgerKit

/// Formats a replica's data file (storage spec §1 "Format writes"): the WAL first (header ring
/// and the first sector of every prepare slot), then superblock sequence 1, read back.
///
/// The superblock goes last on purpose: until its copies are durable the file holds no valid
/// superblock, so a format interrupted by a crash leaves a file that every tool and the server
/// reject as "not formatted" instead of one that looks valid with a half-written WAL.
public enum DataFileFormatter {
    public struct Options: Sendable, Equatable {
        public var cluster: UInt128
        public var replica: Int
        public var replicaCount: Int
        /// Bytes to preallocate for a regular file (a block device is used whole).
        public var sizeBytes: UInt64
        /// Direct IO (always, except for development on filesystems without it).
        public var directIO: Bool
        public var release: UInt32

        public init(
            cluster: UInt128, replica: Int, replicaCount: Int, sizeBytes: UInt64,
            directIO: Bool = true, release: UInt32 = Constants.release
        ) {
            self.cluster = cluster
            self.replica = replica
            self.replicaCount = replicaCount
            self.sizeBytes = sizeBytes
            self.directIO = directIO
            self.release = release
        }
    }

    /// Formats `storage` (any `Storage`: the simulator formats in memory). `callback` runs once
    /// the superblock has been written and verified.
    public static func format<S: Storage>(
        storage: S, options: Options, storageSize: UInt64, callback: @escaping (Superblock<S>) -> Void
    ) {
        precondition(options.replicaCount >= 1 && options.replicaCount <= Constants.replicasMax,
                     "replica count in range")
        precondition(options.replica >= 0 && options.replica < options.replicaCount, "replica in range")
        JournalFormatter.format(storage: storage, cluster: options.cluster, release: options.release) {
            let superblock = Superblock(storage: storage)
            superblock.format(
                cluster: options.cluster, replicaIndex: options.replica,
                replicaCount: options.replicaCount, release: options.release,
                storageSize: storageSize
            ) {
                callback(superblock)
            }
        }
    }

    /// Creates and formats the data file at `path` (a new regular file or a zeroed block
    /// device) through io_uring. Returns a one-line summary for the operator.
    public static func formatFile(path: String, layout: DataFileLayout, options: Options) throws -> String {
        let file = try DataFile.create(
            path: path, sizeBytes: options.sizeBytes, layout: layout, directIO: options.directIO)
        defer { file.close() }
        // Format issues a few thousand small writes: a larger ring keeps them flowing.
        let io = try IOUring(entries: 2048)
        let storage = FileStorage(io: io, file: file)
        var done = false
        format(storage: storage, options: options, storageSize: layout.sizeMin) { _ in done = true }
        // Bounded: format is a few thousand IOs; a minute without completing means a stuck
        // device, which is reported rather than waited on forever.
        let finished = io.run(until: { done }, timeoutNs: 60 * 1_000_000_000)
        guard finished else { throw FormatError.timedOut }
        let kind = file.isBlockDevice ? "block device" : "regular file"
        return "cluster=\(options.cluster) replica=\(options.replica)/\(options.replicaCount) "
            + "size=\(CommandLineValues.formatByteSize(file.sizeBytes)) (\(kind))"
    }

    public enum FormatError: Error, CustomStringConvertible {
        case timedOut
        public var description: String { "the device did not complete the format writes within 60 s" }
    }
}

// ledger-format: creates the data file of one replica (storage spec §1 "Open and format", §11).
//
//   ledger-format --cluster=<u128> --replica=<i> --replica-count=<n> [--size=<bytes>] <path>
//
// <path> is a new regular file (created, preallocated to --size) or an existing, zeroed block
// device. An existing data file is never overwritten. Every bad argument or operating error is
// one line on stderr and a non-zero exit.

import ArgumentParser
import LedgerCommandLine
import LedgerIO
import LedgerKit
import LedgerVSR

struct LedgerFormat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-format",
        abstract: "Create the data file of one Ledger replica.",
        discussion: """
            <path> must not exist (a regular file is created) or be a block device whose first \
            96 KiB are zero. The file is preallocated to --size (at least the minimum, \
            \(CommandLineValues.formatByteSize(DataFileLayout(.production).sizeMin))); the grid \
            grows into the rest.
            """)

    @Option(help: "Cluster id: a u128 in decimal or 0x-prefixed hex. Every replica of a cluster uses the same one.")
    var cluster: String

    @Option(help: "Index of this replica in the cluster, from 0.")
    var replica: Int

    @Option(name: .customLong("replica-count"), help: "Number of replicas in the cluster (1-\(Constants.replicasMax)).")
    var replicaCount: Int

    @Option(help: "Size to preallocate for a regular file, e.g. 2GiB (default: the minimum).")
    var size: String?

    @Flag(help: "Open without direct IO (for filesystems such as tmpfs that lack it; never for production).")
    var development = false

    @Argument(help: "The data file or block device to create.")
    var path: String

    func validate() throws {
        guard CommandLineValues.parseUInt128(cluster) != nil else {
            throw ValidationError("--cluster must be a u128 in decimal or 0x-hex, got '\(cluster)'")
        }
        guard replicaCount >= 1 && replicaCount <= Constants.replicasMax else {
            throw ValidationError("--replica-count must be between 1 and \(Constants.replicasMax), got \(replicaCount)")
        }
        guard replica >= 0 && replica < replicaCount else {
            throw ValidationError("--replica must be between 0 and \(replicaCount - 1) (--replica-count=\(replicaCount)), got \(replica)")
        }
        guard !path.isEmpty else { throw ValidationError("<path> must not be empty") }
        if let size {
            let layout = DataFileLayout(.production)
            guard let bytes = CommandLineValues.parseByteSize(size) else {
                throw ValidationError("--size must be a byte count such as 2147483648 or 2GiB, got '\(size)'")
            }
            guard bytes >= layout.sizeMin else {
                throw ValidationError("--size must be at least \(layout.sizeMin) bytes (\(CommandLineValues.formatByteSize(layout.sizeMin))), got \(bytes)")
            }
            guard bytes <= layout.sizeMax else {
                throw ValidationError("--size must be at most \(layout.sizeMax) bytes (\(CommandLineValues.formatByteSize(layout.sizeMax))), got \(bytes)")
            }
            guard bytes % UInt64(Constants.sectorSize) == 0 else {
                throw ValidationError("--size must be a multiple of \(Constants.sectorSize) bytes, got \(bytes)")
            }
        }
    }

    func run() throws {
        let layout = DataFileLayout(.production)
        let options = DataFileFormatter.Options(
            cluster: CommandLineValues.parseUInt128(cluster)!, replica: replica,
            replicaCount: replicaCount,
            sizeBytes: size.flatMap(CommandLineValues.parseByteSize) ?? layout.sizeMin,
            directIO: !development)
        do {
            let summary = try DataFileFormatter.formatFile(path: path, layout: layout, options: options)
            printError("ledger-format: formatted \(path): \(summary)")
        } catch {
            throw ToolError("cannot format \(path): \(error)")
        }
    }
}

Constants.verify()
runCommandLine(LedgerFormat.self, name: "ledger-format")

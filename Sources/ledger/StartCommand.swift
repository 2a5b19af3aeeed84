import ArgumentParser
import LedgerCommandLine
import LedgerIO
import LedgerKit
import LedgerLSM

/// `ledger start`: checks the command line, then runs the server (`Server`) until a stop
/// signal.
struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Serve the replica whose data file is <path> (made by ledger-format).",
        discussion: """
            Runs until SIGINT or SIGTERM, then stops cleanly (every acknowledged request is \
            already durable). Logs go to stderr.
            """)

    @Option(help: "Addresses of the cluster's replicas, in replica order: host:port, port, host or [ipv6]:port, comma-separated. This build serves one-replica clusters: one address.")
    var addresses: String

    @Option(name: .customLong("cache-grid"), help: "Grid block cache size, e.g. 1GiB (a multiple of the 512 KiB block size; default \(CommandLineValues.formatByteSize(StartCommand.cacheGridDefault))).")
    var cacheGrid: String?

    @Flag(help: "Open without direct IO (for filesystems such as tmpfs that lack it; never for production).")
    var development = false

    @Argument(help: "The data file (regular file or block device) of this replica.")
    var path: String

    static var cacheGridDefault: UInt64 {
        UInt64(ForestStoreConfiguration.Caches.production.gridBlocks) * UInt64(Constants.blockSize)
    }
    static let cacheGridMin = UInt64(Constants.blockSize) * 16
    static let cacheGridMax: UInt64 = 1 << 40

    func validate() throws {
        switch ReplicaAddress.parseList(addresses) {
        case .failure(let error): throw ValidationError("--addresses: \(error)")
        case .success(let list):
            guard list.count == 1 else {
                throw ValidationError("--addresses: this build serves one-replica clusters (replication comes later), got \(list.count) addresses")
            }
        }
        if let cacheGrid {
            guard let bytes = CommandLineValues.parseByteSize(cacheGrid) else {
                throw ValidationError("--cache-grid must be a byte size such as 1GiB, got '\(cacheGrid)'")
            }
            guard bytes % UInt64(Constants.blockSize) == 0 else {
                throw ValidationError("--cache-grid must be a multiple of the block size (\(Constants.blockSize) bytes), got \(bytes)")
            }
            guard bytes >= Self.cacheGridMin && bytes <= Self.cacheGridMax else {
                throw ValidationError("--cache-grid must be between \(CommandLineValues.formatByteSize(Self.cacheGridMin)) and \(CommandLineValues.formatByteSize(Self.cacheGridMax)), got \(cacheGrid)")
            }
        }
        guard !path.isEmpty else { throw ValidationError("<path> must not be empty") }
    }

    func run() throws {
        guard case .success(let list) = ReplicaAddress.parseList(addresses) else {
            preconditionFailure("validate() parsed the addresses")
        }
        let cacheBytes = cacheGrid.flatMap(CommandLineValues.parseByteSize) ?? Self.cacheGridDefault
        let options = Server.Options(
            path: path, address: list[0], cacheGridBlocks: Int(cacheBytes / UInt64(Constants.blockSize)),
            directIO: !development)
        try Server.run(options)
    }
}

import ArgumentParser
import LedgerCommandLine
import LedgerKit

/// `ledger version [--verbose]`: the release this build speaks (the one clients negotiate, wire
/// spec §8), and with --verbose the limits a client or operator may need.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the release (and, with --verbose, the build's limits).")

    @Flag(help: "Also print the protocol limits and the storage geometry.")
    var verbose = false

    func run() throws {
        let release = ReleaseTriple(value: Constants.release)
        let clientMin = ReleaseTriple(value: Constants.releaseClientMin)
        print("ledger \(release)")
        guard verbose else { return }
        let storage = StorageConfiguration.production
        print("release=\(release) (\(Constants.release)) release_client_min=\(clientMin)")
        print("message_size_max=\(Constants.messageSizeMax) batch_size_limit=\(Constants.messageBodySizeMax)")
        print("batch_events_max=\(Constants.batchEventsMax) clients_max=\(storage.clientsMax)")
        print("journal_slot_count=\(storage.journalSlotCount) pipeline_prepare_queue_max=\(storage.pipelinePrepareQueueMax)")
        print("lsm_compaction_ops=\(storage.lsmCompactionOps) block_size=\(storage.blockSize) lsm_levels=\(Constants.lsmLevels)")
        print("replicas_max=\(Constants.replicasMax) (this build serves clusters of 1 replica)")
    }
}

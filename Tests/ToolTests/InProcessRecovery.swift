// What a replica does to a data file when it starts, run in the test process on the real file:
// `Superblock.open` (repairs copies outside the quorum) and `Journal.recover` (fixes or
// truncates WAL slots), through `DataFile`, `IOUring` and `FileStorage`.

import LedgerIO
import LedgerKit
import LedgerVSR

struct RecoveryOutcome {
    let superblock: SuperblockHeader
    let superblockRepairWrites: Int
    /// What `Superblock.open` found before repairing.
    let superblockOpenReport: SuperblockQuorumReport?
    let journal: Result<JournalRecovery, JournalError>
}

enum InProcessRecovery {
    /// A real device answers in milliseconds; a minute means it is stuck.
    static let timeoutNs: UInt64 = 60 * 1_000_000_000

    static func run(path: String) throws -> RecoveryOutcome {
        let file = try DataFile.open(path: path, layout: Fixture.layout, mode: .readWrite)
        defer { file.close() }
        let io = try IOUring(entries: 256)
        let storage = FileStorage(io: io, file: file)

        let superblock = Superblock(storage: storage)
        var opened: Result<SuperblockHeader, SuperblockError>?
        superblock.open { opened = $0 }
        guard io.run(until: { opened != nil }, timeoutNs: timeoutNs) else {
            abandon(storage)
            throw ToolTestError("Superblock.open did not complete on \(path)")
        }
        let header = try opened!.get()

        let journal = Journal(storage: storage, cluster: header.cluster)
        var recovered: Result<JournalRecovery, JournalError>?
        journal.recover(
            opCheckpoint: header.vsrState.checkpoint.header.op,
            replicaCount: Int(header.vsrState.replicaCount)
        ) { recovered = $0 }
        guard io.run(until: { recovered != nil }, timeoutNs: timeoutNs) else {
            abandon(storage)
            throw ToolTestError("Journal.recover did not complete on \(path)")
        }
        guard storage.inFlightCount == 0 else {
            abandon(storage)
            throw ToolTestError("recovery left \(storage.inFlightCount) IOs in flight")
        }
        return RecoveryOutcome(
            superblock: header, superblockRepairWrites: superblock.openRepairWrites,
            superblockOpenReport: superblock.openReport, journal: recovered!)
    }

    /// A storage with IO in flight must not be released (its deinit checks that it is idle, and
    /// the kernel may still write into its buffers): a failing test leaks it instead.
    private static func abandon(_ storage: FileStorage) {
        _ = Unmanaged.passRetained(storage)
    }
}

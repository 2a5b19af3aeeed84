// Shared helpers of the superblock tests: drive a `Superblock` on `SimulatedStorage` to
// completion, and read, write or forge copies directly in the simulated file.

import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

enum SuperblockFixture {
    static let layout = DataFileLayout(.testing)
    static let cluster: UInt128 = 0xC1A5_7E12
    static let release: UInt32 = 17
    static let headerSize = Constants.superblockHeaderSize

    static func storage(seed: UInt64, options: SimulatedStorage.Options = .init()) -> SimulatedStorage {
        SimulatedStorage(layout: layout, seed: seed, options: options)
    }

    /// Formats a fresh superblock and returns it (open, holding sequence 1).
    static func format(
        _ storage: SimulatedStorage, replicaIndex: Int = 1, replicaCount: Int = 3,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Superblock<SimulatedStorage> {
        let superblock = Superblock(storage: storage)
        var done = false
        superblock.format(
            cluster: cluster, replicaIndex: replicaIndex, replicaCount: replicaCount,
            release: release, storageSize: layout.sizeMin
        ) { done = true }
        storage.runUntilIdle()
        #expect(done, "format completes", sourceLocation: sourceLocation)
        return superblock
    }

    /// Opens a fresh superblock on `storage`, running the storage until the callback.
    static func open(_ storage: SimulatedStorage)
        -> (Superblock<SimulatedStorage>, Result<SuperblockHeader, SuperblockError>?)
    {
        let superblock = Superblock(storage: storage)
        var result: Result<SuperblockHeader, SuperblockError>?
        superblock.open { result = $0 }
        storage.runUntilIdle()
        return (superblock, result)
    }

    /// Runs one checkpoint or view change to completion.
    static func checkpoint(_ superblock: Superblock<SimulatedStorage>, _ update: CheckpointUpdate) {
        var done = false
        superblock.checkpoint(update: update) { done = true }
        superblock.storage.runUntilIdle()
        #expect(done, "checkpoint completes")
    }

    static func viewChange(_ superblock: Superblock<SimulatedStorage>, _ update: ViewChangeUpdate) {
        var done = false
        superblock.viewChange(update: update) { done = true }
        superblock.storage.runUntilIdle()
        #expect(done, "view change completes")
    }

    // MARK: Updates

    /// A prepare header for op `op` (for checkpoints and view headers).
    static func prepare(op: UInt64, view: UInt32 = 0) -> PrepareHeader {
        var header = PrepareHeader()
        header.frame.cluster = cluster
        header.frame.view = view
        header.op = op
        header.operation = VSROperation.noop.rawValue
        header.sealWithoutBody()
        return header
    }

    /// A checkpoint at `op` following `working`'s checkpoint, with arbitrary references.
    static func checkpointUpdate(
        after working: SuperblockHeader, op: UInt64, commitMax: UInt64, salt: UInt64 = 0
    ) -> CheckpointUpdate {
        var checkpoint = CheckpointState(header: prepare(op: op, view: working.vsrState.view))
        checkpoint.parentCheckpointId = working.checkpointId
        checkpoint.grandparentCheckpointId = working.vsrState.checkpoint.parentCheckpointId
        checkpoint.freeSetAcquired.lastBlockAddress = op + 1
        checkpoint.freeSetAcquired.checksum = UInt128(op) << 64 | UInt128(salt)
        checkpoint.clientSessions.size = 4096
        checkpoint.manifestBlockCount = UInt32(truncatingIfNeeded: op % 7)
        checkpoint.release = working.vsrState.checkpoint.release
        checkpoint.storageSize = working.vsrState.checkpoint.storageSize
        return CheckpointUpdate(
            checkpoint: checkpoint, commitMax: commitMax,
            viewHeaders: SuperblockViewHeaders([prepare(op: commitMax, view: working.vsrState.view)]))
    }

    static func viewChangeUpdate(view: UInt32, logView: UInt32, commitMax: UInt64) -> ViewChangeUpdate {
        var headers = SuperblockViewHeaders()
        for offset in 0..<3 where UInt64(offset) <= commitMax {
            headers.append(prepare(op: commitMax - UInt64(offset), view: logView))
        }
        return ViewChangeUpdate(view: view, logView: logView, commitMax: commitMax, viewHeaders: headers)
    }

    // MARK: Direct access to the copies

    static func slotBytes(_ storage: SimulatedStorage, slot: Int) -> UnsafeMutableRawBufferPointer {
        storage.bytes(zone: .superblock, offset: layout.superblockCopyOffset(copy: slot), count: headerSize)
    }

    static func header(_ storage: SimulatedStorage, slot: Int) -> SuperblockHeader {
        SuperblockHeader(from: UnsafeRawBufferPointer(slotBytes(storage, slot: slot)))
    }

    /// Stores `header` in `slot` as is, with `copy` set to `copy` (default: the slot).
    static func place(_ header: SuperblockHeader, _ storage: SimulatedStorage, slot: Int, copy: Int? = nil) {
        var stored = header
        stored.copy = UInt16(copy ?? slot)
        let target = slotBytes(storage, slot: slot)
        withUnsafeBytes(of: stored) { target.copyMemory(from: $0) }
    }

    /// The next sequence after `header`, with `change` applied, sealed.
    static func successor(
        of header: SuperblockHeader, _ change: (inout SuperblockHeader) -> Void = { _ in }
    ) -> SuperblockHeader {
        var next = header
        next.copy = 0
        next.sequence += 1
        next.parent = header.checksum
        next.vsrState.commitMax += 1
        change(&next)
        next.seal()
        return next
    }

    /// Expects every slot to hold `header` with its own copy index (a fully repaired superblock).
    static func expectAllCopies(
        _ storage: SimulatedStorage, equal header: SuperblockHeader,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for slot in 0..<Constants.superblockCopies {
            var stored = self.header(storage, slot: slot)
            #expect(Int(stored.copy) == slot, "slot \(slot) holds its own copy", sourceLocation: sourceLocation)
            stored.copy = 0
            #expect(stored == header, "slot \(slot) holds the working header", sourceLocation: sourceLocation)
        }
    }

    /// Analyzes the copies as stored (no IO).
    static func analyze(_ storage: SimulatedStorage) -> SuperblockQuorumReport {
        let zone = storage.bytes(zone: .superblock, offset: 0, count: Int(layout.size(of: .superblock)))
        return SuperblockQuorums.analyze(zone: UnsafeRawBufferPointer(zone))
    }
}

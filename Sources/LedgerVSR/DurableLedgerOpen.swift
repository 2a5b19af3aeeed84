import LedgerIO
import LedgerKit
import LedgerLSM

// Restart (storage spec §6 "Restart"; the order in DurableLedger.swift's header): each step's
// failure is a typed `DurableLedgerOpenError`, since every input is bytes from disk.

extension DurableLedger {
    /// Opens the ledger from its data file: superblock, checkpoint, client sessions, WAL, then
    /// the replay of every op after the checkpoint up to the WAL head. `callback` runs once the
    /// ledger is ready (submits are accepted from then on) or with why it cannot start.
    public func open(callback: @escaping OpenCallback) {
        precondition(status == .initial, "a ledger opens once")
        status = .opening
        openCallback = callback
        superblock.open { [unowned self] result in self.superblockOpened(result) }
    }

    private func superblockOpened(_ result: Result<SuperblockHeader, SuperblockError>) {
        let working: SuperblockHeader
        switch result {
        case .failure(let error): return failOpen(.superblock(error))
        case .success(let header): working = header
        }
        let state = working.vsrState.checkpoint
        let checkpoint: ForestCheckpoint
        do throws(ForestCheckpointStateError) {
            checkpoint = try ForestCheckpoint(checkpointState: state, layout: layout)
        } catch {
            return failOpen(.checkpointState(error))
        }
        // Every checkpoint past format writes the sessions table (never an empty trailer).
        guard state.header.op == 0 || state.clientSessions.size > 0 else { return failOpen(.clientSessionsReference) }
        store.open(checkpoint: checkpoint) { [unowned self] result in
            if case .failure(let error) = result { return self.failOpen(.forest(error)) }
            self.sessionsTrailer.read(state.clientSessions.checkpointTrailerReference) { [unowned self] result in
                self.sessionsRead(result, working: working)
            }
        }
    }

    private func sessionsRead(_ result: Result<Void, CheckpointTrailerError>, working: SuperblockHeader) {
        if case .failure(let error) = result { return failOpen(.clientSessionsTrailer(error)) }
        let opCheckpoint = working.vsrState.checkpoint.header.op
        if opCheckpoint != 0 {
            do throws(ClientSessionsDecodeError) {
                clientSessions = try ClientSessions.decode(sessionsTrailer.stream, capacity: configuration.clientsMax)
            } catch {
                return failOpen(.clientSessions(error))
            }
            // The trailer's blocks were acquired before the free set was encoded: they must be
            // acquired (and not released) in it. Checked, not assumed, before releasing them as
            // the run that wrote the checkpoint did.
            let freeSet = store.forest.freeSet
            for address in sessionsTrailer.blockAddresses {
                guard address >= 1, address <= UInt64(freeSet.blockCount), !freeSet.isFree(address),
                      !freeSet.isReleased(address)
                else { return failOpen(.clientSessionsReference) }
            }
            sessionsTrailer.releaseBlocks(freeSet)
        }
        journal = Journal(storage: storage, cluster: working.cluster)
        journal.recover(opCheckpoint: opCheckpoint, replicaCount: Int(working.vsrState.replicaCount)) {
            [unowned self] result in self.journalRecovered(result, working: working)
        }
    }

    private func journalRecovered(_ result: Result<JournalRecovery, JournalError>, working: SuperblockHeader) {
        let recovery: JournalRecovery
        switch result {
        case .failure(let error): return failOpen(.journal(error))
        case .success(let report): recovery = report
        }
        let checkpointHeader = working.vsrState.checkpoint.header
        let opCheckpoint = checkpointHeader.op
        guard let head = recovery.opHead, head >= opCheckpoint, head >= working.vsrState.commitMax else {
            return failOpen(.walHead(recovery.opHead ?? 0))
        }
        // The log from the checkpoint to the head is whole and hash-chained: replay needs every
        // op, and a solo replica has no peer to fetch a missing one from.
        var parent = checkpointHeader.frame.checksum
        if let stored = journal.header(op: opCheckpoint), stored.frame.checksum != parent {
            return failOpen(.walChain(op: opCheckpoint))
        }
        var op = opCheckpoint
        // Bounded by the WAL: head − checkpoint ≤ op_prepare_max − checkpoint < slot count.
        while op < head {
            op += 1
            guard let header = journal.header(op: op) else { return failOpen(.walGap(op: op)) }
            guard header.parent == parent else { return failOpen(.walChain(op: op)) }
            parent = header.frame.checksum
        }
        guard checkpointHeader.timestamp <= Constants.timestampMax else { return failOpen(.walOperation(op: opCheckpoint)) }
        opHead = head
        headChecksum = parent
        commitMin = opCheckpoint
        replayHeadOp = head
        durableAtOp = opCheckpoint == 0
            ? nil : opCheckpoint + UInt64(configuration.lsmCompactionOps + configuration.pipelinePrepareQueueMax) + 1
        stateMachine.advanceTimestamps(prepare: checkpointHeader.timestamp, commit: checkpointHeader.timestamp)
        status = .replaying
        pump()
    }

    /// Every op up to the head is committed again: new ops continue from here.
    func finishReplay() {
        precondition(status == .replaying, "replay ends once")
        precondition(commitMin == replayHeadOp, "replay reached the head")
        guard let head = journal.header(op: opHead) else { preconditionFailure("the head has its header") }
        stateMachine.advanceTimestamps(prepare: head.timestamp, commit: head.timestamp)
        status = .ready
        let callback = openCallback
        openCallback = nil
        callback?(.success(()))
    }

    func failOpen(_ error: DurableLedgerOpenError) {
        status = .openFailed
        let callback = openCallback
        openCallback = nil
        callback?(.failure(error))
    }
}

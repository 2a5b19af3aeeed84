import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerStateMachine

// The commit stage of `DurableLedger` (the order in DurableLedger.swift's header): one op at a
// time, in op order, the same path for new ops and for the replay at open; and the checkpoint
// written at a trigger's commit.

extension DurableLedger {
    // MARK: Commit

    /// Runs the commit stage as far as it goes without waiting. Completions set `stage` and
    /// call this; a completion that runs inside a step is absorbed by the loop (no recursion).
    func pump() {
        guard !isPumping else { return }
        isPumping = true
        // Each turn advances the stage or stops at an IO wait: the turns are bounded by the
        // pipeline's ops (or, replaying, one read per op) times the stages.
        while step() {}
        isPumping = false
    }

    func step() -> Bool {
        switch stage {
        case .idle: return startCommit()
        case .reading, .prefetching, .turning, .beating, .checkpointing: return false
        case .read(let result): return prepareRead(result)
        case .prefetched(let result): return prefetched(result)
        case .beaten(let result): return beaten(result)
        case .checkpointed:
            finishCommit()
            return true
        }
    }

    func startCommit() -> Bool {
        guard fault == nil else { return false }
        let op = commitMin + 1
        switch status {
        case .replaying:
            guard op <= replayHeadOp else {
                finishReplay()
                return status == .ready
            }
            guard let header = journal.header(op: op) else {
                failOpen(.walGap(op: op))
                return false
            }
            stage = .reading
            let started = journal.read(
                op: op, checksum: header.frame.checksum, into: entries[entryIndex(op: op)].buffer.bytes,
                purpose: .commit, callback: readCallback)
            guard started == .started else {
                stage = .idle
                failOpen(.walPrepare(op: op))
                return false
            }
            return true
        case .ready:
            let entry = entries[entryIndex(op: op)]
            guard entry.state == .durable, entry.header.op == op else { return false }
            beginExecute(entry.header)
            return true
        case .initial, .opening, .openFailed, .faulted:
            return false
        }
    }

    /// A replayed prepare is back from the journal: verified by the journal, then checked for
    /// an operation this ledger executes (a valid checksum does not make a valid request).
    func prepareRead(_ result: JournalReadResult) -> Bool {
        let op = commitMin + 1
        guard case .prepare(let header) = result, header.op == op else {
            stage = .idle
            failOpen(.walPrepare(op: op))
            return false
        }
        let body = prepareBody(header)
        let valid: Bool
        if header.operation == VSROperation.register.rawValue {
            valid = body.count == 0 && header.client != 0
        } else if let operation = Operation(rawValue: header.operation) {
            valid = stateMachine.isValidRequest(operation: operation, body: body)
                && (!operation.isMultiBatch
                    || (MultiBatchReader(body: body, elementSize: operation.eventSize)?.elementCountTotal ?? Int.max)
                        <= batchEventsMax)
        } else {
            valid = false
        }
        // Timestamps only grow, and stay below 2^63 (a checksum does not prove either).
        guard valid, header.timestamp > stateMachine.commitTimestamp, header.timestamp <= Constants.timestampMax else {
            stage = .idle
            failOpen(.walOperation(op: op))
            return false
        }
        beginExecute(header)
        return true
    }

    /// Where the state machine writes the reply body: after the room for its header.
    var replyBody: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: replyBuffer.bytes[Constants.messageHeaderSize...])
    }

    func prepareBody(_ header: PrepareHeader) -> UnsafeRawBufferPointer {
        let bytes = entries[entryIndex(op: header.op)].buffer.bytes
        return UnsafeRawBufferPointer(rebasing: bytes[Constants.messageHeaderSize..<Int(header.frame.size)])
    }

    func beginExecute(_ header: PrepareHeader) {
        commitHeader = header
        if durableAtOp == header.op {
            // The previous checkpoint's blocks may be freed from here on, at the same op in
            // every run (the Forest header).
            store.forest.checkpointDurable()
            durableAtOp = nil
        }
        guard let operation = Operation(rawValue: header.operation) else {
            stage = .prefetched(.success(()))
            return
        }
        stage = .prefetching
        stateMachine.prefetch(
            operation: operation, body: prepareBody(header), timestamp: header.timestamp, completion: prefetchCompletion)
    }

    func prefetched(_ result: Result<Void, ForestStoreFault>) -> Bool {
        if case .failure(let prefetchFault) = result {
            stop(.prefetch(prefetchFault))
            return false
        }
        let header = commitHeader
        let reply = replyBody
        if let operation = Operation(rawValue: header.operation) {
            commitReplySize = stateMachine.execute(
                operation: operation, timestamp: header.timestamp, body: prepareBody(header), output: reply)
        } else {
            precondition(header.operation == VSROperation.register.rawValue, "only a register commits outside the state machine")
            // The register result: the batch size limit, then reserved zeros (wire spec §5.3).
            commitReplySize = 64
            UnsafeMutableRawBufferPointer(rebasing: reply[0..<commitReplySize]).initializeMemory(as: UInt8.self, repeating: 0)
            reply.storeBytes(of: UInt32(Constants.messageBodySizeMax).littleEndian, toByteOffset: 0, as: UInt32.self)
            stateMachine.advanceTimestamps(prepare: 0, commit: header.timestamp)
        }
        commitReply = ReplyHeader(prepare: header, body: UnsafeRawBufferPointer(rebasing: reply[0..<commitReplySize]))
        replyBuffer.bytes.storeBytes(of: commitReply, toByteOffset: 0, as: ReplyHeader.self)
        clientSessions.commit(prepare: header, reply: commitReply)
        if commitReplySize > 0, header.client != 0, let slot = clientSessions.slotIndex(client: header.client) {
            clientReplies.write(
                slot: slot, header: commitReply, body: UnsafeRawBufferPointer(rebasing: reply[0..<commitReplySize]))
        }
        if header.op == configuration.checkpointAfter(store.forest.checkpointOp) {
            // The table the checkpoint at this op stands for; written at its trigger.
            clientSessions.encode(into: sessionsCheckpointBytes.bytes)
            sessionsCheckpointOp = header.op
        }
        // The reply goes out now, before the beat: the op is durable in the WAL and its
        // reply is fixed, so a crash during the beat replays it to the same reply. The
        // client's next request then overlaps this op's compaction work.
        if status == .ready { answer(op: header.op) }
        // The beat starts on the loop's next turn, so the reply goes to the kernel now and a
        // request that arrived meanwhile starts its WAL write: both then overlap the beat's CPU
        // work (memtable sorts and merges), which the forest also splits by turns.
        stage = .turning
        storage.nextTurn(beatTurn)
        return false
    }

    /// Calls the op's reply callback with the reply just built.
    func answer(op: UInt64) {
        let entry = entries[entryIndex(op: op)]
        precondition(entry.state == .durable, "a committed op's prepare is durable")
        let callback = entry.callback
        entry.callback = nil
        callback?(.success(DurableReply(
            header: commitReply,
            message: UnsafeRawBufferPointer(
                rebasing: replyBuffer.bytes[0..<(Constants.messageHeaderSize + commitReplySize)]))))
    }

    func beaten(_ result: Result<ForestCheckpoint?, ForestFault>) -> Bool {
        switch result {
        case .failure(let forestFault):
            stop(.forest(forestFault))
            return false
        case .success(nil):
            stage = .checkpointed
        case .success(let checkpoint?):
            writeCheckpoint(checkpoint)
        }
        return true
    }

    func finishCommit() {
        let op = commitHeader.op
        precondition(op == commitMin + 1, "ops commit in order")
        commitMin = op
        stage = .idle
        guard status == .ready else {
            replayedOpCount += 1
            return
        }
        let entry = entries[entryIndex(op: op)]
        precondition(entry.state == .durable, "a committed op's prepare is durable")
        precondition(entry.callback == nil, "the op was answered after its execute")
        entry.state = .free
    }

    /// The ledger cannot commit on (a solo replica has no peer to repair from): every op in
    /// the pipeline is answered with the fault, in op order.
    func stop(_ reason: DurableLedgerFault) {
        fault = reason
        stage = .idle
        if status == .replaying {
            failOpen(.replay(op: commitMin + 1, reason))
            return
        }
        status = .faulted
        guard opHead > commitMin else { return }
        for op in (commitMin + 1)...opHead {
            let entry = entries[entryIndex(op: op)]
            let callback = entry.callback
            entry.callback = nil
            callback?(.failure(reason))
        }
    }

    // MARK: Checkpoint

    /// The forest's hook at a trigger (see the file header): writes the table encoded at the
    /// checkpoint op as the client-sessions trailer, in a reservation session of its own.
    func writeSessionsTrailer(snapshot: UInt64, done: @escaping () -> Void) -> Bool {
        let checkpoint = snapshot - UInt64(configuration.lsmCompactionOps)
        precondition(sessionsCheckpointOp == checkpoint, "the sessions table was encoded at the checkpoint op")
        let freeSet = store.forest.freeSet
        sessionsTrailer.beginStaging()
        sessionsTrailer.stage(bytes: UnsafeRawBufferPointer(rebasing: sessionsCheckpointBytes.bytes[0..<clientSessions.encodedSize]))
        freeSet.openReservations()
        guard let reservation = freeSet.reserve(count: sessionsTrailer.stagedBlockCount) else {
            freeSet.closeReservations()
            sessionsTrailer.discardStaging()
            return false
        }
        sessionsTrailer.write(freeSet: freeSet, reservation: reservation, snapshot: snapshot, callback: done)
        freeSet.forfeit(reservation)
        freeSet.closeReservations()
        return true
    }

    /// The trigger's beat wrote the forest's part: release the sessions trailer's blocks (the
    /// trailer protocol), then make the checkpoint durable in the superblock.
    func writeCheckpoint(_ checkpoint: ForestCheckpoint) {
        sessionsTrailer.releaseBlocks(store.forest.freeSet)
        sessionsCheckpointOp = nil
        let trigger = commitHeader.op
        guard let header = journal.header(op: checkpoint.op) else {
            preconditionFailure("the checkpoint op's prepare is in the WAL until op_prepare_max")
        }
        let working = superblock.working.vsrState
        var state = CheckpointState(header: header, forest: checkpoint, layout: layout)
        state.parentCheckpointId = working.checkpoint.id
        state.grandparentCheckpointId = working.checkpoint.parentCheckpointId
        state.clientSessions = TrailerReference(sessionsTrailer.reference)
        state.release = working.checkpoint.release
        let update = CheckpointUpdate(
            checkpoint: state, commitMax: max(trigger, working.commitMax), viewHeaders: viewHeaders(from: trigger))
        durableAtOp = trigger + UInt64(configuration.pipelinePrepareQueueMax) + 1
        if status == .replaying { replayCheckpointCount += 1 }
        stage = .checkpointing
        // The replay resumes after the checkpoint op: replies up to it must be on disk first.
        clientReplies.flush { [unowned self] in
            self.superblock.checkpoint(update: update, callback: self.checkpointCallback)
        }
    }

    /// The durable log suffix from the newest durable op down to `trigger` (spec §6: a restart
    /// never finds its head below the checkpoint), newest first.
    func viewHeaders(from trigger: UInt64) -> SuperblockViewHeaders {
        var top = trigger
        // Bounded by the pipeline (or the replay's head).
        while top < opHead && isDurable(op: top + 1) { top += 1 }
        var headers = SuperblockViewHeaders()
        var op = top
        while op >= trigger && Int(headers.count) < Constants.viewHeadersMax {
            guard let header = journal.header(op: op) else { preconditionFailure("a durable op has its header") }
            headers.append(header)
            op -= 1
        }
        return headers
    }

    func isDurable(op: UInt64) -> Bool {
        if status == .replaying { return op <= replayHeadOp }
        let entry = entries[entryIndex(op: op)]
        return entry.state == .durable && entry.header.op == op
    }
}

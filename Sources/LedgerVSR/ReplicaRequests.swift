import LedgerIO
import LedgerKit
import LedgerStateMachine

// The primary's request path (wire spec §5.7 "request", in its order; storage spec §8
// "Request handling"). Each check either passes the request on, drops it (counted: the client
// retries, which is how it waits), or evicts the client (counted, with the reason it is told).

extension Replica {
    func receiveRequest(_ message: UnsafeRawBufferPointer, from connection: Bus.Connection) {
        let header = message.loadUnaligned(as: RequestHeader.self)
        if header.invalidity() != nil {
            counters.droppedInvalidHeader += 1
            return
        }
        guard status == .normal else {
            counters.droppedNotNormal += 1
            return
        }
        bus.associate(connection, client: header.client)
        guard header.frame.view <= view else {
            counters.droppedView += 1
            return
        }
        let body = UnsafeRawBufferPointer(rebasing: message[Constants.messageHeaderSize..<Int(header.frame.size)])
        if let reason = requestEviction(header, body: body) { return evict(client: header.client, reason: reason) }
        switch sessionVerdict(header) {
        case .new: break
        case .drop:
            counters.droppedSession += 1
            return
        case .evict(let reason):
            return evict(client: header.client, reason: reason)
        case .resend(let reply):
            return resend(reply)
        }
        // One request per client in the pipeline: the reply to this one will follow.
        guard !isPreparedOrQueued(client: header.client) else {
            counters.droppedInFlight += 1
            return
        }
        // Non-zero only in the reference's AOF recovery mode, which this server does not have.
        guard header.timestamp == 0 else {
            counters.droppedTimestamp += 1
            return
        }
        if requestQueue.count > 0 || !prepare(header, body: body) {
            guard !requestQueue.isFull else {
                counters.droppedQueueFull += 1
                return
            }
            requestQueue.push(message, client: header.client)
            counters.requestsQueued += 1
        }
    }

    /// Release, size, operation and body checks (wire spec §5.7 steps 3–5; §7.4).
    func requestEviction(_ header: RequestHeader, body: UnsafeRawBufferPointer) -> EvictionReason? {
        if let reason = releaseEviction(header.frame.release) { return reason }
        if Int(header.frame.size) > Constants.messageHeaderSize + Int(batchSizeLimit) { return .invalidRequestBodySize }
        if header.operation == VSROperation.register.rawValue {
            // A 256-byte register is only for telling very old clients their release is too low.
            guard body.count == RegisterRequest.size else { return .invalidRequestBodySize }
            // The limit is the primary's to fill in; a client sends zeros.
            guard body.allSatisfy({ $0 == 0 }) else { return .invalidRequestBody }
            return nil
        }
        guard let operation = Operation(rawValue: header.operation), operation != .pulse else {
            return .invalidRequestOperation
        }
        guard ledger.stateMachine.isValidRequest(operation: operation, body: body) else { return .invalidRequestBody }
        if operation.isMultiBatch {
            // The store's memtables are sized for `batchEventsMax` events per op.
            guard let reader = MultiBatchReader(body: body, elementSize: operation.eventSize),
                reader.elementCountTotal <= ledger.batchEventsMax
            else { return .invalidRequestBody }
        }
        return nil
    }

    enum SessionVerdict {
        case new
        case drop
        case evict(EvictionReason)
        case resend(ReplyHeader)
    }

    /// The request against its client's session (wire spec §5.7 step 7).
    func sessionVerdict(_ header: RequestHeader) -> SessionVerdict {
        let isRegister = header.operation == VSROperation.register.rawValue
        guard let entry = ledger.clientSessions.session(client: header.client) else {
            if isRegister { return .new }
            // The register may still be on its way through the pipeline.
            return isPreparedOrQueued(client: header.client) ? .drop : .evict(.noSession)
        }
        if !isRegister {
            if entry.session > header.session { return .evict(.sessionTooLow) }
            if entry.session < header.session { return .drop }
        }
        if entry.reply.frame.release != header.frame.release { return .evict(.sessionReleaseMismatch) }
        if header.request < entry.request { return .drop }
        if header.request == entry.request {
            return header.frame.checksum == entry.reply.requestChecksum ? .resend(entry.reply) : .drop
        }
        if header.request == entry.request + 1, !isRegister, header.parent == entry.reply.context { return .new }
        return .drop
    }

    func isPreparedOrQueued(client: UInt128) -> Bool {
        // Bounded by the pipeline.
        for entry in prepared where entry.client == client { return true }
        return requestQueue.contains(client: client)
    }

    /// Prepares a checked request as the next op; false when the pipeline has no room (the
    /// caller queues it).
    func prepare(_ header: RequestHeader, body: UnsafeRawBufferPointer) -> Bool {
        let result: Result<PrepareHeader, DurableSubmitError>
        if header.operation == VSROperation.register.rawValue {
            result = ledger.register(
                client: header.client, realtime: realtime, requestChecksum: header.frame.checksum,
                release: header.frame.release, callback: committedCallback)
        } else {
            guard let operation = Operation(rawValue: header.operation) else {
                preconditionFailure("requestEviction let only known operations through")
            }
            result = ledger.submit(
                operation: operation, body: body, realtime: realtime, client: header.client, request: header.request,
                requestChecksum: header.frame.checksum, release: header.frame.release, callback: committedCallback)
        }
        switch result {
        case .success:
            prepared.append((client: header.client, checksum: header.frame.checksum))
            counters.requestsPrepared += 1
            return true
        case .failure(.pipelineFull):
            return false
        case .failure(.faulted), .failure(.notReady):
            status = .failed
            counters.droppedNotNormal += 1
            return true
        case .failure(.noSession):
            // Queued while its session was live; a register committed since evicted it. The
            // client learns it on its retry (eviction no_session).
            counters.droppedSession += 1
            return true
        case .failure(let error):
            // The checks above are the ledger's own; a refusal here is a broken invariant.
            preconditionFailure("a checked request was refused: \(error)")
        }
    }

    /// Prepares queued requests, oldest first, while the pipeline has room.
    func drainRequestQueue() {
        // Bounded by the queue's capacity.
        while status == .normal, let message = requestQueue.front {
            let header = message.loadUnaligned(as: RequestHeader.self)
            let body = UnsafeRawBufferPointer(rebasing: message[Constants.messageHeaderSize...])
            // The pipeline may have committed this client's previous request meanwhile; the
            // checks ran at arrival and a queued request is the client's only one in flight.
            guard prepare(header, body: body) else { return }
            requestQueue.pop()
        }
    }

    // MARK: Replies

    /// A committed op (in op order): send its reply, free its pipeline place, prepare what
    /// waits.
    func committed(_ result: Result<DurableReply, DurableLedgerFault>) {
        let reply: DurableReply
        switch result {
        case .failure:
            status = .failed
            return
        case .success(let committed):
            reply = committed
        }
        let client = reply.header.client
        if client == 0 {
            pulsePrepared = false
        } else {
            if let index = prepared.firstIndex(where: { $0.client == client }) {
                prepared.remove(at: index)
            } else {
                preconditionFailure("a committed client request was prepared by this replica")
            }
            counters.replies += 1
            bus.send(reply.message, toClient: client)
        }
        preparePulseIfDue()
        drainRequestQueue()
    }

    /// An exact duplicate of the client's latest committed request: the stored reply again,
    /// byte for byte (the header from the sessions table; a body from the client-replies zone).
    func resend(_ reply: ReplyHeader) {
        counters.repliesResent += 1
        if reply.frame.size == UInt32(Constants.messageHeaderSize) {
            var header = reply
            withUnsafeBytes(of: &header) { _ = bus.send($0, toClient: reply.client) }
            return
        }
        // One zone read at a time; a duplicate meanwhile is dropped (the client retries).
        guard replyReadClient == 0 else {
            counters.droppedReplyRead += 1
            return
        }
        replyReadClient = reply.client
        ledger.readReply(reply) { [unowned self] message in
            self.replyReadClient = 0
            guard let message else {
                self.counters.replyReadFailures += 1
                return
            }
            self.bus.send(message, toClient: reply.client)
        }
    }
}

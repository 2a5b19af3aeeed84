import LedgerIO
import LedgerKit
import LedgerStateMachine

// The VSR replica (storage spec §7–8, wire spec §5.7, §10). This step builds the replica of a
// one-member cluster: it is always the primary of its view, its replication quorum is itself,
// so an op commits once its prepare is durable in its own WAL (`DurableLedger`). Replication
// extends this type (backups, prepare_ok, view change, repair) instead of replacing it: the
// client-facing half below — request checks, sessions, the pipeline and its queue, replies,
// evictions, pings, pulses — is the primary's, whatever the cluster size.
//
// ## One request
//
//   bus → receive → frame rules (RequestHeader.invalidity) → associate the connection → view,
//   release, size, operation, body checks (evictions 2–6) → the client's session (wire §5.7
//   step 7: resend the stored reply, drop, evict 1/7/8, or new) → not already in the pipeline
//   → timestamp 0 → prepare (`DurableLedger.submit`), or queue while the pipeline is full →
//   durable → committed → the reply (its header stored in the sessions table, its body in the
//   client-replies zone) → the client's connection.
//
// ## Time
//
//   The host calls `tick()` every `tickNs` (10 ms); the replica reads time only from its
//   `TimeSource`. A tick prepares a `pulse` when the state machine says expiries may be due
//   (pending transfers time out on their own, state-machine spec §7) and retries queued
//   requests.
//
// ## What is not acknowledged
//
//   Nothing is answered before its prepare is durable: the reply comes from the commit, which
//   follows the WAL write. Requests the replica cannot take now (pipeline and queue full, not
//   open yet, a duplicate in flight) are dropped and counted; the official client retries.

public final class Replica<S: Storage, Bus: ClientBus, Time: TimeSource> {
    public enum Status: Equatable, Sendable {
        /// Serving clients (VSR "normal" status).
        case normal
        /// The ledger faulted (storage it cannot read back): clients get no answers; the host
        /// stops the process with the reason.
        case failed
    }

    public static var tickNs: UInt64 { Constants.tickNs }

    public let ledger: DurableLedger<S>
    public let bus: Bus
    public let time: Time
    /// This replica's index in the cluster (the client knows it by this index; < 6).
    public let replicaIndex: UInt8
    /// Requests waiting for room in the pipeline.
    let requestQueue: RequestQueue

    public internal(set) var status = Status.normal
    public internal(set) var counters = ReplicaCounters()
    /// The body size limit the register reply announces (wire spec §7.5).
    public let batchSizeLimit: UInt32

    /// Client requests prepared and not yet committed (client id and request checksum): the
    /// pipeline, at most `pipelinePrepareQueueMax` of them.
    var prepared: [(client: UInt128, checksum: UInt128)] = []
    var pulsePrepared = false
    /// One stored reply read from the client-replies zone at a time.
    var replyReadClient: UInt128 = 0
    var committedCallback: DurableLedger<S>.ReplyCallback = { _ in }

    /// A replica over an opened ledger (`DurableLedger.open`: superblock, checkpoint, WAL
    /// replay), serving clients at once.
    public init(
        ledger: DurableLedger<S>, bus: Bus, time: Time, replicaIndex: UInt8 = 0, requestQueueMax: Int = Constants.pipelineRequestQueueMax
    ) {
        precondition(ledger.status == .ready, "a replica serves an opened ledger")
        precondition(replicaIndex < UInt8(Constants.replicasMax), "a client indexes replicas below replicas_max")
        self.ledger = ledger
        self.bus = bus
        self.time = time
        self.replicaIndex = replicaIndex
        requestQueue = RequestQueue(capacity: requestQueueMax)
        batchSizeLimit = UInt32(Constants.messageBodySizeMax)
        prepared.reserveCapacity(ledger.configuration.pipelinePrepareQueueMax)
        committedCallback = { [unowned self] result in self.committed(result) }
    }

    public var cluster: UInt128 { ledger.superblock.working.cluster }
    /// The view this replica is in (a solo replica never changes it).
    public var view: UInt32 { ledger.superblock.working.vsrState.view }

    /// Requests waiting for room in the pipeline.
    public var queuedRequestCount: Int { requestQueue.count }

    /// The ledger's fault, once it stopped (status `failed`).
    public var fault: DurableLedgerFault? { ledger.fault }

    // MARK: Time

    /// Called by the host every `tickNs`.
    public func tick() {
        guard status == .normal else { return }
        guard ledger.fault == nil else {
            status = .failed
            return
        }
        preparePulseIfDue()
        drainRequestQueue()
    }

    /// Wall-clock nanoseconds for the next prepare's timestamp (before 1970 reads as 0; the
    /// state machine keeps timestamps increasing either way).
    var realtime: UInt64 { UInt64(max(0, time.realtimeNs())) }

    /// Expiries are due: prepare a `pulse` (one at a time; internal, client 0). Called before
    /// queued requests take a free pipeline place, so a busy replica still expires on time.
    func preparePulseIfDue() {
        guard !pulsePrepared else { return }
        let machine = ledger.stateMachine
        let next = max(max(machine.prepareTimestamp, machine.commitTimestamp) + 1, realtime)
        guard machine.pulseNeeded(timestamp: next) else { return }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        switch ledger.submit(
            operation: .pulse, body: empty, realtime: realtime, client: 0, request: 0, callback: committedCallback)
        {
        case .success:
            pulsePrepared = true
            counters.pulses += 1
        case .failure(.pipelineFull), .failure(.notReady):
            break
        case .failure(let error):
            preconditionFailure("a pulse is always a valid request: \(error)")
        }
    }

    // MARK: Messages

    /// A message from `connection` that passed the bus's frame checks (checksums, size,
    /// cluster; wire spec §2.3 steps 1–5). `message` is valid only during the call.
    public func receive(_ message: UnsafeRawBufferPointer, from connection: Bus.Connection) {
        counters.messagesReceived += 1
        // The bus delivers whole, framed messages; any other host (the simulator's network)
        // may not: a message whose size field disagrees with its bytes is dropped, not sliced.
        guard message.count >= Constants.messageHeaderSize,
            Int(Header(from: message).frame.size) == message.count
        else {
            counters.droppedInvalidHeader += 1
            return
        }
        let header = Header(from: message)
        switch header.command {
        case .request: receiveRequest(message, from: connection)
        case .pingClient: receivePingClient(header, from: connection)
        default:
            // Replica-to-replica commands have no peer in a one-member cluster; clients'
            // pong_client and eviction are ignored by replicas (wire spec §2.3 step 7).
            counters.droppedCommand += 1
        }
    }

    /// ping_client (wire spec §5.7): the pong tells the client our view (and so the primary).
    func receivePingClient(_ untyped: Header, from connection: Bus.Connection) {
        let ping = untyped.asPingClient
        if ping.invalidity() != nil {
            counters.droppedInvalidHeader += 1
            return
        }
        guard status == .normal else {
            counters.droppedNotNormal += 1
            return
        }
        bus.associate(connection, client: ping.client)
        if ping.session != 0, ledger.clientSessions.session(client: ping.client) == nil,
            ledger.commitMin >= ping.session
        {
            // Its session was evicted (or never committed here): it would wait forever.
            return evict(client: ping.client, reason: .noSession)
        }
        if let reason = releaseEviction(ping.frame.release) { return evict(client: ping.client, reason: reason) }
        var pong = PongClientHeader(
            cluster: cluster, view: view, release: Constants.release, replica: replicaIndex,
            pingTimestampMonotonic: ping.pingTimestampMonotonic)
        counters.pongs += 1
        withUnsafeBytes(of: &pong) { _ = bus.send($0, toClient: ping.client) }
    }

    /// Release negotiation (wire spec §8.3): this build serves the 0.17 operation set.
    func releaseEviction(_ release: UInt32) -> EvictionReason? {
        if release < Constants.releaseClientMin { return .clientReleaseTooLow }
        if release > Constants.release { return .clientReleaseTooHigh }
        return nil
    }

    func evict(client: UInt128, reason: EvictionReason) {
        counters.evictions[Int(reason.rawValue)] += 1
        var eviction = EvictionHeader(
            cluster: cluster, view: view, release: Constants.release, replica: replicaIndex, client: client,
            reason: reason)
        withUnsafeBytes(of: &eviction) { _ = bus.send($0, toClient: client) }
    }
}

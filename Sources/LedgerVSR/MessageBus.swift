#if canImport(Glibc)
import Glibc
#endif
import LedgerIO
import LedgerKit

// The server side of the message bus (wire spec §2, §5.9; storage spec §9 "TCP bus"): clients
// connect to us; we frame their byte streams into checksummed messages of our cluster, hand each
// to `onMessage`, and send replies back through bounded per-connection queues, routed by
// connection or by client id. Replica↔replica connections (we dial replicas above us, learn the
// peer type from the first messages) come later: the slot, the peer enum and the send path are
// shaped for them, nothing else is built yet.
//
// Sketch.
// - Network: a client has one request in flight, so a connection carries at most one 1 MiB
//   request and its reply at a time, plus pings; the queue of `sendQueueMax` (4) covers a reply,
//   a pong and an eviction racing each other. Loopback moves ~2 GB/s: a 1 MiB message is ~0.5 ms
//   of kernel copying, far above anything done here.
// - CPU: per receive, one header checksum per framing attempt and one body checksum per message
//   (~0.1 ms per MiB); bytes move at most once inside the receive buffer (compaction). Per send,
//   one copy into the queue (the caller's buffer is free as soon as `send` returns).
// - Memory, per connection: a 1 MiB receive buffer + `sendQueueMax` × 1 MiB send buffers
//   (5 MiB with the defaults; 33 connections: 165 MiB). It is one anonymous mapping made at
//   init, so it is address space first: pages become resident only when a message of that size
//   passed through the slot (a connection that only ever carries 4 KiB requests and small
//   replies touches ~8 KiB of receive buffer and a few KiB per send buffer). Worst case resident
//   is the full 165 MiB, bounded and known at start-up. Nothing is allocated per message, per
//   receive or per connection: completions, closures and buffers all exist from init.
//
// Lifecycle of a connection: see `MessageBusConnection`. Closing never blocks: in-flight
// operations are cancelled, the socket is shut down (so the peer sees the end at once, and a
// receive that cannot be cancelled completes), and the slot returns to the pool only after the
// socket's close completed.
//
// Not thread-safe: used from the thread that runs the ring, like the ring itself. The bus must
// stay alive until `isShutDown` (or until its ring is gone): callbacks hold it weakly, and
// buffers of a bus released with operations in flight are leaked rather than freed under the
// kernel.

/// Everything the bus counts, for logs and tests.
public struct MessageBusCounters: Equatable, Sendable, CustomStringConvertible {
    /// Connections accepted into a slot.
    public var accepted: UInt64 = 0
    /// Connections accepted and closed at once: every slot was taken (wire spec §5.9).
    public var refusedOverLimit: UInt64 = 0
    /// Connections accepted while shutting down, closed at once.
    public var refusedShuttingDown: UInt64 = 0
    /// Accepts that failed (the accept is re-armed).
    public var acceptErrors: UInt64 = 0

    /// Connections closed because the peer closed its side (receive of 0 bytes).
    public var closedByPeer: UInt64 = 0
    /// Connections closed by framing (wire spec §2.3 steps 1–5).
    public var closedHeaderChecksum: UInt64 = 0
    public var closedCommand: UInt64 = 0
    public var closedSize: UInt64 = 0
    public var closedBodyChecksum: UInt64 = 0
    public var closedCluster: UInt64 = 0
    /// Connections closed because a second, different client id appeared on them (§2.4).
    public var closedMisdirected: UInt64 = 0
    /// Connections closed because a newer connection of the same client replaced them (§2.4).
    public var closedReplaced: UInt64 = 0
    /// Connections closed by `close` or `shutdown`.
    public var closedLocally: UInt64 = 0
    /// Closed by the idle rule (`MessageBus.tick`): no client identified itself, or a partial
    /// message made no progress, for `idleTimeoutTicks`.
    public var closedIdle: UInt64 = 0
    /// Receives and sends that failed (connection reset, timeout, …): the connection is closed.
    public var recvErrors: UInt64 = 0
    public var sendErrors: UInt64 = 0
    /// Socket closes that reported an error (the slot is freed anyway).
    public var closeErrors: UInt64 = 0

    /// Messages delivered to `onMessage`, and their bytes; bytes received off the sockets.
    public var messagesReceived: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    /// Messages fully handed to the kernel.
    public var messagesSent: UInt64 = 0
    public var bytesSent: UInt64 = 0
    /// Sends refused (the protocol tolerates loss; clients retry): the connection was gone, its
    /// queue was full, or no connection is associated with the client.
    public var sendDroppedNoConnection: UInt64 = 0
    public var sendDroppedQueueFull: UInt64 = 0
    public var sendDroppedNoClient: UInt64 = 0
    /// Messages still queued when their connection closed.
    public var sendDiscardedOnClose: UInt64 = 0

    public init() {}

    /// Every refused send.
    public var sendDropped: UInt64 {
        sendDroppedNoConnection + sendDroppedQueueFull + sendDroppedNoClient
    }

    /// Every connection closed by framing.
    public var closedByFraming: UInt64 {
        closedHeaderChecksum + closedCommand + closedSize + closedBodyChecksum + closedCluster
    }

    /// The counters that are not zero (a log line stays short on a healthy server).
    public var description: String {
        let all: [(String, UInt64)] = [
            ("accepted", accepted), ("refused_over_limit", refusedOverLimit),
            ("refused_shutting_down", refusedShuttingDown), ("accept_errors", acceptErrors),
            ("closed_by_peer", closedByPeer), ("closed_header_checksum", closedHeaderChecksum),
            ("closed_command", closedCommand), ("closed_size", closedSize),
            ("closed_body_checksum", closedBodyChecksum), ("closed_cluster", closedCluster),
            ("closed_misdirected", closedMisdirected), ("closed_replaced", closedReplaced),
            ("closed_locally", closedLocally), ("closed_idle", closedIdle), ("recv_errors", recvErrors), ("send_errors", sendErrors),
            ("close_errors", closeErrors), ("messages_received", messagesReceived),
            ("bytes_received", bytesReceived), ("messages_sent", messagesSent), ("bytes_sent", bytesSent),
            ("send_dropped_no_connection", sendDroppedNoConnection),
            ("send_dropped_queue_full", sendDroppedQueueFull), ("send_dropped_no_client", sendDroppedNoClient),
            ("send_discarded_on_close", sendDiscardedOnClose),
        ]
        let shown = all.filter { $0.1 != 0 }.map { "\($0.0)=\($0.1)" }
        return shown.isEmpty ? "idle" : shown.joined(separator: " ")
    }
}

public final class MessageBus {
    public let cluster: UInt128
    public let connectionsMax: Int
    public let sendQueueMax: Int

    /// Called with each message that passed framing (wire spec §2.3 steps 1–5), in the order of
    /// its connection's stream. The bytes are valid only during the call and are not aligned:
    /// the receiver copies what it keeps (`Header(from:)` reads unaligned). The callback may
    /// call `send`, `associate`, `close` and `shutdown`; after closing the connection it is
    /// called for no further message of it.
    public var onMessage: (ConnectionId, UnsafeRawBufferPointer) -> Void = { _, _ in }

    public private(set) var counters = MessageBusCounters()
    /// A connection on which no client has identified itself, or whose partial message made no
    /// progress, is closed after this many ticks (45 s at 10 ms: storage spec §9), so that
    /// silent or trickling peers cannot hold every slot.
    public var idleTimeoutTicks = Constants.connectionIdleTimeoutTicks
    /// The accept is re-armed from `tick` after an error (EMFILE, ENFILE…), not at once: an
    /// error that persists would otherwise spin the loop.
    private var acceptRearmPending = false
    /// The listening port, once `listen` succeeded.
    public private(set) var localPort: UInt16?
    public private(set) var isShuttingDown = false

    private let io: IOUring
    private let connections: [MessageBusConnection]
    /// The mapping that holds every connection's buffers.
    private let memory: UnsafeMutableRawBufferPointer

    private var listenFd: Int32 = -1
    private let acceptCompletion = IOCompletion()
    private let acceptCancelCompletion = IOCompletion()

    /// - Parameters:
    ///   - connectionsMax: client connections served at once; more are accepted and closed.
    ///     The default is a real replica's: 8 + 24 pipelined requests + 1 spare (wire spec §5.9).
    ///   - sendQueueMax: messages queued per connection before `send` refuses (storage spec §9).
    public init(
        io: IOUring, cluster: UInt128, connectionsMax: Int = Constants.clientConnectionsMax,
        sendQueueMax: Int = Constants.connectionSendQueueMax
    ) {
        precondition(connectionsMax >= 1, "a bus serves at least one connection")
        precondition(connectionsMax <= Int(UInt32.max), "a slot index fits a ConnectionId")
        precondition(sendQueueMax >= 1, "a connection can queue at least one message")
        self.io = io
        self.cluster = cluster
        self.connectionsMax = connectionsMax
        self.sendQueueMax = sendQueueMax

        let perConnectionBytes = (1 + sendQueueMax) * Constants.messageSizeMax
        let totalBytes = connectionsMax * perConnectionBytes
        // Anonymous, private, not reserved against swap: pages cost RSS only once touched.
        let mapped = mmap(
            nil, totalBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        precondition(
            mapped != MAP_FAILED,
            "mmap of \(totalBytes) bytes of message bus buffers failed: out of address space at start-up")
        memory = UnsafeMutableRawBufferPointer(start: mapped, count: totalBytes)

        var connections: [MessageBusConnection] = []
        connections.reserveCapacity(connectionsMax)
        for slot in 0..<connectionsMax {
            let start = slot * perConnectionBytes
            let recvEnd = start + Constants.messageSizeMax
            connections.append(MessageBusConnection(
                slot: slot,
                recvBuffer: UnsafeMutableRawBufferPointer(rebasing: memory[start..<recvEnd]),
                sendBuffers: UnsafeMutableRawBufferPointer(
                    rebasing: memory[recvEnd..<(start + perConnectionBytes)]),
                sendQueueMax: sendQueueMax))
        }
        self.connections = connections

        // Callbacks hold the bus weakly: a completion may outlive a bus released too early, and
        // must then do nothing rather than touch freed state.
        acceptCompletion.callback = { [weak self] completion in self?.accepted(completion.result) }
        acceptCancelCompletion.callback = { [weak self] _ in self?.acceptCancelled() }
        for connection in connections {
            let slot = connection.slot
            connection.recvCompletion.callback = { [weak self] completion in
                self?.received(slot: slot, result: completion.result)
            }
            connection.sendCompletion.callback = { [weak self] completion in
                self?.sent(slot: slot, result: completion.result)
            }
            connection.recvCancelCompletion.callback = { [weak self] _ in
                self?.finishClosing(slot: slot)
            }
            connection.sendCancelCompletion.callback = { [weak self] _ in
                self?.finishClosing(slot: slot)
            }
            connection.closeCompletion.callback = { [weak self] completion in
                self?.socketClosed(slot: slot, result: completion.result)
            }
        }
    }

    deinit {
        let inFlight = acceptCompletion.isBusy || acceptCancelCompletion.isBusy
            || connections.contains { $0.hasOperationsInFlight }
        // With operations in flight the kernel may still write into the receive buffers: leak
        // the mapping (as the ring leaks its completions) rather than unmap it under the kernel.
        if !inFlight {
            munmap(memory.baseAddress, memory.count)
        }
        if listenFd >= 0 && !acceptCompletion.isBusy {
            Glibc.close(listenFd)
        }
    }

    /// Whether `shutdown` finished: no listener, every connection closed, nothing in flight.
    public var isShutDown: Bool {
        guard isShuttingDown else { return false }
        guard listenFd < 0 else { return false }
        guard !acceptCompletion.isBusy else { return false }
        guard !acceptCancelCompletion.isBusy else { return false }
        return connections.allSatisfy { $0.state == .free && !$0.hasOperationsInFlight }
    }

    /// Slots in use: open connections and those still closing (a slot takes a new connection
    /// only once its old socket's close completed).
    public var connectionCount: Int {
        connections.reduce(0) { $0 + ($1.state == .free ? 0 : 1) }
    }

    /// Whether `connection` is open (a stale id is not).
    public func isOpen(_ connection: ConnectionId) -> Bool {
        guard let slot = slot(of: connection) else { return false }
        return connections[slot].isCurrent(connection)
    }

    // MARK: Accepting

    /// Listens on `address` (port 0: the kernel picks one, see `localPort`) and keeps one accept
    /// in flight from then on.
    public func listen(address: SocketAddress) throws(IOError) {
        precondition(listenFd < 0, "the bus listens once")
        precondition(!isShuttingDown, "a bus that shut down does not listen again")
        let fd = try io.listen(address: address)
        do {
            localPort = try IOUring.localPort(socket: fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        listenFd = fd
        io.accept(acceptCompletion, socket: fd)
    }

    private func accepted(_ result: Int32) {
        if isShuttingDown {
            if result >= 0 {
                counters.refusedShuttingDown += 1
                Glibc.close(result)
            }
            closeListenerIfIdle()
            return
        }
        if result < 0 {
            // EMFILE, ENOBUFS, a connection reset before we took it…: nothing to undo; the next
            // tick accepts again.
            counters.acceptErrors += 1
            acceptRearmPending = true
            return
        } else if let connection = connections.first(where: { $0.state == .free }) {
            counters.accepted += 1
            connection.open(fd: result)
            receive(connection)
        } else {
            // Every slot is taken: a replica's limit (wire spec §5.9). Closed synchronously: the
            // socket has no operation in flight and the bus keeps no state for it.
            counters.refusedOverLimit += 1
            Glibc.close(result)
        }
        io.accept(acceptCompletion, socket: listenFd)
    }

    private func acceptCancelled() {
        closeListenerIfIdle()
    }

    /// Closes the listening socket once its accept and the accept's cancellation are done.
    private func closeListenerIfIdle() {
        guard isShuttingDown else { return }
        guard listenFd >= 0 else { return }
        guard !acceptCompletion.isBusy else { return }
        guard !acceptCancelCompletion.isBusy else { return }
        Glibc.close(listenFd)
        listenFd = -1
    }

    // MARK: Time

    /// Called by the host every 10 ms: closes idle connections (see `idleTimeoutTicks`) and
    /// re-arms an accept that failed.
    public func tick() {
        if acceptRearmPending, !isShuttingDown, listenFd >= 0, !acceptCompletion.isBusy {
            acceptRearmPending = false
            io.accept(acceptCompletion, socket: listenFd)
        }
        // Bounded by `connectionsMax`.
        for connection in connections where connection.state == .open {
            connection.idleTicks += 1
            guard connection.idleTicks >= idleTimeoutTicks else { continue }
            let isUnidentified = connection.peer == .unknown
            let isStalled = connection.recvEnd > connection.recvStart
            guard isUnidentified || isStalled else { continue }
            counters.closedIdle += 1
            beginClosing(connection)
        }
    }

    // MARK: Receiving

    private func receive(_ connection: MessageBusConnection) {
        precondition(connection.state == .open, "only open connections receive")
        precondition(
            connection.recvEnd < connection.recvBuffer.count,
            "a partial message leaves room in the receive buffer")
        io.recv(
            connection.recvCompletion, socket: connection.fd,
            buffer: UnsafeMutableRawBufferPointer(
                rebasing: connection.recvBuffer[connection.recvEnd...]))
    }

    private func received(slot: Int, result: Int32) {
        let connection = connections[slot]
        guard connection.state == .open else {
            finishClosing(slot: slot)
            return
        }
        if result == 0 {
            counters.closedByPeer += 1
            beginClosing(connection)
            return
        }
        if result < 0 {
            counters.recvErrors += 1
            beginClosing(connection)
            return
        }
        counters.bytesReceived += UInt64(result)
        connection.idleTicks = 0
        connection.recvEnd += Int(result)
        precondition(connection.recvEnd <= connection.recvBuffer.count, "recv stays in its buffer")
        deliver(connection)
        guard connection.state == .open else { return }
        connection.compactReceived()
        receive(connection)
    }

    /// Frames and delivers every whole message buffered on `connection`; closes it on a framing
    /// error. Stops early if `onMessage` closed the connection or shut the bus down.
    private func deliver(_ connection: MessageBusConnection) {
        let id = connection.id
        // Bounded: each delivered message consumes at least a header's worth of the buffer.
        let messagesMax = connection.recvBuffer.count / Constants.messageHeaderSize
        for _ in 0...messagesMax {
            let buffered = UnsafeRawBufferPointer(
                rebasing: connection.recvBuffer[connection.recvStart..<connection.recvEnd])
            switch MessageFramer.frame(buffered, cluster: cluster) {
            case .needBytes:
                return
            case .close(let reason):
                countClose(reason)
                beginClosing(connection)
                return
            case .message(let size):
                precondition(size >= Constants.messageHeaderSize, "framed messages hold a header")
                connection.recvStart += size
                counters.messagesReceived += 1
                onMessage(id, UnsafeRawBufferPointer(rebasing: buffered[0..<size]))
                guard connection.isCurrent(id) else { return }
            }
        }
        preconditionFailure("framing consumes the buffer within messagesMax steps")
    }

    private func countClose(_ reason: MessageCloseReason) {
        switch reason {
        case .headerChecksum: counters.closedHeaderChecksum += 1
        case .command: counters.closedCommand += 1
        case .size: counters.closedSize += 1
        case .bodyChecksum: counters.closedBodyChecksum += 1
        case .cluster: counters.closedCluster += 1
        }
    }

    // MARK: Sending

    /// Queues a copy of `message` (a whole message, header included) on `connection`. Returns
    /// false, and counts it, when the connection is gone or its queue is full: the protocol
    /// tolerates loss and clients retry.
    @discardableResult
    public func send(_ message: UnsafeRawBufferPointer, to connection: ConnectionId) -> Bool {
        precondition(message.count >= Constants.messageHeaderSize, "a message holds its header")
        precondition(message.count <= Constants.messageSizeMax, "a message fits messageSizeMax")
        guard let slot = slot(of: connection), connections[slot].isCurrent(connection) else {
            counters.sendDroppedNoConnection += 1
            return false
        }
        let target = connections[slot]
        guard target.sendCount < target.sendQueueMax else {
            counters.sendDroppedQueueFull += 1
            return false
        }
        let buffer = target.sendBuffer(at: target.sendCount)
        buffer.baseAddress!.copyMemory(from: message.baseAddress!, byteCount: message.count)
        target.setSendSize(message.count, at: target.sendCount)
        target.sendCount += 1
        if !target.sendCompletion.isBusy {
            sendHead(target)
        }
        return true
    }

    /// Sends the rest of the message at the head of the queue.
    private func sendHead(_ connection: MessageBusConnection) {
        precondition(connection.state == .open, "only open connections send")
        precondition(connection.sendCount > 0, "a queued message to send")
        let size = connection.sendSize(at: 0)
        precondition(connection.sendSentBytes < size, "the head message has bytes left to send")
        let buffer = connection.sendBuffer(at: 0)
        io.send(
            connection.sendCompletion, socket: connection.fd,
            buffer: UnsafeRawBufferPointer(rebasing: buffer[connection.sendSentBytes..<size]))
    }

    private func sent(slot: Int, result: Int32) {
        let connection = connections[slot]
        guard connection.state == .open else {
            finishClosing(slot: slot)
            return
        }
        // 0 bytes for a non-empty send never happens on a healthy socket: treat it as an error
        // rather than retry forever.
        guard result > 0 else {
            counters.sendErrors += 1
            beginClosing(connection)
            return
        }
        counters.bytesSent += UInt64(result)
        connection.sendSentBytes += Int(result)
        let size = connection.sendSize(at: 0)
        precondition(connection.sendSentBytes <= size, "the kernel takes at most what was asked")
        if connection.sendSentBytes == size {
            counters.messagesSent += 1
            connection.sendSentBytes = 0
            connection.sendHead = (connection.sendHead + 1) % connection.sendQueueMax
            connection.sendCount -= 1
        }
        if connection.sendCount > 0 {
            sendHead(connection)
        }
    }

    // MARK: Client routing (wire spec §2.4)

    /// Records that `connection` carries `client`'s messages (from a request or a ping_client on
    /// it). An older connection of the same client is closed (the newer one replaces it); a
    /// connection that already carries another client is misdirected and closed. A stale id is
    /// ignored.
    public func associate(_ connection: ConnectionId, client: UInt128) {
        precondition(client != 0, "client ids are never 0")
        guard let slot = slot(of: connection), connections[slot].isCurrent(connection) else {
            return
        }
        let target = connections[slot]
        switch target.peer {
        case .client(let known) where known == client:
            return
        case .client:
            counters.closedMisdirected += 1
            beginClosing(target)
            return
        case .unknown:
            break
        }
        if let older = connections.first(where: { $0.state == .open && $0.peer == .client(client) }) {
            counters.closedReplaced += 1
            beginClosing(older)
        }
        target.peer = .client(client)
    }

    /// Queues `message` on the connection associated with `client`; false (counted) when there
    /// is none or its queue is full.
    @discardableResult
    public func send(_ message: UnsafeRawBufferPointer, toClient client: UInt128) -> Bool {
        precondition(client != 0, "client ids are never 0")
        guard let target = connections.first(where: { $0.state == .open && $0.peer == .client(client) })
        else {
            counters.sendDroppedNoClient += 1
            return false
        }
        return send(message, to: target.id)
    }

    /// The open connection associated with `client`, if any.
    public func connection(ofClient client: UInt128) -> ConnectionId? {
        precondition(client != 0, "client ids are never 0")
        return connections.first { $0.state == .open && $0.peer == .client(client) }?.id
    }

    // MARK: Closing

    /// Closes `connection` (no-op for a stale id). Queued messages are discarded.
    public func close(_ connection: ConnectionId) {
        guard let slot = slot(of: connection), connections[slot].isCurrent(connection) else {
            return
        }
        counters.closedLocally += 1
        beginClosing(connections[slot])
    }

    /// Stops accepting and closes every connection. `isShutDown` becomes true once the ring has
    /// returned every operation (keep running the loop until then).
    public func shutdown() {
        if isShuttingDown { return }
        isShuttingDown = true
        if acceptCompletion.isBusy {
            io.cancel(acceptCancelCompletion, target: acceptCompletion)
        }
        closeListenerIfIdle()
        for connection in connections where connection.state == .open {
            counters.closedLocally += 1
            beginClosing(connection)
        }
    }

    /// Starts closing an open connection: it stops being current at once (ids go stale, sends are
    /// refused, no more messages are delivered), then its operations are cancelled.
    private func beginClosing(_ connection: MessageBusConnection) {
        precondition(connection.state == .open, "only an open connection begins closing")
        connection.state = .closing
        connection.peer = .unknown
        counters.sendDiscardedOnClose += UInt64(connection.sendCount)
        connection.sendCount = 0
        connection.sendSentBytes = 0
        // The peer sees the end at once, and a receive or send that is past cancelling completes.
        _ = Glibc.shutdown(connection.fd, Int32(SHUT_RDWR))
        if connection.recvCompletion.isBusy {
            io.cancel(connection.recvCancelCompletion, target: connection.recvCompletion)
        }
        if connection.sendCompletion.isBusy {
            io.cancel(connection.sendCancelCompletion, target: connection.sendCompletion)
        }
        finishClosing(slot: connection.slot)
    }

    /// Closes the socket of a closing connection once nothing else is in flight on it.
    private func finishClosing(slot: Int) {
        let connection = connections[slot]
        guard connection.state == .closing else { return }
        guard !connection.hasOperationsInFlight else { return }
        connection.state = .closingSocket
        io.close(connection.closeCompletion, fd: connection.fd)
    }

    private func socketClosed(slot: Int, result: Int32) {
        let connection = connections[slot]
        precondition(connection.state == .closingSocket, "a socket close completes a closing slot")
        if result < 0 { counters.closeErrors += 1 }
        // Freed even if close failed: on Linux the descriptor is released whatever close returns.
        connection.fd = -1
        connection.state = .free
    }

    /// The slot index of `connection` if it is in range (hostile ids never index out of bounds).
    private func slot(of connection: ConnectionId) -> Int? {
        let slot = Int(connection.slot)
        return slot < connections.count ? slot : nil
    }
}

/// The replica reaches clients through this bus (ClientBus.swift): `associate` and
/// `send(_:toClient:)` above are the protocol's requirements, with `ConnectionId` connections.
extension MessageBus: ClientBus {}

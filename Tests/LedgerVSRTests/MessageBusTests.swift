import Glibc
import LedgerIO
import LedgerKit
import LedgerVSR
import Testing

/// A bus on a real ring listening on loopback, and plain Glibc client sockets. Client calls never
/// block: they use MSG_DONTWAIT and run the ring while the kernel pushes back, so one thread
/// drives both sides. Waits are conditions with a generous deadline (a deadline only ends a
/// failing test; nothing depends on how fast things happen).
final class BusHarness {
    static let deadlineNs: UInt64 = 20_000_000_000
    /// Loop turns a client call may wait through (1 ms each): the same 20 s.
    static let clientWaitTurnsMax = 20_000

    let io: IOUring
    let bus: MessageBus
    let port: UInt16
    let cluster: UInt128
    /// Every delivered message, in delivery order.
    var received: [(id: ConnectionId, bytes: [UInt8])] = []
    /// Echo every delivered message back on its connection.
    var echo = false
    /// Close the connection on the delivery of its first message.
    var closeOnMessage = false
    private var clients: [Int32] = []

    init(cluster: UInt128 = 0xB05, connectionsMax: Int = 33, sendQueueMax: Int = 4) throws {
        io = try IOUring()
        self.cluster = cluster
        bus = MessageBus(io: io, cluster: cluster, connectionsMax: connectionsMax, sendQueueMax: sendQueueMax)
        try bus.listen(address: try SocketAddress(host: "127.0.0.1", port: 0))
        port = bus.localPort ?? 0
        bus.onMessage = { [unowned self] id, bytes in
            self.received.append((id, Array(bytes)))
            if self.echo { self.bus.send(bytes, to: id) }
            if self.closeOnMessage { self.bus.close(id) }
        }
    }

    deinit {
        for fd in clients { Glibc.close(fd) }
    }

    func run(until condition: () -> Bool) -> Bool {
        io.run(until: condition, timeoutNs: Self.deadlineNs)
    }

    /// A connected client socket (the kernel completes the handshake; the bus accepts later).
    func connect() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), Int32(IPPROTO_TCP))
        precondition(fd >= 0, "test socket")
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        precondition(result == 0, "test connect: errno \(errno)")
        clients.append(fd)
        return fd
    }

    /// Writes all of `bytes`; false if the connection failed.
    func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        for _ in 0..<Self.clientWaitTurnsMax {
            if offset == bytes.count { return true }
            let count = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if count > 0 {
                offset += count
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                io.run(forNs: 1_000_000)
            } else {
                return false
            }
        }
        return offset == bytes.count
    }

    /// Reads exactly `count` bytes; nil if the connection ended first.
    func read(_ fd: Int32, count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        for _ in 0..<Self.clientWaitTurnsMax {
            if offset == count { return bytes }
            let result = bytes.withUnsafeMutableBytes {
                Glibc.recv(fd, $0.baseAddress! + offset, count - offset, Int32(MSG_DONTWAIT))
            }
            if result > 0 {
                offset += result
            } else if result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                io.run(forNs: 1_000_000)
            } else {
                return nil
            }
        }
        return offset == count ? bytes : nil
    }

    /// Whether the server ended the connection (end of stream or reset), discarding data.
    func isClosedByServer(_ fd: Int32) -> Bool {
        var scratch = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<Self.clientWaitTurnsMax {
            let result = scratch.withUnsafeMutableBytes {
                Glibc.recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT))
            }
            if result == 0 { return true }
            if result < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return true }
            if result < 0 { io.run(forNs: 1_000_000) }
        }
        return false
    }

    /// Whether nothing is readable and the connection is still up (after running the loop).
    func isOpenAndQuiet(_ fd: Int32) -> Bool {
        io.run(forNs: 5_000_000)
        var byte: UInt8 = 0
        let result = Glibc.recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
        return result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }

    /// Sends `message` from a client and returns the id the bus delivered it with.
    func deliver(_ message: [UInt8], from fd: Int32) -> ConnectionId? {
        let before = received.count
        guard write(fd, message) else { return nil }
        guard run(until: { received.count > before }) else { return nil }
        return received[before].bytes == message ? received[before].id : nil
    }

    func message(bodySize: Int, seed: UInt64) -> [UInt8] {
        BusTestMessages.make(cluster: cluster, bodySize: bodySize, seed: seed)
    }

    /// Shuts the bus down and runs the loop until it is.
    func shutDown() -> Bool {
        bus.shutdown()
        return run(until: { bus.isShutDown })
    }
}

@Suite struct MessageBusTests {
    @Test func messagesArriveInOrderSplitAcrossManySmallWrites() throws {
        let seed: UInt64 = 0x5EED_0001
        let harness = try BusHarness()
        var prng = PRNG(seed: seed)
        let messages = (0..<25).map { harness.message(bodySize: Int(prng.next() % 5000), seed: seed &+ UInt64($0)) }
        let stream = messages.flatMap { $0 }
        let client = harness.connect()
        var offset = 0
        // Every piece is received on its own: the bus sees each partial header and body.
        while offset < stream.count {
            let piece = min(stream.count - offset, 1 + Int(prng.next() % 300))
            #expect(harness.write(client, Array(stream[offset..<(offset + piece)])), "seed \(seed)")
            offset += piece
            let written = UInt64(offset)
            #expect(harness.run(until: { harness.bus.counters.bytesReceived == written }), "seed \(seed)")
        }
        #expect(harness.received.map { $0.bytes } == messages, "seed \(seed)")
        #expect(Set(harness.received.map { $0.id }).count == 1, "one connection")
        #expect(harness.bus.counters.messagesReceived == 25)
        #expect(harness.bus.counters.closedByFraming == 0)
        #expect(harness.shutDown())
    }

    @Test func manyMessagesPerWrite() throws {
        let harness = try BusHarness()
        let messages = (0..<300).map { harness.message(bodySize: Int($0 % 7) * 40, seed: UInt64($0)) }
        let client = harness.connect()
        #expect(harness.write(client, messages.flatMap { $0 }))
        #expect(harness.run(until: { harness.received.count == 300 }))
        #expect(harness.received.map { $0.bytes } == messages)
        #expect(harness.isOpenAndQuiet(client))
        #expect(harness.shutDown())
    }

    @Test func echoIncludingOneMebibyte() throws {
        let harness = try BusHarness()
        harness.echo = true
        let sizes = [0, 1000, Constants.messageBodySizeMax, 44, Constants.messageBodySizeMax - 1]
        let messages = sizes.enumerated().map { harness.message(bodySize: $0.element, seed: UInt64($0.offset)) }
        let client = harness.connect()
        for message in messages {
            #expect(harness.write(client, message))
            #expect(harness.read(client, count: message.count) == message)
        }
        #expect(harness.run(until: { harness.bus.counters.messagesSent == UInt64(messages.count) }))
        #expect(harness.bus.counters.sendDropped == 0)
        #expect(harness.shutDown())
    }

    @Test(arguments: MessageCloseReason.allCases)
    func badBytesCloseOnlyTheirConnection(reason: MessageCloseReason) throws {
        let harness = try BusHarness()
        let bad = harness.message(bodySize: 600, seed: 1)
        let hostile: [UInt8]
        switch reason {
        case .headerChecksum:
            hostile = (0..<400).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        case .command:
            hostile = BusTestMessages.resealed(bad) { $0.frame.command = 12 }
        case .size:
            // Only the header is sent: the bus must not wait for the 1 MiB + 1 it announces.
            hostile = Array(BusTestMessages.resealed(bad) {
                $0.frame.size = UInt32(Constants.messageSizeMax + 1)
            }[0..<256])
        case .bodyChecksum:
            var corrupt = bad
            corrupt[700] ^= 4
            hostile = corrupt
        case .cluster:
            hostile = BusTestMessages.make(cluster: harness.cluster + 1, bodySize: 600, seed: 1)
        }
        let victim = harness.connect()
        let bystander = harness.connect()
        #expect(harness.deliver(harness.message(bodySize: 10, seed: 2), from: victim) != nil)
        #expect(harness.deliver(harness.message(bodySize: 10, seed: 3), from: bystander) != nil)
        #expect(harness.write(victim, hostile))
        #expect(harness.isClosedByServer(victim), "\(reason)")
        #expect(harness.bus.counters.closedByFraming == 1)
        let counted: UInt64
        switch reason {
        case .headerChecksum: counted = harness.bus.counters.closedHeaderChecksum
        case .command: counted = harness.bus.counters.closedCommand
        case .size: counted = harness.bus.counters.closedSize
        case .bodyChecksum: counted = harness.bus.counters.closedBodyChecksum
        case .cluster: counted = harness.bus.counters.closedCluster
        }
        #expect(counted == 1, "\(reason): \(harness.bus.counters)")
        #expect(harness.received.count == 2, "nothing of the hostile bytes delivered")
        // The other connection is untouched.
        let later = harness.message(bodySize: 77, seed: 4)
        #expect(harness.deliver(later, from: bystander) != nil)
        #expect(harness.isOpenAndQuiet(bystander))
        #expect(harness.run(until: { harness.bus.connectionCount == 1 }))
        #expect(harness.shutDown())
    }

    @Test func messagesAfterABadOneInTheSameWriteAreNotDelivered() throws {
        let harness = try BusHarness()
        let good = harness.message(bodySize: 5, seed: 1)
        var bad = harness.message(bodySize: 5, seed: 2)
        bad[3] ^= 1
        let client = harness.connect()
        #expect(harness.write(client, good + bad + good))
        #expect(harness.isClosedByServer(client))
        #expect(harness.received.map { $0.bytes } == [good])
        #expect(harness.bus.counters.closedHeaderChecksum == 1)
        #expect(harness.shutDown())
    }

    @Test func aPeerThatLeavesMidMessageIsClosed() throws {
        let harness = try BusHarness()
        let message = harness.message(bodySize: 2000, seed: 1)
        let client = harness.connect()
        #expect(harness.write(client, Array(message[0..<1000])))
        #expect(harness.run(until: { harness.bus.counters.bytesReceived == 1000 }))
        Glibc.close(client)
        #expect(harness.run(until: { harness.bus.counters.closedByPeer == 1 }))
        #expect(harness.run(until: { harness.bus.connectionCount == 0 }))
        #expect(harness.received.isEmpty)
        #expect(harness.shutDown())
    }

    @Test func silentAndStalledConnectionsAreClosedAfterTheIdleTimeout() throws {
        let harness = try BusHarness()
        harness.bus.idleTimeoutTicks = 3
        let silent = harness.connect()
        let stalled = harness.connect()
        let identified = harness.connect()
        #expect(harness.write(stalled, Array(harness.message(bodySize: 500, seed: 3)[0..<300])))
        guard let identifiedId = harness.deliver(harness.message(bodySize: 0, seed: 4), from: identified) else {
            Issue.record("no delivery")
            return
        }
        harness.bus.associate(identifiedId, client: 0x1D)
        #expect(harness.run(until: { harness.bus.connectionCount == 3 && harness.bus.counters.bytesReceived >= 556 }))
        for _ in 0..<2 { harness.bus.tick() }
        #expect(harness.bus.counters.closedIdle == 0, "not yet idle long enough")
        harness.bus.tick()
        #expect(harness.bus.counters.closedIdle == 2, "the silent and the stalled connection")
        #expect(harness.isClosedByServer(silent))
        #expect(harness.isClosedByServer(stalled))
        // An identified client with nothing buffered stays, however quiet.
        for _ in 0..<10 { harness.bus.tick() }
        #expect(harness.isOpenAndQuiet(identified))
        #expect(harness.bus.connection(ofClient: 0x1D) == identifiedId)
        #expect(harness.shutDown())
    }

    @Test func closingFromOnMessageStopsDelivery() throws {
        let harness = try BusHarness()
        harness.closeOnMessage = true
        let client = harness.connect()
        let messages = (0..<3).map { harness.message(bodySize: 10, seed: UInt64($0)) }
        #expect(harness.write(client, messages.flatMap { $0 }))
        #expect(harness.isClosedByServer(client))
        #expect(harness.received.map { $0.bytes } == [messages[0]])
        #expect(harness.bus.counters.closedLocally == 1)
        #expect(harness.shutDown())
    }

    @Test func connectionsBeyondTheLimitAreRefused() throws {
        let harness = try BusHarness(connectionsMax: 2)
        harness.echo = true
        let first = harness.connect()
        let second = harness.connect()
        #expect(harness.run(until: { harness.bus.counters.accepted == 2 }))
        let third = harness.connect()
        #expect(harness.run(until: { harness.bus.counters.refusedOverLimit == 1 }))
        #expect(harness.isClosedByServer(third))
        for (index, client) in [first, second].enumerated() {
            let message = harness.message(bodySize: 100, seed: UInt64(index))
            #expect(harness.write(client, message))
            #expect(harness.read(client, count: message.count) == message)
        }
        // A slot freed by a leaving client takes the next connection.
        Glibc.close(first)
        #expect(harness.run(until: { harness.bus.connectionCount == 1 }))
        let fourth = harness.connect()
        #expect(harness.run(until: { harness.bus.counters.accepted == 3 }))
        let message = harness.message(bodySize: 3, seed: 9)
        #expect(harness.write(fourth, message))
        #expect(harness.read(fourth, count: message.count) == message)
        #expect(harness.bus.counters.refusedOverLimit == 1)
        #expect(harness.shutDown())
    }

    @Test func sendToAClosedConnectionFails() throws {
        let harness = try BusHarness(connectionsMax: 1)
        let client = harness.connect()
        let reply = harness.message(bodySize: 20, seed: 5)
        guard let id = harness.deliver(harness.message(bodySize: 1, seed: 1), from: client) else {
            Issue.record("no delivery")
            return
        }
        #expect(harness.bus.isOpen(id))
        Glibc.close(client)
        #expect(harness.run(until: { harness.bus.counters.closedByPeer == 1 }))
        #expect(!harness.bus.isOpen(id))
        #expect(reply.withUnsafeBytes { harness.bus.send($0, to: id) } == false)
        #expect(harness.bus.counters.sendDroppedNoConnection == 1)

        // The slot is reused with a new generation: the old id never reaches the new connection.
        #expect(harness.run(until: { harness.bus.connectionCount == 0 }))
        let next = harness.connect()
        guard let nextId = harness.deliver(harness.message(bodySize: 2, seed: 2), from: next) else {
            Issue.record("no delivery on the reused slot")
            return
        }
        #expect(nextId.slot == id.slot)
        #expect(nextId.generation != id.generation)
        #expect(reply.withUnsafeBytes { harness.bus.send($0, to: id) } == false)
        #expect(harness.isOpenAndQuiet(next), "nothing reached the new connection")
        // An id of a slot that does not exist is refused, not trapped on.
        let bogus = ConnectionId(slot: 1000, generation: 1)
        #expect(reply.withUnsafeBytes { harness.bus.send($0, to: bogus) } == false)
        harness.bus.close(bogus)
        #expect(harness.bus.counters.sendDroppedNoConnection == 3)
        #expect(reply.withUnsafeBytes { harness.bus.send($0, to: nextId) })
        #expect(harness.read(next, count: reply.count) == reply)
        #expect(harness.shutDown())
    }

    @Test func aFullSendQueueRefuses() throws {
        let harness = try BusHarness(sendQueueMax: 4)
        let client = harness.connect()
        guard let id = harness.deliver(harness.message(bodySize: 1, seed: 1), from: client) else {
            Issue.record("no delivery")
            return
        }
        // Without a loop turn nothing leaves the queue: four fit, the fifth is refused.
        let big = harness.message(bodySize: Constants.messageBodySizeMax, seed: 2)
        let results = (0..<5).map { _ in big.withUnsafeBytes { harness.bus.send($0, to: id) } }
        #expect(results == [true, true, true, true, false])
        #expect(harness.bus.counters.sendDroppedQueueFull == 1)
        for _ in 0..<4 {
            #expect(harness.read(client, count: big.count) == big)
        }
        // The client may read the last bytes before the bus reaps the send that carried them.
        #expect(harness.run(until: { harness.bus.counters.messagesSent == 4 }))
        #expect(harness.shutDown())
    }

    @Test func repliesAreRoutedByClientAndANewerConnectionReplacesTheOlder() throws {
        let harness = try BusHarness()
        let client: UInt128 = 0xC11E_4700_0000_0000_0000_0000_0000_0042
        let reply = harness.message(bodySize: 48, seed: 9)
        #expect(reply.withUnsafeBytes { harness.bus.send($0, toClient: client) } == false)
        #expect(harness.bus.counters.sendDroppedNoClient == 1)

        let older = harness.connect()
        guard let olderId = harness.deliver(harness.message(bodySize: 0, seed: 1), from: older) else {
            Issue.record("no delivery")
            return
        }
        harness.bus.associate(olderId, client: client)
        harness.bus.associate(olderId, client: client)  // Again: nothing changes.
        #expect(harness.bus.connection(ofClient: client) == olderId)
        #expect(reply.withUnsafeBytes { harness.bus.send($0, toClient: client) })
        #expect(harness.read(older, count: reply.count) == reply)

        let newer = harness.connect()
        guard let newerId = harness.deliver(harness.message(bodySize: 0, seed: 2), from: newer) else {
            Issue.record("no delivery")
            return
        }
        harness.bus.associate(newerId, client: client)
        #expect(harness.bus.counters.closedReplaced == 1)
        #expect(harness.isClosedByServer(older))
        #expect(harness.bus.connection(ofClient: client) == newerId)
        #expect(reply.withUnsafeBytes { harness.bus.send($0, toClient: client) })
        #expect(harness.read(newer, count: reply.count) == reply)

        // A second, different client on the same connection: misdirected, closed.
        harness.bus.associate(newerId, client: client + 1)
        #expect(harness.bus.counters.closedMisdirected == 1)
        #expect(harness.isClosedByServer(newer))
        #expect(harness.bus.connection(ofClient: client) == nil)
        #expect(reply.withUnsafeBytes { harness.bus.send($0, toClient: client) } == false)
        #expect(harness.bus.counters.sendDroppedNoClient == 2)
        // Associating a stale id changes nothing.
        harness.bus.associate(olderId, client: client)
        #expect(harness.bus.connection(ofClient: client) == nil)
        #expect(harness.shutDown())
    }

    @Test func shutdownClosesEverythingAndStopsAccepting() throws {
        let harness = try BusHarness()
        let clients = [harness.connect(), harness.connect()]
        var ids: [ConnectionId] = []
        for (index, client) in clients.enumerated() {
            if let id = harness.deliver(harness.message(bodySize: 3, seed: UInt64(index)), from: client) {
                ids.append(id)
            }
        }
        #expect(ids.count == 2)
        #expect(!harness.bus.isShutDown)
        harness.bus.shutdown()
        #expect(harness.bus.isShuttingDown)
        #expect(harness.run(until: { harness.bus.isShutDown }))
        for client in clients {
            #expect(harness.isClosedByServer(client))
        }
        #expect(harness.bus.counters.closedLocally == 2)
        #expect(harness.bus.connectionCount == 0)
        let message = harness.message(bodySize: 1, seed: 1)
        #expect(message.withUnsafeBytes { harness.bus.send($0, to: ids[0]) } == false)
        harness.bus.shutdown()  // Twice is harmless.
        #expect(harness.bus.isShutDown)

        // Nobody listens any more.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), Int32(IPPROTO_TCP))
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = harness.port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let connectErrno = errno
        #expect(result == -1)
        #expect(connectErrno == ECONNREFUSED)
    }

    /// Several clients write their streams in seeded random pieces, interleaved; each client's
    /// messages arrive whole, in its order, under one id per client.
    @Test(arguments: [UInt64(11), 0xFEED_F00D])
    func interleavedClientsKeepTheirOrder(seed: UInt64) throws {
        let harness = try BusHarness(connectionsMax: 6)
        var prng = PRNG(seed: seed)
        let clients = (0..<6).map { _ in harness.connect() }
        var streams: [[[UInt8]]] = []
        for client in clients.indices {
            streams.append((0..<12).map { index in
                let bodySize = prng.chance(percent: 10) ? Int(prng.next() % 200_000) : Int(prng.next() % 2000)
                return harness.message(bodySize: bodySize, seed: seed &+ UInt64(client * 100 + index))
            })
        }
        let bytes = streams.map { $0.flatMap { $0 } }
        var offsets = [Int](repeating: 0, count: clients.count)
        // Bounded: every round writes at least one byte of some unfinished stream.
        let roundsMax = bytes.reduce(0) { $0 + $1.count }
        for _ in 0..<roundsMax {
            let unfinished = clients.indices.filter { offsets[$0] < bytes[$0].count }
            if unfinished.isEmpty { break }
            let client = unfinished[Int(prng.next() % UInt64(unfinished.count))]
            let piece = min(bytes[client].count - offsets[client], 1 + Int(prng.next() % 50_000))
            let range = offsets[client]..<(offsets[client] + piece)
            #expect(harness.write(clients[client], Array(bytes[client][range])), "seed \(seed)")
            offsets[client] += piece
            if prng.chance(percent: 50) { harness.io.run(forNs: 0) }
        }
        let total = clients.count * 12
        #expect(harness.run(until: { harness.received.count == total }), "seed \(seed)")
        var byConnection: [ConnectionId: [[UInt8]]] = [:]
        for message in harness.received { byConnection[message.id, default: []].append(message.bytes) }
        #expect(byConnection.count == clients.count, "seed \(seed)")
        for delivered in byConnection.values {
            #expect(streams.contains(delivered), "a client's whole stream in order, seed \(seed)")
        }
        #expect(harness.bus.counters.closedByFraming == 0, "seed \(seed)")
        #expect(harness.shutDown())
    }

    @Test func countersDescribeThemselves() {
        var counters = MessageBusCounters()
        counters.closedCluster = 3
        counters.sendDroppedQueueFull = 2
        counters.sendDroppedNoClient = 1
        #expect(counters.description.contains("closed_cluster=3"))
        #expect(counters.sendDropped == 3)
        #expect(counters.closedByFraming == 3)
    }
}

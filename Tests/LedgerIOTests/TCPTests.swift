import Glibc
import LedgerIO
import LedgerKit
import Testing

/// TCP on the ring, over loopback: connect, accept, 1 MiB echoed in pieces with partial sends
/// handled by the caller, close.
@Suite struct TCPTests {
    /// A client that sends `total` bytes in odd-sized pieces and reads the echo back, and a server
    /// connection that echoes whatever it receives; all on one ring.
    final class EchoSession {
        let io: IOUring
        let client: Int32
        let server: Int32
        let total = 1 << 20
        let pieceBytes = 10_007
        let source: UnsafeMutableRawBufferPointer
        let echoed: UnsafeMutableRawBufferPointer
        let serverBuffer: UnsafeMutableRawBufferPointer
        var sent = 0
        var received = 0
        var echoStart = 0
        var echoEnd = 0
        var serverEchoedTotal = 0
        var failure: String?
        let clientSend = IOCompletion()
        let clientRecv = IOCompletion()
        let serverRecv = IOCompletion()
        let serverSend = IOCompletion()

        init(io: IOUring, client: Int32, server: Int32, seed: UInt64) {
            self.io = io
            self.client = client
            self.server = server
            source = .allocate(byteCount: total, alignment: 16)
            echoed = .allocate(byteCount: total, alignment: 16)
            echoed.initializeMemory(as: UInt8.self, repeating: 0)
            serverBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
            var prng = PRNG(seed: seed)
            fillRandom(source, &prng)
            clientSend.callback = { [unowned self] in self.clientSent($0.result) }
            clientRecv.callback = { [unowned self] in self.clientReceived($0.result) }
            serverRecv.callback = { [unowned self] in self.serverReceived($0.result) }
            serverSend.callback = { [unowned self] in self.serverSent($0.result) }
        }

        deinit {
            source.deallocate()
            echoed.deallocate()
            serverBuffer.deallocate()
        }

        func start() {
            sendNextPiece()
            io.recv(clientRecv, socket: client, buffer: echoed)
            io.recv(serverRecv, socket: server, buffer: serverBuffer)
        }

        private func sendNextPiece() {
            let end = min(sent + pieceBytes, total)
            io.send(clientSend, socket: client, buffer: UnsafeRawBufferPointer(rebasing: source[sent..<end]))
        }

        private func clientSent(_ result: Int32) {
            guard result > 0 else { failure = "client send: \(result)"; return }
            sent += Int(result)  // May be fewer than asked: the rest goes with the next send.
            if sent < total { sendNextPiece() }
        }

        private func clientReceived(_ result: Int32) {
            guard result > 0 else { failure = "client recv: \(result)"; return }
            received += Int(result)
            if received < total {
                io.recv(clientRecv, socket: client, buffer: UnsafeMutableRawBufferPointer(rebasing: echoed[received...]))
            }
        }

        private func serverReceived(_ result: Int32) {
            guard result > 0 else { failure = "server recv: \(result)"; return }
            echoStart = 0
            echoEnd = Int(result)
            echo()
        }

        private func echo() {
            io.send(serverSend, socket: server,
                    buffer: UnsafeRawBufferPointer(rebasing: serverBuffer[echoStart..<echoEnd]))
        }

        private func serverSent(_ result: Int32) {
            guard result > 0 else { failure = "server send: \(result)"; return }
            echoStart += Int(result)
            serverEchoedTotal += Int(result)
            if echoStart < echoEnd {
                echo()
            } else if serverEchoedTotal < total {
                io.recv(serverRecv, socket: server, buffer: serverBuffer)
            }
        }
    }

    @Test func echoOneMebibyteOverLoopback() throws {
        let seed: UInt64 = 0x7C9_E5C0
        let io = try IOUring()
        let listener = try io.listen(host: "127.0.0.1", port: 0)
        let port = try IOUring.localPort(socket: listener)
        #expect(port != 0, "the kernel picked a port")
        let client = try io.openTCPSocket()

        var connectResult: Int32?
        var acceptResult: Int32?
        let connect = IOCompletion { connectResult = $0.result }
        let accept = IOCompletion { acceptResult = $0.result }
        io.accept(accept, socket: listener)
        io.connect(connect, socket: client, address: try SocketAddress(host: "127.0.0.1", port: port))
        #expect(io.run(until: { connectResult != nil && acceptResult != nil }, timeoutNs: 5_000_000_000))
        #expect(connectResult == 0)
        let server = acceptResult ?? -1
        #expect(server >= 0, "accept returned \(server)")
        guard server >= 0 else { return }

        // The accepted socket came configured by the loop.
        var noDelay: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(server, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, &length) == 0)
        #expect(noDelay != 0)
        var keepIdle: Int32 = 0
        #expect(getsockopt(server, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &keepIdle, &length) == 0)
        #expect(keepIdle == IOUring.tcpKeepaliveIdleSeconds)

        let session = EchoSession(io: io, client: client, server: server, seed: seed)
        session.start()
        let done = io.run(until: { session.received == session.total || session.failure != nil },
                          timeoutNs: 10_000_000_000)
        #expect(done, "seed \(seed)")
        #expect(session.failure == nil, "seed \(seed)")
        #expect(session.sent == session.total)
        #expect(session.received == session.total)
        #expect(memcmp(session.source.baseAddress!, session.echoed.baseAddress!, session.total) == 0,
                "echoed bytes match, seed \(seed)")

        var closeResults: [Int32] = []
        let closes = (0..<3).map { _ in IOCompletion { closeResults.append($0.result) } }
        io.close(closes[0], fd: client)
        io.close(closes[1], fd: server)
        io.close(closes[2], fd: listener)
        #expect(io.run(until: { closeResults.count == 3 }, timeoutNs: 5_000_000_000))
        #expect(closeResults == [0, 0, 0])
    }

    @Test func connectToAClosedPortIsRefused() throws {
        let io = try IOUring()
        let listener = try io.listen(host: "127.0.0.1", port: 0)
        let port = try IOUring.localPort(socket: listener)
        close(listener)
        let client = try io.openTCPSocket()
        defer { close(client) }
        var result: Int32?
        let connect = IOCompletion { result = $0.result }
        io.connect(connect, socket: client, address: try SocketAddress(host: "127.0.0.1", port: port))
        #expect(io.run(until: { result != nil }, timeoutNs: 5_000_000_000))
        #expect(result == -ECONNREFUSED)
    }

    @Test func listenOnABusyPortFails() throws {
        let io = try IOUring()
        let first = try io.listen(host: "127.0.0.1", port: 0)
        defer { close(first) }
        let port = try IOUring.localPort(socket: first)
        #expect(throws: IOError.os(errno: EADDRINUSE, operation: "bind 127.0.0.1:\(port)")) {
            _ = try io.listen(host: "127.0.0.1", port: port)
        }
    }

    @Test func addressesParseOrFail() throws {
        #expect(try SocketAddress(host: "127.0.0.1", port: 3001).description == "127.0.0.1:3001")
        #expect(try SocketAddress(host: "::1", port: 9).description == "[::1]:9")
        #expect(try SocketAddress(host: "10.0.0.7", port: 1).family == AF_INET)
        #expect(throws: IOError.invalidAddress(host: "localhost")) {
            _ = try SocketAddress(host: "localhost", port: 1)
        }
        #expect(throws: IOError.invalidAddress(host: "300.1.1.1")) {
            _ = try SocketAddress(host: "300.1.1.1", port: 1)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CURing

/// TCP on the event loop's ring: sockets are set up synchronously (rare, at start-up or on
/// reconnect), data moves through io_uring (accept, connect, recv, send, close), completion-based
/// like storage, so one loop and one completion model serve disk and network.
///
/// Socket options, on every connection (the storage spec §9):
/// - `TCP_NODELAY`: messages are sent whole and latency matters more than packet count;
/// - keepalive after 5 s idle, probes every 4 s, 3 probes, and a user timeout of the same 17 s,
///   so a dead peer (pulled cable, frozen VM) is noticed even with unacknowledged data in flight;
/// - a 4 MiB receive buffer, set on the listening socket and before connect, because the window
///   scale is negotiated in the handshake (a buffer set after it cannot use its full size).
///   The kernel caps it at `net.core.rmem_max`, which is fine: it is a hint, not a requirement.
///
/// Partial sends are the caller's business: `send` completes with the bytes the kernel took,
/// which may be fewer than asked; the message bus sends the rest with another `send`. A `recv`
/// result of 0 means the peer closed the connection.
extension IOUring {
    public static let tcpKeepaliveIdleSeconds: Int32 = 5
    public static let tcpKeepaliveIntervalSeconds: Int32 = 4
    public static let tcpKeepaliveProbeCount: Int32 = 3
    public static let tcpReceiveBufferBytes: Int32 = 4 * 1024 * 1024

    /// A listening socket on `host:port` (port 0: the kernel picks one; read it back with
    /// `localPort(socket:)`), with SO_REUSEADDR so that a restarted replica can bind at once.
    public func listen(host: String, port: UInt16, backlog: Int32 = 64) throws(IOError) -> Int32 {
        let address = try SocketAddress(host: host, port: port)
        return try listen(address: address, backlog: backlog)
    }

    public func listen(address: SocketAddress, backlog: Int32 = 64) throws(IOError) -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_TCP))
        guard fd >= 0 else { throw .os(errno: errno, operation: "socket") }
        var failure: IOError?
        if let error = setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) {
            failure = .os(errno: error, operation: "setsockopt(SO_REUSEADDR)")
        } else if let error = setOption(fd, SOL_SOCKET, SO_RCVBUF, Self.tcpReceiveBufferBytes) {
            failure = .os(errno: error, operation: "setsockopt(SO_RCVBUF)")
        } else if address.withSockaddr({ bind(fd, $0, $1) }) != 0 {
            failure = .os(errno: errno, operation: "bind \(address)")
        } else if Glibc.listen(fd, backlog) != 0 {
            failure = .os(errno: errno, operation: "listen \(address)")
        }
        if let failure {
            Glibc.close(fd)
            throw failure
        }
        return fd
    }

    /// The local port of a bound socket (the one the kernel picked for port 0).
    public static func localPort(socket fd: Int32) throws(IOError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { throw .os(errno: errno, operation: "getsockname") }
        guard let address = SocketAddress(storage: storage) else {
            throw .os(errno: EAFNOSUPPORT, operation: "getsockname")
        }
        return address.port
    }

    /// A TCP socket ready for `connect`, with the connection options above.
    public func openTCPSocket(family: Int32 = AF_INET) throws(IOError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_TCP))
        guard fd >= 0 else { throw .os(errno: errno, operation: "socket") }
        if let error = setOption(fd, SOL_SOCKET, SO_RCVBUF, Self.tcpReceiveBufferBytes) {
            Glibc.close(fd)
            throw .os(errno: error, operation: "setsockopt(SO_RCVBUF)")
        }
        let error = configureConnection(socket: fd)
        if error != 0 {
            Glibc.close(fd)
            throw .os(errno: error, operation: "setsockopt (TCP_NODELAY, keepalive)")
        }
        return fd
    }

    /// Accepts a connection on `socket`. The result is the new socket (already configured with
    /// the connection options) or -errno.
    public func accept(_ completion: IOCompletion, socket: Int32) {
        let sqe = prepare(completion, .accept)
        completion.scratchAddressLength.pointee = socklen_t(MemoryLayout<sockaddr_storage>.size)
        io_uring_prep_accept(
            sqe, socket, completion.scratchAddress, completion.scratchAddressLength,
            Int32(SOCK_CLOEXEC.rawValue))
        stamp(sqe, completion)
    }

    /// Connects `socket` (from `openTCPSocket`) to `address`. The result is 0 or -errno
    /// (-ECONNREFUSED when nothing listens).
    public func connect(_ completion: IOCompletion, socket: Int32, address: SocketAddress) {
        let sqe = prepare(completion, .connect)
        let length = address.write(to: completion.scratchAddress)
        io_uring_prep_connect(sqe, socket, completion.scratchAddress, length)
        stamp(sqe, completion)
    }

    /// Receives up to `buffer.count` bytes. The result is the byte count, 0 when the peer closed
    /// the connection, or -errno.
    public func recv(_ completion: IOCompletion, socket: Int32, buffer: UnsafeMutableRawBufferPointer) {
        let sqe = prepare(completion, .recv)
        io_uring_prep_recv(sqe, socket, buffer.baseAddress, buffer.count, 0)
        stamp(sqe, completion)
    }

    /// Sends up to `buffer.count` bytes; the result is how many the kernel took (possibly fewer:
    /// the caller sends the rest) or -errno. MSG_NOSIGNAL: a closed peer is -EPIPE, not SIGPIPE.
    public func send(_ completion: IOCompletion, socket: Int32, buffer: UnsafeRawBufferPointer) {
        let sqe = prepare(completion, .send)
        io_uring_prep_send(sqe, socket, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
        stamp(sqe, completion)
    }

    /// Closes `fd` through the ring (ordered after operations already submitted on this ring).
    /// Operations still in flight on the socket are not cancelled by a close: cancel them first.
    public func close(_ completion: IOCompletion, fd: Int32) {
        let sqe = prepare(completion, .close)
        io_uring_prep_close(sqe, fd)
        stamp(sqe, completion)
    }

    /// Applies the connection options; returns 0 or the errno of the option that failed.
    /// (Called for every accepted socket, so it allocates nothing.)
    func configureConnection(socket fd: Int32) -> Int32 {
        let tcp = Int32(IPPROTO_TCP)
        let userTimeoutMs = (Self.tcpKeepaliveIdleSeconds
            + Self.tcpKeepaliveIntervalSeconds * Self.tcpKeepaliveProbeCount) * 1000
        if let error = setOption(fd, tcp, TCP_NODELAY, 1) { return error }
        if let error = setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1) { return error }
        if let error = setOption(fd, tcp, TCP_KEEPIDLE, Self.tcpKeepaliveIdleSeconds) { return error }
        if let error = setOption(fd, tcp, TCP_KEEPINTVL, Self.tcpKeepaliveIntervalSeconds) { return error }
        if let error = setOption(fd, tcp, TCP_KEEPCNT, Self.tcpKeepaliveProbeCount) { return error }
        if let error = setOption(fd, tcp, TCP_USER_TIMEOUT, userTimeoutMs) { return error }
        return 0
    }

    /// setsockopt with an Int32 value; returns nil or errno.
    private func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) -> Int32? {
        var value = value
        let result = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        return result == 0 ? nil : errno
    }
}

/// An IPv4 or IPv6 address and port, parsed once (at start-up, from the command line) and
/// written into a completion's scratch memory for `connect`.
public struct SocketAddress: Sendable, Equatable, CustomStringConvertible {
    /// AF_INET or AF_INET6.
    public let family: Int32
    public let port: UInt16
    /// The address in network byte order: 4 bytes (IPv4) or 16 (IPv6) at the start.
    private let address: InlineBytes16

    /// Parses a numeric address ("127.0.0.1", "::1"); host names are not resolved here.
    public init(host: String, port: UInt16) throws(IOError) {
        var ipv4 = in_addr()
        var ipv6 = in6_addr()
        if inet_pton(AF_INET, host, &ipv4) == 1 {
            family = AF_INET
            address = InlineBytes16(copying: &ipv4)
        } else if inet_pton(AF_INET6, host, &ipv6) == 1 {
            family = AF_INET6
            address = InlineBytes16(copying: &ipv6)
        } else {
            throw .invalidAddress(host: host)
        }
        self.port = port
    }

    /// The address of a sockaddr from the kernel (nil for families other than IPv4 and IPv6).
    init?(storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            var ipv4 = withUnsafeBytes(of: &storage) { $0.loadUnaligned(as: sockaddr_in.self) }
            family = AF_INET
            port = UInt16(bigEndian: ipv4.sin_port)
            address = InlineBytes16(copying: &ipv4.sin_addr)
        case AF_INET6:
            var ipv6 = withUnsafeBytes(of: &storage) { $0.loadUnaligned(as: sockaddr_in6.self) }
            family = AF_INET6
            port = UInt16(bigEndian: ipv6.sin6_port)
            address = InlineBytes16(copying: &ipv6.sin6_addr)
        default:
            return nil
        }
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var bytes = address
        let host = withUnsafeBytes(of: &bytes) { raw -> String in
            guard inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) != nil else {
                return "?"
            }
            let end = text.firstIndex(of: 0) ?? text.count
            return String(decoding: text[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Writes the sockaddr at `target` (at least sockaddr_storage bytes); returns its length.
    func write(to target: UnsafeMutablePointer<sockaddr>) -> socklen_t {
        let raw = UnsafeMutableRawPointer(target)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<sockaddr_storage>.size)
        var bytes = address
        if family == AF_INET {
            var ipv4 = sockaddr_in()
            ipv4.sin_family = sa_family_t(AF_INET)
            ipv4.sin_port = port.bigEndian
            withUnsafeBytes(of: &bytes) { source in
                withUnsafeMutableBytes(of: &ipv4.sin_addr) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<4])) }
            }
            raw.storeBytes(of: ipv4, as: sockaddr_in.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        var ipv6 = sockaddr_in6()
        ipv6.sin6_family = sa_family_t(AF_INET6)
        ipv6.sin6_port = port.bigEndian
        withUnsafeBytes(of: &bytes) { source in
            withUnsafeMutableBytes(of: &ipv6.sin6_addr) { $0.copyMemory(from: source) }
        }
        raw.storeBytes(of: ipv6, as: sockaddr_in6.self)
        return socklen_t(MemoryLayout<sockaddr_in6>.size)
    }

    /// Calls `body` with the sockaddr and its length (for bind).
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var storage = sockaddr_storage()
        return withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                let length = write(to: address)
                return body(address, length)
            }
        }
    }
}

/// 16 bytes held inline (an IPv6 address, or an IPv4 address in the first 4), so that
/// `SocketAddress` stays a plain `Sendable` value.
struct InlineBytes16: Sendable, Equatable {
    var high: UInt64 = 0
    var low: UInt64 = 0

    init<T>(copying value: inout T) {
        precondition(MemoryLayout<T>.size <= 16, "an IP address is at most 16 bytes")
        withUnsafeMutableBytes(of: &self) { target in
            withUnsafeBytes(of: &value) { target.copyMemory(from: $0) }
        }
    }
}

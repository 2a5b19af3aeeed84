/// The client's liveness probe (command 3, wire spec §4.6) and the replica's answer (command 4,
/// §4.7). The ping tells a replica which connection belongs to a client (§2.4) and carries the
/// client's session, so a replica can evict a client whose session it has already dropped
/// (§5.7); the pong tells the client the replica's view, which is how it finds the primary.
///
/// ```
/// ping_client                               pong_client
/// 128 client                    u128        128 pingTimestampMonotonic  u64
/// 144 pingTimestampMonotonic    u64         136 reserved                120 bytes, zero
/// 152 session                   u64
/// 160 reserved                  96 bytes, zero
/// ```
public struct PingClientHeader: HeaderLayout, Equatable {
    public var frame = HeaderFrame()
    public var client: UInt128 = 0
    /// The client's monotonic clock, in nanoseconds; echoed in the pong.
    public var pingTimestampMonotonic: UInt64 = 0
    /// 0 before registration (and from clients older than 0.17.6).
    public var session: UInt64 = 0
    public var reserved0 = Padding32()
    public var reserved1 = Padding32()
    public var reserved2 = Padding32()

    public init() {
        frame.command = Command.pingClient.rawValue
    }

    public var hasZeroReserved: Bool { reserved0.isZero && reserved1.isZero && reserved2.isZero }

    /// Why a replica must drop this ping, or nil. The message bus has checked the checksums and
    /// the cluster; the empty-body checksum is checked again because a ping has no body by
    /// definition, not merely by its size.
    public func invalidity() -> PingClientInvalid? {
        if let invalid = frame.invalidity() { return .frame(invalid) }
        if frame.command != Command.pingClient.rawValue { return .commandNotPingClient }
        if frame.size != UInt32(Constants.messageHeaderSize) { return .sizeNotHeaderOnly }
        if frame.checksumBody != ChecksumConstants.empty { return .checksumBodyNotEmpty }
        if frame.view != 0 { return .viewNonZero }
        if frame.release == 0 { return .releaseZero }
        if frame.replica != 0 { return .replicaNonZero }
        if client == 0 { return .clientZero }
        if !hasZeroReserved { return .reservedNonZero }
        return nil
    }

    public static func == (lhs: PingClientHeader, rhs: PingClientHeader) -> Bool {
        lhs.untyped == rhs.untyped
    }
}

/// Why a `ping_client` is dropped (wire spec §4.3, §4.6).
public enum PingClientInvalid: Equatable, Sendable, CustomStringConvertible {
    case frame(FrameInvalid)
    case commandNotPingClient
    case sizeNotHeaderOnly
    case checksumBodyNotEmpty
    case viewNonZero
    case releaseZero
    case replicaNonZero
    case clientZero
    case reservedNonZero

    public var description: String {
        switch self {
        case .frame(let invalid): return invalid.description
        case .commandNotPingClient: return "command != ping_client"
        case .sizeNotHeaderOnly: return "size != 256"
        case .checksumBodyNotEmpty: return "checksum_body != checksum(empty)"
        case .viewNonZero: return "view != 0"
        case .releaseZero: return "release == 0"
        case .replicaNonZero: return "replica != 0"
        case .clientZero: return "client == 0"
        case .reservedNonZero: return "reserved != 0"
        }
    }
}

public struct PongClientHeader: HeaderLayout, Equatable {
    public var frame = HeaderFrame()
    /// Copied from the ping this answers.
    public var pingTimestampMonotonic: UInt64 = 0
    /// Bytes 136..<256, zero.
    public var reserved0: UInt64 = 0
    public var reserved1 = Padding56()
    public var reserved2 = Padding56()

    public init() {
        frame.command = Command.pongClient.rawValue
    }

    /// A sealed pong. `replica` must be below `replicasMax`: the official client indexes a
    /// six-entry array with it and aborts otherwise (§4.7).
    public init(
        cluster: UInt128, view: UInt32, release: UInt32, replica: UInt8, pingTimestampMonotonic: UInt64
    ) {
        precondition(release != 0, "a pong carries the replica's non-zero release")
        precondition(Int(replica) < Constants.replicasMax, "a pong's replica index is below replicasMax")
        self.init()
        frame.cluster = cluster
        frame.view = view
        frame.release = release
        frame.replica = replica
        self.pingTimestampMonotonic = pingTimestampMonotonic
        sealWithoutBody()
    }

    public var hasZeroReserved: Bool { reserved0 == 0 && reserved1.isZero && reserved2.isZero }

    public static func == (lhs: PongClientHeader, rhs: PongClientHeader) -> Bool {
        lhs.untyped == rhs.untyped
    }
}

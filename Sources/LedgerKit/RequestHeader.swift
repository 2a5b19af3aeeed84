/// A request (command 5, wire spec §4.4): one client operation, sent to the primary (and one
/// backup). The header carries the client's place in its session and its hash chain (§5.3, §5.4).
///
/// ```
/// 128 parent                         u128   context of the previous reply; 0 for register
/// 144 parentPadding                  u128   zero
/// 160 client                         u128   client id, ≠ 0
/// 176 session                        u64    0 for register, then the session number
/// 184 timestamp                      u64    zero from clients (the replica drops others later)
/// 192 request                        u32    0 for register, then 1, 2, 3, …
/// 196 operation                      u8
/// 197 previousRequestLatencyPadding  3 bytes, zero (a u8 then a u16: no implicit gap)
/// 200 previousRequestLatency         u32    microseconds, metrics only
/// 204 reserved                       52 bytes, zero
/// ```
public struct RequestHeader: HeaderLayout, Equatable {
    public var frame = HeaderFrame()
    public var parent: UInt128 = 0
    public var parentPadding: UInt128 = 0
    public var client: UInt128 = 0
    public var session: UInt64 = 0
    public var timestamp: UInt64 = 0
    public var request: UInt32 = 0
    /// A `VSROperation` below 128, a state-machine `Operation` from 128.
    public var operation: UInt8 = 0
    /// Bytes 197 and 198..<200 of the 3-byte padding, split so that every byte is a named field:
    /// an implicit alignment gap would be undefined in a copy, and the checksum covers it.
    public var previousRequestLatencyPadding0: UInt8 = 0
    public var previousRequestLatencyPadding1: UInt16 = 0
    public var previousRequestLatency: UInt32 = 0
    /// Bytes 204..<256, zero: a u32 first so that the 8-byte words after it stay aligned.
    public var reserved0: UInt32 = 0
    public var reserved1 = Padding40()
    public var reserved2: UInt64 = 0

    public init() {
        frame.command = Command.request.rawValue
    }

    /// Whether every must-be-zero byte after the frame is zero.
    public var hasZeroPadding: Bool {
        parentPadding == 0 && previousRequestLatencyPadding0 == 0
            && previousRequestLatencyPadding1 == 0 && reserved0 == 0 && reserved1.isZero
            && reserved2 == 0
    }

    /// Why a replica must drop this request without an answer (§4.3 frame rules, §4.4
    /// per-operation rules), or nil if the header is well formed. The message bus has already
    /// checked both checksums and the cluster. Not checked here, because they are decided
    /// later with more context: `timestamp` (the replica drops a non-zero one), `view` (against
    /// the replica's own view), and whether an operation ≥ 128 is supported (eviction reason 4).
    public func invalidity() -> RequestInvalid? {
        if let invalid = frame.invalidity() { return .frame(invalid) }
        if frame.command != Command.request.rawValue { return .commandNotRequest }
        if frame.release == 0 { return .releaseZero }
        if frame.replica != 0 { return .replicaNonZero }
        if parentPadding != 0 { return .parentPaddingNonZero }
        if previousRequestLatencyPadding0 != 0 { return .previousRequestLatencyPaddingNonZero }
        if previousRequestLatencyPadding1 != 0 { return .previousRequestLatencyPaddingNonZero }
        if reserved0 != 0 { return .reservedNonZero }
        if !reserved1.isZero { return .reservedNonZero }
        if reserved2 != 0 { return .reservedNonZero }
        return operationInvalidity()
    }

    /// The §4.4 rules that depend on the operation.
    private func operationInvalidity() -> RequestInvalid? {
        let headerSize = UInt32(Constants.messageHeaderSize)
        switch operation {
        case VSROperation.reserved.rawValue:
            return .operationReserved
        case VSROperation.root.rawValue:
            return .operationRoot
        case VSROperation.register.rawValue:
            if client == 0 { return .clientZero }
            if parent != 0 { return .registerParentNonZero }
            if session != 0 { return .registerSessionNonZero }
            if request != 0 { return .registerRequestNonZero }
            // 256 is let through so that very old clients can be told their release is too
            // low; a current replica then evicts it with `invalidRequestBodySize`.
            let registerSize = headerSize + UInt32(RegisterRequest.size)
            if frame.size != headerSize && frame.size != registerSize { return .registerSizeInvalid }
            return nil
        case VSROperation.pulse.rawValue, VSROperation.upgrade.rawValue:
            // Internal operations: only the cluster issues them, with client 0.
            if client != 0 { return .internalOperationClientNonZero }
            return nil
        case VSROperation.reconfigure.rawValue:
            // §4.4: a reconfigure carries a 256-byte body, 512 bytes in all.
            if frame.size != headerSize + 256 { return .reconfigureSizeInvalid }
            return sessionInvalidity()
        case VSROperation.noop.rawValue:
            if frame.size != headerSize { return .noopSizeInvalid }
            return sessionInvalidity()
        case 7..<128:
            return .operationReserved
        default:
            return sessionInvalidity()
        }
    }

    /// Every operation but register and the internal ones belongs to a registered session.
    private func sessionInvalidity() -> RequestInvalid? {
        if client == 0 { return .clientZero }
        if session == 0 { return .sessionZero }
        if request == 0 { return .requestZero }
        return nil
    }

    public static func == (lhs: RequestHeader, rhs: RequestHeader) -> Bool {
        lhs.untyped == rhs.untyped
    }
}

/// Why a request header is dropped (wire spec §4.3, §4.4): one case per rule, for logs and tests.
public enum RequestInvalid: Equatable, Sendable, CustomStringConvertible {
    case frame(FrameInvalid)
    case commandNotRequest
    case releaseZero
    case replicaNonZero
    case parentPaddingNonZero
    case previousRequestLatencyPaddingNonZero
    case reservedNonZero
    /// Operation 0, or 7..<128.
    case operationReserved
    /// Operation 1: the root of the log is never requested.
    case operationRoot
    /// Register, or any session operation, without a client id.
    case clientZero
    case registerParentNonZero
    case registerSessionNonZero
    case registerRequestNonZero
    /// A register must be 256 bytes (very old clients) or 512 (with its `RegisterRequest`).
    case registerSizeInvalid
    case reconfigureSizeInvalid
    /// Pulse and upgrade are internal: client must be 0.
    case internalOperationClientNonZero
    case noopSizeInvalid
    case sessionZero
    case requestZero

    public var description: String {
        switch self {
        case .frame(let invalid): return invalid.description
        case .commandNotRequest: return "command != request"
        case .releaseZero: return "release == 0"
        case .replicaNonZero: return "replica != 0"
        case .parentPaddingNonZero: return "parent_padding != 0"
        case .previousRequestLatencyPaddingNonZero: return "previous_request_latency_padding != 0"
        case .reservedNonZero: return "reserved != 0"
        case .operationReserved: return "operation is reserved"
        case .operationRoot: return "operation == root"
        case .clientZero: return "client == 0"
        case .registerParentNonZero: return "register: parent != 0"
        case .registerSessionNonZero: return "register: session != 0"
        case .registerRequestNonZero: return "register: request != 0"
        case .registerSizeInvalid: return "register: size not 256 or 512"
        case .reconfigureSizeInvalid: return "reconfigure: size != 512"
        case .internalOperationClientNonZero: return "pulse/upgrade: client != 0"
        case .noopSizeInvalid: return "noop: size != 256"
        case .sessionZero: return "session == 0"
        case .requestZero: return "request == 0"
        }
    }
}

/// Why a header's common frame is invalid (wire spec §4.3), whatever its command. Lives with the
/// request because the client-message checks are its first users; the size range is checked
/// here too although the message bus frames by it first, so that a header built in memory gets
/// the same verdict as one read off the wire.
public enum FrameInvalid: Equatable, Sendable, CustomStringConvertible {
    case checksumPaddingNonZero
    case checksumBodyPaddingNonZero
    case nonceReservedNonZero
    case sizeOutOfRange
    case epochNonZero
    case protocolNonZero
    case reservedFrameNonZero

    public var description: String {
        switch self {
        case .checksumPaddingNonZero: return "checksum_padding != 0"
        case .checksumBodyPaddingNonZero: return "checksum_body_padding != 0"
        case .nonceReservedNonZero: return "nonce_reserved != 0"
        case .sizeOutOfRange: return "size out of 256..1 MiB"
        case .epochNonZero: return "epoch != 0"
        case .protocolNonZero: return "protocol != 0"
        case .reservedFrameNonZero: return "reserved_frame != 0"
        }
    }
}

extension HeaderFrame {
    /// The §4.3 rules common to every command, or nil. Checksums, cluster and command are the
    /// caller's business.
    public func invalidity() -> FrameInvalid? {
        if checksumPadding != 0 { return .checksumPaddingNonZero }
        if checksumBodyPadding != 0 { return .checksumBodyPaddingNonZero }
        if nonceReserved != 0 { return .nonceReservedNonZero }
        if size < UInt32(Constants.messageHeaderSize) { return .sizeOutOfRange }
        if size > UInt32(Constants.messageSizeMax) { return .sizeOutOfRange }
        if epoch != 0 { return .epochNonZero }
        if `protocol` != 0 { return .protocolNonZero }
        if reservedFrame0 != 0 { return .reservedFrameNonZero }
        if reservedFrame1 != 0 { return .reservedFrameNonZero }
        if reservedFrame2 != 0 { return .reservedFrameNonZero }
        return nil
    }
}

/// Why the primary ends a client's session (wire spec §4.8). The official client maps 2 and 3 to
/// "release too low/high" and every other reason to "evicted"; it then shuts down for good.
public enum EvictionReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case noSession = 1
    case clientReleaseTooLow = 2
    case clientReleaseTooHigh = 3
    case invalidRequestOperation = 4
    case invalidRequestBody = 5
    case invalidRequestBodySize = 6
    case sessionTooLow = 7
    case sessionReleaseMismatch = 8

    public var description: String {
        switch self {
        case .noSession: return "no_session"
        case .clientReleaseTooLow: return "client_release_too_low"
        case .clientReleaseTooHigh: return "client_release_too_high"
        case .invalidRequestOperation: return "invalid_request_operation"
        case .invalidRequestBody: return "invalid_request_body"
        case .invalidRequestBodySize: return "invalid_request_body_size"
        case .sessionTooLow: return "session_too_low"
        case .sessionReleaseMismatch: return "session_release_mismatch"
        }
    }
}

/// An eviction (command 18, wire spec §4.8), replica → client. Header only.
///
/// ```
/// 128 client      u128   the evicted client, ≠ 0
/// 144 reserved    111 bytes, zero
/// 255 reason      u8     1…8 (`EvictionReason`)
/// ```
public struct EvictionHeader: HeaderLayout, Equatable {
    public var frame = HeaderFrame()
    public var client: UInt128 = 0
    /// Bytes 144..<255, zero: whole words first, then the narrower ones down to byte 254, so
    /// that no byte is an implicit alignment gap.
    public var reserved0 = Padding56()
    public var reserved1 = Padding40()
    public var reserved2: UInt64 = 0
    public var reserved3: UInt32 = 0
    public var reserved4: UInt16 = 0
    public var reserved5: UInt8 = 0
    /// The raw reason byte: a header read off the wire may hold any value, `reason` decodes it.
    public var reasonCode: UInt8 = 0

    public init() {
        frame.command = Command.eviction.rawValue
    }

    /// A sealed eviction of `client`, carrying the replica's own release.
    public init(
        cluster: UInt128, view: UInt32, release: UInt32, replica: UInt8, client: UInt128,
        reason: EvictionReason
    ) {
        precondition(release != 0, "an eviction carries the replica's non-zero release")
        precondition(client != 0, "an eviction names a client")
        self.init()
        frame.cluster = cluster
        frame.view = view
        frame.release = release
        frame.replica = replica
        self.client = client
        reasonCode = reason.rawValue
        sealWithoutBody()
    }

    /// The decoded reason; nil for 0 and values above 8, which make the message invalid.
    public var reason: EvictionReason? { EvictionReason(rawValue: reasonCode) }

    public var hasZeroReserved: Bool {
        reserved0.isZero && reserved1.isZero && reserved2 == 0 && reserved3 == 0 && reserved4 == 0
            && reserved5 == 0
    }

    public static func == (lhs: EvictionHeader, rhs: EvictionHeader) -> Bool {
        lhs.untyped == rhs.untyped
    }
}

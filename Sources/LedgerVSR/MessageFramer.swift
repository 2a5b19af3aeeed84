import LedgerKit

// Framing of the byte stream of one connection (wire spec §2.2, §2.3 steps 1–5): given what is
// buffered, is there a whole, checksummed message of our cluster at the front, do we need more
// bytes, or must the connection be closed? Pure: no IO, no state, no allocation, so the message
// bus and the simulated network frame identically and the rules are tested without sockets.
//
// Step 6 (semantic header validation, which drops a message but keeps the connection) belongs to
// the replica: it knows the command-specific rules.
//
// Cost: a header checksum (~15 ns) on every call, including calls that end in "need more bytes"
// while a large body trickles in (a 1 MiB body in 64 KiB receives re-checks the header ~16 times,
// far cheaper than caching the result), and one body checksum per message, only once all of it
// is buffered.

/// Why a connection's bytes cannot be a message stream of this cluster: the connection is closed.
public enum MessageCloseReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The header checksum (bytes 0..<16) does not match header bytes 16..<256.
    case headerChecksum
    /// The command byte is unknown (≥ 25) or never valid (0, 12, 21, 22, 23).
    case command
    /// `size` is below the header size or above `Constants.messageSizeMax`.
    case size
    /// The body does not match `checksum_body`.
    case bodyChecksum
    /// The message belongs to another cluster.
    case cluster

    public var description: String {
        switch self {
        case .headerChecksum: return "header checksum mismatch"
        case .command: return "unknown or invalid command"
        case .size: return "size out of range"
        case .bodyChecksum: return "body checksum mismatch"
        case .cluster: return "wrong cluster"
        }
    }
}

/// What the front of a connection's buffered bytes holds.
public enum MessageFrame: Equatable, Sendable {
    /// Not a whole message yet: at least `total` bytes must be buffered (256 for the header,
    /// then the header's `size`) before framing can decide. `total` ≤ `Constants.messageSizeMax`.
    case needBytes(total: Int)
    /// The stream is corrupt, foreign or hostile: close the connection.
    case close(MessageCloseReason)
    /// A whole message of `size` bytes (header included) passed steps 1–5.
    case message(size: Int)
}

public enum MessageFramer {
    /// Byte offsets of the frame fields read here (wire spec §4.1; checked against `HeaderFrame`
    /// by a test).
    public static let checksumOffset = 0
    public static let checksumBodyOffset = 32
    public static let clusterOffset = 80
    public static let sizeOffset = 96
    public static let commandOffset = 114

    /// Frames the message at the front of `buffered` for a receiver in `cluster`.
    ///
    /// The header checksum is verified before any other header field is read, so a corrupt
    /// `size` can never make the caller wait for (or skip) the wrong number of bytes.
    public static func frame(_ buffered: UnsafeRawBufferPointer, cluster: UInt128) -> MessageFrame {
        let headerSize = Constants.messageHeaderSize
        // Step 1: the header, and its checksum before anything in it is trusted.
        guard buffered.count >= headerSize else { return .needBytes(total: headerSize) }
        let checksumStored = UInt128(
            littleEndian: buffered.loadUnaligned(fromByteOffset: checksumOffset, as: UInt128.self))
        let headerChecked = UnsafeRawBufferPointer(rebasing: buffered[16..<headerSize])
        guard checksum(headerChecked) == checksumStored else { return .close(.headerChecksum) }

        // Step 2: the command must be one a peer may ever send.
        guard isKnownCommand(buffered[commandOffset]) else { return .close(.command) }

        // Step 3: the size bounds what we wait for.
        let size = Int(
            UInt32(littleEndian: buffered.loadUnaligned(fromByteOffset: sizeOffset, as: UInt32.self)))
        guard size >= headerSize else { return .close(.size) }
        guard size <= Constants.messageSizeMax else { return .close(.size) }

        // Step 4: the whole message, and its body checksum.
        guard buffered.count >= size else { return .needBytes(total: size) }
        let checksumBodyStored = UInt128(
            littleEndian: buffered.loadUnaligned(fromByteOffset: checksumBodyOffset, as: UInt128.self))
        let body = UnsafeRawBufferPointer(rebasing: buffered[headerSize..<size])
        guard checksum(body) == checksumBodyStored else { return .close(.bodyChecksum) }

        // Step 5: our cluster only.
        let clusterStored = UInt128(
            littleEndian: buffered.loadUnaligned(fromByteOffset: clusterOffset, as: UInt128.self))
        guard clusterStored == cluster else { return .close(.cluster) }
        return .message(size: size)
    }

    /// Whether `command` names a command that may appear on the wire: a `Command` case (the enum
    /// leaves out the deprecated 12 and 21–23 and everything ≥ 25) other than `reserved` (0).
    public static func isKnownCommand(_ command: UInt8) -> Bool {
        guard let known = Command(rawValue: command) else { return false }
        return known != .reserved
    }
}

/// The 256-byte header that starts every network message, every WAL entry and every grid block
/// (wire spec §4, storage spec §1 "One unit format"). A WAL entry is a prepare message byte for
/// byte and a grid block is a valid `block` message, so repair just sends stored bytes.
///
/// Layout: a 128-byte frame common to all commands (`HeaderFrame`), then 128 bytes whose meaning
/// depends on the command. Each command that this build stores has its own 256-byte struct
/// (`PrepareHeader`, `BlockHeader`, …) starting with the frame; `Header` is the untyped view
/// used to read a header before its command is known. Offsets are checked by tests.

/// Message commands (wire spec §4.2). Numbers 12 and 21–23 are deprecated, ≥ 25 unknown.
public enum Command: UInt8, CaseIterable, Sendable {
    case reserved = 0
    case ping = 1
    case pong = 2
    case pingClient = 3
    case pongClient = 4
    case request = 5
    case prepare = 6
    case prepareOk = 7
    case reply = 8
    case commit = 9
    case exitView = 10
    case joinView = 11
    case getView = 13
    case getHeaders = 14
    case getPrepare = 15
    case getReply = 16
    case headers = 17
    case eviction = 18
    case getBlocks = 19
    case block = 20
    case view = 24
}

/// Operations below 128 belong to consensus, not to the state machine (wire spec §4.4).
public enum VSROperation: UInt8, Sendable {
    /// A WAL slot that holds no prepare yet: format writes it with `op` = the slot index, so a
    /// misdirected read or write shows up as a wrong op.
    case reserved = 0
    /// Op 0: the first entry of every log.
    case root = 1
    case register = 2
    case reconfigure = 3
    case pulse = 4
    case upgrade = 5
    case noop = 6
}

/// Bytes 0..<128 of every header.
public struct HeaderFrame: Hashable, Sendable {
    /// Checksum of header bytes 16..<256.
    public var checksum: UInt128 = 0
    public var checksumPadding: UInt128 = 0
    /// Checksum of the body (the bytes after the header, `size − 256` of them).
    public var checksumBody: UInt128 = 0
    public var checksumBodyPadding: UInt128 = 0
    public var nonceReserved: UInt128 = 0
    public var cluster: UInt128 = 0
    /// Header plus body, in bytes.
    public var size: UInt32 = UInt32(Constants.messageHeaderSize)
    public var epoch: UInt32 = 0
    public var view: UInt32 = 0
    public var release: UInt32 = 0
    public var `protocol`: UInt16 = 0
    public var command: UInt8 = 0
    public var replica: UInt8 = 0
    public var reservedFrame0: UInt32 = 0
    public var reservedFrame1: UInt32 = 0
    public var reservedFrame2: UInt32 = 0

    public init() {}

    /// Whether every must-be-zero field of the frame is zero (wire spec §4.3).
    public var hasZeroPadding: Bool {
        checksumPadding == 0 && checksumBodyPadding == 0 && nonceReserved == 0 && epoch == 0
            && `protocol` == 0 && (reservedFrame0 | reservedFrame1 | reservedFrame2) == 0
    }
}

/// A 256-byte header layout: `HeaderFrame` first, then the command's fields.
public protocol HeaderLayout: Sendable {
    var frame: HeaderFrame { get set }
}

extension HeaderLayout {
    /// The checksum this header should carry: over bytes 16..<256.
    public func computeChecksum() -> UInt128 {
        precondition(MemoryLayout<Self>.size == Constants.messageHeaderSize, "a header is 256 bytes")
        return withUnsafeBytes(of: self) { bytes in
            LedgerKit.checksum(UnsafeRawBufferPointer(rebasing: bytes[16..<Constants.messageHeaderSize]))
        }
    }

    /// Sets `checksumBody` for `body`, then `checksum`. The body must be the `size − 256` bytes
    /// that follow the header.
    public mutating func seal(body: UnsafeRawBufferPointer) {
        precondition(body.count == Int(frame.size) - Constants.messageHeaderSize, "body matches size")
        frame.checksumBody = LedgerKit.checksum(body)
        frame.checksum = computeChecksum()
    }

    /// `seal(body:)` for a header-only message.
    public mutating func sealWithoutBody() {
        precondition(frame.size == UInt32(Constants.messageHeaderSize), "no body")
        frame.checksumBody = ChecksumConstants.empty
        frame.checksum = computeChecksum()
    }

    /// Whether the stored header checksum matches its bytes.
    public var isChecksumValid: Bool { frame.checksum == computeChecksum() }

    /// Whether `body` matches `checksumBody` (and the size field).
    public func isBodyValid(_ body: UnsafeRawBufferPointer) -> Bool {
        body.count == Int(frame.size) - Constants.messageHeaderSize
            && LedgerKit.checksum(body) == frame.checksumBody
    }

    /// The same 256 bytes as the untyped header.
    public var untyped: Header { unsafeBitCast(self, to: Header.self) }
}

/// A header whose command is not yet known: the frame plus 128 raw bytes.
public struct Header: HeaderLayout, Hashable {
    public var frame = HeaderFrame()
    public var commandBytes: (UInt128, UInt128, UInt128, UInt128, UInt128, UInt128, UInt128, UInt128) =
        (0, 0, 0, 0, 0, 0, 0, 0)

    public init() {}

    /// Reads a header from the first 256 bytes of `bytes` (no alignment needed).
    public init(from bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Constants.messageHeaderSize, "a header is 256 bytes")
        self = bytes.loadUnaligned(as: Header.self)
    }

    public var command: Command? { Command(rawValue: frame.command) }

    /// The header as a prepare. The caller checked `command == .prepare`.
    public var asPrepare: PrepareHeader {
        precondition(frame.command == Command.prepare.rawValue, "header is a prepare")
        return unsafeBitCast(self, to: PrepareHeader.self)
    }

    /// The header as a block. The caller checked `command == .block`.
    public var asBlock: BlockHeader {
        precondition(frame.command == Command.block.rawValue, "header is a block")
        return unsafeBitCast(self, to: BlockHeader.self)
    }

    public static func == (lhs: Header, rhs: Header) -> Bool {
        withUnsafeBytes(of: lhs) { l in withUnsafeBytes(of: rhs) { r in l.elementsEqual(r) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: self) { hasher.combine(bytes: $0) }
    }
}

/// A prepare (command 6): one entry of the VSR log, and of the WAL. Our own layout for the
/// command-specific half (replica-to-replica messages are not part of the client protocol).
public struct PrepareHeader: HeaderLayout, Hashable {
    public var frame = HeaderFrame()
    /// Checksum of the previous op's prepare: the hash chain of the log.
    public var parent: UInt128 = 0
    public var parentPadding: UInt128 = 0
    /// The client whose request this is (0 for internal operations).
    public var client: UInt128 = 0
    /// Checksum of the client's request header.
    public var requestChecksum: UInt128 = 0
    /// Id of the checkpoint under which the op was prepared (divergence check).
    public var checkpointId: UInt128 = 0
    public var op: UInt64 = 0
    /// The primary's commit number when it prepared this op.
    public var commit: UInt64 = 0
    /// The op's timestamp, assigned by the primary.
    public var timestamp: UInt64 = 0
    public var request: UInt32 = 0
    /// A `VSROperation` below 128, a state-machine `Operation` from 128.
    public var operation: UInt8 = 0
    public var reserved0: UInt8 = 0
    public var reserved1: UInt16 = 0
    public var reserved2: UInt32 = 0
    /// Fills bytes 244..<248, which would otherwise be implicit alignment padding before
    /// `reserved3`: Swift leaves such bytes undefined (a copy may or may not carry them), and
    /// the checksum covers them, so a header with a hidden gap has no stable checksum.
    public var reserved4: UInt32 = 0
    public var reserved3: UInt64 = 0

    public init() {
        frame.command = Command.prepare.rawValue
    }

    /// The header format writes into WAL slot `slot`: a checksummed prepare of operation
    /// `reserved` whose `op` is the slot index.
    public static func reserved(cluster: UInt128, slot: Int) -> PrepareHeader {
        var header = PrepareHeader()
        header.frame.cluster = cluster
        header.op = UInt64(slot)
        header.operation = VSROperation.reserved.rawValue
        header.sealWithoutBody()
        return header
    }

    /// Op 0, the root of every log: identical on every replica of a cluster.
    public static func root(cluster: UInt128, release: UInt32) -> PrepareHeader {
        var header = PrepareHeader()
        header.frame.cluster = cluster
        header.frame.release = release
        header.op = 0
        header.operation = VSROperation.root.rawValue
        header.sealWithoutBody()
        return header
    }

    public var isReserved: Bool { operation == VSROperation.reserved.rawValue }

    /// Whether every must-be-zero byte is zero.
    public var hasZeroPadding: Bool {
        frame.hasZeroPadding && parentPadding == 0 && reserved0 == 0 && reserved1 == 0
            && reserved2 == 0 && reserved4 == 0 && reserved3 == 0
    }
}

/// Kinds of grid block (storage spec §4).
public enum BlockType: UInt8, CaseIterable, Sendable {
    case reserved = 0
    case freeSet = 1
    case clientSessions = 2
    case manifest = 3
    case index = 4
    case value = 5
}

/// The header of a grid block (command 20). Its checksum is kept by whoever references the
/// block, so a read knows which bytes to expect.
public struct BlockHeader: HeaderLayout, Hashable {
    public var frame = HeaderFrame()
    /// Schema metadata (96 bytes), interpreted by the block type: lets the scrubber and repair
    /// decode any block without its tree.
    public var metadata: (UInt128, UInt128, UInt128, UInt128, UInt128, UInt128) = (0, 0, 0, 0, 0, 0)
    public var address: UInt64 = 0
    public var snapshot: UInt64 = 0
    public var blockType: UInt8 = 0
    public var reserved0: UInt8 = 0
    public var reserved1: UInt16 = 0
    public var reserved2: UInt32 = 0
    public var reserved3: UInt64 = 0

    public init() {
        frame.command = Command.block.rawValue
    }

    /// Whether the reserved fields after `blockType` are zero.
    public var hasZeroReserved: Bool {
        reserved0 == 0 && reserved1 == 0 && reserved2 == 0 && reserved3 == 0
    }

    public static func == (lhs: BlockHeader, rhs: BlockHeader) -> Bool {
        lhs.untyped == rhs.untyped
    }

    public func hash(into hasher: inout Hasher) { untyped.hash(into: &hasher) }
}

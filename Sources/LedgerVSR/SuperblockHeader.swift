import LedgerKit

// The on-disk layout of one superblock copy (storage spec §2): exactly
// `Constants.superblockHeaderSize` (8 KiB, two sectors). Sector 0 holds the identity of the copy
// and the durable VSR state; sector 1 holds the view-change headers.
//
// ```
// sector 0   0  checksum        u128   over bytes 16..<8192, with `copy` read as 0
//           16  checksumPadding u128   zero
//           32  copy            u16    NOT checksummed: which slot the copy was written to
//           34  version         u16
//           36  releaseFormat   u32
//           40  sequence        u64
//           48  cluster         u128
//           64  parent          u128   checksum of the header of sequence − 1
//           80  vsrState        VSRState (2 KiB)
//         2128  reserved        zero, up to 4096
// sector 1 4096 viewHeaders     SuperblockViewHeaders (4 KiB)
// ```
// Every offset is checked by `SuperblockLayoutTests`. Fixed arrays are tuples of explicit-width
// integers (no `InlineArray`, no pointers), so the whole header is one trivial value that can be
// loaded from and stored to an IO buffer as is. Reserved bytes must be zero; a copy whose checksum
// is valid but whose reserved bytes are not is treated as corrupt (spec §13 item 14).

/// 128 reserved bytes.
public typealias SuperblockReserved128 = (
    UInt128, UInt128, UInt128, UInt128, UInt128, UInt128, UInt128, UInt128
)
/// 1 KiB of reserved bytes.
public typealias SuperblockReserved1024 = (
    SuperblockReserved128, SuperblockReserved128, SuperblockReserved128, SuperblockReserved128,
    SuperblockReserved128, SuperblockReserved128, SuperblockReserved128, SuperblockReserved128
)

/// Zero values for the reserved tuples (stored-property defaults).
@usableFromInline
enum SuperblockZeros {
    static let r128: SuperblockReserved128 = (0, 0, 0, 0, 0, 0, 0, 0)
    static let r1024: SuperblockReserved1024 = (r128, r128, r128, r128, r128, r128, r128, r128)
    /// A prepare header of all-zero bytes: an unused view-header slot (not `PrepareHeader()`,
    /// whose command and size are set).
    static let prepare: PrepareHeader = unsafeBitCast((r128, r128), to: PrepareHeader.self)
}

/// Whether every byte of `value` is zero (for reserved areas and unused slots).
func isAllZero<T>(_ value: T) -> Bool {
    withUnsafeBytes(of: value) { bytes in bytes.allSatisfy { $0 == 0 } }
}

/// Whether two trivial values hold the same bytes (tuples cannot synthesize `Equatable`).
func isBytewiseEqual<T>(_ lhs: T, _ rhs: T) -> Bool {
    withUnsafeBytes(of: lhs) { l in withUnsafeBytes(of: rhs) { r in l.elementsEqual(r) } }
}

// MARK: - Trailer reference

/// Where a checkpoint trailer (free set, client sessions) lives in the grid: a chain of blocks
/// walked backwards from the last one. 48 bytes.
public struct TrailerReference: Equatable, Sendable {
    /// Checksum of the whole trailer (the concatenated payloads of its blocks).
    public var checksum: UInt128 = 0
    /// Checksum of the chain's last block, which the reader fetches first.
    public var lastBlockChecksum: UInt128 = 0
    /// Grid address of the chain's last block (0: the trailer is empty).
    public var lastBlockAddress: UInt64 = 0
    /// Size of the trailer in bytes.
    public var size: UInt64 = 0

    public init() {}
}

// MARK: - Checkpoint state

/// What one checkpoint records (spec §2, §6): 1 KiB. Its checksum is the checkpoint id, which
/// covers the whole durable state through the hash chains of the blocks it references.
public struct CheckpointState: Equatable, Sendable {
    /// The header of the checkpoint's op (op 0's root prepare right after format).
    public var header: PrepareHeader
    /// Ids of the two previous checkpoints (0 while there are none).
    public var parentCheckpointId: UInt128 = 0
    public var grandparentCheckpointId: UInt128 = 0
    /// Free-set trailers: blocks acquired, and blocks released at this checkpoint.
    public var freeSetAcquired = TrailerReference()
    public var freeSetReleased = TrailerReference()
    /// Client-sessions trailer.
    public var clientSessions = TrailerReference()
    /// The manifest log: its oldest and newest blocks and how many blocks it spans.
    public var manifestOldestChecksum: UInt128 = 0
    public var manifestNewestChecksum: UInt128 = 0
    public var manifestOldestAddress: UInt64 = 0
    public var manifestNewestAddress: UInt64 = 0
    public var manifestBlockCount: UInt32 = 0
    /// The release this replica runs until the next checkpoint.
    public var release: UInt32 = 0
    /// Logical size of the data file: the minimum plus the highest acquired grid address × block.
    public var storageSize: UInt64 = 0
    public var reserved0: UInt128 = 0
    public var reserved1: (
        SuperblockReserved128, SuperblockReserved128, SuperblockReserved128, SuperblockReserved128
    ) = (SuperblockZeros.r128, SuperblockZeros.r128, SuperblockZeros.r128, SuperblockZeros.r128)

    public init(header: PrepareHeader) {
        self.header = header
    }

    /// The checkpoint id: the checksum of these 1024 bytes.
    public var id: UInt128 { withUnsafeBytes(of: self) { checksum($0) } }

    /// Whether the reserved bytes are zero.
    public var hasZeroPadding: Bool { reserved0 == 0 && isAllZero(reserved1) }

    public static func == (lhs: CheckpointState, rhs: CheckpointState) -> Bool {
        isBytewiseEqual(lhs, rhs)
    }
}

// MARK: - VSR state

/// Member ids of the cluster (`Constants.membersMax` = 12 of them, zero-padded).
public typealias SuperblockMembers = (
    UInt128, UInt128, UInt128, UInt128, UInt128, UInt128,
    UInt128, UInt128, UInt128, UInt128, UInt128, UInt128
)

/// The replica's durable consensus state (spec §2): 2 KiB.
public struct VSRState: Equatable, Sendable {
    public var checkpoint: CheckpointState
    /// This replica's member id (`members[replicaIndex]` at format).
    public var replicaId: UInt128 = 0
    public var members: SuperblockMembers = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// The highest op known committed by the cluster.
    public var commitMax: UInt64 = 0
    /// The range of ops skipped by the last state sync (both 0 without one).
    public var syncOpMin: UInt64 = 0
    public var syncOpMax: UInt64 = 0
    /// The last view in which this replica was in normal status.
    public var logView: UInt32 = 0
    public var view: UInt32 = 0
    public var replicaCount: UInt8 = 0
    public var reserved0: UInt8 = 0
    public var reserved1: UInt16 = 0
    public var reserved2: UInt32 = 0
    public var reserved3: UInt64 = 0
    public var reserved4: (
        SuperblockReserved128, SuperblockReserved128, SuperblockReserved128,
        SuperblockReserved128, SuperblockReserved128, SuperblockReserved128
    ) = (
        SuperblockZeros.r128, SuperblockZeros.r128, SuperblockZeros.r128,
        SuperblockZeros.r128, SuperblockZeros.r128, SuperblockZeros.r128
    )

    public init(checkpoint: CheckpointState) {
        self.checkpoint = checkpoint
    }

    /// Member id at `index` (0 past the last member).
    public func member(_ index: Int) -> UInt128 {
        precondition(index >= 0 && index < Constants.membersMax, "member index in range")
        return withUnsafeBytes(of: members) { $0.loadUnaligned(fromByteOffset: index * 16, as: UInt128.self) }
    }

    /// Sets every member id; `ids.count` must be at most `Constants.membersMax` (the rest is 0).
    public mutating func setMembers(_ ids: [UInt128]) {
        precondition(ids.count <= Constants.membersMax, "at most membersMax members")
        members = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &members) { bytes in
            for (index, id) in ids.enumerated() {
                bytes.storeBytes(of: id, toByteOffset: index * 16, as: UInt128.self)
            }
        }
    }

    public var hasZeroPadding: Bool {
        checkpoint.hasZeroPadding && reserved0 == 0 && reserved1 == 0 && reserved2 == 0
            && reserved3 == 0 && isAllZero(reserved4)
    }

    /// The largest op a well-formed state may name.
    public static let opMax: UInt64 = 1 << 63

    /// The invariants every written state keeps (spec §2 "Invariants"); nil when they hold,
    /// otherwise the name of the broken one. A checksum-valid copy that breaks one is malformed.
    public var brokenInvariant: String? {
        // Ops are counted from 0 one per prepare: 2^63 is out of reach of any real log, and the
        // bound leaves room for the checkpoint geometry's arithmetic (op_prepare_max) on a
        // hostile but checksum-valid copy.
        if commitMax > VSRState.opMax { return "commit_max <= 2^63" }
        if checkpoint.header.op > VSRState.opMax { return "checkpoint op <= 2^63" }
        if syncOpMax > VSRState.opMax { return "sync_op_max <= 2^63" }
        if logView > view { return "log_view <= view" }
        if checkpoint.header.op > commitMax { return "checkpoint op <= commit_max" }
        if syncOpMin > syncOpMax { return "sync_op_min <= sync_op_max" }
        if replicaCount == 0 || Int(replicaCount) > Constants.replicasMax {
            return "replica_count in 1...replicasMax"
        }
        return nil
    }

    /// The first field that goes backwards from `self` to `successor` (the state of the next
    /// sequence), or nil if the step is monotonic. Only a checkpoint moves the checkpoint, and
    /// then only forwards.
    public func regression(to successor: VSRState) -> VSRStateField? {
        if successor.view < view { return .view }
        if successor.logView < logView { return .logView }
        if successor.commitMax < commitMax { return .commitMax }
        if successor.checkpoint.header.op < checkpoint.header.op { return .checkpointOp }
        if successor.checkpoint.header.op == checkpoint.header.op
            && successor.checkpoint != checkpoint
        {
            return .checkpoint
        }
        return nil
    }

    public static func == (lhs: VSRState, rhs: VSRState) -> Bool { isBytewiseEqual(lhs, rhs) }
}

/// A field of `VSRState` that must not go backwards.
public enum VSRStateField: String, Sendable, Equatable {
    case view
    case logView = "log_view"
    case commitMax = "commit_max"
    case checkpointOp = "checkpoint op"
    /// The checkpoint changed without its op moving.
    case checkpoint = "checkpoint (changed at the same op)"
}

// MARK: - View headers

/// The second sector of a copy: up to `Constants.viewHeadersMax` prepare headers (the view
/// change's suffix of the log, spec §7) and their count. 4 KiB. Slots past `count` are zero.
public struct SuperblockViewHeaders: Equatable, Sendable {
    public var headers: (
        PrepareHeader, PrepareHeader, PrepareHeader, PrepareHeader, PrepareHeader, PrepareHeader,
        PrepareHeader, PrepareHeader, PrepareHeader, PrepareHeader, PrepareHeader
    ) = (
        SuperblockZeros.prepare, SuperblockZeros.prepare, SuperblockZeros.prepare,
        SuperblockZeros.prepare, SuperblockZeros.prepare, SuperblockZeros.prepare,
        SuperblockZeros.prepare, SuperblockZeros.prepare, SuperblockZeros.prepare,
        SuperblockZeros.prepare, SuperblockZeros.prepare
    )
    public var count: UInt32 = 0
    public var reserved0: UInt32 = 0
    public var reserved1: UInt64 = 0
    public var reserved2: (UInt128, UInt128, UInt128, UInt128, UInt128, UInt128, UInt128) =
        (0, 0, 0, 0, 0, 0, 0)
    public var reserved3: SuperblockReserved128 = SuperblockZeros.r128
    public var reserved4: SuperblockReserved1024 = SuperblockZeros.r1024

    /// Slots in `headers` (the tuple's arity, which must equal `Constants.viewHeadersMax`).
    public static let capacity = 11

    public init() {}

    public init(_ headers: some Sequence<PrepareHeader>) {
        for header in headers { append(header) }
    }

    public subscript(index: Int) -> PrepareHeader {
        precondition(index >= 0 && index < Int(count), "view header index below count")
        return withUnsafeBytes(of: headers) { bytes in
            bytes.loadUnaligned(fromByteOffset: index * Constants.messageHeaderSize, as: PrepareHeader.self)
        }
    }

    public mutating func append(_ header: PrepareHeader) {
        precondition(Int(count) < Constants.viewHeadersMax, "at most viewHeadersMax view headers")
        let offset = Int(count) * Constants.messageHeaderSize
        withUnsafeMutableBytes(of: &headers) { bytes in
            bytes.storeBytes(of: header, toByteOffset: offset, as: PrepareHeader.self)
        }
        count += 1
    }

    /// The headers in order (allocates: for tools and tests, not for the replica's hot path).
    public var all: [PrepareHeader] { (0..<Int(min(count, UInt32(Self.capacity)))).map { self[$0] } }

    /// Whether the reserved bytes and the unused slots are zero.
    public var hasZeroPadding: Bool {
        guard count <= UInt32(Constants.viewHeadersMax) else { return false }
        let used = Int(count) * Constants.messageHeaderSize
        let unusedAreZero = withUnsafeBytes(of: headers) { bytes in
            bytes[used...].allSatisfy { $0 == 0 }
        }
        return unusedAreZero && reserved0 == 0 && reserved1 == 0 && isAllZero(reserved2)
            && isAllZero(reserved3) && isAllZero(reserved4)
    }

    public static func == (lhs: SuperblockViewHeaders, rhs: SuperblockViewHeaders) -> Bool {
        isBytewiseEqual(lhs, rhs)
    }
}

// MARK: - Superblock header

/// One copy of the superblock: 8 KiB. All copies of one sequence are identical but for `copy`.
public struct SuperblockHeader: Equatable, Sendable {
    /// The layout version this build writes and reads.
    public static let versionCurrent: UInt16 = 1

    public var checksum: UInt128 = 0
    public var checksumPadding: UInt128 = 0
    /// The slot this copy was written to. Not covered by the checksum, so that the four copies
    /// share one checksum; a copy read from another slot reveals a misdirected IO.
    public var copy: UInt16 = 0
    public var version: UInt16 = SuperblockHeader.versionCurrent
    /// The release that formatted the data file.
    public var releaseFormat: UInt32 = 0
    /// 1 at format, +1 per checkpoint or view change.
    public var sequence: UInt64 = 0
    public var cluster: UInt128 = 0
    /// Checksum of the header of `sequence − 1` (0 at format): the hash chain across updates.
    public var parent: UInt128 = 0
    public var vsrState: VSRState
    public var reserved0: (UInt128, UInt128, UInt128) = (0, 0, 0)
    public var reserved1: (
        SuperblockReserved128, SuperblockReserved128, SuperblockReserved128, SuperblockReserved128,
        SuperblockReserved128, SuperblockReserved128, SuperblockReserved128
    ) = (
        SuperblockZeros.r128, SuperblockZeros.r128, SuperblockZeros.r128, SuperblockZeros.r128,
        SuperblockZeros.r128, SuperblockZeros.r128, SuperblockZeros.r128
    )
    public var reserved2: SuperblockReserved1024 = SuperblockZeros.r1024
    public var viewHeaders = SuperblockViewHeaders()

    public init(vsrState: VSRState) {
        self.vsrState = vsrState
    }

    /// Reads a copy from the first `Constants.superblockHeaderSize` bytes (no alignment needed).
    public init(from bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Constants.superblockHeaderSize, "a superblock copy is 8 KiB")
        self = bytes.loadUnaligned(as: SuperblockHeader.self)
    }

    /// Byte offset of `copy` inside the header (the one unchecksummed field).
    public static let copyOffset = 32

    /// The checksum of the copy in `bytes` (its first 8 KiB): bytes 16..<8192 with the two `copy`
    /// bytes read as zero. Works on raw bytes so a read-back can be checked in place.
    public static func computeChecksum(copyBytes bytes: UnsafeRawBufferPointer) -> UInt128 {
        precondition(bytes.count >= Constants.superblockHeaderSize, "a superblock copy is 8 KiB")
        var stream = ChecksumStream()
        stream.update(UnsafeRawBufferPointer(rebasing: bytes[16..<copyOffset]))
        var zeroCopy: UInt16 = 0
        withUnsafeBytes(of: &zeroCopy) { stream.update($0) }
        stream.update(
            UnsafeRawBufferPointer(rebasing: bytes[(copyOffset + 2)..<Constants.superblockHeaderSize]))
        return stream.finalize()
    }

    /// The checksum this header should carry.
    public func computeChecksum() -> UInt128 {
        withUnsafeBytes(of: self) { Self.computeChecksum(copyBytes: $0) }
    }

    /// Sets `checksum` from the other bytes.
    public mutating func seal() { checksum = computeChecksum() }

    public var isChecksumValid: Bool { checksum == computeChecksum() }

    /// Whether every reserved byte (here and in the nested states) is zero.
    public var hasZeroPadding: Bool {
        checksumPadding == 0 && isAllZero(reserved0) && isAllZero(reserved1)
            && isAllZero(reserved2) && vsrState.hasZeroPadding && viewHeaders.hasZeroPadding
    }

    /// The checkpoint id of the state this header records.
    public var checkpointId: UInt128 { vsrState.checkpoint.id }

    public static func == (lhs: SuperblockHeader, rhs: SuperblockHeader) -> Bool {
        isBytewiseEqual(lhs, rhs)
    }
}

extension SuperblockHeader: CustomStringConvertible {
    /// One line for logs, tools and test failures (the full 8 KiB dump helps nobody).
    public var description: String {
        let state = vsrState
        return "superblock(sequence: \(sequence), copy: \(copy), checksum: \(String(checksum, radix: 16)), "
            + "parent: \(String(parent, radix: 16)), cluster: \(String(cluster, radix: 16)), "
            + "view: \(state.view), log_view: \(state.logView), commit_max: \(state.commitMax), "
            + "checkpoint: op \(state.checkpoint.header.op) id \(String(checkpointId, radix: 16)), "
            + "view_headers: \(viewHeaders.count))"
    }
}

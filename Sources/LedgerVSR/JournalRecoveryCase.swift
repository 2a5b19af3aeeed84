import LedgerKit

// The WAL recovery decision table (storage spec §3 "Recovery"): what recovery may conclude about
// one slot from its two copies, the redundant header (header ring) and the prepare (prepare ring).
// Everything here is pure: `Journal` feeds it what it read, and `ledger-inspect wal` feeds it the
// bytes of a data file, so both reach exactly the same verdict.

// MARK: - One copy of a slot

/// Why a WAL entry (a redundant header or a prepare) cannot be trusted. Each reason is a
/// different fault on the disk; recovery treats them all alike, `ledger-inspect wal` shows them.
public enum JournalEntryCorruption: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// The header checksum does not match: torn, bit-flipped, unreadable (zeros) or never written.
    case headerChecksum
    /// A checksummed header that is not a prepare: a misdirected IO from another zone.
    case command
    /// A prepare of another cluster.
    case cluster
    /// The op does not belong to this slot (`op mod slotCount ≠ slot`, or a reserved header
    /// whose op is not the slot): a misdirected read or write (spec §13 item 9).
    case slot
    /// A must-be-zero header field is not zero (spec §13 item 14: corruption, not an assertion).
    case headerPadding
    /// `size` is below the header size, above `Constants.messageSizeMax`, or longer than the
    /// bytes that were read.
    case size
    /// Operation `reserved`, but not byte for byte the header format writes into this slot.
    case reserved
    /// The body does not match `checksumBody`: a torn or corrupt multi-sector prepare.
    case bodyChecksum
    /// Non-zero bytes between the end of the body and the end of its last sector.
    case bodyPadding

    public var description: String {
        switch self {
        case .headerChecksum: "header checksum"
        case .command: "not a prepare"
        case .cluster: "wrong cluster"
        case .slot: "wrong slot"
        case .headerPadding: "header padding"
        case .size: "size"
        case .reserved: "bad reserved header"
        case .bodyChecksum: "body checksum"
        case .bodyPadding: "body padding"
        }
    }
}

/// What one copy of a slot holds, once validated.
public enum JournalEntry: Equatable, Sendable {
    /// Unusable; the reason says which check failed first.
    case corrupt(JournalEntryCorruption)
    /// Exactly `PrepareHeader.reserved(cluster:slot:)`: the slot holds no op (yet).
    case reserved
    /// A prepare of this cluster whose op belongs to this slot (for a prepare-ring entry: with an
    /// intact body and zero padding).
    case prepare(PrepareHeader)

    /// Validates a header of either ring (the first 256 bytes of `bytes`), without its body.
    public static func header(
        _ bytes: UnsafeRawBufferPointer, cluster: UInt128, slot: Int, slotCount: Int
    ) -> JournalEntry {
        precondition(bytes.count >= Constants.messageHeaderSize, "a header is 256 bytes")
        precondition((0..<slotCount).contains(slot), "WAL slot in range")
        // The checksum first: no other field of unchecked bytes means anything.
        let untyped = Header(from: bytes)
        guard untyped.isChecksumValid else { return .corrupt(.headerChecksum) }
        guard untyped.frame.command == Command.prepare.rawValue else { return .corrupt(.command) }
        let header = untyped.asPrepare
        guard header.frame.cluster == cluster else { return .corrupt(.cluster) }
        if header.isReserved {
            guard header.op == UInt64(slot) else { return .corrupt(.slot) }
            guard header == PrepareHeader.reserved(cluster: cluster, slot: slot) else {
                return .corrupt(.reserved)
            }
            return .reserved
        }
        guard header.op % UInt64(slotCount) == UInt64(slot) else { return .corrupt(.slot) }
        guard header.hasZeroPadding else { return .corrupt(.headerPadding) }
        let size = Int(header.frame.size)
        guard size >= Constants.messageHeaderSize, size <= Constants.messageSizeMax else {
            return .corrupt(.size)
        }
        return .prepare(header)
    }

    /// Validates a whole prepare-ring entry: `bytes` start at the slot and must cover the
    /// prepare's size rounded up to whole sectors (else `.corrupt(.size)`). Checks the header,
    /// the body checksum and that the sector padding after the body is zero.
    public static func prepare(
        _ bytes: UnsafeRawBufferPointer, cluster: UInt128, slot: Int, slotCount: Int
    ) -> JournalEntry {
        let entry = header(bytes, cluster: cluster, slot: slot, slotCount: slotCount)
        let size: Int
        switch entry {
        case .corrupt: return entry
        case .reserved: size = Constants.messageHeaderSize
        case .prepare(let header): size = Int(header.frame.size)
        }
        let sizeCeil = sectorCeil(size)
        guard bytes.count >= sizeCeil else { return .corrupt(.size) }
        if case .prepare(let header) = entry {
            let body = UnsafeRawBufferPointer(rebasing: bytes[Constants.messageHeaderSize..<size])
            guard header.isBodyValid(body) else { return .corrupt(.bodyChecksum) }
        }
        guard isZero(UnsafeRawBufferPointer(rebasing: bytes[size..<sizeCeil])) else {
            return .corrupt(.bodyPadding)
        }
        return entry
    }

    /// The header, for a prepare; nil for reserved and corrupt entries.
    public var prepareHeader: PrepareHeader? {
        if case .prepare(let header) = self { return header }
        return nil
    }

    /// The three kinds the decision table distinguishes.
    public var kind: JournalEntryKind {
        switch self {
        case .corrupt: .corrupt
        case .reserved: .reserved
        case .prepare: .prepare
        }
    }
}

extension JournalEntry {
    /// `size` rounded up to whole sectors: the bytes a prepare occupies in its slot.
    @inline(__always)
    static func sectorCeil(_ size: Int) -> Int {
        (size + Constants.sectorSize - 1) / Constants.sectorSize * Constants.sectorSize
    }

    /// Whether every byte is zero (padding checks: less than one sector, so a plain loop).
    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where byte != 0 { return false }
        return true
    }
}

// MARK: - The facts about one slot

public enum JournalEntryKind: UInt8, Sendable {
    case corrupt
    case reserved
    case prepare
}

/// How the redundant header's op compares with the prepare's op.
public enum JournalOpOrder: UInt8, Sendable {
    case headerLower
    case equal
    case headerHigher
}

/// The inputs of the decision table for one slot (the columns of the spec's table). Built only
/// from two entries, so that no impossible combination (say, an op compared on a corrupt header)
/// can be expressed. Comparisons involving a reserved or corrupt copy are false (or nil): the
/// table never looks at them.
public struct JournalSlotFacts: Equatable, Sendable {
    /// The redundant header: valid prepare, reserved, or corrupt (checksum, padding, wrong
    /// cluster, op not ≡ slot).
    public let header: JournalEntryKind
    /// The prepare: valid, reserved, or corrupt (header or body checksum, non-zero padding, wrong
    /// cluster, wrong slot).
    public let prepare: JournalEntryKind
    /// The prepare's op is the highest op of any valid header of either ring.
    public let prepareOpIsMax: Bool
    /// The prepare's op lies beyond `op_prepare_max`: it belongs to the next checkpoint.
    public let prepareOpBeyondPrepareMax: Bool
    /// The redundant header's op lies beyond `op_prepare_max`.
    public let headerOpBeyondPrepareMax: Bool
    /// Both are prepares with the same checksum (so the same op and view).
    public let checksumsEqual: Bool
    /// Both are prepares: how their ops compare.
    public let opOrder: JournalOpOrder?
    /// Both are prepares of the same view.
    public let viewsEqual: Bool

    /// `opMax`: the highest op among the valid prepare headers of both rings (reserved headers
    /// hold no op). `opPrepareMax`: `StorageConfiguration.opPrepareMax(checkpoint:)`.
    public init(header: JournalEntry, prepare: JournalEntry, opMax: UInt64, opPrepareMax: UInt64) {
        self.header = header.kind
        self.prepare = prepare.kind
        let redundant = header.prepareHeader
        let stored = prepare.prepareHeader
        prepareOpIsMax = stored.map { $0.op == opMax } ?? false
        prepareOpBeyondPrepareMax = stored.map { $0.op > opPrepareMax } ?? false
        headerOpBeyondPrepareMax = redundant.map { $0.op > opPrepareMax } ?? false
        if let redundant, let stored {
            checksumsEqual = redundant.frame.checksum == stored.frame.checksum
            opOrder =
                redundant.op < stored.op ? .headerLower
                : redundant.op > stored.op ? .headerHigher : .equal
            viewsEqual = redundant.frame.view == stored.frame.view
        } else {
            checksumsEqual = false
            opOrder = nil
            viewsEqual = false
        }
    }
}

// MARK: - The cases and their decisions

/// What recovery does with a slot.
public enum JournalRecoveryDecision: UInt8, Sendable, CustomStringConvertible {
    /// The copies agree (both reserved, or identical): load the prepare's header (none for a
    /// reserved slot); the slot is clean.
    case nothing
    /// The prepare is intact and authoritative, its redundant header is not: load the prepare's
    /// header and rewrite the header sector from it; clean once that sector is written.
    case fixHeaderFromPrepare
    /// The slot held an op that is now lost or uncertain: load no header, mark it dirty and
    /// faulty, repair it from peers. A solo replica cannot, and refuses to start.
    case repair
    /// The slot holds an op this replica must not have (beyond `op_prepare_max`, or a torn
    /// append past the head): make it reserved; the slot is clean.
    case truncate

    public var description: String {
        switch self {
        case .nothing: "nothing"
        case .fixHeaderFromPrepare: "fix"
        case .repair: "repair"
        case .truncate: "truncate"
        }
    }
}

/// The cases @A–@P of the recovery table (storage spec §3), in the spec's order. Each names the
/// situation; `decision(solo:)` gives what to do.
public enum JournalRecoveryCase: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// @A: both copies corrupt. Nothing local can be trusted: repair.
    case prepareCorruptHeaderCorrupt
    /// @B: header reserved, prepare corrupt. Typically a first-wrap append torn by a crash (then
    /// refined to a truncation, see `JournalRecovery`); otherwise repair.
    case prepareCorruptHeaderReserved
    /// @C: header valid, prepare corrupt. The prepare was lost after its header was written, or
    /// an append over an older wrap was torn (then truncated, see `JournalRecovery`): repair.
    case prepareCorruptHeaderValid
    /// @D: header corrupt, prepare reserved. A torn header write, or a lost prepare whose
    /// header was lost too: repair; a solo replica fixes the header (a risk only if a crash
    /// in the first wrap also lost a prepare the corrupt header covered).
    case headerCorruptPrepareReserved
    /// @E: header corrupt, prepare valid but not the highest op. A torn or misdirected header,
    /// or several faults at once: repair; a solo replica fixes the header from the prepare.
    case headerCorruptPrepareBehind
    /// @F: header corrupt, prepare valid and the highest op: a crash tore the header write
    /// that followed this prepare. Fix the header from the prepare.
    case headerCorruptPrepareAtMax
    /// @G: header reserved, prepare valid: a crash between the prepare write and its header
    /// write in the first wrap (or a lost header write). Fix the header from the prepare.
    case headerReservedPrepareValid
    /// @H: the prepare's op is beyond `op_prepare_max`: it belongs to the next checkpoint,
    /// which is not durable. Truncate, whatever the header says.
    case prepareBeyondPrepareMax
    /// @I: the header's op is beyond `op_prepare_max`, the prepare is an older op. Truncate.
    case headerBeyondPrepareMax
    /// @J: the header's op is beyond `op_prepare_max`, the prepare is reserved. Truncate.
    case headerBeyondPrepareMaxPrepareReserved
    /// @K: header valid, prepare reserved: the prepare write was lost or misdirected after
    /// its header was written. Repair.
    case prepareReservedHeaderValid
    /// @L: both reserved: the slot was never written (the first fill of the log). Nothing to do.
    case bothReserved
    /// @M: both valid, the prepare's op is higher: the log wrapped and the header write was
    /// lost (or a crash came between the two writes). The newer prepare wins: fix.
    case prepareOpHigher
    /// @N: both valid, the header's op is higher: the prepare of the newer op was lost. Repair.
    case headerOpHigher
    /// @O: both valid, same op, different prepares (different views): recovery cannot tell
    /// which is newer, so it cannot fix from the prepare. Repair.
    case sameOpDifferentView
    /// @P: header and prepare identical: the usual case. Nothing to do.
    case identical

    /// "@A" … "@P", as in the spec and in TigerBeetle's logs.
    public var label: String {
        let letters: [String] = [
            "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P",
        ]
        return "@" + letters[Int(rawValue)]
    }

    public var description: String { label }

    /// What to do in this case. `solo`: the cluster has one replica, which cannot repair from
    /// peers, so it fixes @D and @E locally from what it has.
    public func decision(solo: Bool) -> JournalRecoveryDecision {
        switch self {
        case .prepareCorruptHeaderCorrupt, .prepareCorruptHeaderReserved,
            .prepareCorruptHeaderValid, .prepareReservedHeaderValid, .headerOpHigher,
            .sameOpDifferentView:
            return .repair
        case .headerCorruptPrepareReserved, .headerCorruptPrepareBehind:
            return solo ? .fixHeaderFromPrepare : .repair
        case .headerCorruptPrepareAtMax, .headerReservedPrepareValid, .prepareOpHigher:
            return .fixHeaderFromPrepare
        case .prepareBeyondPrepareMax, .headerBeyondPrepareMax,
            .headerBeyondPrepareMaxPrepareReserved:
            return .truncate
        case .bothReserved, .identical:
            return .nothing
        }
    }
}

/// The decision table: the one case that describes a slot. Total: every combination of facts
/// (every pair of entries) maps to exactly one case, so corrupt input never traps.
///
/// The order of the checks is the table's precedence: a corrupt prepare decides first (@A–@C);
/// then a prepare beyond `op_prepare_max` (@H) overrides any header; then the header's kind.
public func journalRecoveryCase(_ facts: JournalSlotFacts) -> JournalRecoveryCase {
    switch (facts.header, facts.prepare) {
    case (.corrupt, .corrupt): return .prepareCorruptHeaderCorrupt
    case (.reserved, .corrupt): return .prepareCorruptHeaderReserved
    case (.prepare, .corrupt): return .prepareCorruptHeaderValid
    case (_, .prepare) where facts.prepareOpBeyondPrepareMax: return .prepareBeyondPrepareMax
    case (.corrupt, .reserved): return .headerCorruptPrepareReserved
    case (.corrupt, .prepare):
        return facts.prepareOpIsMax ? .headerCorruptPrepareAtMax : .headerCorruptPrepareBehind
    case (.reserved, .reserved): return .bothReserved
    case (.reserved, .prepare): return .headerReservedPrepareValid
    case (.prepare, .reserved):
        return facts.headerOpBeyondPrepareMax
            ? .headerBeyondPrepareMaxPrepareReserved : .prepareReservedHeaderValid
    case (.prepare, .prepare):
        if facts.headerOpBeyondPrepareMax { return .headerBeyondPrepareMax }
        if facts.checksumsEqual { return .identical }
        switch facts.opOrder {
        case .headerLower: return .prepareOpHigher
        case .headerHigher: return .headerOpHigher
        // Same op, different checksum. VSR never prepares two different ops with the same
        // number in one view, so the views differ; if a hostile disk says otherwise we still
        // cannot tell which copy is right: repair, never trap.
        case .equal, nil: return .sameOpDifferentView
        }
    }
}

import LedgerKit

// Which superblock copy to trust (storage spec §2 "Opening", §13 item 8), as a pure function of
// the bytes read from the four slots, so that `Superblock.open` and `ledger-inspect` share it.
//
// Rules, and why:
// - A copy counts only if its checksum is valid, its reserved bytes are zero, its version is ours
//   and its state keeps the invariants: anything else is corruption.
// - Copies are grouped by checksum, and a group counts *distinct copy indexes*, not slots: if a
//   read is misdirected, the same copy read twice must not look like two. The index is the
//   unchecksummed `copy` field; a value out of range is taken to be a corrupt field of a copy that
//   sits in its own slot (one fault, not a corrupt field plus a misdirect).
// - A group is valid with `Constants.superblockQuorumRead` (2) copies: a completed write left 3
//   (`superblockQuorumWrite`), and 3 + 2 > 4, so every completed write is seen.
// - The highest valid sequence wins. A valid group one sequence older must be its parent (hash
//   chain) with a monotonic `VSRState`; two valid groups of one sequence are a fork; any copy two
//   or more sequences newer means a completed write vanished. Each is an error, never a guess.
// - Repair rewrites one slot at a time, each with its own copy index, choosing a slot whose loss
//   (a torn write) still leaves the working group valid; the caller re-reads and calls again.

/// Why no superblock can be trusted. Each case is an operating error (corruption beyond what the
/// four copies tolerate, or a bug that wrote them), reported, never a crash.
public enum SuperblockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No group of identical copies reaches the read quorum.
    case noQuorum(validCopies: Int)
    /// Two valid groups of the same sequence with different contents.
    case fork(sequence: UInt64)
    /// A copy of `sequence` exists although the newest valid group is only `working`: the
    /// sequences in between, which were written completely, have vanished.
    case parentSkipped(working: UInt64, sequence: UInt64)
    /// The valid group one sequence older is not the working group's parent.
    case parentNotConnected(sequence: UInt64)
    /// The working group's state goes backwards from its parent's.
    case stateRegression(sequence: UInt64, field: VSRStateField)
    /// Repair changed which group is the working one (faults during repair beyond the model).
    case quorumChangedDuringRepair

    public var description: String {
        switch self {
        case .noQuorum(let valid):
            return "superblock: no quorum: \(valid) of \(Constants.superblockCopies) copies are valid, "
                + "and no \(Constants.superblockQuorumRead) distinct copies agree"
        case .fork(let sequence):
            return "superblock: fork: two different valid groups of copies with sequence \(sequence)"
        case .parentSkipped(let working, let sequence):
            return "superblock: the newest valid group has sequence \(working) but a copy of sequence "
                + "\(sequence) exists: completed updates were lost"
        case .parentNotConnected(let sequence):
            return "superblock: sequence \(sequence) does not hash-chain to the valid group of "
                + "sequence \(sequence - 1)"
        case .stateRegression(let sequence, let field):
            return "superblock: sequence \(sequence) moves \(field.rawValue) backwards from its parent"
        case .quorumChangedDuringRepair:
            return "superblock: the working quorum changed while its copies were being repaired"
        }
    }
}

/// What one slot holds, for `ledger-inspect` and for logs.
public struct SuperblockCopyStatus: Equatable, Sendable, CustomStringConvertible {
    public enum Validity: String, Equatable, Sendable {
        case valid
        case invalidChecksum = "invalid checksum"
        case nonZeroPadding = "non-zero padding"
        case unsupportedVersion = "unsupported version"
        /// Checksum-valid, but the state breaks an invariant no writer produces.
        case malformed
    }

    public var slot: Int
    public var validity: Validity
    /// The fields as read (meaningful only when `validity == .valid`).
    public var copy: UInt16
    public var sequence: UInt64
    public var checksum: UInt128
    /// Whether the slot holds the working header (set only when there is a working header).
    public var holdsWorking = false

    public var isValid: Bool { validity == .valid }

    public var description: String {
        guard isValid else { return "slot \(slot): \(validity.rawValue)" }
        let hex = String(checksum, radix: 16)
        let copyNote = Int(copy) == slot ? "" : " (copy field \(copy): misdirected)"
        return "slot \(slot): valid sequence=\(sequence) checksum=\(hex)\(copyNote)"
            + (holdsWorking ? " [working]" : "")
    }
}

/// The working superblock chosen from the copies.
public struct SuperblockQuorum: Sendable {
    /// The working header, with `copy` set to 0.
    public var header: SuperblockHeader
    /// Distinct copy indexes holding it.
    public var copyCount: Int
    /// Slots that do not hold it with their own copy index, in slot order.
    public var slotsToRepair: [Int]
    /// The slot to rewrite next (nil when none needs it or none can be written safely).
    public var nextRepairSlot: Int?
}

/// The analysis of one read of every copy.
public struct SuperblockQuorumReport: Sendable {
    /// One status per slot.
    public var copies: [SuperblockCopyStatus]
    public var working: Result<SuperblockQuorum, SuperblockError>
}

public enum SuperblockQuorums {
    /// Analyzes a whole superblock zone as read from a data file (copies every
    /// `Constants.superblockCopySize` bytes): the entry point for `ledger-inspect`.
    public static func analyze(zone bytes: UnsafeRawBufferPointer) -> SuperblockQuorumReport {
        analyze(copies: bytes, copyStride: Constants.superblockCopySize)
    }

    /// Analyzes `Constants.superblockCopies` copies, slot `s` at byte `s * copyStride`.
    public static func analyze(copies bytes: UnsafeRawBufferPointer, copyStride: Int)
        -> SuperblockQuorumReport
    {
        let copies = Constants.superblockCopies
        precondition(copyStride >= Constants.superblockHeaderSize, "copies do not overlap")
        precondition(
            bytes.count >= (copies - 1) * copyStride + Constants.superblockHeaderSize,
            "the buffer holds every copy")
        var statuses: [SuperblockCopyStatus] = []
        var headers: [SuperblockHeader] = []
        statuses.reserveCapacity(copies)
        headers.reserveCapacity(copies)
        for slot in 0..<copies {
            let start = slot * copyStride
            let copyBytes = UnsafeRawBufferPointer(
                rebasing: bytes[start..<start + Constants.superblockHeaderSize])
            let header = SuperblockHeader(from: copyBytes)
            headers.append(header)
            statuses.append(status(of: header, slot: slot))
        }
        let groups = group(headers: headers, statuses: statuses)
        let working = choose(groups: groups, headers: headers, statuses: statuses)
        if case .success(let quorum) = working {
            for slot in 0..<copies where statuses[slot].isValid {
                statuses[slot].holdsWorking = statuses[slot].checksum == quorum.header.checksum
            }
        }
        return SuperblockQuorumReport(copies: statuses, working: working)
    }

    /// Whether the copy in `bytes` is exactly the header with checksum `checksum`, written to
    /// `slot`: the check of a write's read-back.
    public static func isCopy(
        _ bytes: UnsafeRawBufferPointer, of checksum: UInt128, slot: Int
    ) -> Bool {
        let stored = bytes.loadUnaligned(as: UInt128.self)
        let copy = bytes.loadUnaligned(fromByteOffset: SuperblockHeader.copyOffset, as: UInt16.self)
        return stored == checksum && Int(copy) == slot
            && SuperblockHeader.computeChecksum(copyBytes: bytes) == checksum
    }

    // MARK: Steps

    static func status(of header: SuperblockHeader, slot: Int) -> SuperblockCopyStatus {
        var status = SuperblockCopyStatus(
            slot: slot, validity: .valid, copy: header.copy, sequence: header.sequence,
            checksum: header.checksum)
        if !header.isChecksumValid {
            status.validity = .invalidChecksum
        } else if !header.hasZeroPadding {
            status.validity = .nonZeroPadding
        } else if header.version != SuperblockHeader.versionCurrent {
            status.validity = .unsupportedVersion
        } else if header.vsrState.brokenInvariant != nil || header.sequence == 0 {
            status.validity = .malformed
        }
        return status
    }

    /// Identical valid copies: which slots hold them and which distinct copy indexes they cover.
    struct Group {
        var checksum: UInt128
        var sequence: UInt64
        /// A slot holding the group's header.
        var slotFirst: Int
        /// Bit `s`: slot `s` holds the header.
        var slots: UInt8 = 0
        /// Bit `c`: copy index `c` was seen (distinct, whatever slots it was read from).
        var copies: UInt8 = 0

        var copyCount: Int { copies.nonzeroBitCount }
        var isValid: Bool { copyCount >= Constants.superblockQuorumRead }
    }

    /// The copy index a valid copy in `slot` stands for (see the file header for out-of-range).
    static func copyIndex(_ header: SuperblockHeader, slot: Int) -> Int {
        Int(header.copy) < Constants.superblockCopies ? Int(header.copy) : slot
    }

    static func group(headers: [SuperblockHeader], statuses: [SuperblockCopyStatus]) -> [Group] {
        var groups: [Group] = []
        for slot in 0..<Constants.superblockCopies where statuses[slot].isValid {
            let header = headers[slot]
            var index = groups.firstIndex { $0.checksum == header.checksum }
            if index == nil {
                groups.append(Group(checksum: header.checksum, sequence: header.sequence, slotFirst: slot))
                index = groups.count - 1
            }
            groups[index!].slots |= UInt8(1) << UInt8(slot)
            groups[index!].copies |= UInt8(1) << UInt8(copyIndex(header, slot: slot))
        }
        return groups
    }

    static func choose(
        groups: [Group], headers: [SuperblockHeader], statuses: [SuperblockCopyStatus]
    ) -> Result<SuperblockQuorum, SuperblockError> {
        // The highest valid sequence; among equals, the larger group then the larger checksum, so
        // the choice is deterministic (equal sequences are a fork below anyway).
        var best: Group?
        for candidate in groups where candidate.isValid {
            guard let current = best else { best = candidate; continue }
            if (candidate.sequence, candidate.copyCount, candidate.checksum)
                > (current.sequence, current.copyCount, current.checksum)
            {
                best = candidate
            }
        }
        guard let best else {
            return .failure(.noQuorum(validCopies: statuses.filter(\.isValid).count))
        }
        let working = headers[best.slotFirst]
        for other in groups where other.checksum != best.checksum {
            let header = headers[other.slotFirst]
            // A copy of another cluster or replica is not part of this history (for example a
            // stray write from an earlier format): it is repaired over, not compared.
            guard header.cluster == working.cluster,
                header.vsrState.replicaId == working.vsrState.replicaId
            else { continue }
            // Subtractions, not `+ 1`: hostile sequences near UInt64.max must not trap.
            if other.sequence > best.sequence && other.sequence - best.sequence > 1 {
                return .failure(.parentSkipped(working: best.sequence, sequence: other.sequence))
            }
            guard other.isValid else { continue }
            if other.sequence == best.sequence { return .failure(.fork(sequence: best.sequence)) }
            if other.sequence < best.sequence && best.sequence - other.sequence == 1 {
                guard working.parent == other.checksum else {
                    return .failure(.parentNotConnected(sequence: best.sequence))
                }
                if let field = header.vsrState.regression(to: working.vsrState) {
                    return .failure(.stateRegression(sequence: best.sequence, field: field))
                }
            }
        }
        var header = working
        header.copy = 0
        let repairs = slotsToRepair(best: best, headers: headers, statuses: statuses)
        return .success(
            SuperblockQuorum(
                header: header, copyCount: best.copyCount, slotsToRepair: repairs,
                nextRepairSlot: nextRepairSlot(best: best, repairs: repairs, headers: headers)))
    }

    static func slotsToRepair(
        best: Group, headers: [SuperblockHeader], statuses: [SuperblockCopyStatus]
    ) -> [Int] {
        (0..<Constants.superblockCopies).filter { slot in
            let holds = best.slots & (UInt8(1) << UInt8(slot)) != 0
            return !(holds && Int(headers[slot].copy) == slot)
        }
    }

    /// The safest slot to rewrite next. A slot is safe if the working group keeps a read quorum
    /// without it (a torn write there cannot make an older group win, the trap of rewriting the
    /// only slot holding some copy). Among safe slots, in order: a slot that does not hold the
    /// working header and whose own copy index is missing (the write adds a copy); one that does
    /// not hold it; one whose copy index is also held elsewhere (a misdirected duplicate); then
    /// any other (a corrupt `copy` field).
    static func nextRepairSlot(best: Group, repairs: [Int], headers: [SuperblockHeader]) -> Int? {
        var choice: (rank: Int, slot: Int)?
        for slot in repairs {
            let bit = UInt8(1) << UInt8(slot)
            var copiesWithout: UInt8 = 0
            for other in 0..<Constants.superblockCopies where other != slot {
                if best.slots & (UInt8(1) << UInt8(other)) != 0 {
                    copiesWithout |= UInt8(1) << UInt8(copyIndex(headers[other], slot: other))
                }
            }
            guard copiesWithout.nonzeroBitCount >= Constants.superblockQuorumRead else { continue }
            let rank: Int
            if best.slots & bit == 0 {
                rank = best.copies & bit == 0 ? 0 : 1
            } else {
                rank = copiesWithout == best.copies ? 2 : 3
            }
            if choice == nil || rank < choice!.rank { choice = (rank, slot) }
        }
        return choice?.slot
    }
}

import LedgerIO
import LedgerKit
import LedgerVSR

/// `ledger-inspect <path> wal [--slot=N]`: both copies of every WAL slot (redundant header and
/// prepare) and the verdict of the journal's own recovery table on them (`JournalRecovery`,
/// the same pure code the replica runs), so the tool says what a restart would do.
struct WALInspection {
    let recovery: JournalRecovery
    /// Where the cluster id and checkpoint came from.
    let contextNote: String
    let slotCount: Int

    init(reader: DataFileReader, superblock: SuperblockHeader?) throws {
        let configuration = reader.layout.configuration
        slotCount = configuration.journalSlotCount
        let ring = try reader.readZone(.walHeaders)
        let cluster: UInt128
        let opCheckpoint: UInt64
        let replicaCount: Int
        if let superblock {
            cluster = superblock.cluster
            opCheckpoint = superblock.vsrState.checkpoint.header.op
            replicaCount = max(1, Int(superblock.vsrState.replicaCount))
            contextNote = "cluster, checkpoint and replica count from the superblock"
        } else {
            // No superblock quorum: take the cluster of the first checksum-valid header, and
            // assume a solo replica at checkpoint 0, and say so.
            cluster = WALInspection.guessCluster(ring: UnsafeRawBufferPointer(ring.bytes))
            opCheckpoint = 0
            replicaCount = 1
            contextNote = "NO SUPERBLOCK QUORUM: cluster \(cluster) guessed from the header ring, checkpoint 0, one replica assumed"
        }
        let slotBuffer = AlignedBuffer(count: Constants.messageSizeMax)
        var readError: Error?
        recovery = JournalRecovery.classify(
            cluster: cluster, configuration: configuration, opCheckpoint: opCheckpoint,
            replicaCount: replicaCount, headerRing: UnsafeRawBufferPointer(ring.bytes)
        ) { slot in
            // Called once per slot, in order: one reusable 1 MiB buffer is enough.
            let size = WALInspection.readPrepare(
                reader: reader, slot: slot, into: slotBuffer, error: &readError)
            return UnsafeRawBufferPointer(rebasing: slotBuffer.bytes[0..<size])
        }
        if let readError { throw readError }
    }

    /// Reads a prepare slot: its first sector, then as much more as its header's size asks for
    /// (when that header is checksum-valid). Returns the bytes read.
    private static func readPrepare(
        reader: DataFileReader, slot: Int, into buffer: AlignedBuffer, error: inout Error?
    ) -> Int {
        let sector = Constants.sectorSize
        let offset = reader.layout.walPrepareOffset(slot: slot)
        buffer.zero()
        do {
            try reader.read(zone: .walPrepares, offset: offset, into: buffer.prefix(sector))
            let header = Header(from: UnsafeRawBufferPointer(buffer.bytes))
            let size = Int(header.frame.size)
            guard header.isChecksumValid, size > sector, size <= Constants.messageSizeMax else {
                return sector
            }
            let total = (size + sector - 1) / sector * sector
            let rest = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[sector..<total])
            try reader.read(zone: .walPrepares, offset: offset + UInt64(sector), into: rest)
            return total
        } catch let failure {
            if error == nil { error = failure }
            return sector
        }
    }

    private static func guessCluster(ring: UnsafeRawBufferPointer) -> UInt128 {
        var offset = 0
        while offset + Constants.messageHeaderSize <= ring.count {
            let header = Header(from: UnsafeRawBufferPointer(rebasing: ring[offset...]))
            if header.isChecksumValid && header.frame.command == Command.prepare.rawValue {
                return header.frame.cluster
            }
            offset += Constants.messageHeaderSize
        }
        return 0
    }

    /// Slots whose copies disagree or are damaged (anything but @L and @P).
    var badSlots: [Int] {
        recovery.slots.indices.filter {
            let slot = recovery.slots[$0]
            return slot.recoveryCase != .bothReserved && slot.recoveryCase != .identical
        }
    }

    func text(slot selected: Int?) -> [String] {
        var lines: [String] = []
        lines.append("wal: \(slotCount) slots (\(contextNote))")
        let head = recovery.opHead.map(String.init) ?? "none"
        lines.append("recovery: head op \(head), checkpoint op \(recovery.opCheckpoint), op_prepare_max \(recovery.opPrepareMax)")
        lines.append("  faulty (repair): \(recovery.faultyCount)  fix header: \(recovery.fixedCount)  truncate: \(recovery.truncatedCount)")
        let bad = badSlots
        lines.append(bad.isEmpty ? "bad slots: none" : "bad slots: \(bad.map(String.init).joined(separator: ", "))")
        if let selected {
            lines.append(contentsOf: slotDetail(selected))
            return lines
        }
        // One line per slot; runs of empty (both reserved) slots collapse into one line.
        var index = 0
        while index < slotCount {
            let slot = recovery.slots[index]
            if slot.recoveryCase == .bothReserved {
                var end = index
                while end + 1 < slotCount && recovery.slots[end + 1].recoveryCase == .bothReserved { end += 1 }
                lines.append(end == index
                    ? "  slot \(index): reserved (empty) @L nothing"
                    : "  slots \(index)-\(end): reserved (empty) @L nothing")
                index = end + 1
                continue
            }
            lines.append("  slot \(index): header \(entryText(slot.header)) | prepare \(entryText(slot.prepare)) | \(verdict(slot))")
            index += 1
        }
        return lines
    }

    private func verdict(_ slot: JournalRecovery.Slot) -> String {
        "\(slot.recoveryCase.label) \(slot.decision)" + (slot.isTornAppend ? " (torn append)" : "")
    }

    private func entryText(_ entry: JournalEntry) -> String {
        switch entry {
        case .corrupt(let reason): return "CORRUPT (\(reason))"
        case .reserved: return "reserved"
        case .prepare(let header):
            return "op \(header.op) view \(header.frame.view) \(shortHex(header.frame.checksum))"
        }
    }

    private func slotDetail(_ index: Int) -> [String] {
        let slot = recovery.slots[index]
        var lines = ["slot \(index): \(verdict(slot)) (\(slot.recoveryCase.name))"]
        for (name, entry) in [("redundant header", slot.header), ("prepare", slot.prepare)] {
            switch entry {
            case .corrupt(let reason): lines.append("  \(name): CORRUPT (\(reason))")
            case .reserved: lines.append("  \(name): reserved (op \(index))")
            case .prepare(let header):
                lines.append("  \(name): op \(header.op) view \(header.frame.view) size \(header.frame.size) operation \(operationName(header.operation))")
                lines.append("    checksum \(hex128(header.frame.checksum)) parent \(hex128(header.parent))")
                lines.append("    client \(hex128(header.client)) request \(header.request) commit \(header.commit) timestamp \(header.timestamp)")
            }
        }
        return lines
    }

    func json(slot selected: Int?) -> JSON {
        let indexes = selected.map { [$0] } ?? Array(0..<slotCount)
        return .object([
            ("slot_count", .integer(Int64(slotCount))),
            ("context", .string(contextNote)),
            ("op_head", recovery.opHead.map { .unsigned($0) } ?? .null),
            ("op_checkpoint", .unsigned(recovery.opCheckpoint)),
            ("op_prepare_max", .unsigned(recovery.opPrepareMax)),
            ("faulty_count", .integer(Int64(recovery.faultyCount))),
            ("fixed_count", .integer(Int64(recovery.fixedCount))),
            ("truncated_count", .integer(Int64(recovery.truncatedCount))),
            ("bad_slots", .array(badSlots.map { .integer(Int64($0)) })),
            ("slots", .array(indexes.map { index in
                let slot = recovery.slots[index]
                return .object([
                    ("slot", .integer(Int64(index))),
                    ("header", entryJSON(slot.header)),
                    ("prepare", entryJSON(slot.prepare)),
                    ("case", .string(slot.recoveryCase.label)),
                    ("decision", .string(slot.decision.description)),
                    ("torn_append", .bool(slot.isTornAppend)),
                ])
            })),
        ])
    }

    private func entryJSON(_ entry: JournalEntry) -> JSON {
        switch entry {
        case .corrupt(let reason):
            return .object([("status", .string("corrupt")), ("reason", .string(reason.description))])
        case .reserved:
            return .object([("status", .string("reserved"))])
        case .prepare(let header):
            return .object([
                ("status", .string("valid")),
                ("op", .unsigned(header.op)),
                ("view", .unsigned(UInt64(header.frame.view))),
                ("size", .unsigned(UInt64(header.frame.size))),
                ("operation", .unsigned(UInt64(header.operation))),
                ("checksum", .hex(header.frame.checksum)),
                ("parent", .hex(header.parent)),
            ])
        }
    }
}

/// An operation code by name: consensus operations below 128, the ledger's from 128.
func operationName(_ code: UInt8) -> String {
    if let operation = VSROperation(rawValue: code) { return "\(operation)" }
    if let operation = Operation(rawValue: code) { return "\(operation)" }
    return "unknown(\(code))"
}

extension JournalRecoveryCase {
    /// The situation each case describes, in a few words (the doc comments of the cases).
    var name: String {
        switch self {
        case .prepareCorruptHeaderCorrupt: "both copies corrupt"
        case .prepareCorruptHeaderReserved: "prepare corrupt, header reserved"
        case .prepareCorruptHeaderValid: "prepare corrupt, header valid"
        case .headerCorruptPrepareReserved: "header corrupt, prepare reserved"
        case .headerCorruptPrepareBehind: "header corrupt, prepare valid but not the highest op"
        case .headerCorruptPrepareAtMax: "header corrupt, prepare valid and the highest op"
        case .headerReservedPrepareValid: "header reserved, prepare valid"
        case .prepareBeyondPrepareMax: "prepare op beyond op_prepare_max"
        case .headerBeyondPrepareMax: "header op beyond op_prepare_max"
        case .headerBeyondPrepareMaxPrepareReserved: "header op beyond op_prepare_max, prepare reserved"
        case .prepareReservedHeaderValid: "header valid, prepare reserved (lost write)"
        case .bothReserved: "both reserved"
        case .prepareOpHigher: "both valid, prepare op higher"
        case .headerOpHigher: "both valid, header op higher"
        case .sameOpDifferentView: "same op, different views"
        case .identical: "identical"
        }
    }
}

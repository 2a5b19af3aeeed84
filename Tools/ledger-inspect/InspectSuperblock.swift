import LedgerIO
import LedgerKit
import LedgerVSR

/// `ledger-inspect <path> superblock`: every copy's status, the quorum the replica would
/// choose, and the working header's fields.
struct SuperblockInspection {
    let report: SuperblockQuorumReport

    init(reader: DataFileReader) throws {
        let zone = try reader.readZone(.superblock)
        report = SuperblockQuorums.analyze(zone: UnsafeRawBufferPointer(zone.bytes))
    }

    /// The working header, if a quorum exists.
    var working: SuperblockHeader? {
        if case .success(let quorum) = report.working { return quorum.header }
        return nil
    }

    var isHealthy: Bool {
        guard case .success(let quorum) = report.working else { return false }
        return quorum.slotsToRepair.isEmpty
    }

    func text() -> [String] {
        var lines = ["superblock copies:"]
        for copy in report.copies {
            lines.append("  " + copyLine(copy))
        }
        switch report.working {
        case .failure(let error):
            lines.append("quorum: NONE: \(error)")
        case .success(let quorum):
            let repair = quorum.slotsToRepair.isEmpty
                ? "all copies agree"
                : "copies to repair: \(quorum.slotsToRepair.map(String.init).joined(separator: ", "))"
            lines.append("quorum: sequence \(quorum.header.sequence), \(quorum.copyCount) of \(Constants.superblockCopies) copies; \(repair)")
            lines.append(contentsOf: headerLines(quorum.header))
        }
        return lines
    }

    private func copyLine(_ copy: SuperblockCopyStatus) -> String {
        guard copy.isValid else { return "copy \(copy.slot): BAD (\(copy.validity.rawValue))" }
        let misdirected = Int(copy.copy) == copy.slot ? "" : " MISDIRECTED (holds copy \(copy.copy))"
        return "copy \(copy.slot): ok sequence=\(copy.sequence) checksum=\(shortHex(copy.checksum))"
            + misdirected + (copy.holdsWorking ? " [working]" : "")
    }

    private func headerLines(_ header: SuperblockHeader) -> [String] {
        let state = header.vsrState
        let checkpoint = state.checkpoint
        let replicaIndex = (0..<Int(state.replicaCount)).first { state.member($0) == state.replicaId }
        return [
            "  version: \(header.version)  release_format: \(releaseString(header.releaseFormat))",
            "  cluster: \(header.cluster)",
            "  replica: \(replicaIndex.map(String.init) ?? "?") of \(state.replicaCount)  id: \(hex128(state.replicaId))",
            "  sequence: \(header.sequence)  checksum: \(hex128(header.checksum))  parent: \(hex128(header.parent))",
            "  view: \(state.view)  log_view: \(state.logView)  commit_max: \(state.commitMax)",
            "  sync_op: \(state.syncOpMin)...\(state.syncOpMax)",
            "  checkpoint: op \(checkpoint.header.op)  id \(hex128(header.checkpointId))  release \(releaseString(checkpoint.release))",
            "  storage_size: \(checkpoint.storageSize) (\(CommandLineValues.formatByteSize(checkpoint.storageSize)))",
            "  manifest blocks: \(checkpoint.manifestBlockCount)  free set: \(checkpoint.freeSetAcquired.size) bytes  client sessions: \(checkpoint.clientSessions.size) bytes",
            "  view headers: \(header.viewHeaders.count) (ops \(header.viewHeaders.all.map { String($0.op) }.joined(separator: ", ")))",
        ]
    }

    func json() -> JSON {
        var fields: [(String, JSON)] = [
            ("copies", .array(report.copies.map { copy in
                .object([
                    ("slot", .integer(Int64(copy.slot))),
                    ("status", .string(copy.validity.rawValue)),
                    ("copy", copy.isValid ? .unsigned(UInt64(copy.copy)) : .null),
                    ("sequence", copy.isValid ? .unsigned(copy.sequence) : .null),
                    ("checksum", copy.isValid ? .hex(copy.checksum) : .null),
                    ("misdirected", .bool(copy.isValid && Int(copy.copy) != copy.slot)),
                    ("working", .bool(copy.holdsWorking)),
                ])
            })),
        ]
        switch report.working {
        case .failure(let error):
            fields.append(("quorum", .null))
            fields.append(("error", .string(error.description)))
        case .success(let quorum):
            let header = quorum.header
            let state = header.vsrState
            fields.append(("quorum", .object([
                ("copy_count", .integer(Int64(quorum.copyCount))),
                ("repair_slots", .array(quorum.slotsToRepair.map { .integer(Int64($0)) })),
            ])))
            fields.append(("working", .object([
                ("version", .unsigned(UInt64(header.version))),
                ("release_format", .unsigned(UInt64(header.releaseFormat))),
                ("sequence", .unsigned(header.sequence)),
                ("checksum", .hex(header.checksum)),
                ("parent", .hex(header.parent)),
                ("cluster", .u128(header.cluster)),
                ("replica_id", .hex(state.replicaId)),
                ("replica_count", .unsigned(UInt64(state.replicaCount))),
                ("members", .array((0..<Int(state.replicaCount)).map { .hex(state.member($0)) })),
                ("view", .unsigned(UInt64(state.view))),
                ("log_view", .unsigned(UInt64(state.logView))),
                ("commit_max", .unsigned(state.commitMax)),
                ("sync_op_min", .unsigned(state.syncOpMin)),
                ("sync_op_max", .unsigned(state.syncOpMax)),
                ("checkpoint_op", .unsigned(state.checkpoint.header.op)),
                ("checkpoint_id", .hex(header.checkpointId)),
                ("storage_size", .unsigned(state.checkpoint.storageSize)),
                ("view_header_ops", .array(header.viewHeaders.all.map { .unsigned($0.op) })),
            ])))
        }
        return .object(fields)
    }
}

/// A release as major.minor.patch.
func releaseString(_ release: UInt32) -> String {
    "\(release >> 16).\((release >> 8) & 0xff).\(release & 0xff)"
}

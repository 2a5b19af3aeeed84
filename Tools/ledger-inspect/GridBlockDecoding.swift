import LedgerKit
import LedgerLSM

/// What `ledger-inspect grid --block=A` shows of a block whose header and body verify, by block
/// type (docs/lsm.md "Metadata by block type"). Decoding never trusts counts beyond what the
/// block holds: a block that claims more entries than fit is shown as such, not read past.
struct GridBlockDetail {
    var lines: [String] = []
    var fields: [(String, JSON)] = []

    init(header: BlockHeader, block: UnsafeRawBufferPointer) {
        let metadata = BlockMetadata(header.metadata)
        let bodySize = Int(header.frame.size) - Constants.messageHeaderSize
        switch BlockType(rawValue: header.blockType) {
        case .value:
            let tree = metadata.load(UInt16.self, at: 0)
            let valueSize = metadata.load(UInt32.self, at: 4)
            let count = metadata.load(UInt32.self, at: 8)
            lines.append("  value block: tree \(treeName(tree)), \(count) values of \(valueSize) bytes")
            fields = [("tree_id", .unsigned(UInt64(tree))), ("value_size", .unsigned(UInt64(valueSize))),
                      ("value_count", .unsigned(UInt64(count)))]
        case .index:
            decodeIndex(metadata: metadata, block: block, bodySize: bodySize)
        case .manifest:
            decodeManifest(block: block)
        case .freeSet, .clientSessions:
            let kind = metadata.load(UInt8.self, at: 0)
            let chunk = metadata.load(UInt32.self, at: 4)
            let previous = metadata.load(UInt64.self, at: 8)
            lines.append("  trailer block: kind \(kind), chunk \(chunk) bytes, previous block \(previous)")
            fields = [("trailer_kind", .unsigned(UInt64(kind))), ("chunk_size", .unsigned(UInt64(chunk))),
                      ("previous_address", .unsigned(previous))]
        case .reserved, nil:
            lines.append("  unknown block type \(header.blockType)")
        }
    }

    private mutating func decodeIndex(metadata: BlockMetadata, block: UnsafeRawBufferPointer, bodySize: Int) {
        let tree = metadata.load(UInt16.self, at: 0)
        let keySize = Int(metadata.load(UInt32.self, at: 4))
        let count = Int(metadata.load(UInt32.self, at: 8))
        let valueCount = metadata.load(UInt32.self, at: 12)
        let snapshotMin = metadata.load(UInt64.self, at: 16)
        lines.append("  index block: tree \(treeName(tree)), \(count) value blocks, \(valueCount) values, key size \(keySize), snapshot_min \(snapshotMin)")
        fields = [("tree_id", .unsigned(UInt64(tree))), ("key_size", .unsigned(UInt64(keySize))),
                  ("value_block_count", .unsigned(UInt64(count))), ("value_count", .unsigned(UInt64(valueCount))),
                  ("snapshot_min", .unsigned(snapshotMin))]
        let entryBytes = 2 * keySize + 8 + 16
        guard keySize > 0, keySize <= 32, count * entryBytes <= bodySize else {
            lines.append("  (entries do not fit the body: not decoded)")
            return
        }
        let body = UnsafeRawBufferPointer(rebasing: block[Constants.messageHeaderSize...])
        var entries: [JSON] = []
        for index in 0..<count {
            let address = body.loadUnaligned(fromByteOffset: 2 * count * keySize + index * 8, as: UInt64.self)
            let checksum = body.loadUnaligned(
                fromByteOffset: 2 * count * keySize + count * 8 + index * 16, as: UInt128.self)
            lines.append("    value block \(index): address \(address) checksum \(shortHex(checksum))")
            entries.append(.object([("address", .unsigned(address)), ("checksum", .hex(checksum))]))
        }
        fields.append(("value_blocks", .array(entries)))
    }

    private mutating func decodeManifest(block: UnsafeRawBufferPointer) {
        do {
            let view = try ManifestLogBlock.decode(block: block, levelCount: 7)
            lines.append("  manifest log block: \(view.entryCount) entries, previous block \(view.previous.address)")
            var entries: [JSON] = []
            for index in 0..<view.entryCount {
                let table = view[index]
                let event = table.event.map { "\($0)" } ?? "?"
                lines.append("    \(event) tree \(treeName(table.treeId)) level \(table.level) index \(table.address) values \(table.valueCount) snapshots \(table.snapshotMin)..<\(table.snapshotMax == UInt64.max ? "live" : String(table.snapshotMax))")
                entries.append(.object([
                    ("event", .string(event)), ("tree_id", .unsigned(UInt64(table.treeId))),
                    ("level", .unsigned(UInt64(table.level))), ("index_address", .unsigned(table.address)),
                    ("value_count", .unsigned(UInt64(table.valueCount))),
                    ("snapshot_min", .unsigned(table.snapshotMin)), ("snapshot_max", .unsigned(table.snapshotMax)),
                ]))
            }
            fields = [("entry_count", .unsigned(UInt64(view.entryCount))),
                      ("previous_address", .unsigned(view.previous.address)), ("entries", .array(entries))]
        } catch {
            lines.append("  manifest log block that does not decode: \(error)")
            fields = [("decode_error", .string("\(error)"))]
        }
    }
}

private func treeName(_ id: UInt16) -> String {
    TreeId(rawValue: id).map { "\(id) (\($0.name))" } ?? "\(id) (unknown)"
}

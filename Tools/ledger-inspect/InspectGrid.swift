import LedgerIO
import LedgerCommandLine
import LedgerKit

/// `ledger-inspect <path> grid [--block=A]`: the grid zone's extent, and one block decoded.
///
/// Until the LSM forest exists (step 3) nothing allocates blocks, so there is no free set to
/// summarize: the summary gives the zone's geometry and the file's extent. A block is decoded
/// from its own header: checksum, command, address (a block stored at the wrong address is a
/// misdirected write), type, snapshot and body checksum.
struct GridInspection {
    enum BlockState {
        case empty
        case corrupt(String)
        case block(BlockHeader, bodyValid: Bool, addressMatches: Bool, detail: GridBlockDetail?)
    }

    let blockSize: Int
    let blockCountMax: Int
    let blocksInFile: UInt64
    let block: (address: UInt64, state: BlockState)?

    init(reader: DataFileReader, address: UInt64?) throws {
        let layout = reader.layout
        blockSize = layout.configuration.blockSize
        blockCountMax = layout.configuration.gridBlockCountMax
        let gridBytes = reader.file.sizeBytes > layout.sizeMin ? reader.file.sizeBytes - layout.sizeMin : 0
        blocksInFile = gridBytes / UInt64(blockSize)
        guard let address else { block = nil; return }
        guard address >= 1 && address <= UInt64(blockCountMax) else {
            throw ToolError("--block must be between 1 and \(blockCountMax), got \(address)")
        }
        let buffer = AlignedBuffer(count: blockSize)
        try reader.read(zone: .grid, offset: layout.gridBlockOffset(address: address), into: buffer.bytes)
        block = (address, GridInspection.decode(UnsafeRawBufferPointer(buffer.bytes), address: address))
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, address: UInt64) -> BlockState {
        if bytes.allSatisfy({ $0 == 0 }) { return .empty }
        let header = Header(from: bytes)
        guard header.isChecksumValid else { return .corrupt("header checksum") }
        guard header.frame.command == Command.block.rawValue else {
            return .corrupt("not a block (command \(header.frame.command))")
        }
        let size = Int(header.frame.size)
        guard size >= Constants.messageHeaderSize, size <= bytes.count else { return .corrupt("size \(size)") }
        let block = header.asBlock
        let body = UnsafeRawBufferPointer(rebasing: bytes[Constants.messageHeaderSize..<size])
        let bodyValid = block.isBodyValid(body)
        // Only a block whose checksums verify is decoded further: its counts can be trusted
        // to have been written by a replica, and are still bounds-checked.
        let detail = bodyValid ? GridBlockDetail(header: block, block: bytes) : nil
        return .block(block, bodyValid: bodyValid, addressMatches: block.address == address, detail: detail)
    }

    func text() -> [String] {
        var lines = [
            "grid: blocks of \(CommandLineValues.formatByteSize(UInt64(blockSize))), at most \(blockCountMax) (\(CommandLineValues.formatByteSize(UInt64(blockCountMax) * UInt64(blockSize))))",
            "  blocks within the file: \(blocksInFile) (the grid grows as blocks are acquired; no free set before the LSM exists)",
        ]
        if let block {
            lines.append(contentsOf: blockText(address: block.address, state: block.state))
        }
        return lines
    }

    private func blockText(address: UInt64, state: BlockState) -> [String] {
        switch state {
        case .empty: return ["block \(address): empty (zeros: never written)"]
        case .corrupt(let reason): return ["block \(address): CORRUPT (\(reason))"]
        case .block(let header, let bodyValid, let addressMatches, let detail):
            let type = BlockType(rawValue: header.blockType).map { "\($0)" } ?? "unknown(\(header.blockType))"
            return [
                "block \(address): type \(type) size \(header.frame.size) snapshot \(header.snapshot)"
                    + (addressMatches ? "" : " MISDIRECTED (header says address \(header.address))")
                    + (bodyValid ? "" : " BODY CORRUPT"),
                "  checksum \(hex128(header.frame.checksum)) body \(hex128(header.frame.checksumBody))",
            ] + (detail?.lines ?? [])
        }
    }

    func json() -> JSON {
        var fields: [(String, JSON)] = [
            ("block_size", .integer(Int64(blockSize))),
            ("block_count_max", .integer(Int64(blockCountMax))),
            ("blocks_in_file", .unsigned(blocksInFile)),
        ]
        if let block {
            let state: JSON
            switch block.state {
            case .empty: state = .object([("status", .string("empty"))])
            case .corrupt(let reason): state = .object([("status", .string("corrupt")), ("reason", .string(reason))])
            case .block(let header, let bodyValid, let addressMatches, let detail):
                state = .object([
                    ("status", .string(bodyValid && addressMatches ? "valid" : "corrupt")),
                    ("type", .unsigned(UInt64(header.blockType))),
                    ("size", .unsigned(UInt64(header.frame.size))),
                    ("address", .unsigned(header.address)),
                    ("snapshot", .unsigned(header.snapshot)),
                    ("body_valid", .bool(bodyValid)),
                    ("checksum", .hex(header.frame.checksum)),
                    ("decoded", .object(detail?.fields ?? [])),
                ])
            }
            fields.append(("block", .object([("address", .unsigned(block.address)), ("state", state)])))
        }
        return .object(fields)
    }
}

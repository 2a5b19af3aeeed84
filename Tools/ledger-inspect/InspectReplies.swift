import LedgerIO
import LedgerKit

/// `ledger-inspect <path> replies [--slot=N]`: the client-replies zone, one slot per client
/// session. A slot holds the latest reply of its session (written by the replica from step 4 on):
/// empty (never written), a reply whose header and body verify, or damaged bytes.
struct RepliesInspection {
    enum SlotState {
        case empty
        case reply(Header, bodyValid: Bool)
        case corrupt(String)
    }

    let slots: [SlotState]

    init(reader: DataFileReader, only: Int?) throws {
        let count = reader.layout.configuration.clientsMax
        let buffer = AlignedBuffer(count: Constants.messageSizeMax)
        var slots: [SlotState] = []
        for slot in 0..<count {
            if let only, only != slot { slots.append(.empty); continue }
            buffer.zero()
            let offset = reader.layout.clientReplyOffset(slot: slot)
            try reader.read(zone: .clientReplies, offset: offset, into: buffer.prefix(Constants.sectorSize))
            let first = UnsafeRawBufferPointer(buffer.prefix(Constants.sectorSize))
            if first.allSatisfy({ $0 == 0 }) { slots.append(.empty); continue }
            let header = Header(from: first)
            guard header.isChecksumValid else { slots.append(.corrupt("header checksum")); continue }
            guard header.frame.command == Command.reply.rawValue else {
                slots.append(.corrupt("not a reply (command \(header.frame.command))"))
                continue
            }
            let size = Int(header.frame.size)
            guard size >= Constants.messageHeaderSize, size <= Constants.messageSizeMax else {
                slots.append(.corrupt("size \(size)"))
                continue
            }
            let total = (size + Constants.sectorSize - 1) / Constants.sectorSize * Constants.sectorSize
            if total > Constants.sectorSize {
                let rest = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[Constants.sectorSize..<total])
                try reader.read(zone: .clientReplies, offset: offset + UInt64(Constants.sectorSize), into: rest)
            }
            let body = UnsafeRawBufferPointer(rebasing: buffer.bytes[Constants.messageHeaderSize..<size])
            slots.append(.reply(header, bodyValid: header.isBodyValid(body)))
        }
        self.slots = slots
    }

    func text(slot selected: Int?) -> [String] {
        var lines = ["client replies: \(slots.count) slots"]
        for (index, state) in slots.enumerated() where selected == nil || selected == index {
            switch state {
            case .empty: lines.append("  slot \(index): empty")
            case .corrupt(let reason): lines.append("  slot \(index): CORRUPT (\(reason))")
            case .reply(let header, let bodyValid):
                lines.append("  slot \(index): reply size \(header.frame.size) view \(header.frame.view) checksum \(shortHex(header.frame.checksum))"
                    + (bodyValid ? "" : " BODY CORRUPT"))
            }
        }
        return lines
    }

    func json(slot selected: Int?) -> JSON {
        .object([
            ("slot_count", .integer(Int64(slots.count))),
            ("slots", .array(slots.enumerated().compactMap { index, state -> JSON? in
                guard selected == nil || selected == index else { return nil }
                switch state {
                case .empty:
                    return .object([("slot", .integer(Int64(index))), ("status", .string("empty"))])
                case .corrupt(let reason):
                    return .object([("slot", .integer(Int64(index))), ("status", .string("corrupt")), ("reason", .string(reason))])
                case .reply(let header, let bodyValid):
                    return .object([
                        ("slot", .integer(Int64(index))),
                        ("status", .string(bodyValid ? "valid" : "corrupt")),
                        ("size", .unsigned(UInt64(header.frame.size))),
                        ("view", .unsigned(UInt64(header.frame.view))),
                        ("checksum", .hex(header.frame.checksum)),
                    ])
                }
            })),
        ])
    }
}

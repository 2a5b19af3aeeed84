import LedgerKit

/// Why a block read from the grid cannot be used. A fault is reported to the reader, never
/// trapped on: the grid repairs it from a peer (step 5) or the replica stops with a clear error.
public enum BlockFault: Equatable, Sendable, CustomStringConvertible {
    /// The header checksum does not verify (torn, bit-flipped, zeros, never written).
    case headerChecksum
    /// A valid header, but not the checksum the referrer expects (a stale or foreign block).
    case checksumMismatch
    /// A checksummed header that is not a block message.
    case notABlock
    /// A block of another address: a misdirected write or read.
    case misdirected(headerAddress: UInt64)
    /// `size` is below the header or beyond the block size.
    case size
    /// The body does not match `checksumBody`.
    case bodyChecksum
    /// Non-zero bytes after the body, or in must-be-zero header fields.
    case padding

    public var description: String {
        switch self {
        case .headerChecksum: "header checksum"
        case .checksumMismatch: "checksum differs from the referrer's"
        case .notABlock: "not a block"
        case .misdirected(let address): "misdirected (header says address \(address))"
        case .size: "size"
        case .bodyChecksum: "body checksum"
        case .padding: "non-zero padding"
        }
    }
}

/// Building and verifying grid blocks (docs/lsm.md "Blocks"): a `BlockHeader`, the body, zeros
/// to the end of the block.
public enum BlockSealing {
    /// Fills the header of `block` (whose body, `bodySize` bytes after the header, is already
    /// written), zeroes the rest of the block, seals the checksums and returns the reference a
    /// referrer keeps.
    public static func seal(
        block: UnsafeMutableRawBufferPointer, address: UInt64, snapshot: UInt64, type: BlockType,
        metadata: BlockMetadata, bodySize: Int, release: UInt32 = Constants.release
    ) -> BlockReference {
        let size = Constants.messageHeaderSize + bodySize
        precondition(address >= 1, "a block has an address")
        precondition(size <= block.count, "the body fits in the block")
        var header = BlockHeader()
        header.frame.size = UInt32(size)
        header.frame.release = release
        header.address = address
        header.snapshot = snapshot
        header.blockType = type.rawValue
        header.metadata = metadata.words
        let padding = UnsafeMutableRawBufferPointer(rebasing: block[size...])
        padding.initializeMemory(as: UInt8.self, repeating: 0)
        header.seal(body: UnsafeRawBufferPointer(rebasing: block[Constants.messageHeaderSize..<size]))
        block.storeBytes(of: header, toByteOffset: 0, as: BlockHeader.self)
        return BlockReference(address: address, checksum: header.frame.checksum)
    }

    /// Checks that `block` is exactly the block `expected` names: header checksum, the
    /// referrer's checksum, command, address, size, body checksum and zero padding. Returns
    /// nil when it is, else the first fault found.
    public static func verify(block: UnsafeRawBufferPointer, expected: BlockReference) -> BlockFault? {
        precondition(block.count >= Constants.messageHeaderSize, "a block holds a header")
        let untyped = Header(from: block)
        guard untyped.isChecksumValid else { return .headerChecksum }
        guard untyped.frame.checksum == expected.checksum else { return .checksumMismatch }
        guard untyped.frame.command == Command.block.rawValue else { return .notABlock }
        let header = untyped.asBlock
        guard header.address == expected.address else {
            return .misdirected(headerAddress: header.address)
        }
        let size = Int(header.frame.size)
        guard size >= Constants.messageHeaderSize, size <= block.count else { return .size }
        guard header.frame.hasZeroPadding, header.hasZeroReserved else { return .padding }
        guard header.isBodyValid(UnsafeRawBufferPointer(rebasing: block[Constants.messageHeaderSize..<size])) else {
            return .bodyChecksum
        }
        guard isAllZero(UnsafeRawBufferPointer(rebasing: block[size...])) else { return .padding }
        return nil
    }

    /// Whether every byte of `bytes` is zero. Eight bytes per load (a byte loop over an index
    /// block's ~510 KiB of padding cost ~4 instructions per byte on every block read from disk).
    static func isAllZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let start = bytes.baseAddress else { return true }
        let count = bytes.count
        var index = 0
        // Bytes up to the first 8-byte boundary (or the end).
        while index < count && Int(bitPattern: start + index) % 8 != 0 {
            if bytes[index] != 0 { return false }
            index += 1
        }
        // 64 bytes per turn, OR-ed: one branch per cache line.
        while index + 64 <= count {
            var word: UInt64 = 0
            for offset in stride(from: 0, to: 64, by: 8) {
                word |= (start + index + offset).load(as: UInt64.self)
            }
            if word != 0 { return false }
            index += 64
        }
        while index + 8 <= count {
            if (start + index).load(as: UInt64.self) != 0 { return false }
            index += 8
        }
        while index < count {
            if bytes[index] != 0 { return false }
            index += 1
        }
        return true
    }
}

/// The 96 bytes of `BlockHeader.metadata`, read and written as 12 little-endian u64 words;
/// each block type gives them meaning (docs/lsm.md "Metadata by block type").
public struct BlockMetadata: Equatable, Sendable {
    public var words: (UInt128, UInt128, UInt128, UInt128, UInt128, UInt128)

    public init() { words = (0, 0, 0, 0, 0, 0) }

    public init(_ words: (UInt128, UInt128, UInt128, UInt128, UInt128, UInt128)) { self.words = words }

    /// The byte at `offset` … as a value of `T` (little-endian host).
    public func load<T: BitwiseCopyable>(_ type: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= 96, "metadata field in range")
        return withUnsafeBytes(of: words) { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }

    public mutating func store<T: BitwiseCopyable>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= 96, "metadata field in range")
        withUnsafeMutableBytes(of: &words) { $0.storeBytes(of: value, toByteOffset: offset, as: T.self) }
    }

    public static func == (lhs: BlockMetadata, rhs: BlockMetadata) -> Bool {
        withUnsafeBytes(of: lhs.words) { l in withUnsafeBytes(of: rhs.words) { r in l.elementsEqual(r) } }
    }
}

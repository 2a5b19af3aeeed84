/// The zones of a data file (storage spec §1), in file order.
///
/// ```
/// superblock │ wal_headers │ wal_prepares │ client_replies │ grid_padding │ grid …
/// ```
/// Every zone starts on a sector boundary and the grid on a block boundary. IO is addressed as
/// (zone, offset inside the zone) so that a stray offset is caught before it reaches the disk,
/// and so that the simulator can aim faults at one zone.
public enum Zone: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case superblock
    case walHeaders
    case walPrepares
    case clientReplies
    case gridPadding
    case grid

    public var description: String {
        switch self {
        case .superblock: "superblock"
        case .walHeaders: "wal_headers"
        case .walPrepares: "wal_prepares"
        case .clientReplies: "client_replies"
        case .gridPadding: "grid_padding"
        case .grid: "grid"
        }
    }
}

/// Offsets and sizes of the zones for one `StorageConfiguration`. Pure arithmetic: the same
/// configuration always gives the same layout, on every replica and in every tool.
public struct DataFileLayout: Sendable, Equatable {
    public let configuration: StorageConfiguration

    public init(_ configuration: StorageConfiguration) {
        configuration.verify()
        self.configuration = configuration
    }

    /// Size of each zone in bytes. The grid's size is its largest (`gridBlockCountMax` blocks);
    /// the file holds only the part in use.
    public func size(of zone: Zone) -> UInt64 {
        switch zone {
        case .superblock:
            return UInt64(Constants.superblockCopies * Constants.superblockCopySize)
        case .walHeaders:
            return UInt64(configuration.journalSlotCount * Constants.messageHeaderSize)
        case .walPrepares:
            return UInt64(configuration.journalSlotCount * Constants.messageSizeMax)
        case .clientReplies:
            return UInt64(configuration.clientsMax * Constants.messageSizeMax)
        case .gridPadding:
            let end = offset(of: .gridPadding)
            let block = UInt64(configuration.blockSize)
            return (block - end % block) % block
        case .grid:
            return UInt64(configuration.gridBlockCountMax) * UInt64(configuration.blockSize)
        }
    }

    /// Offset of the first byte of `zone` in the file.
    public func offset(of zone: Zone) -> UInt64 {
        var offset: UInt64 = 0
        for previous in Zone.allCases {
            if previous == zone { return offset }
            offset += size(of: previous)
        }
        preconditionFailure("every zone is in Zone.allCases")
    }

    /// The smallest data file: every zone but the grid (about 1088.5 MiB in production).
    public var sizeMin: UInt64 { offset(of: .grid) }

    /// The largest data file: the minimum plus a full grid.
    public var sizeMax: UInt64 { sizeMin + size(of: .grid) }

    /// Offset in the file of grid block `address` (addresses start at 1; 0 is null).
    public func gridBlockOffset(address: UInt64) -> UInt64 {
        precondition(address >= 1, "grid address 0 is null")
        precondition(address <= UInt64(configuration.gridBlockCountMax), "grid address in range")
        return (address - 1) * UInt64(configuration.blockSize)
    }

    /// Offset inside `.walPrepares` of a slot's prepare, and inside `.walHeaders` of the sector
    /// holding its redundant header.
    public func walPrepareOffset(slot: Int) -> UInt64 {
        precondition(slot >= 0 && slot < configuration.journalSlotCount, "WAL slot in range")
        return UInt64(slot) * UInt64(Constants.messageSizeMax)
    }

    public func walHeaderSectorOffset(slot: Int) -> UInt64 {
        precondition(slot >= 0 && slot < configuration.journalSlotCount, "WAL slot in range")
        let sector = slot / Constants.walHeadersPerSector
        return UInt64(sector * Constants.sectorSize)
    }

    /// Offset inside `.clientReplies` of a session's reply slot.
    public func clientReplyOffset(slot: Int) -> UInt64 {
        precondition(slot >= 0 && slot < configuration.clientsMax, "client reply slot in range")
        return UInt64(slot) * UInt64(Constants.messageSizeMax)
    }

    /// Offset inside `.superblock` of one copy.
    public func superblockCopyOffset(copy: Int) -> UInt64 {
        precondition(copy >= 0 && copy < Constants.superblockCopies, "superblock copy in range")
        return UInt64(copy * Constants.superblockCopySize)
    }

    /// Whether `length` bytes at `offset` lie inside `zone` and are sector-aligned: the check
    /// every storage backend makes before an IO (a violation is a programmer error).
    public func isValidIO(zone: Zone, offset: UInt64, length: Int) -> Bool {
        let sector = UInt64(Constants.sectorSize)
        guard length > 0, UInt64(length) % sector == 0, offset % sector == 0 else { return false }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(length))
        return !overflow && end <= size(of: zone)
    }
}

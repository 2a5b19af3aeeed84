/// What the manifest knows about one table (storage spec §5 "Manifest"): its key range, where its
/// index block is, which snapshots see it, and — in the manifest log — what happened to it.
///
/// 128 bytes, little-endian, no hidden padding (every byte belongs to a declared field, so a
/// copy carries every byte and the manifest log block's checksum is stable):
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 32 | key min (the tree's key, zero-padded to 32 bytes) |
/// | 32 | 32 | key max (inclusive) |
/// | 64 | 16 | index block checksum |
/// | 80 | 8 | index block address |
/// | 88 | 8 | snapshot min |
/// | 96 | 8 | snapshot max |
/// | 104 | 4 | value count |
/// | 108 | 2 | tree id |
/// | 110 | 1 | level |
/// | 111 | 1 | event (`TableEvent`; meaningful in the manifest log only) |
/// | 112 | 16 | reserved, zero |
///
/// The checksum comes before the address (unlike the order in the spec's list) so that the
/// `UInt128` is 16-byte aligned without a gap.
///
/// **Visibility.** A table is visible at snapshot `s` when `snapshotMin <= s < snapshotMax`
/// (half-open). Compaction at snapshot `S` gives its outputs `snapshotMin = S` and its inputs
/// `snapshotMax = S`: the same number, so at every snapshot exactly one of the two generations
/// is visible, never both and never neither. A table nobody has retired has
/// `snapshotMax == snapshotMaxLive` (UInt64.max) and is visible at every later snapshot,
/// including `snapshotLatest`.
///
/// **Identity.** A table is named by (tree id, index block address, index block checksum): the
/// checksum makes an address that was freed and reused name a different table. Level, snapshot
/// max and event change over a table's life; the identity does not.
public struct TableInfo: Hashable, Sendable, BitwiseCopyable {
    public var keyMin: TableKeyBytes
    public var keyMax: TableKeyBytes
    public var checksum: UInt128
    public var address: UInt64
    public var snapshotMin: UInt64
    public var snapshotMax: UInt64
    public var valueCount: UInt32
    public var treeId: UInt16
    public var level: UInt8
    /// `TableEvent.rawValue`; a stored byte (not the enum) so that bytes read from disk can be
    /// loaded and then rejected with a typed error instead of being trusted.
    public var eventCode: UInt8
    /// Zero; non-zero bytes read from disk are corruption.
    public var reserved: UInt128

    /// Bytes of one `TableInfo`, on disk and in memory.
    public static let size = 128
    /// Snapshot max of a table that no compaction has retired yet.
    public static let snapshotMaxLive = UInt64.max
    /// The snapshot that sees the current state: every table inserted so far and not retired.
    public static let snapshotLatest = UInt64.max - 1

    public init<Key: BitwiseCopyable>(
        treeId: UInt16, level: UInt8, keyMin: Key, keyMax: Key, index: BlockReference,
        snapshotMin: UInt64, snapshotMax: UInt64 = TableInfo.snapshotMaxLive, valueCount: UInt32,
        event: TableEvent = .insert
    ) {
        self.keyMin = TableKeyBytes(keyMin)
        self.keyMax = TableKeyBytes(keyMax)
        self.checksum = index.checksum
        self.address = index.address
        self.snapshotMin = snapshotMin
        self.snapshotMax = snapshotMax
        self.valueCount = valueCount
        self.treeId = treeId
        self.level = level
        self.eventCode = event.rawValue
        self.reserved = 0
    }

    /// The index block: how the table is read from the grid.
    public var index: BlockReference { BlockReference(address: address, checksum: checksum) }

    public var identity: TableIdentity {
        TableIdentity(treeId: treeId, address: address, checksum: checksum)
    }

    /// nil when `eventCode` names no event (only possible for bytes not yet validated).
    public var event: TableEvent? { TableEvent(rawValue: eventCode) }

    /// This table info carrying `event` (what a manifest log entry records).
    public func with(event: TableEvent) -> TableInfo {
        var copy = self
        copy.eventCode = event.rawValue
        return copy
    }

    /// Whether this table is part of snapshot `snapshot` (see the type's comment for the rule).
    @inlinable
    public func isVisible(snapshot: UInt64) -> Bool {
        snapshotMin <= snapshot && snapshot < snapshotMax
    }

    /// Whether some snapshot sees both tables: their visibility intervals intersect.
    @inlinable
    public func sharesSnapshots(with other: TableInfo) -> Bool {
        snapshotMin < other.snapshotMax && other.snapshotMin < snapshotMax
    }

    public func keyMin<Key: BitwiseCopyable>(as type: Key.Type) -> Key { keyMin.load(as: type) }
    public func keyMax<Key: BitwiseCopyable>(as type: Key.Type) -> Key { keyMax.load(as: type) }

    /// Whether the key ranges of the two tables share a key, compared as `Key`.
    public func overlaps<Key: Comparable & BitwiseCopyable>(_ other: TableInfo, as type: Key.Type) -> Bool {
        TableInfo.rangesOverlap(
            keyMin(as: type), keyMax(as: type), other.keyMin(as: type), other.keyMax(as: type))
    }

    /// Whether `[aMin, aMax]` and `[bMin, bMax]` (both inclusive) share a key.
    @inlinable
    public static func rangesOverlap<Key: Comparable>(_ aMin: Key, _ aMax: Key, _ bMin: Key, _ bMax: Key) -> Bool {
        aMin <= bMax && bMin <= aMax
    }

    /// Same table (identity), whatever its level, snapshot max or event.
    public func isSameTable(as other: TableInfo) -> Bool {
        treeId == other.treeId && address == other.address && checksum == other.checksum
    }
}

/// What a manifest log entry says happened to a table. Zero is not an event, so a zeroed entry
/// is rejected as corruption.
public enum TableEvent: UInt8, Sendable, CaseIterable {
    /// The table joined `level` (a flush or a compaction output).
    case insert = 1
    /// The table's snapshot max or level changed (compaction retired it, or moved it down).
    case update = 2
    /// The table left the manifest (no snapshot sees it any more; its blocks are released).
    case remove = 3
}

/// The name of a table across its whole life (see `TableInfo`).
public struct TableIdentity: Hashable, Sendable {
    public var treeId: UInt16
    public var address: UInt64
    public var checksum: UInt128

    public init(treeId: UInt16, address: UInt64, checksum: UInt128) {
        self.treeId = treeId
        self.address = address
        self.checksum = checksum
    }
}

/// A key of up to 32 bytes kept as raw bytes (zero-padded), so one `TableInfo` layout serves
/// every tree. Only the tree knows its key type; it loads the key to compare it. Byte order is
/// not key order (little-endian integers), so raw bytes are never compared for ordering.
public struct TableKeyBytes: Hashable, Sendable, BitwiseCopyable {
    public var low: UInt128
    public var high: UInt128

    public static let sizeMax = 32

    public init(low: UInt128 = 0, high: UInt128 = 0) {
        self.low = low
        self.high = high
    }

    /// Stores `key`'s bytes and zeroes the rest.
    public init<Key: BitwiseCopyable>(_ key: Key) {
        precondition(MemoryLayout<Key>.size <= Self.sizeMax, "a table key fits in 32 bytes")
        low = 0
        high = 0
        withUnsafeMutableBytes(of: &self) { bytes in
            bytes.storeBytes(of: key, toByteOffset: 0, as: Key.self)
        }
    }

    /// The first `MemoryLayout<Key>.size` bytes as a `Key`.
    @inlinable
    public func load<Key: BitwiseCopyable>(as type: Key.Type) -> Key {
        precondition(MemoryLayout<Key>.size <= Self.sizeMax, "a table key fits in 32 bytes")
        return withUnsafeBytes(of: self) { $0.loadUnaligned(fromByteOffset: 0, as: Key.self) }
    }

    /// Whether the bytes after a key of `keySize` bytes are zero, as `init(_:)` leaves them.
    public func isZeroPadded(keySize: Int) -> Bool {
        precondition(keySize >= 0, "key size is not negative")
        precondition(keySize <= Self.sizeMax, "a table key fits in 32 bytes")
        return withUnsafeBytes(of: self) { bytes in
            for byte in bytes[keySize...] where byte != 0 { return false }
            return true
        }
    }
}

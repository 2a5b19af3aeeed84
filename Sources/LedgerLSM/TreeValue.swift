/// A fixed-size value stored in an LSM tree, sorted by its key (storage spec §5).
///
/// Values are stored byte for byte in value blocks (`MemoryLayout<Self>.stride` bytes each, no
/// hidden padding: every byte is part of a declared field), so a conforming type must be a
/// plain struct of explicitly sized integers. Keys are compared with `<`; within one tree a key
/// appears at most once per table, and across levels the shallower (newer) value wins.
///
/// Deletes are tombstones: a value that says "no value for this key". A tombstone shadows older
/// values of its key and is dropped when compaction reaches the last level with nothing below.
public protocol TreeValue: Sendable, BitwiseCopyable {
    associatedtype Key: Comparable & Hashable & Sendable & BitwiseCopyable

    var key: Key { get }
    var isTombstone: Bool { get }
    /// The tombstone of `key` (trees whose values are never deleted may trap here).
    static func tombstone(key: Key) -> Self

    /// How many 64-bit words `keyWord` splits a key into (0: none; the memtable then sorts by
    /// comparisons only). Defaults below for u64 and u128 keys.
    static var keyWordCount: Int { get }
    /// Word `index` of `key`, most significant first: keys compare as their word sequences
    /// compare, word by word as unsigned integers (the memtable's radix sort relies on it).
    static func keyWord(_ key: Key, _ index: Int) -> UInt64
}

extension TreeValue {
    /// Bytes of one value in a value block.
    public static var valueSize: Int { MemoryLayout<Self>.stride }
    /// Bytes of one key in an index block.
    public static var keySize: Int { MemoryLayout<Key>.stride }

    public static var keyWordCount: Int { 0 }
    public static func keyWord(_ key: Key, _ index: Int) -> UInt64 {
        preconditionFailure("a key without words is not split into them")
    }
}

extension TreeValue where Key == UInt64 {
    public static var keyWordCount: Int { 1 }
    @inline(__always)
    public static func keyWord(_ key: UInt64, _ index: Int) -> UInt64 { key }
}

extension TreeValue where Key == UInt128 {
    public static var keyWordCount: Int { 2 }
    @inline(__always)
    public static func keyWord(_ key: UInt128, _ index: Int) -> UInt64 {
        UInt64(truncatingIfNeeded: index == 0 ? key >> 64 : key)
    }
}

/// The key of an index tree over a u64 field (storage spec §5): `(field, timestamp)`, 16 bytes,
/// ordered by field then timestamp, so a range scan of one field value yields timestamps in order.
///
/// The value is the key itself. Timestamps are below 2^63, so the top bit of the stored
/// timestamp marks a tombstone; it is not part of the key's order.
public struct CompositeKey64: TreeValue, Comparable, Hashable {
    public var field: UInt64
    /// Timestamp; bit 63 set marks a tombstone.
    public var timestampAndFlag: UInt64

    public static let tombstoneBit: UInt64 = 1 << 63

    public init(field: UInt64, timestamp: UInt64) {
        precondition(timestamp < Self.tombstoneBit, "timestamps are below 2^63")
        self.field = field
        self.timestampAndFlag = timestamp
    }

    public var timestamp: UInt64 { timestampAndFlag & ~Self.tombstoneBit }
    public var key: CompositeKey64 { CompositeKey64(field: field, timestamp: timestamp) }
    public var isTombstone: Bool { timestampAndFlag & Self.tombstoneBit != 0 }

    public static func tombstone(key: CompositeKey64) -> CompositeKey64 {
        var value = key.key
        value.timestampAndFlag |= tombstoneBit
        return value
    }

    public static func < (lhs: CompositeKey64, rhs: CompositeKey64) -> Bool {
        (lhs.field, lhs.timestamp) < (rhs.field, rhs.timestamp)
    }

    public static var keyWordCount: Int { 2 }
    @inline(__always)
    public static func keyWord(_ key: CompositeKey64, _ index: Int) -> UInt64 {
        index == 0 ? key.field : key.timestamp
    }

    public static func == (lhs: CompositeKey64, rhs: CompositeKey64) -> Bool {
        lhs.field == rhs.field && lhs.timestamp == rhs.timestamp
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(field)
        hasher.combine(timestamp)
    }
}

/// The key of an index tree over a u128 field: `(field, timestamp)`, 24 bytes: the field as
/// two 64-bit words (low first, so bytes 0-15 are the u128 in little-endian order), then the
/// timestamp word. Stored as words rather than a `UInt128`, whose 16-byte alignment would pad
/// the value to 32 bytes: a quarter of every u128 index tree's memtable, blocks and compaction
/// IO was that padding (docs/decisions.md "24-byte u128 index keys").
public struct CompositeKey128: TreeValue, Comparable, Hashable {
    public var fieldLow: UInt64
    public var fieldHigh: UInt64
    /// Timestamp; bit 63 set marks a tombstone.
    public var timestampAndFlag: UInt64

    public init(field: UInt128, timestamp: UInt64) {
        precondition(timestamp < CompositeKey64.tombstoneBit, "timestamps are below 2^63")
        fieldLow = UInt64(truncatingIfNeeded: field)
        fieldHigh = UInt64(truncatingIfNeeded: field >> 64)
        self.timestampAndFlag = timestamp
    }

    public var field: UInt128 { UInt128(fieldHigh) << 64 | UInt128(fieldLow) }
    public var timestamp: UInt64 { timestampAndFlag & ~CompositeKey64.tombstoneBit }
    public var key: CompositeKey128 {
        var key = self
        key.timestampAndFlag &= ~CompositeKey64.tombstoneBit
        return key
    }
    public var isTombstone: Bool { timestampAndFlag & CompositeKey64.tombstoneBit != 0 }

    public static func tombstone(key: CompositeKey128) -> CompositeKey128 {
        var value = key.key
        value.timestampAndFlag |= CompositeKey64.tombstoneBit
        return value
    }

    @inline(__always)
    public static func < (lhs: CompositeKey128, rhs: CompositeKey128) -> Bool {
        if lhs.fieldHigh != rhs.fieldHigh { return lhs.fieldHigh < rhs.fieldHigh }
        if lhs.fieldLow != rhs.fieldLow { return lhs.fieldLow < rhs.fieldLow }
        return lhs.timestamp < rhs.timestamp
    }

    public static var keyWordCount: Int { 3 }
    @inline(__always)
    public static func keyWord(_ key: CompositeKey128, _ index: Int) -> UInt64 {
        switch index {
        case 0: key.fieldHigh
        case 1: key.fieldLow
        default: key.timestamp
        }
    }

    @inline(__always)
    public static func == (lhs: CompositeKey128, rhs: CompositeKey128) -> Bool {
        lhs.fieldLow == rhs.fieldLow && lhs.fieldHigh == rhs.fieldHigh && lhs.timestamp == rhs.timestamp
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(fieldLow)
        hasher.combine(fieldHigh)
        hasher.combine(timestamp)
    }
}

/// A value of an id tree: `id → timestamp` (32 bytes). The transfer id tree also records failed
/// ids ("orphaned", storage spec §5) with a flag, so a retried failed id is recognized.
public struct IdTreeValue: TreeValue {
    public var id: UInt128
    public var timestamp: UInt64
    /// Bit 0: tombstone. Bit 1: orphaned (the id of a failed transfer). Other bits zero.
    public var flags: UInt64

    public static let tombstoneFlag: UInt64 = 1
    public static let orphanedFlag: UInt64 = 2

    public init(id: UInt128, timestamp: UInt64, orphaned: Bool = false) {
        self.id = id
        self.timestamp = timestamp
        self.flags = orphaned ? Self.orphanedFlag : 0
    }

    public var key: UInt128 { id }
    public var isTombstone: Bool { flags & Self.tombstoneFlag != 0 }
    public var isOrphaned: Bool { flags & Self.orphanedFlag != 0 }

    public static func tombstone(key: UInt128) -> IdTreeValue {
        var value = IdTreeValue(id: key, timestamp: 0)
        value.flags = tombstoneFlag
        return value
    }
}

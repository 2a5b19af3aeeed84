/// How a referrer names a grid block: its address and the checksum its header must carry
/// (storage spec §4: the checksum lives in the referrer, so a read knows what to expect and a
/// misdirected or stale block is never returned as data). Address 0 is null.
public struct BlockReference: Hashable, Sendable {
    public var address: UInt64
    public var checksum: UInt128

    public init(address: UInt64, checksum: UInt128) {
        self.address = address
        self.checksum = checksum
    }

    public static let null = BlockReference(address: 0, checksum: 0)

    public var isNull: Bool { address == 0 }
}

/// `ChangeEventsFilter` (64 bytes): the event of `get_change_events`.
public struct ChangeEventsFilter: Hashable, Sendable {
    /// Inclusive; zero means unbounded.
    public var timestampMin: UInt64
    /// Inclusive; zero means unbounded.
    public var timestampMax: UInt64
    /// At least 1; clamped to `Constants.changeEventsMax`.
    public var limit: UInt32
    /// 44 reserved bytes at offset 20; all must be zero.
    public var reservedHead: UInt32
    public var reservedTail: Padding40

    public init(timestampMin: UInt64 = 0, timestampMax: UInt64 = 0, limit: UInt32 = 0) {
        self.timestampMin = timestampMin
        self.timestampMax = timestampMax
        self.limit = limit
        self.reservedHead = 0
        self.reservedTail = Padding40()
    }

    public var reservedIsZero: Bool { reservedHead == 0 && reservedTail.isZero }
}

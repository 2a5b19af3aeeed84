/// One result of `create_accounts` (16 bytes): exactly one per event, in event order.
public struct CreateAccountResult: Hashable, Sendable {
    /// The object's timestamp for `created`/`exists`; otherwise the event's slot timestamp.
    public var timestamp: UInt64
    public var status: CreateAccountStatus
    public var reserved: UInt32

    public init(timestamp: UInt64, status: CreateAccountStatus) {
        self.timestamp = timestamp
        self.status = status
        self.reserved = 0
    }
}

/// One result of `create_transfers` (16 bytes): exactly one per event, in event order.
public struct CreateTransferResult: Hashable, Sendable {
    /// The object's timestamp for `created`/`exists`; otherwise the event's slot timestamp.
    public var timestamp: UInt64
    public var status: CreateTransferStatus
    public var reserved: UInt32

    public init(timestamp: UInt64, status: CreateTransferStatus) {
        self.timestamp = timestamp
        self.status = status
        self.reserved = 0
    }
}

/// `TransferFlags` (u16 on the wire). Stored exactly as submitted.
public struct TransferFlags: OptionSet, Hashable, Sendable, BitwiseCopyable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let linked = TransferFlags(rawValue: 1 << 0)
    /// Reserves the amount; a later post or void (or the timeout) resolves it.
    public static let pending = TransferFlags(rawValue: 1 << 1)
    public static let postPendingTransfer = TransferFlags(rawValue: 1 << 2)
    public static let voidPendingTransfer = TransferFlags(rawValue: 1 << 3)
    /// Clamps the amount to what the debit account can give.
    public static let balancingDebit = TransferFlags(rawValue: 1 << 4)
    /// Clamps the amount to what the credit account can take.
    public static let balancingCredit = TransferFlags(rawValue: 1 << 5)
    /// Closes the debit account (pending transfers only; a void reopens it).
    public static let closingDebit = TransferFlags(rawValue: 1 << 6)
    /// Closes the credit account (pending transfers only; a void reopens it).
    public static let closingCredit = TransferFlags(rawValue: 1 << 7)
    public static let imported = TransferFlags(rawValue: 1 << 8)

    /// Bits 9–15 must be zero.
    public static let padding = TransferFlags(rawValue: 0xFE00)
}


/// A reply (command 8, wire spec §4.5): the answer to one committed client request. The client
/// sessions table keeps the latest one per client (spec §8), so a retried request gets the same
/// header back.
///
/// ```
/// 128 requestChecksum         u128   checksum of the request header answered
/// 144 requestChecksumPadding  u128   zero
/// 160 context                 u128   what the client chains its next request on
/// 176 contextPadding          u128   zero
/// 192 client                  u128
/// 208 op                      u64    the op of the request (= commit)
/// 216 commit                  u64
/// 224 timestamp               u64    the op's timestamp
/// 232 request                 u32
/// 236 operation               u8
/// 237 reserved                19 bytes, zero
/// ```
public struct ReplyHeader: HeaderLayout, Equatable {
    public var frame = HeaderFrame()
    public var requestChecksum: UInt128 = 0
    public var requestChecksumPadding: UInt128 = 0
    public var context: UInt128 = 0
    public var contextPadding: UInt128 = 0
    public var client: UInt128 = 0
    public var op: UInt64 = 0
    public var commit: UInt64 = 0
    public var timestamp: UInt64 = 0
    public var request: UInt32 = 0
    public var operation: UInt8 = 0
    public var reserved0: UInt8 = 0
    public var reserved1: UInt16 = 0
    public var reserved2: UInt64 = 0
    public var reserved3: UInt64 = 0

    public init() {
        frame.command = Command.reply.rawValue
    }

    /// The reply to the committed `prepare` whose reply body is `body` (wire spec §5.6 "How a
    /// replica builds a reply"). Deterministic: a replay builds the same bytes, which is what
    /// lets the sessions table be checkpointed and rebuilt.
    public init(prepare: PrepareHeader, body: UnsafeRawBufferPointer) {
        self.init()
        frame.cluster = prepare.frame.cluster
        frame.size = UInt32(Constants.messageHeaderSize + body.count)
        frame.view = prepare.frame.view
        frame.release = prepare.frame.release
        frame.replica = prepare.frame.replica
        requestChecksum = prepare.requestChecksum
        client = prepare.client
        op = prepare.op
        commit = prepare.op
        timestamp = prepare.timestamp
        request = prepare.request
        operation = prepare.operation
        frame.checksumBody = LedgerKit.checksum(body)
        // The context is the checksum with context 0, computed once: a resent reply with a
        // raised view keeps it.
        context = computeChecksum()
        frame.checksum = computeChecksum()
    }

    /// Whether every must-be-zero byte is zero.
    public var hasZeroPadding: Bool {
        frame.hasZeroPadding && requestChecksumPadding == 0 && contextPadding == 0 && reserved0 == 0
            && reserved1 == 0 && reserved2 == 0 && reserved3 == 0
    }

    public static func == (lhs: ReplyHeader, rhs: ReplyHeader) -> Bool {
        lhs.untyped == rhs.untyped
    }
}

/// The bodies of the register operation (wire spec §7.5). Both are laid out as Swift structs
/// whose bytes are the wire bytes (little-endian host, no implicit padding: checked by tests),
/// so encoding is one copy and decoding one unaligned load.

/// The body of a `register` request: 256 bytes, all zero from clients. The primary fills in
/// `batchSizeLimit` itself when it prepares the register.
///
/// ```
/// 0  batchSizeLimit  u32
/// 4  reserved        252 bytes, zero
/// ```
public struct RegisterRequest: Hashable, Sendable {
    public static let size = 256

    public var batchSizeLimit: UInt32 = 0
    public var reserved0: UInt32 = 0
    public var reserved1 = Padding56()
    public var reserved2 = Padding56()
    public var reserved3 = Padding56()
    public var reserved4 = Padding40()
    public var reserved5 = Padding40()

    public init() {}

    public init(batchSizeLimit: UInt32) {
        self.batchSizeLimit = batchSizeLimit
    }

    /// Decodes exactly `size` bytes (no alignment needed); nil for any other length.
    public init?(decoding bytes: UnsafeRawBufferPointer) {
        guard bytes.count == Self.size else { return nil }
        self = bytes.loadUnaligned(as: RegisterRequest.self)
    }

    /// Writes the `size` wire bytes into the start of `buffer`.
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(MemoryLayout<RegisterRequest>.size == Self.size, "a register request is 256 bytes")
        precondition(buffer.count >= Self.size, "the buffer holds a register request")
        withUnsafeBytes(of: self) { buffer.copyMemory(from: $0) }
    }

    public var hasZeroReserved: Bool {
        reserved0 == 0 && reserved1.isZero && reserved2.isZero && reserved3.isZero
            && reserved4.isZero && reserved5.isZero
    }

    /// What a client may send: every byte zero. A real primary asserts this while preparing,
    /// so a replica must evict anything else (reason `invalidRequestBody`) rather than pass it on.
    public var isValidFromClient: Bool { batchSizeLimit == 0 && hasZeroReserved }
}

/// The body of the reply to a `register`: 64 bytes.
///
/// ```
/// 0  batchSizeLimit  u32   largest request body the cluster accepts, 1…1,048,320
/// 4  reserved        60 bytes, zero
/// ```
public struct RegisterResult: Hashable, Sendable {
    public static let size = 64

    public var batchSizeLimit: UInt32 = 0
    public var reserved0: UInt32 = 0
    public var reserved1 = Padding56()

    public init() {}

    public init(batchSizeLimit: UInt32) {
        self.batchSizeLimit = batchSizeLimit
    }

    /// Decodes exactly `size` bytes (no alignment needed); nil for any other length.
    public init?(decoding bytes: UnsafeRawBufferPointer) {
        guard bytes.count == Self.size else { return nil }
        self = bytes.loadUnaligned(as: RegisterResult.self)
    }

    /// Writes the `size` wire bytes into the start of `buffer`.
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(MemoryLayout<RegisterResult>.size == Self.size, "a register result is 64 bytes")
        precondition(buffer.count >= Self.size, "the buffer holds a register result")
        withUnsafeBytes(of: self) { buffer.copyMemory(from: $0) }
    }

    public var hasZeroReserved: Bool { reserved0 == 0 && reserved1.isZero }

    /// What a client may accept (§5.3): a limit of at least one byte and at most the largest
    /// body, and zero reserved bytes. The official client aborts on anything else.
    public var isValid: Bool {
        batchSizeLimit >= 1 && batchSizeLimit <= UInt32(Constants.messageBodySizeMax) && hasZeroReserved
    }
}

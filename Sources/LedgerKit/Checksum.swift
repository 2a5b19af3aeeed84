// The 128-bit checksum of the wire protocol (specs/wire-protocol.md §3): AEGIS-128L used as a MAC
// (zero key and nonce, input as associated data, 128-bit tag). It is computed in the C target
// CLedgerChecksum because AES-NI intrinsics cannot be used from Swift without compiler flags
// (specs/swift-engineering.md §2). No Foundation: the server links the stdlib only.

import CLedgerChecksum

/// The checksum of `bytes`: the 16 AEGIS-128L tag bytes read as a little-endian `UInt128`, which is
/// what TigerBeetle stores in the `checksum` and `checksum_body` header fields.
///
/// `@inlinable` so that callers in other modules call the C function directly: per-message header
/// checksums are on the hot path (about 15 ns for 128 bytes).
@inlinable
public func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt128 {
    var tag: UInt128 = 0
    withUnsafeMutableBytes(of: &tag) { out in
        ledger_checksum(
            bytes.baseAddress, bytes.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
    return UInt128(littleEndian: tag)
}

/// A checksum computed over input that arrives in pieces (for example a body spread over several
/// buffers). Feeding the pieces in order gives exactly `checksum(_:)` of their concatenation,
/// whatever the piece sizes.
///
/// A value type: copying it forks the stream. `finalize()` does not consume the stream, so more
/// bytes may be fed afterwards and `finalize()` called again for the longer input.
public struct ChecksumStream: Sendable {
    @usableFromInline
    internal var state = ledger_checksum_stream()

    /// A stream over zero bytes so far.
    @inlinable
    public init() {
        ledger_checksum_stream_init(&state)
    }

    /// Appends `bytes` to the input.
    @inlinable
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        ledger_checksum_stream_update(&state, bytes.baseAddress, bytes.count)
    }

    /// The checksum of all bytes fed so far. Non-mutating (see the type's documentation).
    @inlinable
    public func finalize() -> UInt128 {
        var tag: UInt128 = 0
        withUnsafePointer(to: state) { statePointer in
            withUnsafeMutableBytes(of: &tag) { out in
                ledger_checksum_stream_final(
                    statePointer, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return UInt128(littleEndian: tag)
    }
}

public enum ChecksumConstants {
    /// The checksum of zero bytes: the `checksum_body` of every message with an empty body.
    public static let empty: UInt128 = 0x49f1_7461_8255_402d_e6e7_e3c4_0d60_cc83
}

/// Whether this CPU uses the AES-NI path (otherwise the portable software AES round).
internal var checksumUsesAESNI: Bool { ledger_checksum_has_aesni() != 0 }

/// The portable (software AES) implementation, whatever the CPU supports; for tests that compare
/// it with the AES-NI path.
internal func checksumPortable(_ bytes: UnsafeRawBufferPointer) -> UInt128 {
    var tag: UInt128 = 0
    withUnsafeMutableBytes(of: &tag) { out in
        ledger_checksum_portable(
            bytes.baseAddress, bytes.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
    return UInt128(littleEndian: tag)
}

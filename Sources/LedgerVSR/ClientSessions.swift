import LedgerKit

// The client sessions table (storage spec §8): `clientsMax` slots, each a client's session
// (the op its `register` committed at), its latest request number and the header of its latest
// reply. Changed only by committed ops, in op order, so every replica (and every replay) holds
// the same table; it is checkpointed in the client-sessions trailer.
//
// Encoding (little-endian, fixed size for a given capacity; the trailer checksums it):
//
// | offset | size | field |
// | --- | --- | --- |
// | 0 | 2 | version (1) |
// | 2 | 2 | reserved, zero |
// | 4 | 4 | capacity (slots) |
// | 8 | 4 | count (slots in use) |
// | 12 | 4 | reserved, zero |
// | 16 + 288·s | 16 | slot s: client (0: free slot, then the whole slot is zero) |
// | +16 | 8 | session |
// | +24 | 4 | request |
// | +28 | 4 | reserved, zero |
// | +32 | 256 | latest reply header |

/// Why bytes are not a client sessions table. Hostile or corrupt bytes give one of these,
/// never a crash.
public enum ClientSessionsDecodeError: Error, Equatable, Sendable {
    /// Not the encoded size for this capacity.
    case size(Int)
    case version(UInt16)
    /// The table was written for another `clientsMax`.
    case capacity(UInt32)
    /// `count` is not the number of slots in use.
    case count(UInt32)
    /// A reserved field is not zero.
    case reserved
    /// A slot in use does not hold together (zero session, bad reply header), or a free slot
    /// is not all zero.
    case slot(Int)
    /// Two slots hold the same client.
    case duplicateClient(slot: Int)
}

public struct ClientSessions: Equatable, Sendable {
    public struct Session: Equatable, Sendable {
        public var client: UInt128
        /// The op at which the client's `register` committed.
        public var session: UInt64
        /// The latest committed request number.
        public var request: UInt32
        /// The header of the reply to that request.
        public var reply: ReplyHeader

        public init(client: UInt128, session: UInt64, request: UInt32, reply: ReplyHeader) {
            self.client = client
            self.session = session
            self.request = request
            self.reply = reply
        }
    }

    public static let versionCurrent: UInt16 = 1
    static let headerSize = 16
    static let slotSize = 32 + Constants.messageHeaderSize

    /// Slots (`clientsMax`).
    public let capacity: Int
    /// The slots, nil when free. Fixed length: allocated once.
    public private(set) var slots: [Session?]

    public init(capacity: Int) {
        precondition(capacity >= 1, "a sessions table has a slot")
        precondition(capacity <= Int(UInt32.max), "the capacity fits its field")
        self.capacity = capacity
        slots = [Session?](repeating: nil, count: capacity)
    }

    /// Sessions in use.
    public var count: Int {
        var result = 0
        for slot in slots where slot != nil { result += 1 }
        return result
    }

    public func session(client: UInt128) -> Session? {
        guard let index = slotIndex(client: client) else { return nil }
        return slots[index]
    }

    /// The slot of `client`'s session: also its slot in the client-replies zone.
    public func slotIndex(client: UInt128) -> Int? {
        guard client != 0 else { return nil }
        return slots.firstIndex { $0?.client == client }
    }

    // MARK: Changes (committed ops only)

    /// Applies a committed op: a `register` opens (or renews) the client's session at the op,
    /// another client request updates the client's latest request and reply; internal ops
    /// (client 0) and requests of clients without a session (evicted meanwhile) change
    /// nothing. Returns the client a register evicted, if any.
    @discardableResult
    public mutating func commit(prepare: PrepareHeader, reply: ReplyHeader) -> UInt128? {
        guard prepare.client != 0 else { return nil }
        if prepare.operation == VSROperation.register.rawValue {
            return register(client: prepare.client, session: prepare.op, reply: reply)
        }
        update(client: prepare.client, request: prepare.request, reply: reply)
        return nil
    }

    /// Opens `client`'s session at `session` (the register's op). A full table evicts the
    /// session whose latest reply is the oldest (deterministic, unlike a hash map's order).
    /// Returns the evicted client.
    @discardableResult
    public mutating func register(client: UInt128, session: UInt64, reply: ReplyHeader) -> UInt128? {
        precondition(client != 0, "a session belongs to a client")
        precondition(session != 0, "a session is the op of a committed register")
        let entry = Session(client: client, session: session, request: 0, reply: reply)
        if let index = slotIndex(client: client) {
            slots[index] = entry
            return nil
        }
        if let free = slots.firstIndex(where: { $0 == nil }) {
            slots[free] = entry
            return nil
        }
        var oldest = 0
        for index in 1..<capacity where slots[index]!.reply.op < slots[oldest]!.reply.op {
            oldest = index
        }
        let evicted = slots[oldest]!.client
        slots[oldest] = entry
        return evicted
    }

    /// Records `client`'s latest committed request and its reply. Returns false (and changes
    /// nothing) when the client has no session.
    @discardableResult
    public mutating func update(client: UInt128, request: UInt32, reply: ReplyHeader) -> Bool {
        guard let index = slotIndex(client: client) else { return false }
        slots[index]!.request = request
        slots[index]!.reply = reply
        return true
    }

    // MARK: Encoding

    public static func encodedSize(capacity: Int) -> Int { headerSize + capacity * slotSize }

    public var encodedSize: Int { Self.encodedSize(capacity: capacity) }

    /// Writes the table into the first `encodedSize` bytes of `bytes`; returns that size.
    @discardableResult
    public func encode(into bytes: UnsafeMutableRawBufferPointer) -> Int {
        let size = encodedSize
        precondition(bytes.count >= size, "the buffer holds the encoded table")
        UnsafeMutableRawBufferPointer(rebasing: bytes[0..<size]).initializeMemory(as: UInt8.self, repeating: 0)
        bytes.storeBytes(of: Self.versionCurrent.littleEndian, toByteOffset: 0, as: UInt16.self)
        bytes.storeBytes(of: UInt32(capacity).littleEndian, toByteOffset: 4, as: UInt32.self)
        bytes.storeBytes(of: UInt32(count).littleEndian, toByteOffset: 8, as: UInt32.self)
        for index in 0..<capacity {
            guard let entry = slots[index] else { continue }
            let base = Self.headerSize + index * Self.slotSize
            bytes.storeBytes(of: entry.client.littleEndian, toByteOffset: base, as: UInt128.self)
            bytes.storeBytes(of: entry.session.littleEndian, toByteOffset: base + 16, as: UInt64.self)
            bytes.storeBytes(of: entry.request.littleEndian, toByteOffset: base + 24, as: UInt32.self)
            bytes.storeBytes(of: entry.reply, toByteOffset: base + 32, as: ReplyHeader.self)
        }
        return size
    }

    /// Reads a table of `capacity` slots from exactly `encodedSize(capacity:)` bytes, checking
    /// every field (the trailer's checksum proves the bytes were written, not that the writer
    /// was right).
    public static func decode(
        _ bytes: UnsafeRawBufferPointer, capacity: Int
    ) throws(ClientSessionsDecodeError) -> ClientSessions {
        guard bytes.count == encodedSize(capacity: capacity) else { throw .size(bytes.count) }
        let version = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        guard version == versionCurrent else { throw .version(version) }
        let storedCapacity = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard storedCapacity == UInt32(capacity) else { throw .capacity(storedCapacity) }
        let storedCount = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self) == 0,
              bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self) == 0
        else { throw .reserved }
        var table = ClientSessions(capacity: capacity)
        var used: UInt32 = 0
        for index in 0..<capacity {
            let base = headerSize + index * slotSize
            let slot = UnsafeRawBufferPointer(rebasing: bytes[base..<(base + slotSize)])
            let client = UInt128(littleEndian: slot.loadUnaligned(fromByteOffset: 0, as: UInt128.self))
            if client == 0 {
                guard slot.allSatisfy({ $0 == 0 }) else { throw .slot(index) }
                continue
            }
            let session = UInt64(littleEndian: slot.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            let request = UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
            let reserved = slot.loadUnaligned(fromByteOffset: 28, as: UInt32.self)
            let reply = slot.loadUnaligned(fromByteOffset: 32, as: ReplyHeader.self)
            guard session != 0, reserved == 0, isValid(reply: reply, client: client, session: session, request: request)
            else { throw .slot(index) }
            guard table.slotIndex(client: client) == nil else { throw .duplicateClient(slot: index) }
            table.slots[index] = Session(client: client, session: session, request: request, reply: reply)
            used += 1
        }
        guard used == storedCount else { throw .count(storedCount) }
        return table
    }

    /// Whether a stored reply is one this table could hold for the session.
    private static func isValid(reply: ReplyHeader, client: UInt128, session: UInt64, request: UInt32) -> Bool {
        reply.isChecksumValid && reply.frame.command == Command.reply.rawValue && reply.hasZeroPadding
            && reply.client == client && reply.request == request && reply.op >= session
            && reply.op == reply.commit
    }
}

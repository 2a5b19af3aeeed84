#if canImport(Glibc)
import Glibc
#endif
import LedgerIO
import LedgerKit

/// Names one connection of a `MessageBus`: its slot and the slot's generation when the
/// connection was accepted. A slot is reused by later connections with a higher generation, so
/// an id kept after its connection closed never reaches the next connection in that slot (the
/// generation wraps after 2^32 connections in one slot: far beyond a replica's lifetime between
/// restarts, and a wrapped id would still need to be held that long).
public struct ConnectionId: Hashable, Sendable, CustomStringConvertible {
    public let slot: UInt32
    public let generation: UInt32

    public init(slot: UInt32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }

    public var description: String { "connection \(slot).\(generation)" }
}

/// Who is at the other end of a connection, as learned from its messages (wire spec §2.4).
/// Replica peers join this when replica↔replica connections are built.
enum MessageBusPeer: Equatable {
    case unknown
    case client(UInt128)
}

/// The state of one connection slot of a `MessageBus`, with its buffers and completions. All of
/// it is allocated when the bus starts and reused by every connection that lands in the slot.
///
/// Life of a slot: `free` → (accept) `open` → (peer gone, bad bytes, `close`, `shutdown`)
/// `closing`: cancel in-flight recv/send and wait for them → `closingSocket`: the socket's close
/// in flight → `free`. The socket is closed only once nothing else is in flight on it, because a
/// close does not cancel the ring's operations on the socket (TCP.swift), and the slot is reused
/// only after the close, so no completion of an old connection ever lands on a new one.
final class MessageBusConnection {
    enum State: Equatable {
        case free
        case open
        case closing
        case closingSocket
    }

    let slot: Int
    var state = State.free
    var generation: UInt32 = 0
    var fd: Int32 = -1
    var peer = MessageBusPeer.unknown
    /// Ticks since bytes last arrived (the bus's idle rule).
    var idleTicks = 0

    /// Received bytes not yet delivered: `recvBuffer[recvStart..<recvEnd]`. Capacity is one
    /// whole message, so after compaction a partial message always leaves room to receive.
    let recvBuffer: UnsafeMutableRawBufferPointer
    var recvStart = 0
    var recvEnd = 0

    /// The send queue: `sendQueueMax` buffers of one message each, used as a ring. The message
    /// being sent is at `sendHead`, `sendSentBytes` of it already with the kernel.
    let sendBuffers: UnsafeMutableRawBufferPointer
    let sendSizes: UnsafeMutableBufferPointer<Int>
    var sendHead = 0
    var sendCount = 0
    var sendSentBytes = 0

    let recvCompletion = IOCompletion()
    let sendCompletion = IOCompletion()
    let recvCancelCompletion = IOCompletion()
    let sendCancelCompletion = IOCompletion()
    let closeCompletion = IOCompletion()

    init(slot: Int, recvBuffer: UnsafeMutableRawBufferPointer,
         sendBuffers: UnsafeMutableRawBufferPointer, sendQueueMax: Int)
    {
        precondition(recvBuffer.count == Constants.messageSizeMax, "the receive buffer holds one message")
        precondition(
            sendBuffers.count == sendQueueMax * Constants.messageSizeMax,
            "one send buffer per queued message")
        self.slot = slot
        self.recvBuffer = recvBuffer
        self.sendBuffers = sendBuffers
        sendSizes = .allocate(capacity: sendQueueMax)
        sendSizes.initialize(repeating: 0)
        for completion in [recvCompletion, sendCompletion, recvCancelCompletion, sendCancelCompletion,
                           closeCompletion]
        {
            completion.tag = slot
        }
    }

    deinit { sendSizes.deallocate() }

    var sendQueueMax: Int { sendSizes.count }

    /// Whether `id` names the connection now in this slot and it is open.
    func isCurrent(_ id: ConnectionId) -> Bool {
        state == .open && generation == id.generation
    }

    var id: ConnectionId { ConnectionId(slot: UInt32(slot), generation: generation) }

    /// Whether any operation of this slot is still in the ring.
    var hasOperationsInFlight: Bool {
        recvCompletion.isBusy || sendCompletion.isBusy || recvCancelCompletion.isBusy
            || sendCancelCompletion.isBusy || closeCompletion.isBusy
    }

    /// Resets the slot for a newly accepted socket. Buffers keep their (stale) bytes: only the
    /// indexes say what is valid.
    func open(fd: Int32) {
        precondition(state == .free, "a connection opens in a free slot")
        precondition(!hasOperationsInFlight, "a free slot has nothing in flight")
        state = .open
        generation &+= 1  // Wraps by design: see ConnectionId.
        self.fd = fd
        peer = .unknown
        idleTicks = 0
        recvStart = 0
        recvEnd = 0
        sendHead = 0
        sendCount = 0
        sendSentBytes = 0
    }

    /// The send buffer of queue position `index` (0 = the head).
    func sendBuffer(at index: Int) -> UnsafeMutableRawBufferPointer {
        precondition(index < sendQueueMax, "send queue index in range")
        let buffer = (sendHead + index) % sendQueueMax
        let start = buffer * Constants.messageSizeMax
        return UnsafeMutableRawBufferPointer(
            rebasing: sendBuffers[start..<(start + Constants.messageSizeMax)])
    }

    /// The size of the message at queue position `index`.
    func sendSize(at index: Int) -> Int {
        sendSizes[(sendHead + index) % sendQueueMax]
    }

    func setSendSize(_ size: Int, at index: Int) {
        sendSizes[(sendHead + index) % sendQueueMax] = size
    }

    /// Moves the undelivered bytes to the start of the receive buffer, so the rest of the message
    /// fits. Each byte moves at most once: it is then at the front, and the next move happens
    /// only after the message at the front was delivered.
    func compactReceived() {
        precondition(recvStart <= recvEnd, "receive indexes ordered")
        if recvStart == 0 { return }
        let pending = recvEnd - recvStart
        if pending > 0 {
            // memmove: the ranges overlap when more than half the buffer is pending.
            memmove(recvBuffer.baseAddress!, recvBuffer.baseAddress! + recvStart, pending)
        }
        recvStart = 0
        recvEnd = pending
    }
}

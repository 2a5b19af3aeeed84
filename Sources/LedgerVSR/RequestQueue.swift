#if canImport(Glibc)
import Glibc
#endif
import LedgerKit

/// Client requests that passed every check but found the pipeline full (the WAL writes and
/// commits of `pipelinePrepareQueueMax` prepares in flight): kept whole, in arrival order, and
/// prepared as commits free the pipeline (storage spec §7 "Normal operation" step 2: further
/// requests queue).
///
/// Memory: `capacity` × 1 MiB, allocated at init but not written, so only slots that held a
/// message of that size are resident (24 MiB at most with the default 24). A full queue drops
/// the request: the client retries after its timeout.
final class RequestQueue {
    let capacity: Int
    private let slots: UnsafeMutableRawPointer
    private var sizes: [Int]
    private var clients: [UInt128]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        precondition(capacity >= 1, "a request queue holds a request")
        self.capacity = capacity
        slots = UnsafeMutableRawPointer.allocate(
            byteCount: capacity * Constants.messageSizeMax, alignment: Constants.sectorSize)
        sizes = [Int](repeating: 0, count: capacity)
        clients = [UInt128](repeating: 0, count: capacity)
    }

    deinit { slots.deallocate() }

    var isFull: Bool { count == capacity }

    /// Copies `message` (a request of `client`) to the back. The caller checked `isFull`.
    func push(_ message: UnsafeRawBufferPointer, client: UInt128) {
        precondition(!isFull, "push onto a queue with room")
        precondition(message.count <= Constants.messageSizeMax, "a request fits a message")
        let index = (head + count) % capacity
        let slot = slots + index * Constants.messageSizeMax
        slot.copyMemory(from: message.baseAddress!, byteCount: message.count)
        sizes[index] = message.count
        clients[index] = client
        count += 1
    }

    /// The oldest request (valid until `pop`).
    var front: UnsafeRawBufferPointer? {
        guard count > 0 else { return nil }
        return UnsafeRawBufferPointer(start: slots + head * Constants.messageSizeMax, count: sizes[head])
    }

    func pop() {
        precondition(count > 0, "pop from a queue with a request")
        clients[head] = 0
        head = (head + 1) % capacity
        count -= 1
    }

    /// Whether a request of `client` is queued.
    func contains(client: UInt128) -> Bool {
        // Bounded by the capacity.
        for offset in 0..<count where clients[(head + offset) % capacity] == client { return true }
        return false
    }
}

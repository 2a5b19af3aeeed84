/// What the replica needs from the network to serve clients: learn which connection a client
/// is on, and send it messages (wire spec §2.4). Two implementations: `MessageBus` (io_uring
/// TCP) and the simulator's network (and a recording bus in tests); the replica is generic
/// over it, so neither goes through an existential.
public protocol ClientBus: AnyObject {
    associatedtype Connection: Hashable

    /// `connection` carried a valid message from `client`: replies to the client go there.
    func associate(_ connection: Connection, client: UInt128)

    /// Queues `message` (copied) for `client`'s connection; false when the client has no
    /// connection or its queue is full. The protocol tolerates the loss: clients retry.
    @discardableResult
    func send(_ message: UnsafeRawBufferPointer, toClient client: UInt128) -> Bool
}

import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerStateMachine
import LedgerTesting
import LedgerVSR

/// A bus that records what the replica sends, per client (the replica routes by client id).
final class RecordingBus: ClientBus {
    typealias Connection = Int
    var connections: [UInt128: Int] = [:]
    var sent: [(client: UInt128, bytes: [UInt8])] = []

    func associate(_ connection: Int, client: UInt128) { connections[client] = connection }

    func send(_ message: UnsafeRawBufferPointer, toClient client: UInt128) -> Bool {
        sent.append((client: client, bytes: Array(message)))
        return true
    }

    /// Messages sent to `client` since `index`.
    func messages(to client: UInt128, from index: Int = 0) -> [[UInt8]] {
        sent[index...].filter { $0.client == client }.map(\.bytes)
    }
}

/// Time that moves only when a test says so.
final class ManualTime: TimeSource {
    var monotonic: UInt64 = 1_000_000_000
    var realtime: Int64 = 1_700_000_000_000_000_000

    func monotonicNs() -> UInt64 { monotonic }
    func realtimeNs() -> Int64 { realtime }

    func advance(ns: UInt64) {
        monotonic += ns
        realtime += Int64(ns)
    }
}

/// A one-replica cluster on a simulated disk, with a replica that can be restarted on the same
/// disk, and clients that speak the wire protocol the way the official client does (hash
/// chain, request numbers, one request in flight).
final class ReplicaHarness {
    typealias TestReplica = Replica<SimulatedStorage, RecordingBus, ManualTime>
    static let cluster: UInt128 = DurableLedgerRun.cluster

    let storage: SimulatedStorage
    let bus = RecordingBus()
    let time = ManualTime()
    var ledger: DurableLedger<SimulatedStorage>
    var replica: TestReplica

    /// The testing geometry with more sessions than pipeline places (8 > 4), so that
    /// requests can queue.
    static func storageConfiguration() -> StorageConfiguration {
        var configuration = DurableLedgerRun.storageConfiguration()
        configuration.clientsMax = 8
        return configuration
    }

    init(seed: UInt64) {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...8
        options.writeLatencyTicks = 1...8
        storage = SimulatedStorage(layout: DataFileLayout(Self.storageConfiguration()), seed: seed, options: options)
        var formatted = false
        DataFileFormatter.format(
            storage: storage,
            options: .init(cluster: Self.cluster, replica: 0, replicaCount: 1, sizeBytes: 0, release: Constants.release),
            storageSize: storage.layout.sizeMin
        ) { _ in formatted = true }
        _ = storage.runUntilIdle()
        precondition(formatted, "format completes")
        (ledger, replica) = Self.start(storage: storage, bus: bus, time: time)
    }

    static func start(
        storage: SimulatedStorage, bus: RecordingBus, time: ManualTime
    ) -> (DurableLedger<SimulatedStorage>, TestReplica) {
        let ledger = DurableLedger(
            storage: storage,
            configuration: ForestStoreConfiguration(
                storage: storageConfiguration(),
                caches: .init(accounts: 32, transfers: 32, transfersPending: 16, accountEvents: 0, gridBlocks: 64),
                batchEventsMax: DurableLedgerRun.batchEventsMax, expiriesMax: 256, growthFactor: 4, tablesMax: 64,
                lookupsMax: 4, gridReadsMax: 8, manifestLogTablesMax: 4096),
            batchEventsMax: DurableLedgerRun.batchEventsMax)
        var opened: Result<Void, DurableLedgerOpenError>?
        ledger.open { opened = $0 }
        let finished = storage.run(until: { opened != nil })
        precondition(finished, "the ledger opens")
        guard case .success = opened! else { preconditionFailure("the ledger opens: \(opened!)") }
        return (ledger, Replica(ledger: ledger, bus: bus, time: time))
    }

    /// Throws the replica away (a crash: IO in flight is lost) and starts a new one on the disk.
    func restart() {
        storage.crash()
        (ledger, replica) = Self.start(storage: storage, bus: bus, time: time)
    }

    /// Delivers `message` and runs the disk and ticks until nothing is in flight.
    func deliver(_ message: [UInt8], connection: Int = 1) {
        message.withUnsafeBytes { replica.receive($0, from: connection) }
        settle()
    }

    func settle() {
        // Bounded: each round ticks the replica once and runs the disk until idle.
        for _ in 0..<256 {
            replica.tick()
            _ = storage.runUntilIdle()
            if ledger.opHead == ledger.commitMin && replica.queuedRequestCount == 0 { break }
        }
    }
}

/// A client of the protocol: builds requests the way the official client does.
struct TestClient {
    let id: UInt128
    var release: UInt32 = Constants.release
    var session: UInt64 = 0
    var requestNext: UInt32 = 0
    /// The checksum of the last request sent (what its reply must name), then the reply's
    /// context (what the next request chains on).
    var parent: UInt128 = 0
    var view: UInt32 = 0

    init(id: UInt128) { self.id = id }

    /// A request header sealed over `body`, without changing the client's state.
    func header(operation: UInt8, body: [UInt8], request: UInt32, parent: UInt128, session: UInt64) -> RequestHeader {
        var header = RequestHeader()
        header.frame.cluster = ReplicaHarness.cluster
        header.frame.size = UInt32(Constants.messageHeaderSize + body.count)
        header.frame.release = release
        header.frame.view = view
        header.client = id
        header.parent = parent
        header.session = session
        header.request = request
        header.operation = operation
        body.withUnsafeBytes { header.seal(body: $0) }
        return header
    }

    static func message(_ header: RequestHeader, body: [UInt8]) -> [UInt8] {
        var header = header
        var bytes = withUnsafeBytes(of: &header) { Array($0) }
        bytes.append(contentsOf: body)
        return bytes
    }

    /// The register request (256 zero bytes of body).
    mutating func register() -> [UInt8] {
        let body = [UInt8](repeating: 0, count: 256)
        let header = header(operation: VSROperation.register.rawValue, body: body, request: 0, parent: 0, session: 0)
        parent = header.frame.checksum
        requestNext = 1
        return Self.message(header, body: body)
    }

    /// The next request of `operation` with `body`.
    mutating func request(_ operation: Operation, body: [UInt8]) -> [UInt8] {
        let header = header(
            operation: operation.rawValue, body: body, request: requestNext, parent: parent, session: session)
        parent = header.frame.checksum
        requestNext += 1
        return Self.message(header, body: body)
    }

    /// Takes a reply the way the official client does (wire spec §5.6); returns it, or nil
    /// when the client would have ignored it.
    mutating func accept(_ bytes: [UInt8]) -> ReplyHeader? {
        guard bytes.count >= Constants.messageHeaderSize else { return nil }
        let reply = bytes.withUnsafeBytes { $0.loadUnaligned(as: ReplyHeader.self) }
        guard reply.frame.command == Command.reply.rawValue, reply.isChecksumValid, reply.client == id,
            reply.requestChecksum == parent
        else { return nil }
        let body = bytes.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[Constants.messageHeaderSize...]) }
        guard reply.isBodyValid(body) else { return nil }
        if reply.operation == VSROperation.register.rawValue { session = reply.commit }
        parent = reply.context
        view = max(view, reply.frame.view)
        return reply
    }
}

/// Request bodies, multi-batch encoded (one batch).
enum Bodies {
    static func encode<Event>(_ events: [Event], elementSize: Int) -> [UInt8] {
        precondition(MemoryLayout<Event>.stride == elementSize, "the event type has the wire size")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Constants.messageBodySizeMax, alignment: 16)
        defer { buffer.deallocate() }
        var writer = MultiBatchWriter(buffer: buffer, elementSize: elementSize, batchCount: 1)
        events.withUnsafeBytes { writer.freeSpace.copyMemory(from: $0) }
        writer.finishBatch(elementCount: events.count)
        return Array(buffer[0..<writer.finish()])
    }

    static func accounts(_ accounts: [Account]) -> [UInt8] { encode(accounts, elementSize: Constants.accountSize) }
    static func transfers(_ transfers: [Transfer]) -> [UInt8] { encode(transfers, elementSize: Constants.transferSize) }
    static func ids(_ ids: [UInt128]) -> [UInt8] { encode(ids, elementSize: Constants.idSize) }

    /// The elements of a one-batch reply body.
    static func decode<Result>(_ body: ArraySlice<UInt8>, as type: Result.Type, size: Int) -> [Result] {
        let bytes = Array(body)
        return bytes.withUnsafeBytes { raw in
            guard let reader = MultiBatchReader(body: raw, elementSize: size), reader.batchCount == 1 else { return [] }
            return (0..<reader.elementCountTotal).map { raw.loadUnaligned(fromByteOffset: $0 * size, as: Result.self) }
        }
    }
}

// The server's request path in one process: the `ledger` server's parts (data file → io_uring
// → FileStorage → DurableLedger → Replica, SystemClock) with an in-process bus instead of TCP,
// and one simulated client that speaks the wire protocol the way the official client does
// (register, session, hash chain of parent checksums, one request in flight).
//
// Phases: register; `accounts` accounts in batches of 8189; `transfers` transfers in
// create_transfers batches of 8189 (random distinct debit/credit accounts, fixed seed); then
// 20 000 single-transfer requests. Every request body is built before the timed phases; the
// header is sealed just before the request is handed to `Replica.receive` (it chains on the
// previous reply's context), outside the measurement.
//
// Measured per request, from `receive` to the reply's arrival at the bus (the loop is the
// server's: `replica.tick()` every 10 ms, io_uring in between, returning as soon as the reply
// is there): latency, and heap allocations of the whole process (the malloc interposer of
// CAllocationCounter) inside that window. Between windows only the client's own work runs
// (sealing, checking the reply), and no IO completes then, so the windows hold all of the
// replica's work: its request checks, the WAL write, the commit (prefetch, execute, reply
// write), the previous op's compaction beat and checkpoints, which overlap the next request.
//
// Finding where allocations come from: run under gdb with a Python breakpoint on `malloc` that
// records the backtrace while `replicaBenchmarkWindowOpen` is 1 (set only in the steady state),
// with `LEDGER_BENCHMARK_SINGLES=400 ... replica --transfers=8189` to keep the run short.
//
// Sketch: a batch request is 1 MiB: WAL write (O_DIRECT|O_DSYNC) + redundant header, 128 KiB
// reply body to the client-replies zone, execute ~2-4 ms, a compaction beat. A single-transfer
// request is bound by the latency of one synchronous 4 KiB write.

import CAllocationCounter
import Glibc
import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerStateMachine
import LedgerVSR

/// A `ClientBus` without a network: it keeps, per client, a copy of the last message the
/// replica sent (preallocated: sending allocates nothing, like the real bus's send queues).
final class InProcessBus: ClientBus {
    typealias Connection = Int
    static let clientsMax = 4

    private(set) var clients = [UInt128](repeating: 0, count: InProcessBus.clientsMax)
    private(set) var sizes = [Int](repeating: 0, count: InProcessBus.clientsMax)
    /// Messages sent to each client so far: a change means something arrived.
    private(set) var sentCounts = [UInt64](repeating: 0, count: InProcessBus.clientsMax)
    let buffers = UnsafeMutableRawBufferPointer.allocate(
        byteCount: InProcessBus.clientsMax * Constants.messageSizeMax, alignment: 16)

    deinit { buffers.deallocate() }

    func slot(client: UInt128) -> Int? {
        for index in 0..<Self.clientsMax where clients[index] == client { return index }
        return nil
    }

    func associate(_ connection: Int, client: UInt128) {
        guard slot(client: client) == nil else { return }
        guard let free = slot(client: 0) else { return }
        clients[free] = client
    }

    @discardableResult
    func send(_ message: UnsafeRawBufferPointer, toClient client: UInt128) -> Bool {
        guard let index = slot(client: client), message.count <= Constants.messageSizeMax else { return false }
        let start = index * Constants.messageSizeMax
        UnsafeMutableRawBufferPointer(rebasing: buffers[start..<start + message.count]).copyMemory(from: message)
        sizes[index] = message.count
        sentCounts[index] += 1
        return true
    }

    /// The last message sent to the client in `slot`.
    func lastMessage(slot index: Int) -> UnsafeRawBufferPointer {
        let start = index * Constants.messageSizeMax
        return UnsafeRawBufferPointer(rebasing: buffers[start..<start + sizes[index]])
    }
}

/// The client's side of the protocol (as Tests/LedgerVSRTests/ReplicaHarness.swift's
/// `TestClient`): seals a request header in front of a prebuilt body, and takes replies.
private struct BenchmarkClient {
    let id: UInt128
    let cluster: UInt128
    var session: UInt64 = 0
    var requestNext: UInt32 = 0
    /// The last request's checksum until its reply comes, then the reply's context.
    var parent: UInt128 = 0
    var view: UInt32 = 0

    /// Seals the header of the request in `message` (header room, then `bodySize` bytes of body)
    /// and returns the whole message.
    mutating func seal(_ message: UnsafeMutableRawBufferPointer, bodySize: Int, operation: UInt8) -> UnsafeRawBufferPointer {
        let isRegister = operation == VSROperation.register.rawValue
        var header = RequestHeader()
        header.frame.cluster = cluster
        header.frame.size = UInt32(Constants.messageHeaderSize + bodySize)
        header.frame.release = Constants.release
        header.frame.view = view
        header.client = id
        header.parent = isRegister ? 0 : parent
        header.session = isRegister ? 0 : session
        header.request = isRegister ? 0 : requestNext
        header.operation = operation
        let size = Constants.messageHeaderSize + bodySize
        header.seal(body: UnsafeRawBufferPointer(rebasing: message[Constants.messageHeaderSize..<size]))
        message.storeBytes(of: header, toByteOffset: 0, as: RequestHeader.self)
        parent = header.frame.checksum
        requestNext = isRegister ? 1 : requestNext + 1
        return UnsafeRawBufferPointer(rebasing: message[0..<size])
    }

    /// Takes a reply as the official client does (wire spec §5.6); nil if it would ignore it.
    mutating func accept(_ message: UnsafeRawBufferPointer) -> ReplyHeader? {
        guard message.count >= Constants.messageHeaderSize else { return nil }
        let reply = message.loadUnaligned(as: ReplyHeader.self)
        guard reply.frame.command == Command.reply.rawValue, reply.isChecksumValid, reply.client == id,
            reply.requestChecksum == parent
        else { return nil }
        guard reply.isBodyValid(UnsafeRawBufferPointer(rebasing: message[Constants.messageHeaderSize...])) else { return nil }
        if reply.operation == VSROperation.register.rawValue { session = reply.commit }
        parent = reply.context
        view = max(view, reply.frame.view)
        return reply
    }
}

/// One request's measurement.
private struct RequestSample {
    var latencyNs: UInt64
    var allocations: UInt64
    var op: UInt64
}

// 1 inside a counted window of the steady state, else 0: a debugger's malloc breakpoint reads
// it to attribute the window's allocations (how the report's sources were found).
nonisolated(unsafe) var replicaBenchmarkWindowOpen: Int32 = 0

nonisolated(unsafe) private var replicaDataFilePath: String?

private func fail(_ message: String) -> Never {
    printError("ledger-benchmark replica: \(message)")
    if let path = replicaDataFilePath { _ = unlink(path) }
    exit(1)
}

/// The server's parts around one data file, and the client.
private final class ReplicaHost {
    typealias BenchmarkReplica = Replica<FileStorage, InProcessBus, SystemClock>
    let io: IOUring
    let ledger: DurableLedger<FileStorage>
    let bus = InProcessBus()
    let replica: BenchmarkReplica
    var client: BenchmarkClient
    var clientSlot = -1
    var nextTickNs: UInt64
    /// Steady-state windows set `replicaBenchmarkWindowOpen` (for a debugger).
    var markWindows = false

    init(io: IOUring, storage: FileStorage, configuration: ForestStoreConfiguration) {
        self.io = io
        ledger = DurableLedger(storage: storage, configuration: configuration)
        var opened: Result<Void, DurableLedgerOpenError>?
        ledger.open { opened = $0 }
        // As the server opens: the loop runs until the ledger is ready or says why not.
        guard io.run(until: { opened != nil }, timeoutNs: 300 * 1_000_000_000) else { fail("the ledger did not open in 300 s") }
        if case .failure(let error) = opened! { fail("cannot open the ledger: \(error)") }
        replica = Replica(ledger: ledger, bus: bus, time: SystemClock())
        client = BenchmarkClient(id: 0x1ED6E5_0000_0000_0000_0001, cluster: ledger.superblock.working.cluster)
        nextTickNs = monotonicNs() + BenchmarkReplica.tickNs
    }

    /// Hands `message` to the replica and runs the server's loop until the reply arrives.
    func roundTrip(_ message: UnsafeRawBufferPointer) -> RequestSample {
        let slot = max(0, clientSlot)
        let sentBefore = bus.sentCounts[slot]
        if markWindows { replicaBenchmarkWindowOpen = 1 }
        let allocationsBefore = ledger_allocation_count()
        let start = monotonicNs()
        replica.receive(message, from: 1)
        if clientSlot < 0 {
            // The register associated the client's connection: learn its slot once.
            guard let found = bus.slot(client: client.id) else { fail("the replica did not associate the client") }
            clientSlot = found
        }
        let deadline = start + 300 * 1_000_000_000
        // Bounded by the deadline: every turn waits at most until the next tick.
        while bus.sentCounts[clientSlot] == sentBefore {
            let now = monotonicNs()
            if now >= deadline { fail("no reply within 300 s (replica counters \(replica.counters))") }
            if now >= nextTickNs {
                replica.tick()
                nextTickNs = now + BenchmarkReplica.tickNs
                if replica.status == .failed { fail("the replica failed: \(String(describing: replica.fault))") }
                continue
            }
            _ = io.run(until: { bus.sentCounts[clientSlot] != sentBefore }, timeoutNs: nextTickNs - now)
        }
        let end = monotonicNs()
        let allocations = ledger_allocation_count() - allocationsBefore
        replicaBenchmarkWindowOpen = 0
        guard let reply = client.accept(bus.lastMessage(slot: clientSlot)) else {
            fail("the client would not take the replica's answer (an eviction?); counters \(replica.counters)")
        }
        return RequestSample(latencyNs: end - start, allocations: allocations, op: reply.op)
    }

    /// Create results in the last reply that are not `created` (accounts and transfers share
    /// the layout); a missing result counts.
    func failures(expected count: Int) -> Int {
        let message = bus.lastMessage(slot: clientSlot)
        let body = UnsafeRawBufferPointer(rebasing: message[Constants.messageHeaderSize...])
        guard let reader = MultiBatchReader(body: body, elementSize: Constants.createResultSize) else {
            fail("the reply is not a multi-batch of results")
        }
        var failed = 0
        var results = 0
        reader.forEachBatch { _, batch in
            for result in batch.bindMemory(to: CreateTransferResult.self) {
                if result.status != .created {
                    if failed < 5 { printError("ledger-benchmark replica: result \(results): \(result.status)") }
                    failed += 1
                }
                results += 1
            }
        }
        return failed + max(0, count - results)
    }
}

/// Request messages built before the timed phases: fixed-size slots, header room then body.
private struct RequestArena {
    let slotSize: Int
    let bytes: UnsafeMutableRawBufferPointer
    var bodySizes: [Int]

    init(slots: Int, slotSize: Int) {
        self.slotSize = slotSize
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, slots * slotSize), alignment: 16)
        bodySizes = [Int](repeating: 0, count: slots)
    }

    func slot(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[index * slotSize..<(index + 1) * slotSize])
    }

    /// Encodes a one-batch body of `count` elements into slot `index`.
    mutating func encode<Element>(_ index: Int, count: Int, _ fill: (UnsafeMutableBufferPointer<Element>) -> Void) {
        let body = UnsafeMutableRawBufferPointer(rebasing: slot(index)[Constants.messageHeaderSize...])
        var writer = MultiBatchWriter(buffer: body, elementSize: MemoryLayout<Element>.stride, batchCount: 1)
        fill(writer.freeSpace.bindMemory(to: Element.self))
        writer.finishBatch(elementCount: count)
        bodySizes[index] = writer.finish()
    }
}

func runReplicaBenchmark(directory: String, transferCount: Int, accountCount: Int) {
    guard transferCount <= 10_000_000 else { fail("--transfers: at most 10000000 here (the bodies are built beforehand)") }
    let singleCount = replicaSingleCount()
    let layout = DataFileLayout(.production)
    let batchSize = Constants.batchEventsMax
    let path = createBenchmarkDataFile(
        directory: directory, name: "replica", layout: layout, transferCount: transferCount + singleCount)
    replicaDataFilePath = path
    defer { _ = unlink(path) }
    let (file, io, storage) = openBenchmarkDataFile(path: path, layout: layout)
    defer { file.close() }

    // Request bodies, before anything is measured.
    let accountBatches = (accountCount + batchSize - 1) / batchSize
    let transferBatches = (transferCount + batchSize - 1) / batchSize
    var batches = RequestArena(slots: 1 + accountBatches + transferBatches, slotSize: Constants.messageSizeMax)
    // Slot 0: the register (256 zero bytes of body).
    UnsafeMutableRawBufferPointer(
        rebasing: batches.slot(0)[Constants.messageHeaderSize..<(Constants.messageHeaderSize + RegisterRequest.size)]
    ).initializeMemory(as: UInt8.self, repeating: 0)
    batches.bodySizes[0] = RegisterRequest.size
    for batch in 0..<accountBatches {
        let first = batch * batchSize
        let count = min(batchSize, accountCount - first)
        batches.encode(1 + batch, count: count) { (accounts: UnsafeMutableBufferPointer<Account>) in
            for index in 0..<count { accounts[index] = Account(id: UInt128(first + index + 1), ledger: 1, code: 1) }
        }
    }
    var prng = PRNG(seed: 42)
    var nextId: UInt128 = 1
    func randomTransfer() -> Transfer {
        let debit = UInt128(prng.below(UInt64(accountCount))) + 1
        var credit = UInt128(prng.below(UInt64(accountCount - 1))) + 1
        if credit >= debit { credit += 1 }
        defer { nextId += 1 }
        return Transfer(id: nextId, debitAccountId: debit, creditAccountId: credit, amount: 1, ledger: 1, code: 1)
    }
    for batch in 0..<transferBatches {
        let count = min(batchSize, transferCount - batch * batchSize)
        batches.encode(1 + accountBatches + batch, count: count) { (transfers: UnsafeMutableBufferPointer<Transfer>) in
            for index in 0..<count { transfers[index] = randomTransfer() }
        }
    }
    // A single transfer: header, 128-byte transfer, 128-byte trailer.
    var singles = RequestArena(slots: singleCount, slotSize: 512)
    for index in 0..<singleCount {
        singles.encode(index, count: 1) { (transfers: UnsafeMutableBufferPointer<Transfer>) in transfers[0] = randomTransfer() }
    }
    let bodyBytes = batches.bytes.count + singles.bytes.count
    defer {
        batches.bytes.deallocate()
        singles.bytes.deallocate()
    }

    let configuration = ForestStoreConfiguration(storage: layout.configuration, caches: .production)
    let rssStart = ResidentMemory.read()
    let host = ReplicaHost(io: io, storage: storage, configuration: configuration)
    print("replica: \(accountCount) accounts, \(transferCount) transfers in batches of \(batchSize), then \(singleCount) "
        + "single-transfer requests; one client, one request in flight; file \(path) (\(file.sizeBytes >> 30) GiB, "
        + "direct IO \(file.isDirectIO)); request bodies prebuilt: \(bodyBytes >> 20) MiB")
    print("replica: rss before open \(rssStart.statusDescription), after open \(ResidentMemory.read().statusDescription); "
        + "load average \(loadAverage())")
    print("replica: allocations counted: every malloc/calloc/realloc/memalign of the process from `receive` until "
        + "the reply reaches the bus (request checks, WAL write, commit, reply write, and the previous op's "
        + "compaction beat or checkpoint, which overlap it); the client's sealing and reply checks are outside")
    let counterNote = ledger_allocation_counter_active() != 0 ? "" : " (allocation counter inactive)"

    // Register and accounts: setup, one line.
    let register = host.client.seal(batches.slot(0), bodySize: batches.bodySizes[0], operation: VSROperation.register.rawValue)
    let registered = host.roundTrip(register)
    var failures = 0
    var setupNs = registered.latencyNs
    for batch in 0..<accountBatches {
        let message = host.client.seal(
            batches.slot(1 + batch), bodySize: batches.bodySizes[1 + batch], operation: Operation.createAccounts.rawValue)
        setupNs += host.roundTrip(message).latencyNs
        failures += host.failures(expected: min(batchSize, accountCount - batch * batchSize))
    }
    print("replica: register (session \(host.client.session)) + \(accountCount) accounts in "
        + "\(formatFixed(Double(setupNs) / 1e6, digits: 1)) ms; rss \(ResidentMemory.read().statusDescription)")

    // Batches of 8189 transfers.
    var samples: [RequestSample] = []
    samples.reserveCapacity(max(transferBatches, singleCount))
    var clientNs: UInt64 = 0
    let batchWarmup = min(3, transferBatches / 4)
    for batch in 0..<transferBatches {
        let clientStart = monotonicNs()
        let index = 1 + accountBatches + batch
        let message = host.client.seal(batches.slot(index), bodySize: batches.bodySizes[index], operation: Operation.createTransfers.rawValue)
        clientNs += monotonicNs() - clientStart
        host.markWindows = batch >= batchWarmup
        samples.append(host.roundTrip(message))
        host.markWindows = false
        let checkStart = monotonicNs()
        failures += host.failures(expected: min(batchSize, transferCount - batch * batchSize))
        clientNs += monotonicNs() - checkStart
        if (batch + 1) % max(1, transferBatches / 10) == 0 {
            printError("replica: \(batch + 1)/\(transferBatches) batch requests")
        }
    }
    report(phase: "batch", samples: &samples, transfers: transferCount, warmup: batchWarmup, clientNs: clientNs,
           host: host, counterNote: counterNote)

    // Single transfers.
    samples.removeAll(keepingCapacity: true)
    clientNs = 0
    let singleWarmup = min(100, singleCount / 4)
    for index in 0..<singleCount {
        let clientStart = monotonicNs()
        let message = host.client.seal(singles.slot(index), bodySize: singles.bodySizes[index], operation: Operation.createTransfers.rawValue)
        clientNs += monotonicNs() - clientStart
        host.markWindows = index >= singleWarmup
        samples.append(host.roundTrip(message))
        host.markWindows = false
        let checkStart = monotonicNs()
        failures += host.failures(expected: 1)
        clientNs += monotonicNs() - checkStart
    }
    report(phase: "single", samples: &samples, transfers: singleCount, warmup: singleWarmup, clientNs: clientNs,
           host: host, counterNote: counterNote)
    print("replica: counters \(host.replica.counters); checkpoint op \(host.ledger.checkpointOp), commit op "
        + "\(host.ledger.commitMin); load average \(loadAverage())")
    // The last op's beat and reply write are still in flight: FileStorage must be idle when it goes.
    let drained = io.run(
        until: { host.ledger.opHead == host.ledger.commitMin && storage.inFlightCount == 0 }, timeoutNs: 300 * 1_000_000_000)
    if !drained { fail("the last op did not finish within 300 s") }
    if failures > 0 { fail("\(failures) results were not `created`: a bug") }
}

/// Single-transfer requests (20 000; `LEDGER_BENCHMARK_SINGLES` overrides it for a debugger run).
private func replicaSingleCount() -> Int {
    guard let value = getenv("LEDGER_BENCHMARK_SINGLES") else { return 20_000 }
    guard let count = Int(String(cString: value)), count >= 1, count <= 1_000_000 else {
        fail("LEDGER_BENCHMARK_SINGLES needs an integer in 1...1000000")
    }
    return count
}

private func report(
    phase: String, samples: inout [RequestSample], transfers: Int, warmup: Int, clientNs: UInt64,
    host: ReplicaHost, counterNote: String
) {
    guard !samples.isEmpty else { return }
    let serverNs = samples.reduce(UInt64(0)) { $0 + $1.latencyNs }
    let steady = samples[warmup...]
    let steadyAllocations = steady.reduce(UInt64(0)) { $0 + $1.allocations }
    let allocating = steady.filter { $0.allocations > 0 }
    let warmupAllocations = samples[..<warmup].reduce(UInt64(0)) { $0 + $1.allocations }
    // The requests that allocated, most first: which ops (and where in the checkpoint interval).
    let interval = UInt64(host.ledger.configuration.vsrCheckpointOps)
    let bar = UInt64(host.ledger.configuration.lsmCompactionOps)
    let top = allocating.sorted { $0.allocations > $1.allocations }.prefix(8)
        .map { "op \($0.op) (op%\(interval)=\($0.op % interval), beat \($0.op % bar)): \($0.allocations)" }
    var histogram: [UInt64: Int] = [:]
    for sample in allocating { histogram[sample.allocations, default: 0] += 1 }
    let common = histogram.sorted { $0.value > $1.value }.prefix(6).map { "\($0.value)×\($0.key)" }
    var latencies = samples.map(\.latencyNs)
    latencies.sort()
    func at(_ p: Double) -> String {
        formatFixed(Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6, digits: 3)
    }
    print("replica \(phase): \(samples.count) requests, \(transfers) transfers: "
        + "\(formatFixed(Double(transfers) / (Double(serverNs) / 1e9) / 1e3, digits: 1)) k transfers/s "
        + "(receive→reply time only; \(formatFixed(Double(transfers) / (Double(serverNs + clientNs) / 1e9) / 1e3, digits: 1)) k/s "
        + "with the client's sealing and reply checks); latency p50 \(at(0.5)) p99 \(at(0.99)) max "
        + "\(formatFixed(Double(latencies[latencies.count - 1]) / 1e6, digits: 3)) ms")
    // The slowest requests and where they fall in the checkpoint interval and the bar: the
    // tail's causes (a checkpoint, the flush in the bar before a trigger, a half-bar's start).
    let slowest = samples.sorted { $0.latencyNs > $1.latencyNs }.prefix(8)
        .map { "op \($0.op) (op%\(interval)=\($0.op % interval), beat \($0.op % bar)) \(formatFixed(Double($0.latencyNs) / 1e6, digits: 2))" }
    let overOneMs = samples.filter { $0.latencyNs > 1_000_000 }.count
    print("replica \(phase): p90 \(at(0.9)) p99.9 \(at(0.999)) ms; \(overOneMs) requests over 1 ms; slowest (ms): "
        + slowest.joined(separator: "; "))
    print("replica \(phase): heap allocations receive→reply, steady state (after \(warmup) warm-up requests, which made "
        + "\(warmupAllocations)): \(formatFixed(Double(steadyAllocations) / Double(steady.count), digits: 3)) per request "
        + "(\(steadyAllocations) in \(steady.count) requests; \(allocating.count) requests allocated)\(counterNote)")
    if !allocating.isEmpty {
        print("replica \(phase):   allocations per allocating request (count×allocations): \(common.joined(separator: ", ")); "
            + "most: \(top.joined(separator: "; "))")
    }
    print("replica \(phase): rss \(ResidentMemory.read().statusDescription)")
}

/// /proc/loadavg's 1-minute figure and the 5-minute one: other work on the machine skews the
/// numbers (the single-request phase waits on the disk, which other processes share).
private func loadAverage() -> String {
    let fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "unknown" }
    defer { _ = close(fd) }
    var bytes = [UInt8](repeating: 0, count: 128)
    let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard count > 0 else { return "unknown" }
    return String(decoding: bytes[0..<count], as: UTF8.self).split(separator: " ").prefix(2).joined(separator: " ")
}

#if canImport(Glibc)
import Glibc
#endif
import CPlatform
import LedgerCommandLine
import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerVSR

/// The server process: opens the data file (locked: one process per file), opens the ledger
/// (superblock → checkpoint → WAL replay), listens, and runs the replica's loop — `tick()`
/// every 10 ms, io_uring in between (storage spec §9) — until SIGINT or SIGTERM.
///
/// A clean stop closes the listener and the connections and lets the IO in flight finish:
/// every reply a client got was durable before it was sent, so nothing else needs saving.
/// A ledger fault (storage the replica cannot read back, and no peer to repair from) stops the
/// process with the reason and exit status 1.
enum Server {
    struct Options {
        var path: String
        var address: ReplicaAddress
        var cacheGridBlocks: Int
        var directIO: Bool
    }

    /// Counters are logged this often when they changed, and at the stop.
    static let countersLogIntervalNs: UInt64 = 60 * 1_000_000_000
    /// How long a stop waits for IO in flight.
    static let stopDrainTimeoutNs: UInt64 = 10 * 1_000_000_000

    static func run(_ options: Options) throws {
        guard ledger_stop_signals_install() == 0 else { throw ToolError("cannot install the SIGINT/SIGTERM handlers") }
        let layout = DataFileLayout(.production)
        let file: DataFile
        do {
            file = try DataFile.open(path: options.path, layout: layout, mode: .readWrite, directIO: options.directIO)
        } catch {
            throw ToolError("cannot open \(options.path): \(error)")
        }
        let io: IOUring
        do {
            io = try IOUring(entries: 256)
        } catch {
            throw ToolError("cannot set up io_uring: \(error)")
        }
        let storage = FileStorage(io: io, file: file)
        var caches = ForestStoreConfiguration.Caches.production
        caches.gridBlocks = options.cacheGridBlocks
        let configuration = ForestStoreConfiguration(storage: layout.configuration, caches: caches)
        log("opening \(options.path) (grid cache \(CommandLineValues.formatByteSize(UInt64(caches.gridBlocks) * UInt64(layout.configuration.blockSize))), \(options.directIO ? "direct IO" : "no direct IO: development"))")
        let ledger = DurableLedger(storage: storage, configuration: configuration)
        try open(ledger, io: io, path: options.path)

        let working = ledger.superblock.working
        guard working.vsrState.replicaCount == 1 else {
            throw ToolError("\(options.path) belongs to a cluster of \(working.vsrState.replicaCount) replicas; this build serves one-replica clusters")
        }
        let bus = MessageBus(io: io, cluster: working.cluster)
        let replica = Replica(ledger: ledger, bus: bus, time: SystemClock())
        bus.onMessage = { [unowned replica] connection, message in replica.receive(message, from: connection) }
        do {
            try bus.listen(address: SocketAddress(host: options.address.host, port: options.address.port))
        } catch {
            throw ToolError("cannot listen on \(options.address): \(error)")
        }
        log("cluster=\(working.cluster) replica=0 of 1: listening on \(options.address) (checkpoint op \(ledger.checkpointOp), commit op \(ledger.commitMin), \(ledger.replayedOpCount) ops replayed)")
        try serve(replica, bus: bus, io: io)
        stop(replica, bus: bus, io: io, storage: storage)
    }

    /// Opens the ledger, running the loop until it is ready or says why it cannot be.
    static func open(_ ledger: DurableLedger<FileStorage>, io: IOUring, path: String) throws {
        var result: Result<Void, DurableLedgerOpenError>?
        ledger.open { result = $0 }
        // Runs as long as the replay takes (each op is read and executed once); a stop signal
        // ends it (nothing was acknowledged yet, so nothing is lost).
        while result == nil {
            if ledger_stop_signal_received() != 0 {
                throw ToolError("stopped by a signal while opening \(path)")
            }
            io.run(forNs: Replica<FileStorage, MessageBus, SystemClock>.tickNs)
        }
        if case .failure(let error) = result! {
            throw ToolError("cannot start from \(path): \(describe(error))")
        }
    }

    /// The replica's loop: runs until a stop signal (returns) or a ledger fault (throws).
    static func serve(_ replica: Replica<FileStorage, MessageBus, SystemClock>, bus: MessageBus, io: IOUring) throws {
        let clock = SystemClock()
        var countersLogged = replica.counters
        var countersLoggedAt = clock.monotonicNs()
        // Runs until a signal or a fault: the server's event loop is meant to run forever.
        while ledger_stop_signal_received() == 0 {
            replica.tick()
            bus.tick()
            if replica.status == .failed {
                let reason = replica.fault.map { "\($0)" } ?? "unknown"
                log("stopping: the ledger cannot go on: \(reason)")
                throw ToolError("ledger fault: \(reason)")
            }
            io.run(forNs: Replica<FileStorage, MessageBus, SystemClock>.tickNs)
            let now = clock.monotonicNs()
            if now - countersLoggedAt >= countersLogIntervalNs, replica.counters != countersLogged {
                log("replica: \(replica.counters); bus: \(bus.counters)")
                countersLogged = replica.counters
                countersLoggedAt = now
            }
        }
    }

    static func stop(
        _ replica: Replica<FileStorage, MessageBus, SystemClock>, bus: MessageBus, io: IOUring, storage: FileStorage
    ) {
        let signal = ledger_stop_signal_received()
        log("stopping (\(signal == SIGINT ? "SIGINT" : "SIGTERM")): closing connections, finishing IO in flight")
        bus.shutdown()
        let drained = io.run(until: { bus.isShutDown && storage.inFlightCount == 0 }, timeoutNs: stopDrainTimeoutNs)
        if !drained { log("stopping: IO still in flight after \(stopDrainTimeoutNs / 1_000_000_000) s; exiting anyway (it was not acknowledged)") }
        log("replica: \(replica.counters); bus: \(bus.counters)")
        log("stopped")
    }

    /// Why the data file cannot be served, in the operator's terms (the detail follows).
    static func describe(_ error: DurableLedgerOpenError) -> String {
        switch error {
        case .superblock(let detail):
            return "not a Ledger data file, or its superblock is damaged beyond repair (\(detail))"
        case .journal(.walInvalid):
            return "the write-ahead log holds no valid entry: not a data file of this cluster, or destroyed"
        case .journal(.repairNeededButSolo(let slots)):
            return "the write-ahead log is damaged in \(slots.count) slot(s) (\(slots.prefix(8).map(String.init).joined(separator: ", "))) that only another replica could repair; starting would risk losing acknowledged requests"
        case .checkpointState, .forest, .clientSessionsTrailer, .clientSessions, .clientSessionsReference:
            return "the checkpoint is damaged beyond repair (\(error))"
        case .walHead, .walGap, .walChain, .walPrepare, .walOperation:
            return "the write-ahead log after the checkpoint is damaged beyond repair (\(error))"
        case .replay(let op, let fault):
            return "replaying op \(op) failed: \(fault)"
        }
    }

    static func log(_ line: String) {
        printError("ledger: \(line)")
    }
}

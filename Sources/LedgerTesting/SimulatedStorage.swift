#if canImport(Glibc)
import Glibc
#endif
import LedgerIO
import LedgerKit

/// A data file in memory with a disk's timing and faults, deterministic from one seed.
///
/// Time is in ticks and moves only through `tick()` (or `run…`): every IO gets a latency drawn
/// from the seed, so IOs complete out of order, and the same seed replays the same run bit for
/// bit. A write reaches the memory when it completes, as on a real disk (the contract in
/// `Storage`); a read copies the memory when it completes.
///
/// Faults, aimed at `Options.faultyZones` only (a test says which zone may be hurt, so that a
/// good copy of everything exists elsewhere, like TigerBeetle's fault atlas):
/// - read faults: a sector comes back as zeros (what `FileStorage` returns for an EIO sector);
/// - write bit flips: one bit of one written sector is flipped on its way to the memory;
/// - misdirected writes: the write lands on another sector-aligned offset of the same zone and
///   its target keeps the old bytes;
/// - crash (`crash()`): every IO in flight is dropped without its callback; each pending write is
///   either lost or, with `crashTornWriteProbability`, torn: a random subset of its sectors
///   reaches the memory.
/// Tests can also hurt the file directly (`corruptSector`, `bytes(zone:offset:count:)`).
public final class SimulatedStorage: Storage {
    public struct Options: Sendable {
        /// Latency of each read and write, drawn uniformly from the range.
        public var readLatencyTicks: ClosedRange<Int> = 1...5
        public var writeLatencyTicks: ClosedRange<Int> = 1...5
        /// Per sector read: comes back as zeros.
        public var readFaultProbability: Double = 0
        /// Per write: one bit of one of its sectors is flipped.
        public var writeBitFlipProbability: Double = 0
        /// Per write: lands elsewhere in its zone.
        public var writeMisdirectProbability: Double = 0
        /// Per write in flight at a crash: torn instead of lost.
        public var crashTornWriteProbability: Double = 0
        /// Zones the faults above may hit.
        public var faultyZones: Set<Zone> = []
        /// `runPollableCompletions` completes the pollable IOs due within this many ticks from
        /// now, as if the work that polls had taken that long (0: only those due now, which a
        /// tick has completed already). Tests raise it to run compaction inside execute.
        public var pollLookaheadTicks = 0

        public init() {}
    }

    /// What the faults did so far.
    public struct FaultCounts: Sendable, Equatable {
        public var readSectorsZeroed = 0
        public var writeBitFlips = 0
        public var writesMisdirected = 0
        public var writesTorn = 0
        public var writesLost = 0
        public init() {}
    }

    public let layout: DataFileLayout
    public var options: Options
    public private(set) var faults = FaultCounts()
    public private(set) var ticks: UInt64 = 0
    private var prng: PRNG
    private let memory: UnsafeMutableRawBufferPointer

    private struct PendingIO {
        var readyTick: UInt64
        var sequence: UInt64
        var isWrite: Bool
        /// A `nextTurn`: no bytes move.
        var isTurn = false
        var completion: StorageCompletion
        var buffer: UnsafeMutableRawBufferPointer
    }
    /// IOs in flight, completed in (readyTick, sequence) order. Small (bounded by the owners'
    /// completion pools), so a sorted insert is enough.
    private var pending: [PendingIO] = []
    private var sequence: UInt64 = 0

    public init(layout: DataFileLayout, seed: UInt64, options: Options = Options()) {
        self.layout = layout
        self.options = options
        self.prng = PRNG(seed: seed)
        let size = Int(layout.sizeMax)
        // Anonymous mappings are zero and lazily backed: a sparse file in memory.
        let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        precondition(raw != MAP_FAILED, "mmap of the simulated data file")
        memory = UnsafeMutableRawBufferPointer(start: raw, count: size)
        pending.reserveCapacity(256)
    }

    deinit { munmap(memory.baseAddress, memory.count) }

    // MARK: Storage

    public func read(
        _ completion: StorageCompletion, zone: Zone, offset: UInt64,
        buffer: UnsafeMutableRawBufferPointer
    ) {
        precheckStorageIO(layout: layout, zone: zone, offset: offset, length: buffer.count,
                          address: buffer.baseAddress)
        completion.start(zone: zone, offset: offset, length: buffer.count)
        enqueue(isWrite: false, completion: completion, buffer: buffer,
                latency: options.readLatencyTicks)
    }

    public func write(
        _ completion: StorageCompletion, zone: Zone, offset: UInt64, buffer: UnsafeRawBufferPointer
    ) {
        precheckStorageIO(layout: layout, zone: zone, offset: offset, length: buffer.count,
                          address: buffer.baseAddress)
        completion.start(zone: zone, offset: offset, length: buffer.count)
        enqueue(isWrite: true, completion: completion, buffer: UnsafeMutableRawBufferPointer(mutating: buffer),
                latency: options.writeLatencyTicks)
    }

    /// Completes at the next tick, after the IOs already due at it.
    public func nextTurn(_ completion: StorageCompletion) {
        completion.startTurn()
        insert(PendingIO(
            readyTick: ticks + 1, sequence: sequence, isWrite: false, isTurn: true, completion: completion,
            buffer: UnsafeMutableRawBufferPointer(start: nil, count: 0)))
    }

    /// Completes, in order, the IOs (not turns) whose completion is pollable and which are due
    /// within `options.pollLookaheadTicks`; the clock does not move. Callbacks may start new
    /// IOs (due later) or clear other IOs' pollability: each pass takes the first such IO left.
    public func runPollableCompletions() {
        let horizon = ticks + UInt64(options.pollLookaheadTicks)
        // Each turn completes one IO due by the horizon. An IO a callback starts is due at least
        // a tick after now, so a chain of IOs runs at most `pollLookaheadTicks` links deep here,
        // and the chains are bounded by the owners' completion pools.
        while let index = pending.firstIndex(where: {
            $0.readyTick <= horizon && !$0.isTurn && $0.completion.isPollable
        }) {
            let io = pending.remove(at: index)
            pollCompletedCount += 1
            finish(io)
        }
        pollCount += 1
    }

    /// `runPollableCompletions` calls so far, and the IOs they completed.
    public private(set) var pollCount = 0
    public private(set) var pollCompletedCount = 0

    // MARK: Time

    /// IOs in flight.
    public var pendingCount: Int { pending.count }

    /// Advances time by one tick and completes every IO that is due, in order.
    public func tick() {
        ticks += 1
        // Callbacks may start new IOs; those are due at a later tick, so this loop ends.
        while let first = pending.first, first.readyTick <= ticks {
            pending.removeFirst()
            finish(first)
        }
    }

    /// Ticks until no IO is in flight, or `tickLimit` ticks passed. Returns whether it is idle.
    @discardableResult
    public func runUntilIdle(tickLimit: Int = 1_000_000) -> Bool {
        var remaining = tickLimit
        while !pending.isEmpty && remaining > 0 {
            tick()
            remaining -= 1
        }
        return pending.isEmpty
    }

    /// Ticks until `condition()` holds or `tickLimit` ticks passed. Returns `condition()`.
    @discardableResult
    public func run(until condition: () -> Bool, tickLimit: Int = 1_000_000) -> Bool {
        var remaining = tickLimit
        while !condition() && remaining > 0 {
            tick()
            remaining -= 1
        }
        return condition()
    }

    // MARK: Crash

    /// The process dies: every IO in flight vanishes without its callback. Pending writes are
    /// lost, or torn if they fall in a faulty zone and the dice say so. The memory (the disk)
    /// survives; the owners of the dropped completions are thrown away with the process, so
    /// the completions are marked idle again.
    public func crash() {
        for io in pending {
            io.completion.isBusy = false
            guard io.isWrite else { continue }
            if options.faultyZones.contains(io.completion.zone)
                && chance(options.crashTornWriteProbability)
            {
                tear(io)
                faults.writesTorn += 1
            } else {
                faults.writesLost += 1
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    // MARK: Direct access for tests

    /// The stored bytes of a range of a zone, to set up or check a test. Not an IO: no latency,
    /// no faults.
    public func bytes(zone: Zone, offset: UInt64, count: Int) -> UnsafeMutableRawBufferPointer {
        precondition(offset + UInt64(count) <= layout.size(of: zone), "range inside the zone")
        let start = Int(layout.offset(of: zone) + offset)
        return UnsafeMutableRawBufferPointer(rebasing: memory[start..<start + count])
    }

    /// Flips one bit of the sector at `offset` inside `zone` (the bit chosen by the seed).
    public func corruptSector(zone: Zone, offset: UInt64) {
        precondition(offset % UInt64(Constants.sectorSize) == 0, "a sector offset")
        let sector = bytes(zone: zone, offset: offset, count: Constants.sectorSize)
        let bit = Int(prng.below(UInt64(Constants.sectorSize * 8)))
        sector[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
    }

    // MARK: Internals

    private func enqueue(
        isWrite: Bool, completion: StorageCompletion, buffer: UnsafeMutableRawBufferPointer,
        latency: ClosedRange<Int>
    ) {
        precondition(latency.lowerBound >= 1, "callbacks never run inside read/write")
        let io = PendingIO(
            readyTick: ticks + UInt64(prng.int(in: latency)), sequence: sequence, isWrite: isWrite,
            completion: completion, buffer: buffer)
        insert(io)
    }

    /// Queues `io` in (readyTick, sequence) order; takes the next sequence number.
    private func insert(_ io: PendingIO) {
        precondition(io.sequence == sequence, "an IO is queued with the next sequence number")
        sequence += 1
        var index = pending.count
        while index > 0 && (pending[index - 1].readyTick, pending[index - 1].sequence) > (io.readyTick, io.sequence) {
            index -= 1
        }
        pending.insert(io, at: index)
    }

    private func finish(_ io: PendingIO) {
        let completion = io.completion
        if io.isTurn { return completion.complete() }
        let faulty = options.faultyZones.contains(completion.zone)
        if io.isWrite {
            var target = completion.offset
            if faulty && chance(options.writeMisdirectProbability) {
                target = misdirectedOffset(zone: completion.zone, length: io.buffer.count, original: target)
                faults.writesMisdirected += 1
            }
            let stored = bytes(zone: completion.zone, offset: target, count: io.buffer.count)
            stored.copyMemory(from: UnsafeRawBufferPointer(io.buffer))
            if faulty && chance(options.writeBitFlipProbability) {
                let sectors = io.buffer.count / Constants.sectorSize
                let sector = Int(prng.below(UInt64(sectors)))
                corruptSector(zone: completion.zone, offset: target + UInt64(sector * Constants.sectorSize))
                faults.writeBitFlips += 1
            }
        } else {
            let stored = bytes(zone: completion.zone, offset: completion.offset, count: io.buffer.count)
            io.buffer.copyMemory(from: UnsafeRawBufferPointer(stored))
            if faulty && options.readFaultProbability > 0 {
                let sectors = io.buffer.count / Constants.sectorSize
                for sector in 0..<sectors where chance(options.readFaultProbability) {
                    let start = sector * Constants.sectorSize
                    UnsafeMutableRawBufferPointer(rebasing: io.buffer[start..<start + Constants.sectorSize])
                        .initializeMemory(as: UInt8.self, repeating: 0)
                    faults.readSectorsZeroed += 1
                }
            }
        }
        completion.complete()
    }

    /// A torn write: each sector independently reached the disk or not.
    private func tear(_ io: PendingIO) {
        let completion = io.completion
        let sectors = io.buffer.count / Constants.sectorSize
        for sector in 0..<sectors where prng.chance(percent: 50) {
            let start = sector * Constants.sectorSize
            let stored = bytes(zone: completion.zone, offset: completion.offset + UInt64(start),
                               count: Constants.sectorSize)
            stored.copyMemory(from: UnsafeRawBufferPointer(rebasing: io.buffer[start..<start + Constants.sectorSize]))
        }
    }

    private func misdirectedOffset(zone: Zone, length: Int, original: UInt64) -> UInt64 {
        let sector = UInt64(Constants.sectorSize)
        let positions = (layout.size(of: zone) - UInt64(length)) / sector + 1
        guard positions > 1 else { return original }
        var target = original
        while target == original {
            target = prng.below(positions) * sector
        }
        return target
    }

    private func chance(_ probability: Double) -> Bool {
        guard probability > 0 else { return false }
        return Double(prng.next() >> 11) * 0x1p-53 < probability
    }
}

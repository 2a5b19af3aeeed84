import LedgerKit

/// One replica's data file, as the core sees it: sector-aligned reads and writes addressed by
/// (zone, offset inside the zone), completed later through a callback.
///
/// Two implementations: `FileStorage` (io_uring, direct IO, this module) and
/// `SimulatedStorage` (LedgerTesting: deterministic latency, reordering and faults). Core types
/// are generic over `Storage`, so both are specialized and neither goes through an existential.
///
/// The contract, which both implementations keep and the simulator checks:
/// - `buffer`, `offset` and `buffer.count` are multiples of `Constants.sectorSize`, the range
///   lies inside the zone (`DataFileLayout.isValidIO`), and the buffer stays valid and
///   untouched until the completion runs. A violation is a programmer error (precondition).
/// - Callbacks never run inside `read`/`write`; they run from the event loop, one at a time.
/// - A read always completes with the whole buffer filled. A sector the device cannot read
///   (EIO, after retrying in halves down to single sectors) comes back as zeros, which fails its
///   checksum and is then repaired like any other corruption. Bytes past the end of the file read
///   as zeros.
/// - A completed write is durable (the file is opened `O_DSYNC`; see docs/storage.md for why not
///   fsync). A write that fails with EIO or ENOSPC stops the process with a clear message: the
///   replica cannot know what reached the disk, and the cluster repairs it after a restart.
/// - Several IOs may be in flight at once and may complete in any order.
public protocol Storage: AnyObject {
    /// Zones and sizes of the data file.
    var layout: DataFileLayout { get }

    /// Reads `buffer.count` bytes at `offset` inside `zone` into `buffer`.
    func read(
        _ completion: StorageCompletion, zone: Zone, offset: UInt64,
        buffer: UnsafeMutableRawBufferPointer)

    /// Writes `buffer` at `offset` inside `zone`.
    func write(
        _ completion: StorageCompletion, zone: Zone, offset: UInt64, buffer: UnsafeRawBufferPointer)

    /// Completes `completion` on a later turn of the event loop, without IO. Long CPU work split
    /// at such a point lets the loop hand the kernel what is queued meanwhile (a reply to send,
    /// the next prepare's WAL write) and serve what arrived (a request's bytes) before the rest
    /// runs. The completion's zone, offset and length mean nothing for a turn.
    func nextTurn(_ completion: StorageCompletion)

    /// Runs now, from inside long CPU work (a batch's execute), the callbacks of completed IOs
    /// whose completion is marked `isPollable`, in completion order; every other completion
    /// (turns, unmarked IOs, and in `FileStorage` the sockets and timers on the same ring)
    /// waits for the loop's next turn, in its order. So IO started before the work (a detached
    /// compaction beat's reads and writes) keeps moving during it instead of waiting for its
    /// end. An owner marks a completion pollable only while its callback touches nothing the
    /// work in progress uses (LedgerLSM's ForestStore.swift, "Compaction during execute").
    func runPollableCompletions()
}

/// A reusable completion for one storage IO at a time. Owners allocate their completions at
/// start-up (one per IO they may have in flight, which is how concurrency stays bounded) and set
/// `callback` once, so nothing is allocated per IO.
public final class StorageCompletion {
    public typealias Callback = (StorageCompletion) -> Void

    /// Runs when the IO completes. Set once by the owner; typically `{ [unowned self] in … }`.
    public var callback: Callback
    /// Free for the owner: which slot, copy or block this IO was for.
    public var tag: Int = 0

    /// Set by the storage while the IO is in flight: starting an IO on a busy completion is a
    /// programmer error.
    public var isBusy = false
    /// Whether the IO may complete inside `Storage.runPollableCompletions` (checked when that
    /// runs, so an owner may clear it while the IO is in flight). Turns never do.
    public var isPollable = false
    /// The IO in flight (set by the storage, kept after completion for the owner's use).
    public internal(set) var zone: Zone = .superblock
    public internal(set) var offset: UInt64 = 0
    public internal(set) var length: Int = 0
    /// For reads: sectors that could not be read and were returned as zeros (set by
    /// `FileStorage`; the simulator counts its injected faults separately).
    public var unreadableSectorCount: Int = 0

    public init(callback: @escaping Callback = { _ in preconditionFailure("completion callback not set") }) {
        self.callback = callback
    }

    /// Marks the completion busy with an IO; called by storage implementations.
    public func start(zone: Zone, offset: UInt64, length: Int) {
        precondition(!isBusy, "a completion serves one IO at a time")
        isBusy = true
        self.zone = zone
        self.offset = offset
        self.length = length
        unreadableSectorCount = 0
    }

    /// Marks the completion busy with a turn (`Storage.nextTurn`): no zone, no bytes.
    public func startTurn() {
        precondition(!isBusy, "a completion serves one IO at a time")
        isBusy = true
        length = 0
        unreadableSectorCount = 0
    }

    /// Marks the IO done and runs the callback; called by storage implementations.
    public func complete() {
        precondition(isBusy, "completing an IO that was started")
        isBusy = false
        callback(self)
    }
}

/// Checks the storage contract for one IO (shared by both implementations).
@inlinable
public func precheckStorageIO(
    layout: DataFileLayout, zone: Zone, offset: UInt64, length: Int, address: UnsafeRawPointer?
) {
    precondition(address != nil, "IO buffer is not null")
    precondition(Int(bitPattern: address) % Constants.sectorSize == 0, "IO buffer is sector-aligned")
    precondition(layout.isValidIO(zone: zone, offset: offset, length: length),
                 "IO range is sector-aligned and inside its zone")
}

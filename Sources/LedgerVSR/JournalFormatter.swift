import LedgerIO
import LedgerKit

/// Writes a fresh WAL (storage spec §1 "Format writes"): the whole header ring, and the first
/// sector of every prepare slot. Slot 0 holds the root prepare (op 0); slot i holds the
/// reserved header whose op is i, so a misdirected read or write shows up as a wrong op. The
/// rest of each prepare slot is left as it is: recovery reads a prepare only up to its size.
///
/// Sketch: production writes 64 header sectors + 1024 prepare sectors = 4.25 MiB in 4 KiB
/// writes, `journalWritesMax` (32) at a time: a few milliseconds on NVMe. Memory: one sector
/// per concurrent write, allocated at start.
public final class JournalFormatter<S: Storage> {
    private let storage: S
    private let cluster: UInt128
    private let release: UInt32
    private let slotCount: Int
    private let headerSectorCount: Int
    /// One sector per write in flight.
    private let sectors: AlignedBuffer
    private let completions: [StorageCompletion]
    /// Writes numbered 0..<writeCount: header sectors first, then prepare slots.
    private var writeNext = 0
    private var writesInFlight = 0
    private var callback: (() -> Void)?
    /// The formatter keeps itself alive while it writes, so `format` needs no owner.
    private var keepAlive: JournalFormatter?

    /// Formats the WAL of `storage`; `callback` runs once every write is durable.
    public static func format(
        storage: S, cluster: UInt128, release: UInt32, callback: @escaping () -> Void
    ) {
        let formatter = JournalFormatter(storage: storage, cluster: cluster, release: release)
        formatter.start(callback: callback)
    }

    private init(storage: S, cluster: UInt128, release: UInt32) {
        let configuration = storage.layout.configuration
        self.storage = storage
        self.cluster = cluster
        self.release = release
        slotCount = configuration.journalSlotCount
        headerSectorCount = configuration.walHeaderSectorCount
        let concurrency = configuration.journalWritesMax
        sectors = AlignedBuffer(count: concurrency * Constants.sectorSize)
        var completions: [StorageCompletion] = []
        for index in 0..<concurrency {
            let completion = StorageCompletion()
            completion.tag = index
            completions.append(completion)
        }
        self.completions = completions
        for completion in completions {
            completion.callback = { [unowned self] completion in self.written(completion) }
        }
    }

    private var writeCount: Int { headerSectorCount + slotCount }

    private func start(callback: @escaping () -> Void) {
        precondition(self.callback == nil, "a formatter formats once")
        self.callback = callback
        keepAlive = self
        for completion in completions { submitNext(completion) }
    }

    /// The header format writes into `slot`, in both rings.
    private func formatHeader(slot: Int) -> PrepareHeader {
        slot == 0
            ? PrepareHeader.root(cluster: cluster, release: release)
            : PrepareHeader.reserved(cluster: cluster, slot: slot)
    }

    private func submitNext(_ completion: StorageCompletion) {
        guard writeNext < writeCount else { return }
        let write = writeNext
        writeNext += 1
        writesInFlight += 1

        let start = completion.tag * Constants.sectorSize
        let sector = UnsafeMutableRawBufferPointer(
            rebasing: sectors.bytes[start..<start + Constants.sectorSize])
        sector.initializeMemory(as: UInt8.self, repeating: 0)
        let layout = storage.layout
        if write < headerSectorCount {
            let slotFirst = write * Constants.walHeadersPerSector
            for index in 0..<Constants.walHeadersPerSector {
                sector.storeBytes(
                    of: formatHeader(slot: slotFirst + index),
                    toByteOffset: index * Constants.messageHeaderSize, as: PrepareHeader.self)
            }
            storage.write(
                completion, zone: .walHeaders, offset: layout.walHeaderSectorOffset(slot: slotFirst),
                buffer: UnsafeRawBufferPointer(sector))
        } else {
            let slot = write - headerSectorCount
            sector.storeBytes(of: formatHeader(slot: slot), toByteOffset: 0, as: PrepareHeader.self)
            storage.write(
                completion, zone: .walPrepares, offset: layout.walPrepareOffset(slot: slot),
                buffer: UnsafeRawBufferPointer(sector))
        }
    }

    private func written(_ completion: StorageCompletion) {
        precondition(writesInFlight > 0, "a completion belongs to a write in flight")
        writesInFlight -= 1
        submitNext(completion)
        guard writesInFlight == 0 else { return }
        precondition(writeNext == writeCount, "every format write was submitted")
        let callback = self.callback!
        self.callback = nil
        keepAlive = nil  // `self` stays alive until this method returns (the caller holds it).
        callback()
    }
}

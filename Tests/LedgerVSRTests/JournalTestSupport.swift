// Shared helpers of the journal tests: build hash-chained prepares, drive a `Journal` on
// `SimulatedStorage` to completion, and read, forge or damage WAL entries directly on the
// simulated disk.

import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

/// A prepare message in its own sector-aligned buffer, exactly as the journal writes it.
final class JournalTestPrepare {
    let buffer: AlignedBuffer
    let header: PrepareHeader

    init(header unsealed: PrepareHeader, bodySize: Int, prng: inout PRNG) {
        var header = unsealed
        let size = Constants.messageHeaderSize + bodySize
        header.frame.size = UInt32(size)
        let buffer = AlignedBuffer(count: JournalFixture.sectorCeil(size))
        self.buffer = buffer
        // Eight random bytes at a time (the body is up to 12 KiB, and debug builds are slow).
        var index = Constants.messageHeaderSize
        while index < size {
            var word = prng.next()
            let count = min(8, size - index)
            withUnsafeBytes(of: &word) { buffer.bytes[index..<index + count].copyBytes(from: $0.prefix(count)) }
            index += count
        }
        header.seal(body: UnsafeRawBufferPointer(
            rebasing: buffer.bytes[Constants.messageHeaderSize..<size]))
        buffer.bytes.storeBytes(of: header, toByteOffset: 0, as: PrepareHeader.self)
        self.header = header
    }

    var op: UInt64 { header.op }
    var checksum: UInt128 { header.frame.checksum }
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(buffer.bytes) }
    var body: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer.bytes[Constants.messageHeaderSize..<Int(header.frame.size)])
    }
}

/// Makes the prepares of one log: each op's `parent` is the previous op's checksum.
struct JournalTestChain {
    var prng: PRNG
    /// The header the next prepare chains to (starts at the root, op 0).
    var last: PrepareHeader
    /// Largest random body; bodies above 3840 bytes span several sectors.
    var bodySizeMax = 3 * Constants.sectorSize

    init(seed: UInt64, cluster: UInt128 = JournalFixture.cluster) {
        prng = PRNG(seed: seed)
        last = PrepareHeader.root(cluster: cluster, release: JournalFixture.release)
    }

    /// The next op, chained to `last`, which it becomes.
    mutating func next(view: UInt32 = 0, bodySize: Int? = nil) -> JournalTestPrepare {
        let prepare = make(op: last.op + 1, parent: last.frame.checksum, view: view, bodySize: bodySize)
        last = prepare.header
        return prepare
    }

    /// A prepare for any op (not chained; `last` unchanged).
    mutating func make(op: UInt64, parent: UInt128, view: UInt32 = 0, bodySize: Int? = nil)
        -> JournalTestPrepare
    {
        var header = PrepareHeader()
        header.frame.cluster = last.frame.cluster
        header.frame.view = view
        header.frame.release = JournalFixture.release
        header.parent = parent
        header.op = op
        header.commit = op - 1
        header.timestamp = op * 1_000
        header.operation = 138
        let size = bodySize ?? prng.int(in: 0...bodySizeMax)
        return JournalTestPrepare(header: header, bodySize: size, prng: &prng)
    }
}

enum JournalFixture {
    static let configuration = StorageConfiguration.testing
    static let layout = DataFileLayout(.testing)
    static let cluster: UInt128 = 0x5EED_0000_106A
    static let release: UInt32 = 7
    static var slotCount: Int { configuration.journalSlotCount }

    static func sectorCeil(_ size: Int) -> Int {
        (size + Constants.sectorSize - 1) / Constants.sectorSize * Constants.sectorSize
    }

    /// A simulated data file whose WAL is formatted.
    static func formattedStorage(
        seed: UInt64, layout: DataFileLayout = layout, sourceLocation: SourceLocation = #_sourceLocation
    ) -> SimulatedStorage {
        let storage = SimulatedStorage(layout: layout, seed: seed)
        var done = false
        JournalFormatter.format(storage: storage, cluster: cluster, release: release) { done = true }
        storage.runUntilIdle()
        #expect(done, "format completes", sourceLocation: sourceLocation)
        return storage
    }

    /// A fresh journal (a restarted replica) recovering from `storage`.
    static func recover(
        _ storage: SimulatedStorage, opCheckpoint: UInt64 = 0, replicaCount: Int = 3
    ) -> (Journal<SimulatedStorage>, Result<JournalRecovery, JournalError>?) {
        let journal = Journal(storage: storage, cluster: cluster)
        var result: Result<JournalRecovery, JournalError>?
        journal.recover(opCheckpoint: opCheckpoint, replicaCount: replicaCount) { result = $0 }
        storage.runUntilIdle()
        return (journal, result)
    }

    /// `recover`, expecting success.
    static func recovered(
        _ storage: SimulatedStorage, opCheckpoint: UInt64 = 0, replicaCount: Int = 3,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (Journal<SimulatedStorage>, JournalRecovery) {
        let (journal, result) = recover(storage, opCheckpoint: opCheckpoint, replicaCount: replicaCount)
        let report = try #require(try? result?.get(), "recovery succeeds", sourceLocation: sourceLocation)
        #expect(journal.isRecovered, sourceLocation: sourceLocation)
        return (journal, report)
    }

    /// Writes one prepare and runs the disk until it is durable; returns whether the callback ran.
    @discardableResult
    static func append(_ journal: Journal<SimulatedStorage>, _ prepare: JournalTestPrepare) -> Bool {
        var written: PrepareHeader?
        journal.write(prepare: prepare.bytes) { written = $0 }
        journal.storage.runUntilIdle()
        return written == prepare.header
    }

    /// Appends `count` chained prepares; returns them by op.
    static func append(
        _ journal: Journal<SimulatedStorage>, chain: inout JournalTestChain, count: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [UInt64: JournalTestPrepare] {
        var prepares: [UInt64: JournalTestPrepare] = [:]
        for _ in 0..<count {
            let prepare = chain.next()
            #expect(append(journal, prepare), "op \(prepare.op) durable", sourceLocation: sourceLocation)
            prepares[prepare.op] = prepare
        }
        return prepares
    }

    /// Format, recover (checkpoint 0), and append ops 1…count: the usual starting point.
    static func storageWithOps(
        seed: UInt64, count: Int, opCheckpoint: UInt64 = 0
    ) throws -> (SimulatedStorage, [UInt64: JournalTestPrepare], JournalTestChain) {
        let storage = formattedStorage(seed: seed)
        let (journal, _) = try recovered(storage, opCheckpoint: opCheckpoint)
        var chain = JournalTestChain(seed: seed)
        let prepares = append(journal, chain: &chain, count: count)
        return (storage, prepares, chain)
    }

    /// Reads `op` back through the journal: the result and the bytes read.
    static func readBack(
        _ journal: Journal<SimulatedStorage>, op: UInt64, checksum: UInt128,
        bufferSize: Int = Constants.messageSizeMax
    ) -> (JournalReadStart, JournalReadResult?, AlignedBuffer) {
        let buffer = AlignedBuffer(count: bufferSize)
        var result: JournalReadResult?
        let start = journal.read(op: op, checksum: checksum, into: buffer.bytes, purpose: .commit) {
            result = $0
        }
        journal.storage.runUntilIdle()
        return (start, result, buffer)
    }

    /// Whether the journal serves exactly `prepare` (header and body) for its op.
    static func readsIntact(_ journal: Journal<SimulatedStorage>, _ prepare: JournalTestPrepare) -> Bool {
        let (start, result, buffer) = readBack(
            journal, op: prepare.op, checksum: prepare.checksum, bufferSize: prepare.buffer.count)
        guard start == .started, case .prepare(let header)? = result, header == prepare.header else {
            return false
        }
        let size = Int(prepare.header.frame.size)
        return withExtendedLifetime(buffer) {
            UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<size]).elementsEqual(
                UnsafeRawBufferPointer(rebasing: prepare.bytes[0..<size]))
        }
    }

    // MARK: The disk, directly

    static func headerBytes(_ storage: SimulatedStorage, slot: Int) -> UnsafeMutableRawBufferPointer {
        storage.bytes(
            zone: .walHeaders, offset: UInt64(slot * Constants.messageHeaderSize),
            count: Constants.messageHeaderSize)
    }

    static func prepareBytes(_ storage: SimulatedStorage, slot: Int, count: Int = Constants.messageSizeMax)
        -> UnsafeMutableRawBufferPointer
    {
        storage.bytes(
            zone: .walPrepares, offset: storage.layout.walPrepareOffset(slot: slot), count: count)
    }

    /// The slot's redundant header as the disk holds it.
    static func headerOnDisk(_ storage: SimulatedStorage, slot: Int) -> JournalEntry {
        .header(UnsafeRawBufferPointer(headerBytes(storage, slot: slot)), cluster: cluster,
                slot: slot, slotCount: slotCount)
    }

    /// The slot's prepare as the disk holds it.
    static func prepareOnDisk(_ storage: SimulatedStorage, slot: Int) -> JournalEntry {
        .prepare(UnsafeRawBufferPointer(prepareBytes(storage, slot: slot)), cluster: cluster,
                 slot: slot, slotCount: slotCount)
    }

    /// Flips one bit of the slot's redundant header (inside the checksummed bytes).
    static func corruptHeader(_ storage: SimulatedStorage, slot: Int) {
        headerBytes(storage, slot: slot)[100] ^= 0x10
    }

    static func storeHeader(_ storage: SimulatedStorage, slot: Int, _ header: PrepareHeader) {
        headerBytes(storage, slot: slot).storeBytes(of: header, as: PrepareHeader.self)
    }

    /// Overwrites the first `count` bytes (default: all) of a prepare slot with `buffer`'s.
    static func storePrepare(_ storage: SimulatedStorage, slot: Int, _ buffer: AlignedBuffer, count: Int? = nil) {
        let count = count ?? buffer.count
        withExtendedLifetime(buffer) {
            prepareBytes(storage, slot: slot, count: count).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<count]))
        }
    }

    /// The format's first sector of a slot: its reserved header, zero padded.
    static func reservedSector(slot: Int) -> AlignedBuffer {
        let sector = AlignedBuffer(count: Constants.sectorSize)
        sector.bytes.storeBytes(
            of: PrepareHeader.reserved(cluster: cluster, slot: slot), as: PrepareHeader.self)
        return sector
    }

    /// Writes `prepare` through the journal and crashes as soon as the prepare is durable,
    /// before its redundant header reaches the disk.
    static func appendCrashingBeforeHeader(_ journal: Journal<SimulatedStorage>, _ prepare: JournalTestPrepare) {
        let storage = journal.storage
        let slot = Int(prepare.op % UInt64(slotCount))
        var written = false
        journal.write(prepare: prepare.bytes) { _ in written = true }
        let durable = storage.run(until: {
            prepareOnDisk(storage, slot: slot) == .prepare(prepare.header)
        })
        #expect(durable, "the prepare reaches the disk")
        storage.crash()
        #expect(!written, "the crash came before the header write completed")
        #expect(headerOnDisk(storage, slot: slot) != .prepare(prepare.header))
    }
}

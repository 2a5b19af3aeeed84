import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import Testing

@Suite struct CheckpointTrailerTests {
    let layout = DataFileLayout(.testing)
    var blockCount: Int { layout.configuration.gridBlockCountMax }

    typealias Trailer = CheckpointTrailer<SimulatedStorage>

    func makeStorage(seed: UInt64) -> SimulatedStorage {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...7
        options.writeLatencyTicks = 1...7
        return SimulatedStorage(layout: layout, seed: seed, options: options)
    }

    func makeGrid(_ storage: SimulatedStorage) -> Grid<SimulatedStorage> {
        Grid(storage: storage, cacheBlocks: 32, readsMax: 2, writesMax: 4)
    }

    /// The two free-set trailers of one grid; a small chunk size makes chains of several blocks
    /// out of the 16-word bitsets of the testing grid.
    func makeTrailers(_ grid: Grid<SimulatedStorage>, _ freeSet: FreeSet, chunkSize: Int) -> (Trailer, Trailer) {
        let count = Trailer.freeSetBlockCountMax(freeSet, chunkSize: chunkSize)
        return (Trailer(grid: grid, kind: .freeSetAcquired, blockCountMax: count, chunkSize: chunkSize, writesMax: 2),
                Trailer(grid: grid, kind: .freeSetReleased, blockCountMax: count, chunkSize: chunkSize, writesMax: 2))
    }

    /// Acquired blocks follow `pattern`, and those `releasing` says are released (through the
    /// public API, as a running replica gets there).
    func makeSet(pattern: (Int) -> Bool, releasing: (Int) -> Bool) -> FreeSet {
        let set = FreeSet(blockCount: blockCount)
        set.openReservations()
        if let reservation = set.reserve(count: blockCount) {
            for _ in 0..<blockCount { _ = set.acquire(reservation) }
            set.forfeit(reservation)
        }
        set.closeReservations()
        for index in 0..<blockCount where !pattern(index) { set.release(UInt64(index + 1)) }
        set.markCheckpointNotDurable()
        set.markCheckpointDurable()
        for index in 0..<blockCount where pattern(index) && releasing(index) { set.release(UInt64(index + 1)) }
        return set
    }

    struct Bits: Equatable {
        var free: [Bool]
        var released: [Bool]
    }

    func bits(_ set: FreeSet) -> Bits {
        let addresses = (1...UInt64(set.blockCount))
        return Bits(free: addresses.map { set.isFree($0) }, released: addresses.map { set.isReleased($0) })
    }

    /// The addresses whose state differs (short failure messages).
    func differences(_ a: FreeSet, _ b: FreeSet) -> [UInt64] {
        let (x, y) = (bits(a), bits(b))
        return (0..<x.free.count).filter { x.free[$0] != y.free[$0] || x.released[$0] != y.released[$0] }.map { UInt64($0 + 1) }
    }

    struct Written {
        let storage: SimulatedStorage
        let acquired: CheckpointTrailerReference
        let released: CheckpointTrailerReference
        let acquiredBlocks: [UInt64]
        let releasedBlocks: [UInt64]
    }

    /// Writes `set`'s trailers as a checkpoint does, then takes the checkpoint's next steps
    /// (`markCheckpointNotDurable`, release the trailer blocks).
    func checkpoint(_ set: FreeSet, seed: UInt64, chunkSize: Int, _ comment: Comment) -> Written? {
        let storage = makeStorage(seed: seed)
        let grid = makeGrid(storage)
        let (acquired, released) = makeTrailers(grid, set, chunkSize: chunkSize)
        let before = bits(set)
        var done = false
        guard FreeSetTrailers.write(acquired: acquired, released: released, freeSet: set, snapshot: 7, callback: { done = true }) else {
            Issue.record("no room for the trailers: \(comment)")
            return nil
        }
        storage.runUntilIdle()
        #expect(done, comment)
        let trailerBlocks = acquired.blockAddresses + released.blockAddresses
        #expect(acquired.blockAddresses.count == acquired.blockCount, comment)
        #expect(Set(trailerBlocks).count == trailerBlocks.count, comment)
        for address in trailerBlocks {
            #expect(before.free[Int(address - 1)], "trailer blocks were free in the encoding: \(comment)")
            #expect(!set.isFree(address), "trailer blocks are acquired: \(comment)")
        }
        set.markCheckpointNotDurable()
        acquired.releaseBlocks(set)
        released.releaseBlocks(set)
        #expect(set.verifyInvariants(), comment)
        return Written(storage: storage, acquired: acquired.reference, released: released.reference,
                       acquiredBlocks: acquired.blockAddresses, releasedBlocks: released.blockAddresses)
    }

    func open(_ written: Written, chunkSize: Int) -> (FreeSet, Result<Void, CheckpointTrailerError>?) {
        let set = FreeSet(blockCount: blockCount)
        let grid = makeGrid(written.storage)
        let (acquired, released) = makeTrailers(grid, set, chunkSize: chunkSize)
        var outcome: Result<Void, CheckpointTrailerError>?
        FreeSetTrailers.open(
            acquired: acquired, released: released, acquiredReference: written.acquired, releasedReference: written.released,
            freeSet: set) { outcome = $0 }
        written.storage.runUntilIdle()
        if case .success = outcome {
            #expect(acquired.blockAddresses == written.acquiredBlocks)
            #expect(released.blockAddresses == written.releasedBlocks)
        }
        return (set, outcome)
    }

    func isSuccess(_ outcome: Result<Void, CheckpointTrailerError>?) -> Bool {
        if case .success = outcome { return true }
        return false
    }

    func error(_ outcome: Result<Void, CheckpointTrailerError>?) -> CheckpointTrailerError? {
        if case .failure(let error) = outcome { return error }
        return nil
    }

    @Test func freeSetRoundTrips() {
        var prng = PRNG(seed: 2026)
        let random = (0..<blockCount).map { _ in prng.chance(percent: 50) }
        let randomReleased = (0..<blockCount).map { _ in prng.chance(percent: 20) }
        let cases: [(String, () -> FreeSet)] = [
            ("empty", { FreeSet(blockCount: blockCount) }),
            ("random", { makeSet(pattern: { random[$0] }, releasing: { randomReleased[$0] }) }),
            // 41 free blocks: the last 40 and one in the middle, where the chains go.
            ("nearly full", { makeSet(pattern: { $0 < blockCount - 40 && $0 != 500 }, releasing: { $0 % 3 == 0 }) }),
            ("prefix", { makeSet(pattern: { $0 < 300 }, releasing: { $0 > 250 }) }),
        ]
        for (name, make) in cases {
            for (seed, chunkSize) in [(UInt64(1), 24), (2, 32), (3, CheckpointTrailerBlock.chunkSizeDefault(blockSize: layout.configuration.blockSize))] {
                let comment: Comment = "\(name), seed \(seed), chunk \(chunkSize)"
                let original = make()
                guard let written = checkpoint(original, seed: seed, chunkSize: chunkSize, comment) else { continue }
                if name == "empty" {
                    #expect(written.acquired == .empty, comment)
                    #expect(written.released == .empty, comment)
                }
                if name == "random" && chunkSize == 24 {
                    #expect(written.acquiredBlocks.count > 1, "a chain of several blocks: \(comment)")
                }
                let (opened, outcome) = open(written, chunkSize: chunkSize)
                #expect(isSuccess(outcome), comment)
                // The same state as the replica that never restarted: the encoded bits, plus the
                // trailer blocks acquired and released.
                #expect(differences(opened, original) == [], comment)
                #expect(opened.acquiredCount == original.acquiredCount, comment)
                #expect(opened.releasedCount == original.releasedCount, comment)
                #expect(opened.verifyInvariants(), comment)
                #expect(!opened.isCheckpointDurable, comment)
                // The two replicas free the same blocks when the checkpoint becomes durable.
                original.markCheckpointDurable()
                opened.markCheckpointDurable()
                #expect(differences(opened, original) == [], comment)
            }
        }
    }

    @Test func referenceDescribesTheChain() {
        let set = makeSet(pattern: { $0 % 5 == 1 }, releasing: { $0 % 10 == 1 })
        guard let written = checkpoint(set, seed: 4, chunkSize: 32, "pattern") else { return }
        let last = written.acquiredBlocks.last!
        #expect(written.acquired.last.address == last)
        let block = written.storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: last), count: layout.configuration.blockSize)
        let header = Header(from: UnsafeRawBufferPointer(block)).asBlock
        #expect(header.frame.checksum == written.acquired.last.checksum)
        #expect(header.blockType == BlockType.freeSet.rawValue)
        #expect(header.snapshot == 7)
        let metadata = BlockMetadata(header.metadata)
        #expect(metadata.load(UInt8.self, at: 0) == TrailerKind.freeSetAcquired.rawValue)
        let chunk = metadata.load(UInt32.self, at: 4)
        #expect(Int(header.frame.size) == 256 + Int(chunk))
        #expect(metadata.load(UInt64.self, at: 8) == written.acquiredBlocks[written.acquiredBlocks.count - 2])
        let previous = written.storage.bytes(
            zone: .grid, offset: layout.gridBlockOffset(address: written.acquiredBlocks[written.acquiredBlocks.count - 2]),
            count: layout.configuration.blockSize)
        #expect(metadata.load(UInt128.self, at: 16) == Header(from: UnsafeRawBufferPointer(previous)).frame.checksum)
        #expect(metadata.load(UInt32.self, at: 0) >> 8 == 0, "bytes 1...3 are zero")
        for offset in stride(from: 32, to: 96, by: 16) { #expect(metadata.load(UInt128.self, at: offset) == 0) }
        // The size is the sum of the chunks; the checksum covers the stream.
        var total = 0
        var stream: [UInt8] = []
        for address in written.acquiredBlocks {
            let bytes = written.storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: address), count: layout.configuration.blockSize)
            let size = Int(Header(from: UnsafeRawBufferPointer(bytes)).frame.size) - 256
            total += size
            stream += bytes[256..<(256 + size)]
        }
        #expect(UInt64(total) == written.acquired.size)
        #expect(stream.withUnsafeBytes { checksum($0) } == written.acquired.checksum)
    }

    @Test func corruptBlockIsAFault() {
        var prng = PRNG(seed: 5)
        let random = (0..<blockCount).map { _ in prng.chance(percent: 50) }
        for seed in UInt64(1)...4 {
            let set = makeSet(pattern: { random[$0] }, releasing: { $0 % 4 == 0 })
            guard let written = checkpoint(set, seed: seed, chunkSize: 32, "seed \(seed)") else { continue }
            let victim = written.acquiredBlocks[Int(seed) % written.acquiredBlocks.count]
            written.storage.corruptSector(zone: .grid, offset: layout.gridBlockOffset(address: victim))
            let (opened, outcome) = open(written, chunkSize: 32)
            guard case .block(address: victim, _)? = error(outcome) else {
                Issue.record("seed \(seed): expected a fault at \(victim), got \(String(describing: outcome))")
                continue
            }
            #expect(opened.acquiredCount == 0, "nothing is decoded from a broken chain")
        }
    }

    @Test func wrongReferencesAreErrors() {
        let set = makeSet(pattern: { $0 % 3 == 0 }, releasing: { $0 % 6 == 0 })
        guard let written = checkpoint(set, seed: 6, chunkSize: 32, "pattern") else { return }
        func openAcquired(_ reference: CheckpointTrailerReference) -> CheckpointTrailerError? {
            let variant = Written(storage: written.storage, acquired: reference, released: written.released,
                                  acquiredBlocks: written.acquiredBlocks, releasedBlocks: written.releasedBlocks)
            return error(open(variant, chunkSize: 32).1)
        }
        var reference = written.acquired
        #expect(openAcquired(reference) == nil)
        reference.checksum &+= 1
        #expect(openAcquired(reference) == .checksum)
        reference = written.acquired
        reference.size -= 1
        #expect(openAcquired(reference) != nil, "a shorter size does not reassemble")
        reference = written.acquired
        reference.size += 8
        #expect(openAcquired(reference) == .chainEnded)
        reference.size = UInt64(1 << 40)
        #expect(openAcquired(reference) == .sizeTooLarge(1 << 40))
        reference = written.acquired
        reference.last.checksum &+= 1
        #expect(openAcquired(reference) == .block(address: reference.last.address, .checksumMismatch))
        #expect(openAcquired(CheckpointTrailerReference(checksum: 1, last: .null, size: 0)) == .reference)
        #expect(openAcquired(CheckpointTrailerReference(checksum: 0, last: .null, size: 8)) == .reference)
        // The released chain named as the acquired one: another trailer kind.
        #expect(openAcquired(written.released) == .kind(TrailerKind.freeSetReleased.rawValue))
    }

    @Test func trailerBlockAcquiredInTheEncodingIsAnError() {
        let storage = makeStorage(seed: 12)
        let grid = makeGrid(storage)
        let set = makeSet(pattern: { $0 < 100 }, releasing: { $0 < 10 })
        let (first1, first2) = makeTrailers(grid, set, chunkSize: 32)
        #expect(FreeSetTrailers.write(acquired: first1, released: first2, freeSet: set, snapshot: 1, callback: {}))
        storage.runUntilIdle()
        // A second encoding lists the first chains' blocks as acquired.
        let (second1, second2) = makeTrailers(grid, set, chunkSize: 32)
        #expect(FreeSetTrailers.write(acquired: second1, released: second2, freeSet: set, snapshot: 2, callback: {}))
        storage.runUntilIdle()
        let mixed = Written(storage: storage, acquired: second1.reference, released: first2.reference,
                            acquiredBlocks: second1.blockAddresses, releasedBlocks: first2.blockAddresses)
        let (opened, outcome) = open(mixed, chunkSize: 32)
        #expect(error(outcome) == .trailerBlockAcquired(first2.blockAddresses[0]))
        #expect(opened.acquiredCount == 0, "the free set is left empty")
        #expect(opened.verifyInvariants())
    }

    @Test func fullGridCannotTakeTheTrailers() {
        let set = makeSet(pattern: { _ in true }, releasing: { $0 % 2 == 0 })
        let storage = makeStorage(seed: 8)
        let (acquired, released) = makeTrailers(makeGrid(storage), set, chunkSize: 32)
        let before = bits(set)
        #expect(!FreeSetTrailers.write(acquired: acquired, released: released, freeSet: set, snapshot: 1, callback: {}))
        let unchanged = bits(set) == before
        #expect(unchanged)
        #expect(acquired.isIdle)
        #expect(released.isIdle)
        #expect(!set.isReserving)
    }

    @Test func byteStreamRoundTrips() {
        for (seed, size) in [(UInt64(1), 0), (2, 1), (3, 3840), (4, 3841), (5, 20_000)] {
            var prng = PRNG(seed: seed)
            let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: prng.next()) }
            let storage = makeStorage(seed: seed)
            let set = FreeSet(blockCount: blockCount)
            let writer = Trailer(grid: makeGrid(storage), kind: .clientSessions, blockCountMax: 6)
            writer.beginStaging()
            bytes.withUnsafeBytes { writer.stage(bytes: $0) }
            let count = writer.stagedBlockCount
            #expect(count == (size + 3839) / 3840, "seed \(seed)")
            set.openReservations()
            let reservation = count > 0 ? set.reserve(count: count) : nil
            var done = false
            writer.write(freeSet: set, reservation: reservation, snapshot: 3) { done = true }
            if let reservation { set.forfeit(reservation) }
            set.closeReservations()
            storage.runUntilIdle()
            #expect(done, "seed \(seed)")
            #expect(writer.reference.size == UInt64(size))
            #expect(writer.blockAddresses == (0..<count).map { UInt64($0 + 1) }, "lowest addresses in stream order")

            let reader = Trailer(grid: makeGrid(storage), kind: .clientSessions, blockCountMax: 6)
            var outcome: Result<Void, CheckpointTrailerError>?
            reader.read(writer.reference) { outcome = $0 }
            storage.runUntilIdle()
            #expect(isSuccess(outcome), "seed \(seed)")
            #expect(Array(reader.stream) == bytes, "seed \(seed)")
            #expect(reader.chunks.map { $0.count } == (0..<count).map { min(3840, size - $0 * 3840) })
            #expect(reader.blockAddresses == writer.blockAddresses)
            // Client-session blocks were acquired in the encoding: released after open.
            set.markCheckpointNotDurable()
            reader.releaseBlocks(set)
            #expect(set.releasedCount == count)
        }
    }
}

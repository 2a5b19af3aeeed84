import LedgerKit
import LedgerLSM
import Testing

@Suite struct FreeSetTests {
    /// Acquires `count` blocks in one session (the lowest free ones) and returns them.
    @discardableResult
    func acquire(_ set: FreeSet, count: Int) -> [UInt64] {
        set.openReservations()
        defer { set.closeReservations() }
        guard let reservation = set.reserve(count: count) else {
            Issue.record("no room for \(count) blocks")
            return []
        }
        var addresses: [UInt64] = []
        for _ in 0..<count {
            if let address = set.acquire(reservation) { addresses.append(address) }
        }
        set.forfeit(reservation)
        return addresses
    }

    @Test func freshSet() {
        let set = FreeSet(blockCount: 1024)
        #expect(set.freeCount == 1024)
        #expect(set.acquiredCount == 0)
        #expect(set.highestAcquiredAddress == 0)
        #expect(set.isFree(1))
        #expect(set.isFree(1024))
        #expect(set.isCheckpointDurable)
        #expect(set.verifyInvariants())
    }

    @Test func acquiresLowestAddressesFirst() {
        let set = FreeSet(blockCount: 1024)
        #expect(acquire(set, count: 5) == [1, 2, 3, 4, 5])
        #expect(acquire(set, count: 2) == [6, 7])
        #expect(set.acquiredCount == 7)
        #expect(set.highestAcquiredAddress == 7)
        #expect(!set.isFree(7))
        #expect(set.isFree(8))
    }

    /// Two jobs reserve in a fixed order; which acquires first does not change who gets what.
    @Test func reservationsAreDeterministicWhateverTheAcquireOrder() {
        func run(bFirst: Bool) -> (a: [UInt64], b: [UInt64]) {
            let set = FreeSet(blockCount: 1024)
            // Fragment the grid: blocks 2, 4 and 9 are taken.
            set.openReservations()
            let setup = set.reserve(count: 9)!
            var taken: [UInt64] = []
            for _ in 0..<9 { taken.append(set.acquire(setup)!) }
            set.forfeit(setup)
            set.closeReservations()
            for address in taken where ![2, 4, 9].contains(address) { set.release(address) }
            set.markCheckpointNotDurable()
            set.markCheckpointDurable()
            #expect(set.acquiredCount == 3)

            set.openReservations()
            let a = set.reserve(count: 4)!
            let b = set.reserve(count: 3)!
            #expect(a.addresses == 1...6, "4 free blocks from 1: 1, 3, 5, 6")
            #expect(b.addresses == 7...10, "3 free blocks after: 7, 8, 10")
            var fromA: [UInt64] = []
            var fromB: [UInt64] = []
            if bFirst {
                for _ in 0..<3 { fromB.append(set.acquire(b)!) }
                for _ in 0..<4 { fromA.append(set.acquire(a)!) }
            } else {
                for _ in 0..<2 { fromA.append(set.acquire(a)!) }
                fromB.append(set.acquire(b)!)
                for _ in 0..<2 { fromA.append(set.acquire(a)!) }
                for _ in 0..<2 { fromB.append(set.acquire(b)!) }
            }
            #expect(set.acquire(a) == nil, "a reservation holds exactly what it reserved")
            #expect(set.acquire(b) == nil)
            set.forfeit(b)
            set.forfeit(a)
            set.closeReservations()
            #expect(set.verifyInvariants())
            return (fromA, fromB)
        }
        let one = run(bFirst: true)
        let two = run(bFirst: false)
        #expect(one.a == [1, 3, 5, 6])
        #expect(one.b == [7, 8, 10])
        #expect(one.a == two.a)
        #expect(one.b == two.b)
    }

    @Test func unusedReservationsAreReclaimedAtSessionClose() {
        let set = FreeSet(blockCount: 64)
        set.openReservations()
        let big = set.reserve(count: 10)!
        #expect(set.acquire(big) == 1)
        set.forfeit(big)
        set.closeReservations()
        #expect(acquire(set, count: 3) == [2, 3, 4])
    }

    @Test func fullGridGivesNil() {
        let set = FreeSet(blockCount: 100)
        set.openReservations()
        #expect(set.reserve(count: 101) == nil, "more than the grid")
        let most = set.reserve(count: 90)!
        #expect(set.reserve(count: 11) == nil, "more than what is left")
        let rest = set.reserve(count: 10)!
        #expect(set.reserve(count: 1) == nil, "everything is reserved")
        for _ in 0..<90 { _ = set.acquire(most) }
        for _ in 0..<10 { _ = set.acquire(rest) }
        #expect(set.acquire(rest) == nil)
        set.forfeit(most)
        set.forfeit(rest)
        set.closeReservations()
        #expect(set.freeCount == 0)
        set.openReservations()
        #expect(set.reserve(count: 1) == nil, "the grid is full")
        set.closeReservations()
        #expect(set.highestAcquiredAddress == 100)
        #expect(set.verifyInvariants())
    }

    /// A block released in interval N is freed only when checkpoint N+1 is durable (#2600).
    @Test func releaseProtocol() {
        let set = FreeSet(blockCount: 8)
        acquire(set, count: 8)
        // Interval N (checkpoint N durable): release 3.
        set.release(3)
        #expect(!set.isFree(3))
        #expect(set.isReleased(3))
        #expect(set.releasedCount == 1)
        set.openReservations()
        #expect(set.reserve(count: 1) == nil, "a released block is not reusable yet")
        set.closeReservations()
        // Checkpoint N+1 written, not durable yet: release 5.
        set.markCheckpointNotDurable()
        set.release(5)
        #expect(!set.isFree(3))
        #expect(!set.isFree(5))
        #expect(set.releasedCount == 2)
        #expect(set.verifyInvariants())
        // Checkpoint N+1 durable: 3 is free; 5 waits for checkpoint N+2.
        set.markCheckpointDurable()
        #expect(set.isFree(3))
        #expect(!set.isFree(5))
        #expect(set.isReleased(5))
        #expect(acquire(set, count: 1) == [3])
        set.release(6)
        set.markCheckpointNotDurable()
        #expect(!set.isFree(5))
        set.markCheckpointDurable()
        #expect(set.isFree(5))
        #expect(set.isFree(6))
        #expect(set.releasedCount == 0)
        #expect(set.verifyInvariants())
    }

    /// The production grid: 33.5 M blocks. A mostly empty free set encodes to a few words.
    @Test func productionSize() {
        let set = FreeSet(blockCount: Constants.gridBlockCountMax)
        #expect(set.wordCount == Constants.gridBlockCountMax / 64)
        acquire(set, count: 10_000)
        set.release(5)
        set.release(9_999)
        set.markCheckpointNotDurable()
        set.markCheckpointDurable()
        #expect(set.highestAcquiredAddress == 10_000)
        #expect(set.acquiredCount == 9_998)
        // Blocks past the first shards: the search skips the full shards through the index.
        set.openReservations()
        let reservation = set.reserve(count: 3)!
        #expect(set.acquire(reservation) == 5)
        #expect(set.acquire(reservation) == 9_999)
        #expect(set.acquire(reservation) == 10_001)
        set.forfeit(reservation)
        set.closeReservations()
        set.release(7)
        var acquired = [UInt8](repeating: 0, count: 4096)
        var released = [UInt8](repeating: 0, count: 4096)
        var acquiredEncoding = set.beginEncoding(.acquired)
        var releasedEncoding = set.beginEncoding(.released)
        let acquiredSize = acquired.withUnsafeMutableBytes { set.encode(&acquiredEncoding, into: $0) }
        let releasedSize = released.withUnsafeMutableBytes { set.encode(&releasedEncoding, into: $0) }
        #expect(acquiredEncoding.isDone)
        #expect(releasedEncoding.isDone)
        #expect(acquiredSize == 2 * 8, "a marker for 156 full words and a literal")
        #expect(releasedSize == 2 * 8, "a marker and a literal")
        let decoded = FreeSet(blockCount: Constants.gridBlockCountMax)
        do {
            try acquired.withUnsafeBytes { a in
                try released.withUnsafeBytes { r in
                    try decoded.decode(acquired: [UnsafeRawBufferPointer(rebasing: a[0..<acquiredSize])],
                                       released: [UnsafeRawBufferPointer(rebasing: r[0..<releasedSize])])
                }
            }
        } catch {
            Issue.record("decode failed: \(error)")
        }
        #expect(decoded.acquiredCount == 10_001)
        #expect(decoded.releasedCount == 1)
        #expect(decoded.isReleased(7))
        #expect(decoded.isFree(10_002))
        #expect(!decoded.isFree(10_001))
        #expect(decoded.highestAcquiredAddress == 10_001)
        #expect(decoded.verifyInvariants())
    }

    @Test func highestAcquired() {
        let set = FreeSet(blockCount: 5000)
        #expect(set.highestAcquiredAddress == 0)
        acquire(set, count: 4097)
        #expect(set.highestAcquiredAddress == 4097)
        set.release(4097)
        set.markCheckpointNotDurable()
        #expect(set.highestAcquiredAddress == 4097, "released is still acquired")
        set.markCheckpointDurable()
        #expect(set.highestAcquiredAddress == 4096)
    }

    // MARK: Model test

    /// The free set as plain arrays, doing everything the slow way.
    struct Model {
        var acquired: [Bool]
        var released: [Bool]
        var pending: [Bool]
        var durable = true
        var reservedBlocks = 0

        init(blockCount: Int) {
            acquired = Array(repeating: false, count: blockCount)
            released = acquired
            pending = acquired
        }

        func reserveEnd(count: Int) -> Int? {
            var remaining = count
            var index = reservedBlocks
            while index < acquired.count {
                if !acquired[index] {
                    remaining -= 1
                    if remaining == 0 { return index + 1 }
                }
                index += 1
            }
            return nil
        }

        func lowestFree(in range: Range<Int>) -> Int? {
            range.first { !acquired[$0] }
        }
    }

    func compareAll(_ set: FreeSet, _ model: Model, _ comment: Comment) {
        #expect(set.verifyInvariants(), comment)
        #expect(set.acquiredCount == model.acquired.count(where: { $0 }), comment)
        #expect(set.releasedCount == model.released.count(where: { $0 }) + model.pending.count(where: { $0 }), comment)
        var mismatches = 0
        for index in 0..<model.acquired.count {
            let address = UInt64(index + 1)
            if set.isFree(address) == model.acquired[index] { mismatches += 1 }
            if set.isReleased(address) != (model.released[index] || model.pending[index]) { mismatches += 1 }
        }
        #expect(mismatches == 0, comment)
        let highest = model.acquired.lastIndex(of: true).map { UInt64($0 + 1) } ?? 0
        #expect(set.highestAcquiredAddress == highest, comment)
    }

    @Test(arguments: 0..<24)
    func randomizedAgainstModel(seed: Int) {
        var prng = PRNG(seed: UInt64(seed))
        let blockCounts = [1, 63, 64, 65, 4095, 4096, 4097, 3 * 4096 + 100, 20_000]
        let blockCount = blockCounts[seed % blockCounts.count]
        let set = FreeSet(blockCount: blockCount)
        var model = Model(blockCount: blockCount)
        var reservations: [(reservation: Reservation, range: Range<Int>)] = []
        var forfeiting = false
        let comment: Comment = "seed \(seed), blockCount \(blockCount)"
        let reserveMax = max(1, blockCount / 8)

        for step in 0..<600 {
            if !set.isReserving {
                switch prng.below(5) {
                case 0, 1:
                    set.openReservations()
                    forfeiting = false
                case 2:
                    // Release a few acquired blocks.
                    for _ in 0..<prng.int(in: 1...max(8, reserveMax / 2)) {
                        let index = Int(prng.below(UInt64(blockCount)))
                        guard model.acquired[index], !model.released[index], !model.pending[index] else { continue }
                        set.release(UInt64(index + 1))
                        if model.durable { model.released[index] = true } else { model.pending[index] = true }
                    }
                default:
                    if model.durable {
                        set.markCheckpointNotDurable()
                        model.durable = false
                    } else {
                        set.markCheckpointDurable()
                        for index in 0..<blockCount where model.released[index] {
                            model.acquired[index] = false
                        }
                        model.released = model.pending
                        model.pending = Array(repeating: false, count: blockCount)
                        model.durable = true
                    }
                }
            } else {
                let choice = prng.below(10)
                if choice < 3 && !forfeiting {
                    let count = prng.int(in: 1...reserveMax)
                    let expected = model.reserveEnd(count: count)
                    let reservation = set.reserve(count: count)
                    #expect((reservation == nil) == (expected == nil), comment)
                    if let reservation, let end = expected {
                        #expect(reservation.blockBase == model.reservedBlocks, comment)
                        #expect(reservation.blockBase + reservation.blockCount == end, comment)
                        reservations.append((reservation, model.reservedBlocks..<end))
                        model.reservedBlocks = end
                    }
                } else if choice < 8 && !reservations.isEmpty {
                    // A batch, so that shards fill up and the index changes.
                    let pick = Int(prng.below(UInt64(reservations.count)))
                    let range = reservations[pick].range
                    var from = range.lowerBound
                    for _ in 0..<prng.int(in: 1...max(1, reserveMax / 2)) {
                        // Nothing else changes during the batch: the lowest free block only
                        // moves up.
                        let expected = model.lowestFree(in: from..<range.upperBound)
                        let address = set.acquire(reservations[pick].reservation)
                        #expect(address == expected.map { UInt64($0 + 1) }, comment)
                        guard let index = expected else { break }
                        model.acquired[index] = true
                        from = index + 1
                    }
                } else if !reservations.isEmpty {
                    let pick = Int(prng.below(UInt64(reservations.count)))
                    set.forfeit(reservations.remove(at: pick).reservation)
                    forfeiting = true
                } else {
                    set.closeReservations()
                    model.reservedBlocks = 0
                }
            }
            // The shard index against a scan of the bitset, often; every block, now and then.
            if step % 5 == 0 { #expect(set.verifyInvariants(), comment) }
            if step % 50 == 0 { compareAll(set, model, comment) }
        }
        for reservation in reservations { set.forfeit(reservation.reservation) }
        if set.isReserving { set.closeReservations() }
        compareAll(set, model, comment)
    }

    // MARK: Encoding

    /// Encodes both bitsets of `set` into chunks of `chunkSize` bytes; decodes them into a
    /// fresh set and checks every block agrees.
    func roundTrip(_ set: FreeSet, chunkSize: Int, _ comment: Comment) -> FreeSet {
        func encode(_ bitset: FreeSet.Bitset) -> [[UInt8]] {
            var encoding = set.beginEncoding(bitset)
            var chunks: [[UInt8]] = []
            let chunkMax = EWAH.chunkCountMax(wordCount: set.wordCount, chunkSize: chunkSize)
            while !encoding.isDone && chunks.count < chunkMax {
                var chunk = [UInt8](repeating: 0, count: chunkSize)
                let size = chunk.withUnsafeMutableBytes { set.encode(&encoding, into: $0) }
                chunks.append(Array(chunk[0..<size]))
            }
            #expect(encoding.isDone, comment)
            return chunks
        }
        let acquiredChunks = encode(.acquired)
        let releasedChunks = encode(.released)
        let decoded = FreeSet(blockCount: set.blockCount)
        do {
            try withChunkPointers(acquiredChunks) { acquired in
                try withChunkPointers(releasedChunks) { released in
                    try decoded.decode(acquired: acquired, released: released)
                }
            }
        } catch {
            Issue.record("decode failed: \(error), \(comment)")
        }
        #expect(!decoded.isCheckpointDurable, comment)
        #expect(decoded.verifyInvariants(), comment)
        #expect(decoded.acquiredCount == set.acquiredCount, comment)
        #expect(decoded.releasedCount == set.releasedCount, comment)
        var mismatches = 0
        for address in 1...UInt64(set.blockCount) {
            if decoded.isFree(address) != set.isFree(address) { mismatches += 1 }
            if decoded.isReleased(address) != set.isReleased(address) { mismatches += 1 }
        }
        #expect(mismatches == 0, comment)
        return decoded
    }

    func withChunkPointers<R>(_ chunks: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        let copies = chunks.map { chunk -> UnsafeMutableRawBufferPointer in
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk.count, alignment: 8)
            copy.copyBytes(from: chunk)
            return copy
        }
        defer { for copy in copies { copy.deallocate() } }
        return try body(copies.map { UnsafeRawBufferPointer($0) })
    }

    /// Sets the acquired blocks to `pattern` (and releases those `releasing` says) through the
    /// public API, the way a running replica would.
    func makeSet(blockCount: Int, pattern: (Int) -> Bool, releasing: (Int) -> Bool) -> FreeSet {
        let set = FreeSet(blockCount: blockCount)
        acquire(set, count: blockCount)
        for index in 0..<blockCount where !pattern(index) { set.release(UInt64(index + 1)) }
        set.markCheckpointNotDurable()
        set.markCheckpointDurable()
        for index in 0..<blockCount where pattern(index) && releasing(index) { set.release(UInt64(index + 1)) }
        return set
    }

    @Test func encodeDecodeRoundTrips() {
        let blockCount = 3 * 4096 + 77
        var prng = PRNG(seed: 7)
        let random = (0..<blockCount).map { _ in prng.chance(percent: 50) }
        let cases: [(String, FreeSet)] = [
            ("empty", FreeSet(blockCount: blockCount)),
            ("full", makeSet(blockCount: blockCount, pattern: { _ in true }, releasing: { _ in false })),
            ("full, some released", makeSet(blockCount: blockCount, pattern: { _ in true }, releasing: { $0 % 100 == 0 })),
            ("alternating", makeSet(blockCount: blockCount, pattern: { $0 % 2 == 0 }, releasing: { $0 % 6 == 0 })),
            ("alternating words", makeSet(blockCount: blockCount, pattern: { ($0 / 64) % 2 == 0 }, releasing: { _ in false })),
            ("random", makeSet(blockCount: blockCount, pattern: { random[$0] }, releasing: { $0 % 3 == 0 })),
            ("prefix", makeSet(blockCount: blockCount, pattern: { $0 < 5000 }, releasing: { $0 == 4999 })),
        ]
        for (name, set) in cases {
            for chunkSize in [32, 256, 8192] {
                let decoded = roundTrip(set, chunkSize: chunkSize, "\(name), chunk \(chunkSize)")
                // The decoded set goes on like the original: released blocks are freed when
                // the checkpoint becomes durable.
                let released = set.releasedCount
                let acquiredBefore = decoded.acquiredCount
                decoded.markCheckpointDurable()
                #expect(decoded.acquiredCount == acquiredBefore - released, "\(name)")
                #expect(decoded.verifyInvariants(), "\(name)")
            }
        }
        // A mostly empty or mostly full grid encodes to a few bytes.
        let full = makeSet(blockCount: blockCount, pattern: { _ in true }, releasing: { _ in false })
        var encoding = full.beginEncoding(.acquired)
        var chunk = [UInt8](repeating: 0, count: 4096)
        #expect(chunk.withUnsafeMutableBytes { full.encode(&encoding, into: $0) } == 16, "a run and the last word")
        #expect(encoding.isDone)
        let empty = FreeSet(blockCount: blockCount)
        var emptyEncoding = empty.beginEncoding(.acquired)
        #expect(chunk.withUnsafeMutableBytes { empty.encode(&emptyEncoding, into: $0) } == 0)
        #expect(emptyEncoding.isDone)
    }

    @Test func trailerBlocksAreMarkedReleasedAtOpen() throws {
        let set = FreeSet(blockCount: 256)
        acquire(set, count: 10)
        let decoded = roundTrip(set, chunkSize: 64, "trailer")
        decoded.markReleasedAtOpen(11)
        decoded.markReleasedAtOpen(12)
        #expect(!decoded.isFree(11))
        #expect(decoded.isReleased(12))
        #expect(decoded.verifyInvariants())
        decoded.markCheckpointDurable()
        #expect(!decoded.isFree(11), "the trailer of this checkpoint is freed with the next one")
        decoded.markCheckpointNotDurable()
        decoded.markCheckpointDurable()
        #expect(decoded.isFree(11))
        #expect(decoded.isFree(12))
    }

    func decodeError(blockCount: Int, acquired: [UInt64], released: [UInt64]) -> FreeSetDecodeError? {
        let set = FreeSet(blockCount: blockCount)
        acquire(set, count: 3)
        do {
            try acquired.withUnsafeBytes { a in
                try released.withUnsafeBytes { r in
                    try set.decode(acquired: [a], released: [r])
                }
            }
            return nil
        } catch let error as FreeSetDecodeError {
            #expect(set.acquiredCount == 0, "a failed decode leaves the set empty")
            #expect(set.verifyInvariants())
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func hostileEncodingsAreTypedErrors() {
        let ones: UInt64 = 1 | 1 << 1  // A run of one all-ones word.
        let literal: (UInt64) -> UInt64 = { $0 << 32 }
        #expect(decodeError(blockCount: 128, acquired: [ones], released: []) == nil)
        #expect(decodeError(blockCount: 128, acquired: [], released: [ones]) == .releasedNotAcquired)
        #expect(decodeError(blockCount: 100, acquired: [ones, ones], released: []) == .bitPastBlockCount)
        #expect(decodeError(blockCount: 100, acquired: [literal(2), 5, 1 << 40], released: []) == .bitPastBlockCount)
        #expect(decodeError(blockCount: 64, acquired: [ones, ones], released: []) == .acquired(.wordsPastEnd))
        #expect(decodeError(blockCount: 64, acquired: [ones], released: [0]) == .released(.malformedMarker))
        #expect(decodeError(blockCount: 64, acquired: [literal(3), 5], released: []) == .acquired(.literalsPastChunkEnd))
    }
}

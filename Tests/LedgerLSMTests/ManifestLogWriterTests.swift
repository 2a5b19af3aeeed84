import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerTesting
import Testing

@Suite struct ManifestLogWriterTests {
    static let levelCount = 7
    let layout = DataFileLayout(.testing)

    /// One replica's storage, grid, free set and log.
    final class Node {
        let storage: SimulatedStorage
        let grid: Grid<SimulatedStorage>
        let freeSet: FreeSet
        let log: ManifestLog<SimulatedStorage>

        init(storage: SimulatedStorage, freeSet: FreeSet? = nil, queueBlocksMax: Int = 8, writesMax: Int = 2) {
            self.storage = storage
            grid = Grid(storage: storage, cacheBlocks: 64, readsMax: 4, writesMax: 4)
            self.freeSet = freeSet ?? FreeSet(blockCount: storage.layout.configuration.gridBlockCountMax)
            log = ManifestLog(
                grid: grid, freeSet: self.freeSet, levelCount: ManifestLogWriterTests.levelCount, tablesMax: 4096,
                queueBlocksMax: queueBlocksMax, writesMax: writesMax)
        }

        /// One beat: reserve at the beat's start, append, give the reservation back.
        func beat(_ events: ArraySlice<TableInfo>, snapshot: UInt64) {
            freeSet.openReservations()
            #expect(log.reserve(appendsMax: events.count, snapshot: snapshot))
            for event in events { log.append(event) }
            log.forfeit()
            freeSet.closeReservations()
        }

        /// The checkpoint's flush; returns whether it completed.
        func flush(snapshot: UInt64) -> Bool {
            var flushed = false
            freeSet.openReservations()
            #expect(log.reserve(appendsMax: 0, snapshot: snapshot))
            log.flush { flushed = true }
            log.forfeit()
            freeSet.closeReservations()
            storage.runUntilIdle()
            return flushed && log.isFlushed
        }

        func open(newest: BlockReference, oldest: BlockReference, blockCount: UInt32) -> Result<[TableInfo], ManifestLogOpenError>? {
            var outcome: Result<[TableInfo], ManifestLogOpenError>?
            log.open(newest: newest, oldest: oldest, blockCount: blockCount) { outcome = $0 }
            storage.runUntilIdle()
            return outcome
        }
    }

    func makeStorage(seed: UInt64) -> SimulatedStorage {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...9
        options.writeLatencyTicks = 1...9
        return SimulatedStorage(layout: layout, seed: seed, options: options)
    }

    /// A random history of table events: inserts, updates (level moves, snapshot max set) and
    /// removes, never an event after a table's remove. Returns the events and the live tables.
    static func history(
        seed: UInt64, count: Int, firstAddress: UInt64 = 1, live: [TableInfo] = [], liveMax: Int = .max
    ) -> (events: [TableInfo], live: [TableInfo]) {
        var prng = PRNG(seed: seed)
        var live = live
        var events: [TableInfo] = []
        var nextAddress = firstAddress
        for _ in 0..<count {
            let roll = prng.int(in: 0...9)
            if live.isEmpty || (roll < 5 && live.count < liveMax) {
                let table = TableInfo(
                    treeId: UInt16(prng.int(in: 1...3)), level: UInt8(prng.int(in: 0...6)),
                    keyMin: UInt64(nextAddress * 10), keyMax: UInt64(nextAddress * 10 + 9),
                    index: BlockReference(address: nextAddress, checksum: prng.uint128()),
                    snapshotMin: UInt64(prng.int(in: 1...100)), valueCount: UInt32(prng.int(in: 1...500)))
                nextAddress += 1
                live.append(table)
                events.append(table)
            } else if roll < 8 || (roll < 5 && live.count >= liveMax) {
                let position = prng.int(in: 0...(live.count - 1))
                var table = live[position].with(event: .update)
                table.level = UInt8(prng.int(in: 0...6))
                if prng.chance(percent: 50) { table.snapshotMax = table.snapshotMin + UInt64(prng.int(in: 1...50)) }
                live[position] = table
                events.append(table)
            } else {
                let position = prng.int(in: 0...(live.count - 1))
                events.append(live[position].with(event: .remove))
                live.remove(at: position)
            }
        }
        return (events, live)
    }

    static func sorted(_ tables: [TableInfo]) -> [TableInfo] {
        tables.sorted { ($0.treeId, $0.level, $0.address) < ($1.treeId, $1.level, $1.address) }
    }

    /// Appends `events` in beats of random sizes (running the storage between some beats).
    static func appendInBeats(_ node: Node, _ events: [TableInfo], seed: UInt64, snapshotBase: UInt64) {
        var prng = PRNG(seed: seed)
        var start = 0
        var snapshot = snapshotBase
        while start < events.count {
            let end = min(events.count, start + prng.int(in: 0...45))
            node.beat(events[start..<end], snapshot: snapshot)
            snapshot += 1
            start = end
            if prng.chance(percent: 60) {
                node.storage.runUntilIdle()
            } else {
                // Let some blocks reach the disk, so the ring never holds more than a beat's worth.
                #expect(node.storage.run(until: { node.log.blocksWaiting <= 2 }))
            }
        }
        node.storage.runUntilIdle()
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func roundTripAcrossBlocksAndReopens(seed: UInt64) {
        let storage = makeStorage(seed: seed)
        let writer = Node(storage: storage)
        let perBlock = writer.log.entriesPerBlock
        let (events, live) = Self.history(seed: seed, count: 11 * perBlock + 7)
        Self.appendInBeats(writer, events, seed: seed &+ 100, snapshotBase: 1)
        #expect(writer.flush(snapshot: 1000), "seed \(seed)")
        // 11 full blocks and the partial one the flush sealed.
        #expect(writer.log.blockCount == 12, "seed \(seed)")
        #expect(writer.freeSet.acquiredCount == 12, "seed \(seed)")

        // Reopen on a fresh grid (cold cache: every block from storage).
        let reader = Node(storage: storage)
        let opened = reader.open(newest: writer.log.newest, oldest: writer.log.oldest, blockCount: writer.log.blockCount)
        #expect(opened == .success(Self.sorted(live)), "seed \(seed)")
        #expect(reader.log.newest == writer.log.newest)
        #expect(reader.log.oldest == writer.log.oldest)

        // The reopened log continues the chain (addresses from a free set that knows the blocks).
        for address in 1...UInt64(12) { #expect(!writer.freeSet.isFree(address)) }
        let continued = Node(storage: storage, freeSet: writer.freeSet)
        #expect(continued.open(newest: writer.log.newest, oldest: writer.log.oldest, blockCount: 12) == .success(Self.sorted(live)))
        let (more, liveAfter) = Self.history(seed: seed &+ 7, count: 3 * perBlock, firstAddress: 10_000, live: live)
        Self.appendInBeats(continued, more, seed: seed &+ 200, snapshotBase: 2000)
        #expect(continued.flush(snapshot: 3000), "seed \(seed)")
        #expect(continued.log.blockCount == 15, "seed \(seed)")
        #expect(continued.log.oldest == writer.log.oldest)
        let last = Node(storage: storage)
        #expect(last.open(newest: continued.log.newest, oldest: continued.log.oldest, blockCount: 15)
                == .success(Self.sorted(liveAfter)), "seed \(seed)")

        // Open with every block in the cache: served inside `grid.read`, looped, not recursed.
        let warm = Node(storage: storage)
        #expect(warm.open(newest: continued.log.newest, oldest: continued.log.oldest, blockCount: 15) != nil)
        var synchronous: Result<[TableInfo], ManifestLogOpenError>?
        let again = ManifestLog(grid: warm.grid, freeSet: warm.freeSet, levelCount: Self.levelCount, tablesMax: 4096)
        again.open(newest: continued.log.newest, oldest: continued.log.oldest, blockCount: 15) { synchronous = $0 }
        #expect(synchronous == .success(Self.sorted(liveAfter)), "seed \(seed)")
    }

    /// Appends in beats like `appendInBeats`, and compacts the oldest block at every beat the
    /// chain allows: read at the beat's start, re-append at its end under the reservation.
    /// Returns the blocks compacted.
    @discardableResult
    static func appendWithCompaction(_ node: Node, _ events: [TableInfo], seed: UInt64, snapshotBase: UInt64) -> Int {
        var prng = PRNG(seed: seed)
        var start = 0
        var snapshot = snapshotBase
        var compacted = 0
        while start < events.count {
            let end = min(events.count, start + prng.int(in: 0...25))
            node.freeSet.openReservations()
            #expect(node.log.reserve(appendsMax: end - start + node.log.entriesPerBlock, snapshot: snapshot))
            var ready = false
            let compacting = node.log.canCompact
            if compacting {
                node.log.compactBegin { error in
                    #expect(error == nil)
                    ready = true
                }
                #expect(node.storage.run(until: { ready }))
            }
            for event in events[start..<end] { node.log.append(event) }
            if compacting {
                node.log.compactFinish()
                compacted += 1
            }
            node.log.forfeit()
            node.freeSet.closeReservations()
            #expect(node.storage.run(until: { node.log.blocksWaiting <= 1 }))
            snapshot += 1
            start = end
        }
        node.storage.runUntilIdle()
        return compacted
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func compactionKeepsLiveTablesAndBoundsTheLog(seed: UInt64) {
        let storage = makeStorage(seed: seed)
        let writer = Node(storage: storage)
        let perBlock = writer.log.entriesPerBlock
        let (events, live) = Self.history(seed: seed, count: 40 * perBlock, liveMax: 40)
        let compacted = Self.appendWithCompaction(writer, events, seed: seed &+ 1, snapshotBase: 1)
        #expect(writer.flush(snapshot: 10_000), "seed \(seed)")
        #expect(compacted > 30, "seed \(seed)")
        // 40 live tables fit in 2 blocks; the log keeps a few more (a block compacted per beat
        // of at most 25 events), not the 40 blocks the history filled.
        #expect(writer.log.blockCount <= 8, "seed \(seed): \(writer.log.blockCount) blocks")
        // Every sealed block is acquired; the compacted ones are released.
        #expect(writer.freeSet.releasedCount == compacted, "seed \(seed)")
        #expect(writer.freeSet.acquiredCount == Int(writer.log.blockCount) + compacted, "seed \(seed)")
        #expect(!writer.freeSet.isReleased(writer.log.oldest.address))
        #expect(writer.freeSet.isReleased(1), "the first block was compacted")

        let reader = Node(storage: storage)
        #expect(reader.open(newest: writer.log.newest, oldest: writer.log.oldest, blockCount: writer.log.blockCount)
                == .success(Self.sorted(live)), "seed \(seed)")

        // A reopened log (extents rebuilt from the chain) compacts on.
        let continued = Node(storage: storage, freeSet: writer.freeSet)
        #expect(continued.open(newest: writer.log.newest, oldest: writer.log.oldest, blockCount: writer.log.blockCount)
                == .success(Self.sorted(live)))
        let (more, liveAfter) = Self.history(seed: seed &+ 9, count: 10 * perBlock, firstAddress: 50_000, live: live, liveMax: 40)
        let compactedMore = Self.appendWithCompaction(continued, more, seed: seed &+ 2, snapshotBase: 20_000)
        #expect(continued.flush(snapshot: 30_000), "seed \(seed)")
        #expect(compactedMore > 5)
        #expect(continued.log.blockCount <= 8, "seed \(seed)")
        #expect(continued.log.oldest != writer.log.oldest)
        let last = Node(storage: storage)
        #expect(last.open(newest: continued.log.newest, oldest: continued.log.oldest, blockCount: continued.log.blockCount)
                == .success(Self.sorted(liveAfter)), "seed \(seed)")
        // A free set that does not know the chain's blocks: an error, not a trap on release.
        #expect(last.log.canCompact)
        var failure: ManifestLogOpenError?
        last.log.compactBegin { failure = $0 }
        #expect(failure == .blockNotAcquired(continued.log.oldest.address))
        #expect(last.log.canCompact, "the log is unchanged")
    }

    @Test func compactionIsDeterministic() {
        let (events, _) = Self.history(seed: 5, count: 400, liveMax: 25)
        func run(seed: UInt64) -> (references: [BlockReference], bytes: [UInt8]) {
            let node = Node(storage: makeStorage(seed: seed), writesMax: 3)
            Self.appendWithCompaction(node, events, seed: 77, snapshotBase: 1)
            #expect(node.flush(snapshot: 5000))
            let extent = Int(node.freeSet.highestAcquiredAddress) * layout.configuration.blockSize
            return ([node.log.newest, node.log.oldest], Array(node.storage.bytes(zone: .grid, offset: 0, count: extent)))
        }
        let first = run(seed: 3)
        let second = run(seed: 4242)
        #expect(first.references == second.references)
        #expect(first.bytes.count > 10 * layout.configuration.blockSize)
        #expect(first.bytes == second.bytes)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func extentsMatchADictionary(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let capacity = 24
        var extents = ManifestLogExtents(capacity: capacity)
        var model: [TableIdentity: (UInt64, UInt32)] = [:]
        // A small key space, so runs collide and removals shift entries back.
        var keys: [TableIdentity] = []
        for index in 0..<40 {
            let treeId = UInt16(index % 3 + 1)
            keys.append(TableIdentity(treeId: treeId, address: UInt64(index / 2 + 1), checksum: UInt128(index % 2)))
        }
        for step in 0..<5000 {
            let key = keys[prng.int(in: 0...(keys.count - 1))]
            if prng.chance(percent: 40), model[key] != nil {
                extents.remove(key)
                model[key] = nil
            } else {
                let location = (UInt64(step), UInt32(prng.int(in: 0...29)))
                let recorded = extents.record(key, block: location.0, entry: location.1)
                #expect(recorded == (model[key] != nil || model.count < capacity), "seed \(seed) step \(step)")
                if recorded { model[key] = location }
            }
            #expect(extents.count == model.count, "seed \(seed) step \(step)")
            for probe in keys {
                let expected = model[probe]
                #expect(extents.contains(probe) == (expected != nil), "seed \(seed) step \(step)")
                if let expected {
                    #expect(extents.isLatest(probe, block: expected.0, entry: expected.1), "seed \(seed) step \(step)")
                }
            }
        }
    }

    @Test func blocksWaitForAReservationAndAWriteIO() {
        let storage = makeStorage(seed: 21)
        let node = Node(storage: storage, queueBlocksMax: 4, writesMax: 1)
        let perBlock = node.log.entriesPerBlock
        let (events, live) = Self.history(seed: 21, count: 3 * perBlock + 4)
        // Appends outside a reservation: full blocks wait for an address.
        for event in events[0..<(2 * perBlock + 1)] { node.log.append(event) }
        #expect(node.log.blocksWaiting == 2)
        #expect(node.log.blockCount == 0)
        #expect(node.freeSet.acquiredCount == 0)
        // The next beat seals them (in append order) and the rest; one write at a time.
        node.beat(events[(2 * perBlock + 1)...], snapshot: 5)
        #expect(node.log.blockCount == 3)
        #expect(node.freeSet.acquiredCount == 3)
        #expect(node.grid.writesPending == 1)
        #expect(node.log.blocksWaiting == 2)
        storage.runUntilIdle()
        #expect(node.log.blocksWaiting == 0)
        #expect(node.flush(snapshot: 6))
        #expect(node.log.blockCount == 4)
        let reader = Node(storage: storage)
        #expect(reader.open(newest: node.log.newest, oldest: node.log.oldest, blockCount: 4) == .success(Self.sorted(live)))
        // Sealed in append order: the oldest block is the lowest address.
        #expect(node.log.oldest.address == 1)
        #expect(node.log.newest.address == 4)
    }

    @Test func emptyLogOpensEmpty() {
        let node = Node(storage: makeStorage(seed: 9))
        #expect(node.flush(snapshot: 1))
        #expect(node.log.blockCount == 0)
        #expect(node.log.newest.isNull)
        #expect(node.freeSet.acquiredCount == 0)
        let reader = Node(storage: makeStorage(seed: 9))
        #expect(reader.open(newest: .null, oldest: .null, blockCount: 0) == .success([]))
        let bad = Node(storage: makeStorage(seed: 9))
        #expect(bad.open(newest: .null, oldest: .null, blockCount: 3) == .failure(.blockCount(expected: 3, found: 0)))
    }

    @Test func addressesAndBytesDoNotDependOnIOOrder() {
        let (events, _) = Self.history(seed: 42, count: 200)
        func run(seed: UInt64, beatSeed: UInt64) -> (references: [BlockReference], bytes: [UInt8], blockCount: UInt32) {
            let node = Node(storage: makeStorage(seed: seed), writesMax: 3)
            Self.appendInBeats(node, events, seed: beatSeed, snapshotBase: 1)
            #expect(node.flush(snapshot: 500))
            let extent = Int(node.freeSet.highestAcquiredAddress) * layout.configuration.blockSize
            return ([node.log.newest, node.log.oldest], Array(node.storage.bytes(zone: .grid, offset: 0, count: extent)),
                    node.log.blockCount)
        }
        let first = run(seed: 1, beatSeed: 5)
        let second = run(seed: 77, beatSeed: 5)
        #expect(first.blockCount == 7)
        #expect(first.references == second.references)
        #expect(first.bytes.count == 7 * layout.configuration.blockSize)
        #expect(first.bytes == second.bytes)
    }

    func writtenLog(seed: UInt64) -> (storage: SimulatedStorage, log: ManifestLog<SimulatedStorage>, live: [TableInfo]) {
        let storage = makeStorage(seed: seed)
        let node = Node(storage: storage)
        let (events, live) = Self.history(seed: seed, count: 5 * node.log.entriesPerBlock)
        Self.appendInBeats(node, events, seed: seed, snapshotBase: 1)
        #expect(node.flush(snapshot: 100))
        #expect(node.log.blockCount == 5)
        return (storage, node.log, live)
    }

    @Test func corruptBlockIsATypedFault() {
        for seed in UInt64(1)...4 {
            let (storage, log, _) = writtenLog(seed: seed)
            // Block 3 of 5 (addresses are 1...5 in append order).
            storage.corruptSector(zone: .grid, offset: layout.gridBlockOffset(address: 3))
            let reader = Node(storage: storage)
            let outcome = reader.open(newest: log.newest, oldest: log.oldest, blockCount: log.blockCount)
            guard case .failure(.block(address: 3, _)) = outcome else {
                Issue.record("seed \(seed): expected a fault at block 3, got \(String(describing: outcome))")
                continue
            }
            #expect(reader.log.blockCount == 0, "a failed open leaves the log empty")
        }
    }

    @Test func brokenChainsAreTypedErrors() {
        let (storage, log, live) = writtenLog(seed: 11)
        func open(_ newest: BlockReference, _ oldest: BlockReference, _ count: UInt32) -> Result<[TableInfo], ManifestLogOpenError>? {
            Node(storage: storage).open(newest: newest, oldest: oldest, blockCount: count)
        }
        #expect(open(log.newest, log.oldest, 5) == .success(Self.sorted(live)))
        var wrongChecksum = log.newest
        wrongChecksum.checksum &+= 1
        #expect(open(wrongChecksum, log.oldest, 5) == .failure(.block(address: 5, .checksumMismatch)))
        // Another block at that address: not the referrer's.
        #expect(open(BlockReference(address: 4, checksum: log.newest.checksum), log.oldest, 5)
                == .failure(.block(address: 4, .checksumMismatch)))
        #expect(open(log.newest, log.oldest, 4) == .failure(.log(.chainTooLong)))
        #expect(open(log.newest, log.oldest, 6) == .failure(.blockCount(expected: 6, found: 5)))
        #expect(open(log.newest, .null, 5) == .failure(.log(.chainEnds)))
        // An oldest the chain never reaches: it ends at the first block ever written.
        #expect(open(log.newest, BlockReference(address: 9, checksum: 1), 9) == .failure(.log(.chainEnded)))
        // A never-written address reads as zeros.
        #expect(open(BlockReference(address: 700, checksum: 5), log.oldest, 5) == .failure(.block(address: 700, .headerChecksum)))
        // The newest block's bytes found at another address (a misdirected write).
        let blockSize = layout.configuration.blockSize
        storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: 700), count: blockSize).copyMemory(
            from: UnsafeRawBufferPointer(storage.bytes(zone: .grid, offset: layout.gridBlockOffset(address: 5), count: blockSize)))
        #expect(open(BlockReference(address: 700, checksum: log.newest.checksum), log.oldest, 5)
                == .failure(.block(address: 700, .misdirected(headerAddress: 5))))
        // A chain link past the grid is an error, not a trap.
        #expect(open(BlockReference(address: UInt64(layout.configuration.gridBlockCountMax) + 1, checksum: 1), log.oldest, 5)
                == .failure(.address(UInt64(layout.configuration.gridBlockCountMax) + 1)))
    }
}

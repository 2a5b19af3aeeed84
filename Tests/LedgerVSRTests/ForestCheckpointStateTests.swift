import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting
import LedgerVSR
import Testing

/// The forest checkpoint in the superblock (`ForestCheckpointState.swift`): what the forest
/// hands over reads back unchanged, through the bytes of a real superblock update too, and a
/// checkpoint state that does not hold together is a typed error.
@Suite struct ForestCheckpointStateTests {
    static let layout = DataFileLayout(.testing)
    static var configuration: StorageConfiguration { layout.configuration }
    static var blockCount: UInt64 { UInt64(configuration.gridBlockCountMax) }

    /// A forest checkpoint with every field set from `prng`, consistent with the layout.
    static func randomCheckpoint(_ prng: inout PRNG) -> ForestCheckpoint {
        let op = UInt64(configuration.vsrCheckpointOps) * (1 + prng.below(1000)) - 1
        let highest = 8 + prng.below(blockCount - 7)
        func reference() -> BlockReference {
            BlockReference(address: 1 + prng.below(highest), checksum: UInt128(prng.next()) << 64 | UInt128(prng.next()))
        }
        func trailer() -> CheckpointTrailerReference {
            CheckpointTrailerReference(
                checksum: UInt128(prng.next()) | 1, last: reference(), size: 1 + prng.below(UInt64(configuration.blockSize)))
        }
        let blockCount = UInt32(1 + prng.below(highest))
        let newest = reference()
        var oldest = blockCount == 1 ? newest : reference()
        if blockCount > 1 && oldest == newest { oldest.address = newest.address % highest + 1 }
        return ForestCheckpoint(
            op: op, manifestNewest: newest, manifestOldest: oldest, manifestBlockCount: blockCount,
            freeSetAcquired: trailer(), freeSetReleased: trailer(), highestAcquiredAddress: highest)
    }

    static func state(_ forest: ForestCheckpoint) -> CheckpointState {
        CheckpointState(header: SuperblockFixture.prepare(op: forest.op), forest: forest, layout: layout)
    }

    static func read(_ state: CheckpointState) -> Result<ForestCheckpoint, ForestCheckpointStateError> {
        Result { () throws(ForestCheckpointStateError) in try ForestCheckpoint(checkpointState: state, layout: layout) }
    }

    @Test func formattedRoundTrips() throws {
        let root = PrepareHeader.root(cluster: 7, release: 1)
        let state = CheckpointState(header: root, forest: .formatted, layout: Self.layout)
        #expect(state.storageSize == Self.layout.sizeMin)
        #expect(state.manifestBlockCount == 0)
        #expect(try Self.read(state).get() == .formatted)
    }

    @Test(arguments: [UInt64(1), 2, 3, 0xF0E5_7C4E])
    func randomCheckpointsRoundTrip(seed: UInt64) throws {
        var prng = PRNG(seed: seed)
        for _ in 0..<200 {
            let forest = Self.randomCheckpoint(&prng)
            let state = Self.state(forest)
            #expect(state.header.op == forest.op, "seed \(seed)")
            #expect(state.manifestNewestAddress == forest.manifestNewest.address, "seed \(seed)")
            #expect(state.freeSetAcquired.lastBlockChecksum == forest.freeSetAcquired.last.checksum, "seed \(seed)")
            #expect(state.storageSize == forest.storageSize(layout: Self.layout), "seed \(seed)")
            #expect(try Self.read(state).get() == forest, "seed \(seed)")
        }
    }

    /// Through a real superblock update: staged, written to four copies, read back by open.
    @Test func survivesASuperblockUpdateAndOpen() throws {
        let storage = SuperblockFixture.storage(seed: 11)
        let superblock = SuperblockFixture.format(storage)
        let formatted = try Self.read(superblock.working.vsrState.checkpoint).get()
        #expect(formatted == .formatted, "a formatted superblock holds the formatted forest")

        var prng = PRNG(seed: 11)
        let forest = Self.randomCheckpoint(&prng)
        let update = CheckpointUpdate(
            checkpoint: Self.state(forest), commitMax: forest.op,
            viewHeaders: SuperblockViewHeaders([SuperblockFixture.prepare(op: forest.op)]))
        SuperblockFixture.checkpoint(superblock, update)
        let (_, opened) = SuperblockFixture.open(storage)
        let header = try #require(try opened?.get())
        #expect(try Self.read(header.vsrState.checkpoint).get() == forest)
    }

    // MARK: Hostile states

    /// A valid state to break one field of.
    static func valid() -> CheckpointState {
        var prng = PRNG(seed: 5)
        var forest = randomCheckpoint(&prng)
        forest.manifestBlockCount = 2
        forest.manifestNewest = BlockReference(address: 3, checksum: 33)
        forest.manifestOldest = BlockReference(address: 2, checksum: 22)
        forest.highestAcquiredAddress = 10
        forest.freeSetAcquired = CheckpointTrailerReference(checksum: 1, last: BlockReference(address: 9, checksum: 99), size: 100)
        forest.freeSetReleased = CheckpointTrailerReference(checksum: 2, last: BlockReference(address: 10, checksum: 1010), size: 8)
        return state(forest)
    }

    struct Breakage: CustomStringConvertible, Sendable {
        let description: String
        let expected: ForestCheckpointStateError
        let apply: @Sendable (inout CheckpointState) -> Void
    }

    static let breakages: [Breakage] = {
        let sizeMin = layout.sizeMin
        let blockSize = UInt64(configuration.blockSize)
        return [
            Breakage(description: "op 0 with a manifest", expected: .formattedNotEmpty) { $0.header.op = 0 },
            Breakage(description: "op 0 with a client-sessions trailer", expected: .formattedNotEmpty) { state in
                state = CheckpointState(header: .root(cluster: 7, release: 1), forest: .formatted, layout: layout)
                state.clientSessions.size = 1
            },
            Breakage(description: "op 0 with a grown grid", expected: .formattedNotEmpty) { state in
                state = CheckpointState(header: .root(cluster: 7, release: 1), forest: .formatted, layout: layout)
                state.storageSize = sizeMin + blockSize
            },
            Breakage(description: "not a checkpoint op", expected: .checkpointOp(16)) { $0.header.op = 16 },
            Breakage(description: "op UInt64.max", expected: .checkpointOp(.max)) { $0.header.op = .max },
            Breakage(description: "storage below the zones", expected: .storageSize(sizeMin - 1)) {
                $0.storageSize = sizeMin - 1
            },
            Breakage(description: "storage not whole blocks", expected: .storageSize(sizeMin + blockSize + 1)) {
                $0.storageSize = sizeMin + blockSize + 1
            },
            Breakage(description: "highest address beyond the grid",
                     expected: .highestAcquiredAddress(UInt64(configuration.gridBlockCountMax) + 1)) {
                $0.storageSize = sizeMin + (UInt64(configuration.gridBlockCountMax) + 1) * blockSize
            },
            Breakage(description: "storage size UInt64.max", expected: .storageSize(.max)) { $0.storageSize = .max },
            Breakage(description: "one manifest end null", expected: .manifestEnds) { state in
                state.manifestOldestAddress = 0
                state.manifestOldestChecksum = 0
            },
            Breakage(description: "null manifest with a checksum", expected: .manifestReference(address: 0)) { state in
                state.manifestOldestAddress = 0
                state.manifestNewestAddress = 0
                state.manifestNewestChecksum = 0
                state.manifestBlockCount = 0
            },
            Breakage(description: "empty manifest with a block count", expected: .manifestBlockCount(2)) { state in
                state.manifestOldestAddress = 0
                state.manifestOldestChecksum = 0
                state.manifestNewestAddress = 0
                state.manifestNewestChecksum = 0
            },
            Breakage(description: "manifest without a block count", expected: .manifestBlockCount(0)) {
                $0.manifestBlockCount = 0
            },
            Breakage(description: "more manifest blocks than acquired", expected: .manifestBlockCount(11)) {
                $0.manifestBlockCount = 11
            },
            Breakage(description: "one manifest block with two ends", expected: .manifestBlockCount(1)) {
                $0.manifestBlockCount = 1
            },
            Breakage(description: "two manifest blocks with one end", expected: .manifestBlockCount(2)) { state in
                state.manifestOldestAddress = state.manifestNewestAddress
                state.manifestOldestChecksum = state.manifestNewestChecksum
            },
            Breakage(description: "manifest block past the acquired grid", expected: .manifestReference(address: 11)) {
                $0.manifestNewestAddress = 11
            },
            Breakage(description: "empty trailer with an address", expected: .trailerReference(.freeSetAcquired)) {
                $0.freeSetAcquired.size = 0
            },
            Breakage(description: "trailer without a block", expected: .trailerReference(.freeSetReleased)) {
                $0.freeSetReleased.lastBlockAddress = 0
            },
            Breakage(description: "trailer past the acquired grid", expected: .trailerReference(.freeSetAcquired)) {
                $0.freeSetAcquired.lastBlockAddress = 11
            },
            Breakage(description: "trailer larger than the grid", expected: .trailerReference(.freeSetAcquired)) {
                $0.freeSetAcquired.size = .max
            },
            Breakage(description: "client sessions past the acquired grid", expected: .trailerReference(.clientSessions)) { state in
                state.clientSessions.size = 10
                state.clientSessions.lastBlockAddress = 11
            },
        ]
    }()

    @Test(arguments: breakages)
    func rejectsInconsistentState(_ breakage: Breakage) {
        var state = Self.valid()
        #expect((try? Self.read(state).get()) != nil, "the unbroken state is valid")
        breakage.apply(&state)
        switch Self.read(state) {
        case .success(let forest): Issue.record("accepted \(breakage): \(forest)")
        case .failure(let error): #expect(error == breakage.expected, "\(breakage)")
        }
    }

    @Test func trailerReferenceMapsEveryField() {
        let reference = CheckpointTrailerReference(
            checksum: 0x1111, last: BlockReference(address: 42, checksum: 0x2222), size: 4096)
        let stored = TrailerReference(reference)
        #expect(stored.checksum == 0x1111)
        #expect(stored.lastBlockAddress == 42)
        #expect(stored.lastBlockChecksum == 0x2222)
        #expect(stored.size == 4096)
        #expect(stored.checkpointTrailerReference == reference)
    }
}

import Foundation
import LedgerKit
import LedgerVSR
import Testing

/// `ledger-inspect` on files that are not healthy data files never crashes: every section, text
/// and JSON, exits 0 or 1 (never by a signal: a Swift trap is SIGILL/SIGTRAP, seen by a shell
/// as 132/133; an abort 134; a segfault 139), prints something, and its JSON parses.
@Suite struct HostileFileTests {
    /// The seed of every random byte here; a failure message names it.
    static let seed: UInt64 = 0x5EED_7001

    enum HostileFile: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// 5 MiB of random bytes: superblock, header ring and the first prepares, all noise.
        case random5MiB
        /// A file of the minimum size whose every byte `ledger-inspect` reads is random (the
        /// superblock and header-ring zones, and the first 8 KiB of every prepare and reply
        /// slot); the rest is sparse. 1 GiB of noise would cost seconds and test nothing more.
        case randomSizeMin
        case empty
        /// A formatted file cut inside the prepare ring, in the middle of a sector.
        case truncatedInWAL
        /// A formatted file with checksum-valid entries whose fields are hostile: sizes beyond
        /// a message, an op far past any checkpoint, a misdirected grid block.
        case forgedEntries

        var testDescription: String { rawValue }
    }

    static let sections: [[String]] = [
        ["superblock"], ["wal"], ["wal", "--slot=3"], ["replies"], ["grid"], ["grid", "--block=1"],
    ]

    @Test(arguments: HostileFile.allCases)
    func inspectNeverCrashes(_ kind: HostileFile) throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/\(kind.rawValue).ledger"
        try Self.make(kind, at: path)
        for section in Self.sections {
            try expectWellBehaved(path, section, note: "\(kind) seed \(Self.seed)")
        }
        switch kind {
        case .forgedEntries: try expectForgedEntriesReported(path)
        case .truncatedInWAL: try expectTruncationReported(path)
        case .random5MiB, .randomSizeMin, .empty: break
        }
    }

    /// A superblock whose every copy is checksum-valid but whose checkpoint op is near
    /// `UInt64.max`: the WAL's `op_prepare_max` derived from it would overflow. The quorum
    /// treats such copies as malformed (ops are bounded by 2^63), so there is no quorum and
    /// `ledger-inspect` reports that instead of trapping.
    @Test func checksumValidSuperblockWithExtremeCheckpointOp() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/extreme-checkpoint.ledger"
        try Fixture.format(path)
        try Self.forgeSuperblock(path) { header in
            header.vsrState.checkpoint.header.op = UInt64.max - 3
            header.vsrState.commitMax = UInt64.max
        }
        let superblock = try Tools.inspect([path, "superblock", "--json"])
        #expect(superblock.exited(1), "no quorum is damage: \(superblock.summary)")
        #expect(try SuperblockReport(InspectDocument(superblock)).validSlots == [],
                "copies naming an op beyond 2^63 are malformed")
        for section in [["wal"], ["wal", "--json"]] {
            let result = try Tools.inspect([path] + section)
            #expect(!result.signaled, "\(result.summary)")
            #expect(result.exited(1), "no superblock quorum: the WAL is shown as damaged: \(result.summary)")
        }
    }

    /// A grid block whose header names another address (a misdirected write) is damage: the JSON
    /// says `"status": "corrupt"`, `"healthy": false`, and the exit status is 1.
    @Test func misdirectedGridBlockCountsAsDamage() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/misdirected.ledger"
        try Self.make(.forgedEntries, at: path)
        let result = try Tools.inspect([path, "grid", "--block=2", "--json"])
        let document = try InspectDocument(result)
        let block = try field(document.section("grid"), "block", as: [String: Any].self)
        let state = try field(block, "state", as: [String: Any].self)
        #expect(try field(state, "status", as: String.self) == "corrupt")
        #expect(try field(state, "address", as: Int.self) == 99)
        #expect(result.exited(1), "\(result.summary)")
        #expect(try !document.isHealthy)
    }

    // MARK: Checks

    private func expectWellBehaved(
        _ path: String, _ section: [String], note: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let text = try Tools.inspect([path] + section)
        #expect(!text.signaled, "\(note): \(text.summary)", sourceLocation: sourceLocation)
        #expect(text.exited(0) || text.exited(1), "\(note): \(text.summary)", sourceLocation: sourceLocation)
        #expect(!text.stdout.isEmpty, "\(note): \(text.summary)", sourceLocation: sourceLocation)

        let json = try Tools.inspect([path] + section + ["--json"])
        #expect(!json.signaled, "\(note): \(json.summary)", sourceLocation: sourceLocation)
        #expect(json.exited(0) || json.exited(1), "\(note): \(json.summary)", sourceLocation: sourceLocation)
        #expect(json.status == text.status, "text and JSON agree on health", sourceLocation: sourceLocation)
        do {
            let document = try InspectDocument(json)
            #expect(try document.section(section[0]).isEmpty == false, sourceLocation: sourceLocation)
            #expect(try document.isHealthy == json.exited(0), "'healthy' matches the exit status", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(note): --json output does not parse: \(error)\n\(json.summary)", sourceLocation: sourceLocation)
        }
    }

    private func expectTruncationReported(_ path: String) throws {
        let result = try Tools.inspect([path, "superblock", "--json"])
        #expect(result.exited(1), "a truncated file is not healthy: \(result.summary)")
        let document = try InspectDocument(result)
        #expect(try document.warnings.contains { $0.contains("truncated") })
        #expect(try SuperblockReport(document).validSlots == [0, 1, 2, 3], "the superblock itself is intact")
    }

    private func expectForgedEntriesReported(_ path: String) throws {
        let wal = try WALReport(InspectDocument(Tools.inspect([path, "wal", "--json"])))
        #expect(wal.badSlots == [3, 4, 6])
        #expect(try wal.slot(3).recoveryCase == "@H", "an op beyond op_prepare_max")
        #expect(try wal.slot(3).decision == "truncate")
        #expect(try wal.slot(4).headerStatus == "corrupt", "a header whose size exceeds a message")
        #expect(try wal.slot(6).prepareStatus == "corrupt", "a prepare whose size exceeds a message")

        let replies = try Tools.inspect([path, "replies", "--json"])
        #expect(replies.exited(1), "\(replies.summary)")
        let slots = try field(InspectDocument(replies).section("replies"), "slots", as: [[String: Any]].self)
        let statuses = slots.prefix(3).map { $0["status"] as? String }
        #expect(statuses == ["corrupt", "corrupt", "empty"], "\(replies.stdout.prefix(1500))")

        let grid = try Tools.inspect([path, "grid", "--block=1"])
        #expect(grid.exited(1), "\(grid.summary)")
        #expect(grid.stdout.contains("block 1: CORRUPT (size"), "\(grid.summary)")
        // Block 2 (misdirected): see misdirectedGridBlockCountsAsDamage.
        let misdirected = try Tools.inspect([path, "grid", "--block=2"])
        #expect(misdirected.stdout.contains("MISDIRECTED (header says address 99)"), "\(misdirected.summary)")
    }

    // MARK: Making the files

    static func make(_ kind: HostileFile, at path: String) throws {
        let layout = Fixture.layout
        var prng = PRNG(seed: seed)
        switch kind {
        case .random5MiB:
            try Fixture.makeSparseFile(path, sizeBytes: 0)
            try Fixture.writeBytes(path, offset: 0, bytes: randomBytes(5 << 20, &prng))
        case .randomSizeMin:
            try Fixture.makeSparseFile(path, sizeBytes: layout.sizeMin)
            let rings = Int(layout.offset(of: .walPrepares))
            try Fixture.writeBytes(path, offset: 0, bytes: randomBytes(rings, &prng))
            let slotBytes = 8 << 10
            for slot in 0..<layout.configuration.journalSlotCount {
                try Fixture.writeBytes(path, offset: Fixture.walPrepareOffset(slot: slot), bytes: randomBytes(slotBytes, &prng))
            }
            for slot in 0..<layout.configuration.clientsMax {
                try Fixture.writeBytes(path, offset: Fixture.clientReplyOffset(slot: slot), bytes: randomBytes(slotBytes, &prng))
            }
        case .empty:
            try Fixture.makeSparseFile(path, sizeBytes: 0)
        case .truncatedInWAL:
            try Fixture.format(path)
            let cut = Fixture.walPrepareOffset(slot: 3) + 1000
            guard truncate(path, off_t(cut)) == 0 else { throw ToolTestError("truncate failed: errno \(errno)") }
        case .forgedEntries:
            try makeForgedEntries(path)
        }
    }

    /// A formatted cluster-7 file with two grid blocks and checksum-valid hostile entries.
    private static func makeForgedEntries(_ path: String) throws {
        let layout = Fixture.layout
        let cluster: UInt128 = 7
        let blockSize = UInt64(layout.configuration.blockSize)
        try Fixture.format(path, cluster: "7", extra: ["--size=\(layout.sizeMin + 2 * blockSize)"])
        let slotCount = UInt64(layout.configuration.journalSlotCount)

        // WAL prepare slot 3: a valid prepare whose op lies a million laps ahead.
        var far = PrepareHeader()
        far.frame.cluster = cluster
        far.op = 3 + slotCount * 1_000_000
        far.operation = 200
        far.sealWithoutBody()
        try Fixture.writeBytes(path, offset: Fixture.walPrepareOffset(slot: 3), bytes: bytes(of: far))

        // WAL header slot 4: checksum-valid, but its size claims 4 GiB.
        var huge = PrepareHeader()
        huge.frame.cluster = cluster
        huge.op = 4
        huge.operation = 200
        huge.frame.size = UInt32.max
        huge.frame.checksum = huge.computeChecksum()
        try Fixture.writeBytes(path, offset: Fixture.walHeaderOffset(slot: 4), bytes: bytes(of: huge))

        // WAL prepare slot 6: checksum-valid, size 2 MiB (a slot holds 1 MiB).
        var long = PrepareHeader()
        long.frame.cluster = cluster
        long.op = 6
        long.operation = 200
        long.frame.size = 2 << 20
        long.frame.checksum = long.computeChecksum()
        try Fixture.writeBytes(path, offset: Fixture.walPrepareOffset(slot: 6), bytes: bytes(of: long))

        // Reply slot 0: a reply claiming 4 GiB; slot 1: a 1 MiB reply whose body is not there.
        for (slot, size) in [(0, UInt32.max), (1, UInt32(Constants.messageSizeMax))] {
            var reply = Header()
            reply.frame.cluster = cluster
            reply.frame.command = Command.reply.rawValue
            reply.frame.size = size
            reply.frame.checksum = reply.computeChecksum()
            try Fixture.writeBytes(path, offset: Fixture.clientReplyOffset(slot: slot), bytes: bytes(of: reply))
        }

        // Grid block 1: a block header claiming 4 GiB; block 2: a block that says it is block 99.
        let grid = layout.offset(of: .grid)
        var block = BlockHeader()
        block.frame.cluster = cluster
        block.frame.size = UInt32.max
        block.address = 1
        block.frame.checksum = block.computeChecksum()
        try Fixture.writeBytes(path, offset: grid + layout.gridBlockOffset(address: 1), bytes: bytes(of: block))
        var misdirected = BlockHeader()
        misdirected.frame.cluster = cluster
        misdirected.address = 99
        misdirected.sealWithoutBody()
        try Fixture.writeBytes(path, offset: grid + layout.gridBlockOffset(address: 2), bytes: bytes(of: misdirected))
    }

    /// Rewrites all four superblock copies with `change` applied to the working header, each
    /// resealed and carrying its own copy index: every quorum check passes.
    static func forgeSuperblock(_ path: String, _ change: (inout SuperblockHeader) -> Void) throws {
        let size = Constants.superblockHeaderSize
        let original = try Fixture.readBytes(path, offset: Fixture.superblockCopyOffset(0), count: size)
        var header = original.withUnsafeBytes { SuperblockHeader(from: $0) }
        change(&header)
        for copy in 0..<Constants.superblockCopies {
            header.copy = UInt16(copy)
            header.seal()
            try Fixture.writeBytes(path, offset: Fixture.superblockCopyOffset(copy), bytes: bytes(of: header))
        }
    }

    private static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    private static func randomBytes(_ count: Int, _ prng: inout PRNG) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            var index = 0
            while index < count {  // Bounded: 8 bytes per pass.
                let word = prng.next()
                for byte in 0..<min(8, count - index) {
                    buffer[index + byte] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(byte)))
                }
                index += 8
            }
        }
        return bytes
    }
}

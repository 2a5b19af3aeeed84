import LedgerIO
import LedgerKit
import LedgerVSR
import Testing

/// The pure parts of recovery: entry validation and the decision table, without a disk.
@Suite struct JournalRecoveryCaseTests {
    let cluster = JournalFixture.cluster
    let slotCount = JournalFixture.slotCount

    /// A header-only prepare of `op` (its slot is op mod 32).
    func prepare(op: UInt64, view: UInt32 = 0, timestamp: UInt64 = 0) -> PrepareHeader {
        var header = PrepareHeader()
        header.frame.cluster = cluster
        header.frame.view = view
        header.op = op
        header.timestamp = timestamp
        header.operation = 138
        header.sealWithoutBody()
        return header
    }

    func validate(_ header: PrepareHeader, slot: Int) -> JournalEntry {
        withUnsafeBytes(of: header) {
            JournalEntry.header($0, cluster: cluster, slot: slot, slotCount: slotCount)
        }
    }

    // MARK: Entry validation

    @Test func validHeadersAreRecognized() {
        let header = prepare(op: 37)
        #expect(validate(header, slot: 5) == .prepare(header))
        #expect(validate(PrepareHeader.reserved(cluster: cluster, slot: 9), slot: 9) == .reserved)
        let root = PrepareHeader.root(cluster: cluster, release: 3)
        #expect(validate(root, slot: 0) == .prepare(root))
    }

    @Test func everyHeaderCorruptionHasItsReason() {
        var flipped = prepare(op: 5)
        flipped.timestamp ^= 1
        #expect(validate(flipped, slot: 5) == .corrupt(.headerChecksum))

        var block = BlockHeader()
        block.frame.cluster = cluster
        block.sealWithoutBody()
        #expect(withUnsafeBytes(of: block) {
            JournalEntry.header($0, cluster: cluster, slot: 0, slotCount: slotCount)
        } == .corrupt(.command))

        var otherCluster = prepare(op: 5)
        otherCluster.frame.cluster = cluster + 1
        otherCluster.sealWithoutBody()
        #expect(validate(otherCluster, slot: 5) == .corrupt(.cluster))

        #expect(validate(prepare(op: 6), slot: 5) == .corrupt(.slot), "misdirected: op 6 in slot 5")
        #expect(validate(PrepareHeader.reserved(cluster: cluster, slot: 6), slot: 5) == .corrupt(.slot))

        var padded = prepare(op: 5)
        padded.reserved3 = 1
        padded.sealWithoutBody()
        #expect(validate(padded, slot: 5) == .corrupt(.headerPadding))

        var huge = prepare(op: 5)
        huge.frame.size = UInt32(Constants.messageSizeMax + Constants.sectorSize)
        huge.frame.checksum = huge.computeChecksum()
        #expect(validate(huge, slot: 5) == .corrupt(.size))

        var oddReserved = PrepareHeader.reserved(cluster: cluster, slot: 5)
        oddReserved.timestamp = 1
        oddReserved.sealWithoutBody()
        #expect(validate(oddReserved, slot: 5) == .corrupt(.reserved))
    }

    @Test func prepareValidationChecksBodyAndPadding() {
        var prng = PRNG(seed: 11)
        var chain = JournalTestChain(seed: 11)
        let message = chain.make(op: 5, parent: 0, bodySize: 5_000)
        let size = Int(message.header.frame.size)
        func entry(_ bytes: UnsafeRawBufferPointer) -> JournalEntry {
            JournalEntry.prepare(bytes, cluster: cluster, slot: 5, slotCount: slotCount)
        }
        #expect(entry(message.bytes) == .prepare(message.header))
        #expect(entry(UnsafeRawBufferPointer(rebasing: message.bytes[0..<Constants.sectorSize]))
            == .corrupt(.size), "fewer bytes than the prepare")

        message.buffer.bytes[size - 1] ^= 0x01
        #expect(entry(message.bytes) == .corrupt(.bodyChecksum))
        message.buffer.bytes[size - 1] ^= 0x01

        message.buffer.bytes[size + Int(prng.below(UInt64(message.buffer.count - size)))] = 0x5A
        #expect(entry(message.bytes) == .corrupt(.bodyPadding), "padding is corruption, not a trap")

        let reserved = JournalFixture.reservedSector(slot: 5)
        #expect(entry(UnsafeRawBufferPointer(reserved.bytes)) == .reserved)
        reserved.bytes[Constants.sectorSize - 1] = 1
        #expect(entry(UnsafeRawBufferPointer(reserved.bytes)) == .corrupt(.bodyPadding))
        // The entries above read through raw pointers into these buffers.
        withExtendedLifetime(message) {}
        withExtendedLifetime(reserved) {}
    }

    // MARK: The decision table

    struct Row {
        var header: JournalEntry
        var prepare: JournalEntry
        var opMax: UInt64
        var opPrepareMax: UInt64
        var expected: JournalRecoveryCase
        var decision: JournalRecoveryDecision
        var decisionSolo: JournalRecoveryDecision
    }

    var rows: [Row] {
        let corrupt = JournalEntry.corrupt(.headerChecksum)
        let broken = JournalEntry.corrupt(.bodyChecksum)
        func valid(_ op: UInt64, view: UInt32 = 0) -> JournalEntry { .prepare(prepare(op: op, view: view)) }
        return [
            Row(header: corrupt, prepare: broken, opMax: 8, opPrepareMax: 31,
                expected: .prepareCorruptHeaderCorrupt, decision: .repair, decisionSolo: .repair),
            Row(header: .reserved, prepare: broken, opMax: 8, opPrepareMax: 31,
                expected: .prepareCorruptHeaderReserved, decision: .repair, decisionSolo: .repair),
            Row(header: valid(5), prepare: broken, opMax: 8, opPrepareMax: 31,
                expected: .prepareCorruptHeaderValid, decision: .repair, decisionSolo: .repair),
            Row(header: valid(40), prepare: broken, opMax: 40, opPrepareMax: 31,
                expected: .prepareCorruptHeaderValid, decision: .repair, decisionSolo: .repair),
            Row(header: corrupt, prepare: .reserved, opMax: 8, opPrepareMax: 31,
                expected: .headerCorruptPrepareReserved, decision: .repair, decisionSolo: .fixHeaderFromPrepare),
            Row(header: corrupt, prepare: valid(5), opMax: 8, opPrepareMax: 31,
                expected: .headerCorruptPrepareBehind, decision: .repair, decisionSolo: .fixHeaderFromPrepare),
            Row(header: corrupt, prepare: valid(8), opMax: 8, opPrepareMax: 31,
                expected: .headerCorruptPrepareAtMax, decision: .fixHeaderFromPrepare,
                decisionSolo: .fixHeaderFromPrepare),
            Row(header: .reserved, prepare: valid(5), opMax: 8, opPrepareMax: 31,
                expected: .headerReservedPrepareValid, decision: .fixHeaderFromPrepare,
                decisionSolo: .fixHeaderFromPrepare),
            Row(header: valid(37), prepare: valid(37), opMax: 37, opPrepareMax: 31,
                expected: .prepareBeyondPrepareMax, decision: .truncate, decisionSolo: .truncate),
            Row(header: corrupt, prepare: valid(37), opMax: 37, opPrepareMax: 31,
                expected: .prepareBeyondPrepareMax, decision: .truncate, decisionSolo: .truncate),
            Row(header: .reserved, prepare: valid(37), opMax: 37, opPrepareMax: 31,
                expected: .prepareBeyondPrepareMax, decision: .truncate, decisionSolo: .truncate),
            Row(header: valid(37), prepare: valid(5), opMax: 37, opPrepareMax: 31,
                expected: .headerBeyondPrepareMax, decision: .truncate, decisionSolo: .truncate),
            Row(header: valid(37), prepare: .reserved, opMax: 37, opPrepareMax: 31,
                expected: .headerBeyondPrepareMaxPrepareReserved, decision: .truncate, decisionSolo: .truncate),
            Row(header: valid(5), prepare: .reserved, opMax: 8, opPrepareMax: 31,
                expected: .prepareReservedHeaderValid, decision: .repair, decisionSolo: .repair),
            Row(header: .reserved, prepare: .reserved, opMax: 8, opPrepareMax: 31,
                expected: .bothReserved, decision: .nothing, decisionSolo: .nothing),
            Row(header: valid(9), prepare: valid(41), opMax: 41, opPrepareMax: 51,
                expected: .prepareOpHigher, decision: .fixHeaderFromPrepare, decisionSolo: .fixHeaderFromPrepare),
            Row(header: valid(41), prepare: valid(9), opMax: 41, opPrepareMax: 51,
                expected: .headerOpHigher, decision: .repair, decisionSolo: .repair),
            Row(header: valid(5, view: 0), prepare: valid(5, view: 1), opMax: 8, opPrepareMax: 31,
                expected: .sameOpDifferentView, decision: .repair, decisionSolo: .repair),
            Row(header: valid(5), prepare: valid(5), opMax: 8, opPrepareMax: 31,
                expected: .identical, decision: .nothing, decisionSolo: .nothing),
        ]
    }

    @Test func everyCaseOfTheTableHasItsDecision() {
        var seen = Set<JournalRecoveryCase>()
        for (index, row) in rows.enumerated() {
            let facts = JournalSlotFacts(
                header: row.header, prepare: row.prepare, opMax: row.opMax, opPrepareMax: row.opPrepareMax)
            let found = journalRecoveryCase(facts)
            #expect(found == row.expected, "row \(index): \(found) instead of \(row.expected)")
            #expect(found.decision(solo: false) == row.decision, "row \(index) (\(found.label))")
            #expect(found.decision(solo: true) == row.decisionSolo, "row \(index) solo (\(found.label))")
            seen.insert(found)
        }
        #expect(seen.count == JournalRecoveryCase.allCases.count, "every case @A…@P is covered")
        #expect(JournalRecoveryCase.prepareCorruptHeaderCorrupt.label == "@A")
        #expect(JournalRecoveryCase.identical.label == "@P")
    }

    /// Same op, same view, different checksums: impossible under VSR, so only a hostile disk
    /// produces it. It must classify (as @O, repair), not trap.
    @Test func impossibleSameViewConflictIsRepairedNotTrapped() {
        let facts = JournalSlotFacts(
            header: .prepare(prepare(op: 5, view: 2, timestamp: 1)),
            prepare: .prepare(prepare(op: 5, view: 2, timestamp: 2)), opMax: 5, opPrepareMax: 31)
        #expect(facts.viewsEqual)
        #expect(journalRecoveryCase(facts) == .sameOpDifferentView)
    }

    /// Every pair from a small universe of entries classifies, and the invariants of the table
    /// hold: a slot is left alone only when its copies agree, fixed only from a valid prepare,
    /// truncated only past op_prepare_max.
    @Test func everyCombinationClassifiesConsistently() {
        var entries: [JournalEntry] = [.corrupt(.headerChecksum), .corrupt(.slot), .reserved]
        for op: UInt64 in [5, 37, 69] {
            for view: UInt32 in [0, 1] { entries.append(.prepare(prepare(op: op, view: view))) }
        }
        var seen = Set<JournalRecoveryCase>()
        for header in entries {
            for prepare in entries {
                for opMax: UInt64 in [5, 37, 69] {
                    for opPrepareMax: UInt64 in [31, 51, 71] {
                        let facts = JournalSlotFacts(
                            header: header, prepare: prepare, opMax: opMax, opPrepareMax: opPrepareMax)
                        let found = journalRecoveryCase(facts)
                        seen.insert(found)
                        for solo in [false, true] {
                            switch found.decision(solo: solo) {
                            case .nothing:
                                #expect(header == prepare, "\(found.label): copies agree")
                            case .fixHeaderFromPrepare:
                                #expect(prepare.kind != .corrupt, "\(found.label): fixed from an intact prepare")
                            case .truncate:
                                let beyond = (header.prepareHeader?.op ?? 0) > opPrepareMax
                                    || (prepare.prepareHeader?.op ?? 0) > opPrepareMax
                                #expect(beyond, "\(found.label): truncated only past op_prepare_max")
                            case .repair:
                                #expect(header.kind == .corrupt || header != prepare,
                                        "\(found.label): identical intact copies need no repair")
                            }
                        }
                    }
                }
            }
        }
        #expect(seen.count == JournalRecoveryCase.allCases.count)
    }
}

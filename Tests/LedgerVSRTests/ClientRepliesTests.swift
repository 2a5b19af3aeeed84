import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

/// A sealed reply message (header + body) built from a seed.
private struct TestReply {
    let header: ReplyHeader
    /// The whole message: header then body.
    let message: [UInt8]

    init(client: UInt128, op: UInt64, bodySize: Int, prng: inout PRNG) {
        precondition(bodySize > 0, "a stored reply has a body")
        var body = [UInt8](repeating: 0, count: bodySize)
        var index = 0
        while index < bodySize {  // Eight random bytes at a time: debug builds are slow.
            var word = prng.next()
            let count = min(8, bodySize - index)
            withUnsafeBytes(of: &word) { raw in
                for offset in 0..<count { body[index + offset] = raw[offset] }
            }
            index += count
        }
        var header = ReplyHeader()
        header.frame.cluster = 7
        header.frame.size = UInt32(Constants.messageHeaderSize + bodySize)
        header.client = client
        header.op = op
        header.commit = op
        header.request = UInt32(truncatingIfNeeded: op)
        header.operation = 138
        body.withUnsafeBytes { header.seal(body: $0) }
        self.header = header
        message = withUnsafeBytes(of: header) { Array($0) } + body
    }

    var checksum: UInt128 { header.frame.checksum }

    func write<S: Storage>(to replies: ClientReplies<S>, slot: Int) {
        message.withUnsafeBytes { bytes in
            replies.write(slot: slot, header: header, body: UnsafeRawBufferPointer(
                rebasing: bytes[Constants.messageHeaderSize..<bytes.count]))
        }
    }
}

/// What a read's callback got.
private final class ReadOutcome {
    var calls = 0
    var message: [UInt8]?
}

extension Optional where Wrapped == [UInt8] {
    /// Short failure messages: a 10 KiB array in an expectation prints all of it.
    fileprivate var isNil: Bool { self == nil }
    fileprivate func matches(_ reply: TestReply) -> Bool { self == reply.message }
}

private enum Fixture {
    static let layout = DataFileLayout(.testing)
    static var clientsMax: Int { layout.configuration.clientsMax }

    static func storage(seed: UInt64, options: SimulatedStorage.Options = .init()) -> SimulatedStorage {
        SimulatedStorage(layout: layout, seed: seed, options: options)
    }

    static func replies(_ storage: SimulatedStorage, writesMax: Int = 2) -> ClientReplies<SimulatedStorage> {
        ClientReplies(storage: storage, clientsMax: clientsMax, writesMax: writesMax)
    }

    static func read(_ replies: ClientReplies<SimulatedStorage>, slot: Int, header: ReplyHeader) -> ReadOutcome {
        let outcome = ReadOutcome()
        replies.read(slot: slot, header: header) { message in
            outcome.calls += 1
            outcome.message = message.map { Array($0) }
        }
        return outcome
    }

    /// Reads from disk and waits for the answer.
    static func readFromDisk(
        _ replies: ClientReplies<SimulatedStorage>, _ storage: SimulatedStorage, slot: Int, header: ReplyHeader
    ) -> ReadOutcome {
        let outcome = read(replies, slot: slot, header: header)
        storage.runUntilIdle()
        return outcome
    }

    /// The slot's sectors on the simulated disk.
    static func diskImage(_ storage: SimulatedStorage, slot: Int, count: Int) -> [UInt8] {
        Array(storage.bytes(zone: .clientReplies, offset: layout.clientReplyOffset(slot: slot), count: count))
    }

    static func diskHeader(_ storage: SimulatedStorage, slot: Int) -> Header {
        Header(from: UnsafeRawBufferPointer(storage.bytes(
            zone: .clientReplies, offset: layout.clientReplyOffset(slot: slot), count: Constants.messageHeaderSize)))
    }

    static func sectorCeil(_ size: Int) -> Int {
        (size + Constants.sectorSize - 1) / Constants.sectorSize * Constants.sectorSize
    }
}

@Suite struct ClientRepliesTests {
    fileprivate typealias F = Fixture

    @Test func writeThenReadBackFromDisk() {
        let storage = F.storage(seed: 1)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 1)
        let reply = TestReply(client: 11, op: 5, bodySize: 5000, prng: &prng)
        reply.write(to: replies, slot: 2)
        #expect(!replies.isIdle)
        #expect(replies.writesInFlight == 1)
        storage.runUntilIdle()
        #expect(replies.isIdle)
        #expect(replies.writes == 1)

        // The slot's format (what `ledger-inspect replies` reads): message, zeros to the sector.
        let padded = reply.message + [UInt8](repeating: 0, count: F.sectorCeil(reply.message.count) - reply.message.count)
        #expect(F.diskImage(storage, slot: 2, count: padded.count) == padded)
        #expect(F.diskImage(storage, slot: 1, count: Constants.sectorSize).allSatisfy { $0 == 0 })

        let outcome = F.read(replies, slot: 2, header: reply.header)
        #expect(outcome.calls == 0, "a disk read calls back from its completion")
        #expect(replies.isReading)
        storage.runUntilIdle()
        #expect(outcome.calls == 1)
        #expect(outcome.message.matches(reply))
        #expect(replies.readsFromDisk == 1)
        #expect(replies.readsFromMemory == 0)
        #expect(replies.isIdle)
    }

    @Test func aReplyBeingWrittenIsServedFromMemorySynchronously() {
        let storage = F.storage(seed: 2)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 2)
        let first = TestReply(client: 1, op: 1, bodySize: 100, prng: &prng)
        let second = TestReply(client: 1, op: 2, bodySize: 9000, prng: &prng)
        first.write(to: replies, slot: 0)  // In flight.
        second.write(to: replies, slot: 0)  // Pending behind it.

        let fromFlight = F.read(replies, slot: 0, header: first.header)
        #expect(fromFlight.calls == 1)
        #expect(fromFlight.message.matches(first))
        let fromPending = F.read(replies, slot: 0, header: second.header)
        #expect(fromPending.calls == 1)
        #expect(fromPending.message.matches(second))
        #expect(replies.readsFromMemory == 2)
        #expect(storage.pendingCount == 1, "no disk read was needed")
        storage.runUntilIdle()
        #expect(replies.readsFromDisk == 0)
    }

    @Test func aMismatchingHeaderReadsNil() {
        let storage = F.storage(seed: 3)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 3)
        let old = TestReply(client: 1, op: 1, bodySize: 300, prng: &prng)
        let new = TestReply(client: 1, op: 2, bodySize: 300, prng: &prng)
        let other = TestReply(client: 2, op: 3, bodySize: 300, prng: &prng)
        old.write(to: replies, slot: 0)
        storage.runUntilIdle()
        new.write(to: replies, slot: 0)
        other.write(to: replies, slot: 1)
        storage.runUntilIdle()

        #expect(F.readFromDisk(replies, storage, slot: 0, header: old.header).message.isNil)
        #expect(F.readFromDisk(replies, storage, slot: 0, header: other.header).message.isNil)
        #expect(F.readFromDisk(replies, storage, slot: 1, header: new.header).message.isNil)
        #expect(replies.readMismatches == 3)
        #expect(replies.readCorrupt == 0)
        #expect(F.readFromDisk(replies, storage, slot: 0, header: new.header).message.matches(new))

        // Being rewritten with another reply: nil at once, without IO.
        let newest = TestReply(client: 1, op: 4, bodySize: 300, prng: &prng)
        newest.write(to: replies, slot: 0)
        let stale = F.read(replies, slot: 0, header: new.header)
        #expect(stale.calls == 1)
        #expect(stale.message.isNil)
        #expect(!replies.isReading)
        #expect(replies.readMismatches == 4)
        storage.runUntilIdle()
    }

    @Test func aNeverWrittenSlotReadsNilAsCorrupt() {
        let storage = F.storage(seed: 4)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 4)
        let reply = TestReply(client: 1, op: 1, bodySize: 64, prng: &prng)
        let outcome = F.readFromDisk(replies, storage, slot: 3, header: reply.header)
        #expect(outcome.calls == 1)
        #expect(outcome.message.isNil)
        #expect(replies.readCorrupt == 1)
    }

    @Test func corruptSectorsReadNilAndAreCounted() {
        let storage = F.storage(seed: 5)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 5)
        var written: [TestReply] = []
        for slot in 0..<3 {
            let reply = TestReply(client: UInt128(slot + 1), op: UInt64(slot + 1), bodySize: 10_000, prng: &prng)
            reply.write(to: replies, slot: slot)
            written.append(reply)
        }
        storage.runUntilIdle()
        let base = { (slot: Int) in F.layout.clientReplyOffset(slot: slot) }
        storage.corruptSector(zone: .clientReplies, offset: base(0))  // Header sector.
        storage.corruptSector(zone: .clientReplies, offset: base(1) + UInt64(Constants.sectorSize))  // Body only.
        #expect(F.readFromDisk(replies, storage, slot: 0, header: written[0].header).message.isNil)
        #expect(F.readFromDisk(replies, storage, slot: 1, header: written[1].header).message.isNil)
        #expect(replies.readCorrupt == 2)
        #expect(F.readFromDisk(replies, storage, slot: 2, header: written[2].header).message.matches(written[2]))

        // Hostile bytes: a verdict, never a trap.
        var noise = PRNG(seed: 55)
        let slot2 = storage.bytes(zone: .clientReplies, offset: base(2), count: 3 * Constants.sectorSize)
        for index in 0..<slot2.count { slot2[index] = UInt8(truncatingIfNeeded: noise.next()) }
        #expect(F.readFromDisk(replies, storage, slot: 2, header: written[2].header).message.isNil)
        #expect(replies.readCorrupt == 3)
        #expect(replies.readsFromDisk == 1)
    }

    @Test func newerRepliesCoalesceAndTheLastWins() {
        let storage = F.storage(seed: 6)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 6)
        var sent: [TestReply] = []
        for op in 1...10 {
            let reply = TestReply(client: 9, op: UInt64(op), bodySize: 200 * op, prng: &prng)
            reply.write(to: replies, slot: 1)
            sent.append(reply)
            #expect(replies.writesInFlight == 1, "never two writes to one slot in flight")
        }
        #expect(replies.pendingCount == 1)
        storage.runUntilIdle()
        #expect(replies.writes == 2, "the first write, then the last reply")
        #expect(replies.coalesced == 8)
        #expect(F.diskHeader(storage, slot: 1) == sent[9].header.untyped)
        #expect(F.readFromDisk(replies, storage, slot: 1, header: sent[9].header).message.matches(sent[9]))
        #expect(F.readFromDisk(replies, storage, slot: 1, header: sent[4].header).message.isNil)
    }

    @Test func writesToOneSlotLandInOrderWhateverTheLatencies() {
        for seed in UInt64(1)...20 {
            var options = SimulatedStorage.Options()
            options.writeLatencyTicks = 1...20
            let storage = F.storage(seed: seed, options: options)
            let replies = F.replies(storage)
            var prng = PRNG(seed: seed)
            var last: [TestReply?] = Array(repeating: nil, count: F.clientsMax)
            for op in 1...40 {
                let slot = Int(prng.below(UInt64(F.clientsMax)))
                let reply = TestReply(client: UInt128(slot + 1), op: UInt64(op), bodySize: 1 + Int(prng.below(6000)), prng: &prng)
                reply.write(to: replies, slot: slot)
                last[slot] = reply
                #expect(replies.writesInFlight <= 2)
                for _ in 0..<prng.int(in: 0...3) { storage.tick() }
            }
            storage.runUntilIdle()
            for slot in 0..<F.clientsMax {
                guard let reply = last[slot] else { continue }
                #expect(F.diskHeader(storage, slot: slot) == reply.header.untyped, "seed \(seed) slot \(slot)")
            }
        }
    }

    @Test func aWriteWaitsForADiskReadOfItsSlot() {
        let storage = F.storage(seed: 7)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 7)
        let old = TestReply(client: 1, op: 1, bodySize: 5000, prng: &prng)
        let new = TestReply(client: 1, op: 2, bodySize: 5000, prng: &prng)
        old.write(to: replies, slot: 0)
        storage.runUntilIdle()
        let outcome = F.read(replies, slot: 0, header: old.header)
        new.write(to: replies, slot: 0)
        #expect(replies.writesInFlight == 0, "held back by the read")
        #expect(replies.pendingCount == 1)
        storage.runUntilIdle()
        #expect(outcome.message.matches(old))
        #expect(replies.readCorrupt == 0)
        #expect(F.diskHeader(storage, slot: 0) == new.header.untyped)
        #expect(replies.isIdle)
    }

    @Test func aSecondDiskReadWhileOneIsBusyGetsNilAtOnce() {
        let storage = F.storage(seed: 8)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 8)
        let a = TestReply(client: 1, op: 1, bodySize: 10, prng: &prng)
        let b = TestReply(client: 2, op: 2, bodySize: 10, prng: &prng)
        a.write(to: replies, slot: 0)
        b.write(to: replies, slot: 1)
        storage.runUntilIdle()
        let first = F.read(replies, slot: 0, header: a.header)
        let second = F.read(replies, slot: 1, header: b.header)
        #expect(second.calls == 1)
        #expect(second.message.isNil)
        #expect(replies.readsBusy == 1)
        storage.runUntilIdle()
        #expect(first.message.matches(a))

        // A read started inside a read's callback finds the buffer busy, then works after.
        var nested: ReadOutcome?
        replies.read(slot: 0, header: a.header) { _ in nested = F.read(replies, slot: 1, header: b.header) }
        storage.runUntilIdle()
        #expect(nested?.calls == 1)
        #expect(nested?.message.isNil == true)
        #expect(replies.readsBusy == 2)
        #expect(F.readFromDisk(replies, storage, slot: 1, header: b.header).message.matches(b))
    }

    @Test func flushWaitsForEveryWriteInFlightAndPending() {
        let storage = F.storage(seed: 9)
        let replies = F.replies(storage)
        var flushedIdle = false
        replies.flush { flushedIdle = true }
        #expect(flushedIdle, "nothing to write: calls back at once (documented)")

        var prng = PRNG(seed: 9)
        var sent: [TestReply] = []
        for slot in 0..<F.clientsMax {
            let reply = TestReply(client: UInt128(slot + 1), op: UInt64(slot + 1), bodySize: 7000, prng: &prng)
            reply.write(to: replies, slot: slot)
            sent.append(reply)
        }
        #expect(replies.writesInFlight == 2)
        #expect(replies.pendingCount == F.clientsMax - 2)
        var durableAtFlush: [Bool] = []
        replies.flush {
            durableAtFlush = (0..<F.clientsMax).map { F.diskHeader(storage, slot: $0) == sent[$0].header.untyped }
        }
        #expect(durableAtFlush.isEmpty)
        storage.tick()
        #expect(durableAtFlush.isEmpty)
        storage.runUntilIdle()
        #expect(durableAtFlush == [Bool](repeating: true, count: F.clientsMax))
    }

    @Test func flushWaitsForTheReplacementOfACoalescedReply() {
        let storage = F.storage(seed: 10)
        let replies = F.replies(storage)
        var prng = PRNG(seed: 10)
        let a = TestReply(client: 1, op: 1, bodySize: 100, prng: &prng)
        let b = TestReply(client: 1, op: 2, bodySize: 100, prng: &prng)
        let c = TestReply(client: 1, op: 3, bodySize: 100, prng: &prng)
        a.write(to: replies, slot: 3)  // In flight.
        b.write(to: replies, slot: 3)  // Pending: the flush waits for it.
        var onDisk: Header?
        replies.flush { onDisk = F.diskHeader(storage, slot: 3) }
        c.write(to: replies, slot: 3)  // Replaces b before it starts.
        storage.runUntilIdle()
        #expect(onDisk == c.header.untyped, "b is durable only through its replacement")
        #expect(replies.coalesced == 1)
    }

    @Test func aCrashNeverLetsGarbageThrough() {
        var sawOld = false
        var sawCorrupt = false
        for seed in UInt64(1)...40 {
            var options = SimulatedStorage.Options()
            options.crashTornWriteProbability = 0.7
            options.faultyZones = [.clientReplies]
            let storage = F.storage(seed: seed, options: options)
            var prng = PRNG(seed: seed)
            let old = TestReply(client: 1, op: 1, bodySize: 11_000, prng: &prng)
            let new = TestReply(client: 1, op: 2, bodySize: 11_000, prng: &prng)
            do {
                let replies = F.replies(storage)
                old.write(to: replies, slot: 2)
                storage.runUntilIdle()
                new.write(to: replies, slot: 2)
                storage.crash()  // Before the write completes.
            }
            let restarted = F.replies(storage)
            let readOld = F.readFromDisk(restarted, storage, slot: 2, header: old.header)
            let readNew = F.readFromDisk(restarted, storage, slot: 2, header: new.header)
            #expect(readOld.calls == 1)
            #expect(readNew.calls == 1)
            #expect(readOld.message.isNil || readOld.message.matches(old), "seed \(seed)")
            #expect(readNew.message.isNil || readNew.message.matches(new), "seed \(seed)")
            #expect(readOld.message.isNil || readNew.message.isNil, "seed \(seed): one reply per slot")
            if readOld.message != nil { sawOld = true }
            if restarted.readCorrupt > 0 { sawCorrupt = true }
        }
        #expect(sawOld, "some crash lost the write")
        #expect(sawCorrupt, "some crash tore the write")
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func randomWorkloadAgainstAModel(seed: UInt64) {
        var options = SimulatedStorage.Options()
        options.readLatencyTicks = 1...6
        options.writeLatencyTicks = 1...12
        let storage = F.storage(seed: seed, options: options)
        let replies = F.replies(storage, writesMax: 1 + Int(seed % 3))
        var prng = PRNG(seed: seed)
        // The model: every reply each slot was given, in order.
        var history: [[TestReply]] = Array(repeating: [], count: F.clientsMax)
        var checks: [(outcome: ReadOutcome, expected: TestReply, mayBeNil: Bool)] = []
        var flushChecks: [(slot: Int, index: Int, durable: Bool)] = []
        var flushPending = false
        var flushesDone = 0
        var op: UInt64 = 0

        for _ in 0..<400 {
            let slot = Int(prng.below(UInt64(F.clientsMax)))
            switch prng.below(100) {
            case 0..<45:
                op += 1
                let size = prng.chance(percent: 10) ? 1 + Int(prng.below(40_000)) : 1 + Int(prng.below(5000))
                let reply = TestReply(client: UInt128(slot + 1), op: op, bodySize: size, prng: &prng)
                reply.write(to: replies, slot: slot)
                history[slot].append(reply)
            case 45..<75:
                guard let latest = history[slot].last else { continue }
                let busyBefore = replies.readsBusy
                let outcome = F.read(replies, slot: slot, header: latest.header)
                checks.append((outcome, latest, replies.readsBusy > busyBefore))
            case 75..<85:
                guard history[slot].count >= 2 else { continue }
                let stale = history[slot][Int(prng.below(UInt64(history[slot].count - 1)))]
                checks.append((F.read(replies, slot: slot, header: stale.header), stale, true))
            case 85..<90:
                guard !flushPending else { continue }
                flushPending = true
                let marks = (0..<F.clientsMax).map { history[$0].count }
                replies.flush {
                    flushPending = false
                    flushesDone += 1
                    // Each slot holds its latest reply at flush time, or a newer one.
                    for slot in 0..<F.clientsMax where marks[slot] > 0 {
                        let onDisk = F.diskHeader(storage, slot: slot)
                        let index = history[slot].firstIndex { $0.header.untyped == onDisk } ?? -1
                        flushChecks.append((slot, index, index >= marks[slot] - 1))
                    }
                }
            default:
                for _ in 0..<prng.int(in: 1...8) { storage.tick() }
            }
        }
        storage.runUntilIdle()
        #expect(replies.isIdle, "seed \(seed)")
        #expect(!flushPending, "seed \(seed)")
        #expect(flushesDone > 0, "seed \(seed)")
        for check in flushChecks {
            #expect(check.durable, "seed \(seed): slot \(check.slot) durable at flush (found \(check.index))")
        }
        for check in checks {
            #expect(check.outcome.calls == 1, "seed \(seed): one callback per read")
            if check.outcome.message != nil || !check.mayBeNil {
                #expect(check.outcome.message.matches(check.expected), "seed \(seed): a read gets the asked-for reply")
            }
        }
        #expect(replies.readCorrupt == 0, "seed \(seed)")
        #expect(replies.writes + replies.coalesced == history.reduce(0) { $0 + $1.count }, "seed \(seed)")

        // After a restart, every slot's latest reply is on disk.
        let restarted = F.replies(storage)
        for slot in 0..<F.clientsMax {
            guard let latest = history[slot].last else { continue }
            #expect(F.readFromDisk(restarted, storage, slot: slot, header: latest.header).message.matches(latest),
                    "seed \(seed) slot \(slot)")
        }
    }
}

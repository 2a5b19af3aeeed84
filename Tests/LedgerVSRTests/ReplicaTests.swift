import LedgerIO
import LedgerKit
import LedgerStateMachine
import LedgerTesting
import LedgerVSR
import Testing

/// The one-member replica against the client protocol (wire spec §5.7, §10): sessions, the
/// hash chain, duplicates (also after a restart), every eviction reason, pings, pulses, the
/// request queue, and hostile messages.
@Suite struct ReplicaTests {
    static func eviction(_ bytes: [UInt8]) -> EvictionHeader? {
        guard bytes.count == Constants.messageHeaderSize else { return nil }
        let header = bytes.withUnsafeBytes { $0.loadUnaligned(as: EvictionHeader.self) }
        guard header.frame.command == Command.eviction.rawValue, header.isChecksumValid else { return nil }
        return header
    }

    /// A registered client.
    static func registered(_ harness: ReplicaHarness, id: UInt128) -> TestClient {
        var client = TestClient(id: id)
        let start = harness.bus.sent.count
        harness.deliver(client.register())
        let replies = harness.bus.messages(to: id, from: start)
        precondition(replies.count == 1, "a register is answered once")
        precondition(client.accept(replies[0]) != nil, "the register reply is accepted")
        return client
    }

    @Test func registerReplyFollowsTheProtocol() {
        let harness = ReplicaHarness(seed: 1)
        var client = TestClient(id: 0xC1)
        let request = client.register()
        let requestChecksum = client.parent
        harness.deliver(request)
        let replies = harness.bus.messages(to: 0xC1)
        #expect(replies.count == 1)
        guard let bytes = replies.first, let reply = client.accept(bytes) else {
            Issue.record("no acceptable register reply")
            return
        }
        #expect(bytes.count == Constants.messageHeaderSize + 64, "register reply size is 320")
        #expect(reply.requestChecksum == requestChecksum)
        #expect(reply.op == reply.commit && reply.commit >= 1)
        #expect(reply.request == 0 && reply.operation == VSROperation.register.rawValue)
        #expect(reply.frame.release == Constants.release, "the reply echoes the request's release")
        #expect(reply.timestamp != 0)
        #expect(reply.hasZeroPadding)
        let limit = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 256, as: UInt32.self) }
        #expect(limit == UInt32(Constants.messageBodySizeMax))
        #expect(bytes[260...].allSatisfy { $0 == 0 })
        // The context is the reply's checksum computed with context 0 (wire spec §5.6).
        var zeroed = reply
        zeroed.context = 0
        #expect(reply.context == zeroed.computeChecksum())
        #expect(client.session == reply.commit)
    }

    @Test func requestsChainAndDuplicatesGetTheStoredReply() {
        let harness = ReplicaHarness(seed: 2)
        var client = Self.registered(harness, id: 0xC2)
        let create = client.request(.createAccounts, body: Bodies.accounts([
            Account(id: 1, ledger: 7, code: 1), Account(id: 2, ledger: 7, code: 1),
        ]))
        var start = harness.bus.sent.count
        harness.deliver(create)
        var replies = harness.bus.messages(to: 0xC2, from: start)
        #expect(replies.count == 1)
        guard let first = replies.first, let reply = client.accept(first) else {
            Issue.record("no create_accounts reply")
            return
        }
        let results = Bodies.decode(first[256...], as: CreateAccountResult.self, size: 16)
        #expect(results.map(\.status) == [.created, .created])
        #expect(reply.request == 1)

        // The same bytes again: the identical reply (body from the client-replies zone).
        start = harness.bus.sent.count
        harness.deliver(create)
        replies = harness.bus.messages(to: 0xC2, from: start)
        #expect(replies == [first], "a duplicate gets the stored reply, byte for byte")
        #expect(harness.replica.counters.repliesResent == 1)

        // A wrongly chained next request is dropped; the right one goes through.
        var wrong = client
        wrong.parent = 12345
        start = harness.bus.sent.count
        harness.deliver(wrong.request(.lookupAccounts, body: Bodies.ids([1])))
        #expect(harness.bus.messages(to: 0xC2, from: start).isEmpty, "wrong parent: dropped")
        // A skipped request number is dropped too.
        var skipping = client
        skipping.requestNext += 1
        harness.deliver(skipping.request(.lookupAccounts, body: Bodies.ids([1])))
        #expect(harness.bus.messages(to: 0xC2, from: start).isEmpty, "skipped number: dropped")
        #expect(harness.replica.counters.droppedSession == 2)

        harness.deliver(client.request(.lookupAccounts, body: Bodies.ids([1, 3, 2])))
        replies = harness.bus.messages(to: 0xC2, from: start)
        #expect(replies.count == 1)
        if let bytes = replies.first {
            #expect(client.accept(bytes) != nil)
            let accounts = Bodies.decode(bytes[256...], as: Account.self, size: 128)
            #expect(accounts.map(\.id) == [1, 2], "missing ids are omitted")
        }
    }

    @Test func aDuplicateAfterARestartGetsTheSameReply() {
        let harness = ReplicaHarness(seed: 3)
        var client = Self.registered(harness, id: 0xC3)
        var start = harness.bus.sent.count
        harness.deliver(client.request(.createAccounts, body: Bodies.accounts([
            Account(id: 10, ledger: 1, code: 1), Account(id: 11, ledger: 1, code: 1),
        ])))
        #expect(harness.bus.messages(to: 0xC3, from: start).count == 1)
        _ = harness.bus.messages(to: 0xC3, from: start).first.map { client.accept($0) }
        let transfers = client.request(.createTransfers, body: Bodies.transfers([
            Transfer(id: 100, debitAccountId: 10, creditAccountId: 11, amount: 5, ledger: 1, code: 1),
            Transfer(id: 101, debitAccountId: 10, creditAccountId: 12, amount: 5, ledger: 1, code: 1),
        ]))
        start = harness.bus.sent.count
        harness.deliver(transfers)
        let original = harness.bus.messages(to: 0xC3, from: start)
        #expect(original.count == 1)

        harness.restart()
        start = harness.bus.sent.count
        harness.deliver(transfers)
        let again = harness.bus.messages(to: 0xC3, from: start)
        #expect(again == original, "the reply after a restart is byte-identical")

        // The client goes on with its session after the restart.
        if let bytes = original.first { _ = client.accept(bytes) }
        start = harness.bus.sent.count
        harness.deliver(client.request(.lookupTransfers, body: Bodies.ids([100, 101])))
        let lookup = harness.bus.messages(to: 0xC3, from: start)
        #expect(lookup.count == 1)
        if let bytes = lookup.first {
            #expect(client.accept(bytes) != nil)
            #expect(Bodies.decode(bytes[256...], as: Transfer.self, size: 128).map(\.id) == [100])
        }
    }

    @Test func evictionReasons() {
        let harness = ReplicaHarness(seed: 4)
        func evictionReason(_ message: [UInt8], client: UInt128) -> EvictionReason? {
            let start = harness.bus.sent.count
            harness.deliver(message)
            let sent = harness.bus.messages(to: client, from: start)
            guard sent.count == 1, let eviction = Self.eviction(sent[0]) else { return nil }
            #expect(eviction.client == client)
            #expect(eviction.frame.release == Constants.release)
            return eviction.reason
        }
        // No session.
        var stranger = TestClient(id: 0xE1)
        stranger.session = 5
        stranger.requestNext = 1
        #expect(evictionReason(stranger.request(.lookupAccounts, body: Bodies.ids([1])), client: 0xE1) == .noSession)
        // Releases.
        var old = TestClient(id: 0xE2)
        old.release = Constants.releaseClientMin - 1
        #expect(evictionReason(old.register(), client: 0xE2) == .clientReleaseTooLow)
        var new = TestClient(id: 0xE3)
        new.release = Constants.release + 1
        #expect(evictionReason(new.register(), client: 0xE3) == .clientReleaseTooHigh)
        // A register without its body.
        let bodiless = TestClient(id: 0xE4)
        let header = bodiless.header(operation: VSROperation.register.rawValue, body: [], request: 0, parent: 0, session: 0)
        #expect(evictionReason(TestClient.message(header, body: []), client: 0xE4) == .invalidRequestBodySize)
        // A register with a non-zero body.
        var nonzero = [UInt8](repeating: 0, count: 256)
        nonzero[0] = 1
        let badRegister = bodiless.header(operation: VSROperation.register.rawValue, body: nonzero, request: 0, parent: 0, session: 0)
        #expect(evictionReason(TestClient.message(badRegister, body: nonzero), client: 0xE4) == .invalidRequestBody)

        var client = Self.registered(harness, id: 0xE5)
        // Unknown and internal operations.
        var unknown = client
        #expect(evictionReason(
            TestClient.message(unknown.header(operation: 139, body: [], request: 1, parent: unknown.parent, session: unknown.session), body: []),
            client: 0xE5) == .invalidRequestOperation)
        #expect(evictionReason(unknown.request(.pulse, body: []), client: 0xE5) == .invalidRequestOperation)
        // A body that is not a multi-batch encoding, and too many events.
        var garbage = client
        #expect(evictionReason(garbage.request(.createAccounts, body: [UInt8](repeating: 7, count: 128)), client: 0xE5) == .invalidRequestBody)
        var tooMany = client
        let accounts = (1...UInt128(DurableLedgerRun.batchEventsMax + 1)).map { Account(id: $0, ledger: 1, code: 1) }
        #expect(evictionReason(tooMany.request(.createAccounts, body: Bodies.accounts(accounts)), client: 0xE5) == .invalidRequestBody)
        // The release changed within the session.
        var changed = client
        changed.release = Constants.release - 1
        #expect(evictionReason(changed.request(.lookupAccounts, body: Bodies.ids([1])), client: 0xE5) == .sessionReleaseMismatch)
        // An older session number than the table's.
        var older = client
        older.session -= 1
        #expect(evictionReason(older.request(.lookupAccounts, body: Bodies.ids([1])), client: 0xE5) == .sessionTooLow)
        // None of these prepared anything; the client still works.
        let start = harness.bus.sent.count
        harness.deliver(client.request(.lookupAccounts, body: Bodies.ids([1])))
        let replies = harness.bus.messages(to: 0xE5, from: start)
        #expect(replies.count == 1 && client.accept(replies[0]) != nil)
        #expect(harness.replica.counters.evictionsTotal == 11)
    }

    @Test func leastRecentlyActiveSessionIsEvicted() {
        let harness = ReplicaHarness(seed: 5)
        let capacity = harness.ledger.configuration.clientsMax
        var clients = (0..<capacity).map { Self.registered(harness, id: UInt128(0x100 + $0)) }
        // Client 0 is the least recently active once the others made a request.
        for index in 1..<capacity {
            let start = harness.bus.sent.count
            harness.deliver(clients[index].request(.lookupAccounts, body: Bodies.ids([1])))
            _ = clients[index].accept(harness.bus.messages(to: clients[index].id, from: start)[0])
        }
        _ = Self.registered(harness, id: 0x1FF)
        #expect(harness.ledger.clientSessions.session(client: clients[0].id) == nil)
        // Its next request and its next ping are answered with no_session.
        var start = harness.bus.sent.count
        harness.deliver(clients[0].request(.lookupAccounts, body: Bodies.ids([1])))
        var sent = harness.bus.messages(to: clients[0].id, from: start)
        #expect(sent.count == 1 && Self.eviction(sent[0])?.reason == .noSession)
        start = harness.bus.sent.count
        harness.deliver(Self.ping(client: clients[0].id, session: clients[0].session, timestamp: 1))
        sent = harness.bus.messages(to: clients[0].id, from: start)
        #expect(sent.count == 1 && Self.eviction(sent[0])?.reason == .noSession)
    }

    static func ping(client: UInt128, session: UInt64, timestamp: UInt64, release: UInt32 = Constants.release) -> [UInt8] {
        var ping = PingClientHeader()
        ping.frame.cluster = ReplicaHarness.cluster
        ping.frame.release = release
        ping.client = client
        ping.session = session
        ping.pingTimestampMonotonic = timestamp
        ping.sealWithoutBody()
        return withUnsafeBytes(of: &ping) { Array($0) }
    }

    @Test func pingGetsAPong() {
        let harness = ReplicaHarness(seed: 6)
        harness.deliver(Self.ping(client: 0xF1, session: 0, timestamp: 123_456_789))
        let sent = harness.bus.messages(to: 0xF1)
        #expect(sent.count == 1)
        guard let bytes = sent.first, bytes.count == 256 else { return }
        let pong = bytes.withUnsafeBytes { $0.loadUnaligned(as: PongClientHeader.self) }
        #expect(pong.isChecksumValid)
        #expect(pong.frame.command == Command.pongClient.rawValue)
        #expect(pong.pingTimestampMonotonic == 123_456_789)
        #expect(pong.frame.replica == 0 && pong.frame.release == Constants.release)
        #expect(harness.bus.connections[0xF1] == 1, "the ping names the client's connection")
        // A ping from a too old client: eviction.
        harness.deliver(Self.ping(client: 0xF2, session: 0, timestamp: 1, release: 1))
        #expect(Self.eviction(harness.bus.messages(to: 0xF2).first ?? [])?.reason == .clientReleaseTooLow)
    }

    @Test func pendingTransfersExpireOnTheirOwn() {
        let harness = ReplicaHarness(seed: 7)
        var client = Self.registered(harness, id: 0xA1)
        func call(_ operation: Operation, _ body: [UInt8]) -> [UInt8] {
            let start = harness.bus.sent.count
            harness.deliver(client.request(operation, body: body))
            let replies = harness.bus.messages(to: client.id, from: start)
            precondition(replies.count == 1, "one reply")
            precondition(client.accept(replies[0]) != nil, "an acceptable reply")
            return replies[0]
        }
        _ = call(.createAccounts, Bodies.accounts([Account(id: 1, ledger: 1, code: 1), Account(id: 2, ledger: 1, code: 1)]))
        let created = call(.createTransfers, Bodies.transfers([
            Transfer(id: 9, debitAccountId: 1, creditAccountId: 2, amount: 40, timeout: 1, ledger: 1, code: 1, flags: .pending),
        ]))
        #expect(Bodies.decode(created[256...], as: CreateTransferResult.self, size: 16).map(\.status) == [.created])
        var accounts = Bodies.decode(call(.lookupAccounts, Bodies.ids([1]))[256...], as: Account.self, size: 128)
        #expect(accounts.first?.debitsPending == 40)
        let pulsesBefore = harness.replica.counters.pulses
        // Two seconds later, with no client request, the replica pulses and the transfer expires.
        for _ in 0..<200 {
            harness.time.advance(ns: 10_000_000)
            harness.settle()
        }
        #expect(harness.replica.counters.pulses > pulsesBefore)
        accounts = Bodies.decode(call(.lookupAccounts, Bodies.ids([1]))[256...], as: Account.self, size: 128)
        #expect(accounts.first?.debitsPending == 0, "the pending amount was released by the expiry")
        // Posting it now fails: it expired.
        let post = call(.createTransfers, Bodies.transfers([
            Transfer(id: 10, pendingId: 9, flags: .postPendingTransfer),
        ]))
        #expect(Bodies.decode(post[256...], as: CreateTransferResult.self, size: 16).map(\.status) == [.pendingTransferExpired])
    }

    @Test func requestsQueueWhileThePipelineIsFull() {
        let harness = ReplicaHarness(seed: 8)
        let count = harness.ledger.configuration.clientsMax
        let pipeline = harness.ledger.configuration.pipelinePrepareQueueMax
        #expect(count > pipeline, "the harness has more sessions than pipeline places")
        var clients = (0..<count).map { Self.registered(harness, id: UInt128(0x200 + $0)) }
        // Every client's request arrives before the disk runs: the pipeline fills, the rest
        // queue, and every client gets exactly one reply, in arrival order.
        let start = harness.bus.sent.count
        for index in 0..<count {
            let body = Bodies.accounts([Account(id: UInt128(1000 + index), ledger: 1, code: 1)])
            let message = clients[index].request(.createAccounts, body: body)
            message.withUnsafeBytes { harness.replica.receive($0, from: index) }
        }
        #expect(harness.replica.queuedRequestCount == count - pipeline)
        // The same client again while its request waits: dropped (its reply will follow).
        var duplicate = clients[count - 1]
        duplicate.requestNext -= 1
        duplicate.parent = harness.ledger.clientSessions.session(client: duplicate.id)!.reply.context
        let again = duplicate.request(.createAccounts, body: Bodies.accounts([Account(id: 1999, ledger: 1, code: 1)]))
        again.withUnsafeBytes { harness.replica.receive($0, from: 99) }
        #expect(harness.replica.counters.droppedInFlight == 1)
        harness.settle()
        var order: [UInt128] = []
        for message in harness.bus.sent[start...] { order.append(message.client) }
        #expect(order == clients.map(\.id), "replies in arrival order, one each")
        for index in 0..<count {
            let replies = harness.bus.messages(to: clients[index].id, from: start)
            #expect(replies.count == 1)
            if let reply = replies.first { #expect(clients[index].accept(reply) != nil) }
        }
        #expect(harness.replica.queuedRequestCount == 0)
    }

    @Test func hostileMessagesAreDroppedAndCounted() {
        let harness = ReplicaHarness(seed: 9)
        var prng = PRNG(seed: 9)
        var client = Self.registered(harness, id: 0xB1)
        let sentBefore = harness.bus.sent.count
        for round in 0..<2_000 {
            // A sealed header with random command-specific bytes and frame fields: the bus
            // would pass it (checksums are valid), so the replica sees it.
            var header = Header()
            header.frame.cluster = ReplicaHarness.cluster
            header.frame.command = UInt8(prng.int(in: 0...24))
            header.frame.release = prng.chance(percent: 50) ? Constants.release : UInt32(truncatingIfNeeded: prng.next())
            header.frame.view = prng.chance(percent: 80) ? 0 : UInt32(truncatingIfNeeded: prng.next())
            header.frame.replica = prng.chance(percent: 90) ? 0 : UInt8(truncatingIfNeeded: prng.next())
            withUnsafeMutableBytes(of: &header.commandBytes) { bytes in
                for index in 0..<bytes.count where prng.chance(percent: 20) { bytes[index] = UInt8(truncatingIfNeeded: prng.next()) }
            }
            var body: [UInt8] = []
            if prng.chance(percent: 50) {
                body = [UInt8](repeating: 0, count: prng.int(in: 0...600))
                for index in body.indices { body[index] = UInt8(truncatingIfNeeded: prng.next()) }
            }
            header.frame.size = UInt32(Constants.messageHeaderSize + body.count)
            body.withUnsafeBytes { header.seal(body: $0) }
            var bytes = withUnsafeBytes(of: &header) { Array($0) }
            bytes.append(contentsOf: body)
            bytes.withUnsafeBytes { harness.replica.receive($0, from: 100 + round % 7) }
            if round % 100 == 0 { harness.settle() }
        }
        harness.settle()
        #expect(harness.replica.status == .normal)
        #expect(harness.replica.counters.droppedTotal + harness.replica.counters.evictionsTotal > 0)
        // Nothing was sent to the real client, and it still works.
        #expect(harness.bus.messages(to: 0xB1, from: sentBefore).isEmpty)
        let start = harness.bus.sent.count
        harness.deliver(client.request(.lookupAccounts, body: Bodies.ids([1])))
        let replies = harness.bus.messages(to: 0xB1, from: start)
        #expect(replies.count == 1 && client.accept(replies[0]) != nil)
    }

    @Test func messagesWhoseSizeDisagreesWithTheirBytesAreDropped() {
        let harness = ReplicaHarness(seed: 11)
        var client = Self.registered(harness, id: 0xD2)
        let message = client.request(.lookupAccounts, body: Bodies.ids([1]))
        let dropped = harness.replica.counters.droppedInvalidHeader
        // Truncated (the size field says more), padded (it says less), and shorter than a header.
        harness.deliver(Array(message.dropLast(16)))
        harness.deliver(message + [0, 0, 0, 0])
        harness.deliver(Array(message.prefix(100)))
        #expect(harness.replica.counters.droppedInvalidHeader == dropped + 3)
        #expect(harness.bus.messages(to: 0xD2).count == 1, "only the register reply")
        // The intact message still goes through.
        let start = harness.bus.sent.count
        harness.deliver(message)
        let replies = harness.bus.messages(to: 0xD2, from: start)
        #expect(replies.count == 1 && client.accept(replies[0]) != nil)
    }

    @Test func requestsWithATimestampOrAHigherViewAreDropped() {
        let harness = ReplicaHarness(seed: 10)
        let client = Self.registered(harness, id: 0xD1)
        let body = Bodies.ids([1])
        var header = client.header(operation: Operation.lookupAccounts.rawValue, body: body, request: 1, parent: client.parent, session: client.session)
        header.timestamp = 5
        body.withUnsafeBytes { header.seal(body: $0) }
        let start = harness.bus.sent.count
        harness.deliver(TestClient.message(header, body: body))
        var ahead = client
        ahead.view = 3
        var aheadCopy = ahead
        harness.deliver(aheadCopy.request(.lookupAccounts, body: body))
        #expect(harness.bus.messages(to: 0xD1, from: start).isEmpty)
        #expect(harness.replica.counters.droppedTimestamp == 1)
        #expect(harness.replica.counters.droppedView == 1)
    }
}

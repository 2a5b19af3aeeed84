import LedgerKit
import LedgerStateMachine
import Testing

// Seeded randomized tests: the real state machine (through `TestLedger`) and the independent
// `ReferenceModel` run the same requests in lockstep; every result (status and timestamp), every
// account, transfer, pending status and account event, the host timestamps and the pulse schedule
// are compared after every request, and the spec's invariants (§11) are checked on the real store.
// A seed stops at its first mismatch; every message names the seed and the request index.
//
// Rerun one seed: swift test --filter "RandomizedModelTests/modelComparison" and read the seed
// from the failure message (the seeds are fixed arguments below).

@Suite struct RandomizedModelTests {
    /// Odd seeds start with the wall clock near 2^63 (`overflows_timeout` is reachable there);
    /// even seeds jump there half-way.
    static let seeds: [UInt64] = [1, 2, 3, 4, 0x5EED, 0xC0FFEE, 20_260_701, 977]

    @Test(arguments: seeds)
    func modelComparison(seed: UInt64) {
        let run = ModelRun(seed: seed)
        run.runRandom(requests: 200)
        if !run.failed { run.jumpClock() }
        if !run.failed { run.runRandom(requests: 200) }
        if run.failed { print(run.summary) }
        if run.failed { return }
        let missingTransfers = ModelRun.expectedTransferStatuses.filter { run.transferStatusCounts[$0.rawValue] == nil }
        let missingAccounts = ModelRun.expectedAccountStatuses.filter { run.accountStatusCounts[$0.rawValue] == nil }
        #expect(
            missingTransfers.isEmpty,
            "seed \(seed): the workload never produced transfer statuses \(missingTransfers)")
        #expect(
            missingAccounts.isEmpty,
            "seed \(seed): the workload never produced account statuses \(missingAccounts)")
        #expect(run.pulses > 0, "seed \(seed): no pulse ran")
        #expect(run.expiries > 0, "seed \(seed): no pending transfer expired")
    }

    /// Spec §7.2: a pulse expires at most 8190 transfers; when it stops at the limit,
    /// `pulse_next_timestamp` is the last selected `expires_at`, so the next pulse follows at once.
    @Test func pulseExpiresAtMost8190() {
        let run = ModelRun(seed: 31)
        run.submitAccounts([[Account(id: 1, ledger: 1, code: 1), Account(id: 2, ledger: 1, code: 1)]])
        var id: UInt128 = 100
        for _ in 0..<2 {
            var batch: [Transfer] = []
            for _ in 0..<4100 {
                batch.append(
                    Transfer(id: id, debitAccountId: 1, creditAccountId: 2, amount: 1, timeout: 1, ledger: 1, code: 1, flags: .pending))
                id += 1
            }
            let results = run.submitTransfers([batch])
            #expect(results[0].allSatisfy { $0.status == .created })
        }
        let expiriesBefore = run.expiries
        run.advance(seconds: 2)  // The limit stops the pulse at 8190 of the 8200 due.
        #expect(run.expiries - expiriesBefore == 8190)
        #expect(run.ledger.machine.pulseNextTimestamp <= run.ledger.timestamp)
        run.pulseIfNeeded()  // The rest, right away.
        #expect(run.expiries - expiriesBefore == 8200)
        #expect(run.ledger.machine.pulseNextTimestamp == UInt64(Int64.max))
        #expect(run.ledger.lookupAccount(1)?.debitsPending == 0)
        #expect(!run.failed)
    }

    /// Spec §4.4 consequence 1 and §5.7: resubmitting successful events returns `exists` with the
    /// original timestamps and changes nothing; a resubmitted chain yields [exists, linked_event_failed…].
    @Test(arguments: [UInt64(11), 12, 13])
    func idempotency(seed: UInt64) {
        let run = ModelRun(seed: seed)
        run.runRandom(requests: 40)
        var resubmittedBatches = 0
        var resubmittedChains = 0
        for _ in 0..<12 where !run.failed {
            run.checkAccountBatchIdempotency()
            if run.failed { return }
            run.checkTransferBatchIdempotency()
            if run.failed { return }
            if run.checkValidBatchIdempotency() { resubmittedBatches += 1 }
            if run.failed { return }
            if run.checkChainIdempotency() { resubmittedChains += 1 }
            if run.failed { return }
            run.runRandom(requests: 3)
        }
        #expect(resubmittedBatches >= 6, "seed \(seed): only \(resubmittedBatches) valid batches were resubmitted")
        #expect(resubmittedChains >= 6, "seed \(seed): only \(resubmittedChains) linked chains were resubmitted")
    }

    /// Spec §4.4: a chain that fails at any position leaves the state exactly as before; a
    /// transient failure still burns its id; the other members' ids stay usable.
    @Test(arguments: [UInt64(21), 22, 23])
    func atomicity(seed: UInt64) {
        let run = ModelRun(seed: seed)
        run.runRandom(requests: 40)
        var chains = 0
        for round in 0..<16 where !run.failed {
            if run.checkTransferChainAtomicity(round: round) { chains += 1 }
            if run.failed { return }
            run.checkAccountChainAtomicity()
            if run.failed { return }
            run.runRandom(requests: 2)
        }
        #expect(chains >= 8, "seed \(seed): only \(chains) failing chains were built")
    }
}

/// The whole state of the real store that a rollback must restore.
struct StoreSnapshot: Equatable {
    var accounts: [Account] = []
    var transfers: [Transfer] = []
    var pendingStatuses: [PendingStatus] = []
    var accountEventCount = 0
    var expiryCount = 0

    init(_ store: MemoryStore) {
        for i in 0..<store.accountCount { accounts.append(store.account(at: i)) }
        for i in 0..<store.transferCount {
            transfers.append(store.transfer(at: i))
            pendingStatuses.append(store.pendingStatus(transferAt: i))
        }
        accountEventCount = store.accountEventCount
        expiryCount = store.expiryCount
    }
}

/// Drives `TestLedger` and `ReferenceModel` in lockstep and generates the random workload.
final class ModelRun {
    static let accountIdMax: UInt128 = 48
    static let max128 = UInt128.max

    let seed: UInt64
    var prng: PRNG
    let ledger = TestLedger()
    let model = ReferenceModel()
    var request = 0
    private(set) var failed = false

    var nextTransferId: UInt128 = 1
    var transferStatusCounts: [UInt32: Int] = [:]
    var accountStatusCounts: [UInt32: Int] = [:]
    var pulses = 0
    var expiries = 0
    /// Accounts created with `closed` set (invariant 11.7).
    var createdClosed: Set<UInt128> = []
    private var eventsChecked = 0

    init(seed: UInt64) {
        self.seed = seed
        prng = PRNG(seed: seed)
        if seed % 2 == 1 {
            // About 10^4 s below 2^63: timeouts above that overflow (spec §5.4 step 29).
            let realtime = UInt64(Int64.max) - 10_000 * ReferenceModel.nsPerSecond
            ledger.realtime = realtime
            model.host.realtime = realtime
        }
    }

    // MARK: Checking

    /// Records the first mismatch of this seed (later checks are skipped).
    @discardableResult
    func check(_ condition: Bool, _ message: @autoclosure () -> String) -> Bool {
        if condition || failed { return condition && !failed }
        failed = true
        Issue.record("seed \(seed) request \(request): \(message())")
        return false
    }

    // MARK: Requests in lockstep

    @discardableResult
    func submitAccounts(_ batches: [[Account]]) -> [[CreateAccountResult]] {
        request += 1
        let actual = ledger.createAccounts(batches: batches)
        let expected = model.createAccounts(batches: batches)
        for (b, batch) in batches.enumerated() {
            guard check(actual[b].count == batch.count, "batch \(b): \(actual[b].count) results for \(batch.count) accounts")
            else { return actual }
            for (i, event) in batch.enumerated() {
                let a = actual[b][i]
                let e = expected[b][i]
                accountStatusCounts[a.status.rawValue, default: 0] += 1
                guard
                    check(
                        a.status == e.status && a.timestamp == e.timestamp && a.reserved == 0,
                        "create_accounts batch \(b) event \(i): expected \(e.status) ts \(e.timestamp), "
                            + "got \(a.status) ts \(a.timestamp); event \(event)")
                else { return actual }
                if a.status == .created && event.flags.contains(.closed) { createdClosed.insert(event.id) }
            }
        }
        afterRequest()
        return actual
    }

    @discardableResult
    func submitTransfers(_ batches: [[Transfer]]) -> [[CreateTransferResult]] {
        request += 1
        let actual = ledger.createTransfers(batches: batches)
        let expected = model.createTransfers(batches: batches)
        for (b, batch) in batches.enumerated() {
            guard check(actual[b].count == batch.count, "batch \(b): \(actual[b].count) results for \(batch.count) transfers")
            else { return actual }
            for (i, event) in batch.enumerated() {
                let a = actual[b][i]
                let e = expected[b][i]
                transferStatusCounts[a.status.rawValue, default: 0] += 1
                guard
                    check(
                        a.status == e.status && a.timestamp == e.timestamp && a.reserved == 0,
                        "create_transfers batch \(b) event \(i): expected \(e.status) ts \(e.timestamp), "
                            + "got \(a.status) ts \(a.timestamp); event \(event)")
                else { return actual }
            }
        }
        afterRequest()
        return actual
    }

    func advance(seconds: UInt64) {
        let eventsBefore = model.state.events.count
        let timestampBefore = ledger.timestamp
        ledger.advance(seconds: seconds)
        let actual = ledger.timestamp != timestampBefore  // A pulse is the only operation here.
        let expected = model.advance(seconds: seconds)
        afterPulse(actual: actual, expected: expected, eventsBefore: eventsBefore)
    }

    func pulseIfNeeded() {
        let eventsBefore = model.state.events.count
        let actual = ledger.pulseIfNeeded()
        let expected = model.pulseIfNeeded()
        afterPulse(actual: actual, expected: expected, eventsBefore: eventsBefore)
    }

    private func afterPulse(actual: Bool, expected: Bool, eventsBefore: Int) {
        request += 1
        if expected { pulses += 1 }
        expiries += model.state.events.count - eventsBefore
        guard check(actual == expected, "pulse ran: expected \(expected), got \(actual)") else { return }
        afterRequest()
    }

    /// After every request: timestamps, pulse schedule, full state, lookups, invariants.
    private func afterRequest() {
        guard !failed else { return }
        guard
            check(
                ledger.timestamp == model.timestamp && ledger.machine.prepareTimestamp == model.host.prepareTimestamp,
                "operation timestamp: expected \(model.timestamp), got \(ledger.timestamp)")
        else { return }
        guard
            check(
                ledger.machine.pulseNextTimestamp == model.pulseNextTimestamp,
                "pulse_next_timestamp: expected \(model.pulseNextTimestamp), got \(ledger.machine.pulseNextTimestamp)")
        else { return }
        compareState()
        if failed { return }
        compareLookups()
        if failed { return }
        checkInvariants()
    }

    /// Every account, transfer, pending status and account event of the store against the model.
    func compareState() {
        let store = ledger.store
        let state = model.state
        guard check(store.accountCount == state.accounts.count, "account count: expected \(state.accounts.count), got \(store.accountCount)")
        else { return }
        for i in 0..<store.accountCount {
            let actual = store.account(at: i)
            guard let expected = state.account(actual.id) else {
                check(false, "unexpected account \(actual)")
                return
            }
            guard check(actual == expected, "account \(actual.id): expected \(expected), got \(actual)") else { return }
        }
        guard
            check(store.transferCount == state.transfers.count, "transfer count: expected \(state.transfers.count), got \(store.transferCount)")
        else { return }
        for i in 0..<store.transferCount {
            let actual = store.transfer(at: i)
            guard let index = state.transferIndexById[actual.id] else {
                check(false, "unexpected transfer \(actual)")
                return
            }
            let expected = state.transfers[index]
            guard check(actual == expected, "transfer \(actual.id): expected \(expected), got \(actual)") else { return }
            let status = store.pendingStatus(transferAt: i)
            guard
                check(
                    status == state.pendingStatuses[index],
                    "pending status of transfer \(actual.id): expected \(state.pendingStatuses[index]), got \(status)")
            else { return }
        }
        for id in model.failedTransferIds {
            guard check(store.transferFailed(id: id), "transfer id \(id) should be burned") else { return }
        }
        guard
            check(store.expiryCount == state.expiries.count, "expiry schedule size: expected \(state.expiries.count), got \(store.expiryCount)")
        else { return }
        guard
            check(
                store.accountEventCount == state.events.count,
                "account event count: expected \(state.events.count), got \(store.accountEventCount)")
        else { return }
        // Events are append-only across requests: check the new ones, and all of them now and then.
        let start = request % 32 == 0 ? 0 : min(eventsChecked, state.events.count)
        for expected in state.events[start...] {
            let actual = store.accountEvent(timestamp: expected.timestamp)
            guard check(actual == expected, "account event at \(expected.timestamp): expected \(expected), got \(String(describing: actual))")
            else { return }
        }
        eventsChecked = state.events.count
    }

    /// `lookup_accounts` / `lookup_transfers` through the state machine for a random set of ids
    /// (including 0, MAX128, missing and burned ids, duplicates).
    private func compareLookups() {
        var accountIds: [UInt128] = [0, Self.max128]
        for _ in 0..<prng.int(in: 0...12) { accountIds.append(UInt128(prng.below(UInt64(Self.accountIdMax) + 3))) }
        let actualAccounts = ledger.lookupAccounts(accountIds)
        let expectedAccounts = model.lookupAccounts(accountIds)
        guard check(actualAccounts == expectedAccounts, "lookup_accounts \(accountIds): expected \(expectedAccounts), got \(actualAccounts)")
        else { return }
        var transferIds: [UInt128] = [0, Self.max128]
        for _ in 0..<prng.int(in: 0...16) { transferIds.append(UInt128(prng.below(UInt64(nextTransferId) + 2))) }
        if let burned = model.failedTransferIds.sorted().randomElement(using: &prng) { transferIds.append(burned) }
        let actualTransfers = ledger.lookupTransfers(transferIds)
        let expectedTransfers = model.lookupTransfers(transferIds)
        check(actualTransfers == expectedTransfers, "lookup_transfers \(transferIds): expected \(expectedTransfers), got \(actualTransfers)")
        check(ledger.timestamp == model.timestamp, "lookup timestamp: expected \(model.timestamp), got \(ledger.timestamp)")
    }

    /// Spec §11 on the real store.
    private func checkInvariants() {
        let store = ledger.store
        var accounts: [UInt128: Account] = [:]
        var sums: [UInt32: (dp: UInt128Wide, dpo: UInt128Wide, cp: UInt128Wide, cpo: UInt128Wide)] = [:]
        var timestamps: Set<UInt64> = []
        for i in 0..<store.accountCount {
            let a = store.account(at: i)
            accounts[a.id] = a
            timestamps.insert(a.timestamp)
            var s = sums[a.ledger] ?? (UInt128Wide(0), UInt128Wide(0), UInt128Wide(0), UInt128Wide(0))
            s.dp = s.dp + UInt128Wide(a.debitsPending)
            s.dpo = s.dpo + UInt128Wide(a.debitsPosted)
            s.cp = s.cp + UInt128Wide(a.creditsPending)
            s.cpo = s.cpo + UInt128Wide(a.creditsPosted)
            sums[a.ledger] = s
            // 11.3
            guard check(!ReferenceModel.overflows(a.debitsPending, a.debitsPosted), "11.3: debits overflow on \(a)") else { return }
            guard check(!ReferenceModel.overflows(a.creditsPending, a.creditsPosted), "11.3: credits overflow on \(a)") else { return }
            // 11.2
            if a.flags.contains(.debitsMustNotExceedCredits) {
                guard check(a.debitsPending + a.debitsPosted <= a.creditsPosted, "11.2: D<C violated on \(a)") else { return }
            }
            if a.flags.contains(.creditsMustNotExceedDebits) {
                guard check(a.creditsPending + a.creditsPosted <= a.debitsPosted, "11.2: C<D violated on \(a)") else { return }
            }
        }
        // 11.1
        for (ledgerId, s) in sums {
            guard check(s.dp == s.cp, "11.1: ledger \(ledgerId) Σ debits_pending ≠ Σ credits_pending") else { return }
            guard check(s.dpo == s.cpo, "11.1: ledger \(ledgerId) Σ debits_posted ≠ Σ credits_posted") else { return }
        }
        // 11.4 and 11.7
        var pendingDebits: [UInt128: UInt128] = [:]
        var pendingCredits: [UInt128: UInt128] = [:]
        var closingDebit: Set<UInt128> = []
        var closingCredit: Set<UInt128> = []
        for i in 0..<store.transferCount {
            let t = store.transfer(at: i)
            timestamps.insert(t.timestamp)
            guard t.flags.contains(.pending), store.pendingStatus(transferAt: i) == .pending else { continue }
            pendingDebits[t.debitAccountId, default: 0] += t.amount
            pendingCredits[t.creditAccountId, default: 0] += t.amount
            if t.flags.contains(.closingDebit) { closingDebit.insert(t.debitAccountId) }
            if t.flags.contains(.closingCredit) { closingCredit.insert(t.creditAccountId) }
        }
        for a in accounts.values {
            guard check(a.debitsPending == pendingDebits[a.id, default: 0], "11.4: debits_pending of \(a.id) is not Σ pending") else { return }
            guard check(a.creditsPending == pendingCredits[a.id, default: 0], "11.4: credits_pending of \(a.id) is not Σ pending") else { return }
            let closedExpected = createdClosed.contains(a.id) || closingDebit.contains(a.id) || closingCredit.contains(a.id)
            guard check(a.flags.contains(.closed) == closedExpected, "11.7: closed bit of \(a.id) is \(a.flags.contains(.closed))")
            else { return }
        }
        // 11.5: timestamps are unique across accounts and transfers.
        check(timestamps.count == store.accountCount + store.transferCount, "11.5: duplicate object timestamps")
    }

    // MARK: The random workload

    /// Moves the wall clock to about 10^4 s below 2^63 (a forward jump: every scheduled expiry
    /// falls due at once, and long timeouts now overflow, spec §5.4 step 29).
    func jumpClock() {
        let realtime = UInt64(Int64.max) - 10_000 * ReferenceModel.nsPerSecond
        guard ledger.realtime < realtime else { return }
        ledger.realtime = realtime
        model.host.realtime = realtime
        pulseIfNeeded()
    }

    var summary: String {
        let created = transferStatusCounts[CreateTransferStatus.created.rawValue, default: 0]
        let transfers = transferStatusCounts.values.reduce(0, +)
        let accounts = accountStatusCounts.values.reduce(0, +)
        return "seed \(seed): \(request) requests, \(accounts) account events, \(transfers) transfer events "
            + "(\(created) created), \(pulses) pulses, \(expiries) expiries, "
            + "\(transferStatusCounts.count) transfer / \(accountStatusCounts.count) account statuses seen"
    }

    var histogram: String {
        transferStatusCounts.sorted { $0.value > $1.value }
            .map { "\(CreateTransferStatus(rawValue: $0.key)): \($0.value)" }.joined(separator: ", ")
    }

    func runRandom(requests count: Int) {
        for _ in 0..<count where !failed {
            randomRequest()
            if failed { return }
            let roll = prng.below(100)
            if roll < 35 {
                advance(seconds: prng.below(4))
            } else if roll < 43 {
                pulseIfNeeded()
            }
        }
    }

    private func randomRequest() {
        if model.state.accounts.count >= 6 && prng.chance(percent: 4) {
            importScenario()
            return
        }
        if prng.chance(percent: 4) {
            overflowScenario()
            return
        }
        if prng.chance(percent: 3) {
            expiryEdgeScenario()
            return
        }
        let batchCount = prng.chance(percent: 25) ? prng.int(in: 2...4) : 1
        if model.state.accounts.count < 6 || prng.chance(percent: 20) {
            var batches: [[Account]] = []
            for _ in 0..<batchCount { batches.append(randomAccounts(count: randomBatchSize())) }
            assignImportedTimestamps(&batches)
            submitAccounts(batches)
        } else {
            var batches: [[Transfer]] = []
            for _ in 0..<batchCount { batches.append(randomTransfers(count: randomBatchSize())) }
            assignImportedTimestamps(&batches)
            submitTransfers(batches)
        }
    }

    private func randomBatchSize() -> Int {
        switch prng.below(100) {
        case 0..<8: return 0
        case 8..<15: return 1
        case 15..<75: return prng.int(in: 2...12)
        default: return prng.int(in: 13...40)
        }
    }

    private func randomAccounts(count: Int) -> [Account] {
        var events: [Account] = []
        let imported = prng.chance(percent: 20)
        for _ in 0..<count {
            var a = randomAccount()
            if imported && a.id != 0 && a.id != Self.max128 && prng.chance(percent: 40) {
                a.id = 5000 + UInt128(prng.below(1_000_000))  // A new id reaches the timestamp checks.
            }
            if imported != prng.chance(percent: 2) { a.flags.insert(.imported) } else { a.flags.remove(.imported) }
            events.append(a)
        }
        applyChains(&events, linked: \.flags, flag: .linked)
        return events
    }

    private func randomAccount() -> Account {
        let roll = prng.below(100)
        if !model.state.accounts.isEmpty && roll < 20 {
            var a = model.state.accounts.randomElement(using: &prng)!
            if !prng.chance(percent: 80) {
                a.debitsPending = 0
                a.debitsPosted = 0
                a.creditsPending = 0
                a.creditsPosted = 0
            }
            a.timestamp = 0
            if prng.chance(percent: 50) { mutate(&a) }
            return a
        }
        if roll < 24 { return Account(id: prng.chance(percent: 50) ? 0 : Self.max128, ledger: 1, code: 1) }
        let fresh = roll < 40
        // Fresh ids (rarely taken) for events with one invalid field; otherwise a small id space.
        let id = fresh ? 5000 + UInt128(prng.below(1_000_000)) : UInt128(prng.int(in: 1...Int(Self.accountIdMax)))
        var flags: AccountFlags = []
        if prng.chance(percent: 10) { flags.insert(.debitsMustNotExceedCredits) }
        if prng.chance(percent: 10) { flags.insert(.creditsMustNotExceedDebits) }
        if prng.chance(percent: 20) { flags.insert(.history) }
        if prng.chance(percent: 4) { flags.insert(.closed) }
        var a = Account(
            id: id, userData128: UInt128(prng.below(3)), userData64: prng.below(3),
            userData32: UInt32(prng.below(3)), ledger: UInt32(id % 3) + 1, code: UInt16(prng.int(in: 1...3)),
            flags: flags)
        if prng.chance(percent: 4) { a.ledger = UInt32(prng.int(in: 1...3)) }
        if fresh || prng.chance(percent: 5) {
            switch prng.below(10) {
            case 8: a.flags.formUnion([.debitsMustNotExceedCredits, .creditsMustNotExceedDebits])
            case 0: a.ledger = 0
            case 1: a.code = 0
            case 2: a.reserved = UInt32(prng.int(in: 1...100))
            case 3: a.flags.insert(AccountFlags(rawValue: 1 << UInt16(prng.int(in: 6...15))))
            case 4: a.debitsPending = 1
            case 5: a.debitsPosted = 1
            case 6: a.creditsPending = 1
            case 7: a.creditsPosted = 1
            default: break
            }
        }
        return a
    }

    private func mutate(_ a: inout Account) {
        switch prng.below(9) {
        case 0: a.flags.formSymmetricDifference(AccountFlags(rawValue: 1 << UInt16(prng.int(in: 0...6))))
        case 1: a.userData128 &+= 1
        case 2: a.userData64 &+= 1
        case 3: a.userData32 &+= 1
        case 4: a.ledger &+= 1
        case 5: a.code &+= 1
        case 6: a.reserved = 1
        case 7: a.timestamp = 1
        default: a.creditsPosted = 5
        }
    }

    /// Marks random runs of events as linked chains; sometimes leaves the batch's chain open.
    private func applyChains<Event, Flags: OptionSet>(
        _ events: inout [Event], linked path: WritableKeyPath<Event, Flags>, flag: Flags.Element
    ) where Flags.Element == Flags {
        var i = 0
        while i < events.count {
            if prng.chance(percent: 15) {
                let length = min(prng.int(in: 2...4), events.count - i)
                for j in i..<(i + length - 1) { events[j][keyPath: path].insert(flag) }
                events[i + length - 1][keyPath: path].remove(flag)
                i += length
            } else {
                if prng.chance(percent: 90) { events[i][keyPath: path].remove(flag) }
                i += 1
            }
        }
        if !events.isEmpty && prng.chance(percent: 8) { events[events.count - 1][keyPath: path].insert(flag) }
    }

    private func randomTransfers(count: Int) -> [Transfer] {
        var events: [Transfer] = []
        let imported = prng.chance(percent: 10)
        let newest = model.state.accounts.max { $0.timestamp < $1.timestamp }
        for _ in 0..<count {
            var t = randomTransfer(batch: events)
            if imported, let newest, t.pendingId == 0, prng.chance(percent: 30) {
                // Involve the newest account, so that the timestamp can fall before its creation.
                let other = model.state.accounts.filter { $0.ledger == newest.ledger && $0.id != newest.id }
                    .randomElement(using: &prng)?.id ?? 1
                let debit = prng.chance(percent: 50)
                t.debitAccountId = debit ? newest.id : other
                t.creditAccountId = debit ? other : newest.id
                t.ledger = newest.ledger
            }
            if imported != prng.chance(percent: 2) { t.flags.insert(.imported) } else { t.flags.remove(.imported) }
            events.append(t)
        }
        applyChains(&events, linked: \.flags, flag: .linked)
        return events
    }

    private func randomTransfer(batch: [Transfer]) -> Transfer {
        let roll = prng.below(100)
        if roll < 10 { return resubmittedTransfer(batch: batch) }
        var t: Transfer
        if roll < 50 {
            t = singlePhaseTransfer(pending: false)
        } else if roll < 73 {
            t = singlePhaseTransfer(pending: true)
        } else if roll < 97 {
            t = postOrVoid(batch: batch)
        } else {
            t = garbageTransfer()
        }
        t.id = transferId()
        if prng.chance(percent: 1) { t.flags.insert(TransferFlags(rawValue: 1 << UInt16(prng.int(in: 9...15)))) }
        return t
    }

    private func transferId() -> UInt128 {
        switch prng.below(100) {
        case 0: return 0
        case 1: return Self.max128
        case 2..<5:
            if let burned = model.failedTransferIds.sorted().randomElement(using: &prng) { return burned }
            return UInt128(prng.below(UInt64(nextTransferId))) + 1
        case 5..<8: return UInt128(prng.below(UInt64(nextTransferId))) + 1
        default:
            nextTransferId += 1
            return nextTransferId - 1
        }
    }

    private func randomAccountId() -> UInt128 {
        switch prng.below(100) {
        case 0: return 0
        case 1: return Self.max128
        case 2..<6: return UInt128(prng.int(in: 1...Int(Self.accountIdMax) + 4))
        default: return model.state.accounts.randomElement(using: &prng)?.id ?? 1
        }
    }

    /// Amounts: mostly small; huge ones mostly on ledger 3 so that ledgers 1 and 2 keep moving.
    private func randomAmount(ledger: UInt32) -> UInt128 {
        let hugePercent: UInt64 = ledger == 3 ? 20 : 1
        let roll = prng.below(100)
        if roll < hugePercent {
            switch prng.below(6) {
            case 0: return Self.max128
            case 1: return Self.max128 - UInt128(prng.below(1000))
            case 2: return Self.max128 / 2 + UInt128(prng.below(1000))
            case 3: return Self.max128 / 3 + UInt128(prng.below(1000))
            case 4: return Self.max128 / 4 - UInt128(prng.below(1000))
            default: return prng.uint128() >> prng.below(128)
            }
        }
        if roll < hugePercent + 8 { return 0 }
        return UInt128(prng.below(60)) + 1
    }

    /// An amount at (or one off) an overflow or limit boundary of the transfer's accounts: the
    /// exact edges of spec §5.4 steps 24–31. MAX128 edges only on ledger 3.
    private func boundaryAmount(_ t: inout Transfer, overflowOnly: Bool = false) {
        guard let dr = model.state.account(t.debitAccountId), let cr = model.state.account(t.creditAccountId) else { return }
        let sat = ReferenceModel.satSub
        let sum = ReferenceModel.sum
        var edges = overflowOnly ? [] : [
            sat(dr.creditsPosted, sum(dr.debitsPending, dr.debitsPosted)),  // exceeds_credits
            sat(cr.debitsPosted, sum(cr.creditsPending, cr.creditsPosted)),  // exceeds_debits
        ]
        if dr.ledger == 3 {
            edges += [
                Self.max128 - dr.debitsPending, Self.max128 - cr.creditsPending,
                Self.max128 - dr.debitsPosted, Self.max128 - cr.creditsPosted,
                Self.max128 - sum(dr.debitsPending, dr.debitsPosted),
                Self.max128 - sum(cr.creditsPending, cr.creditsPosted),
            ]
        }
        let edge = edges.randomElement(using: &prng)!
        switch prng.below(overflowOnly ? 4 : 3) {
        case 0: t.amount = edge == 0 ? 0 : edge - 1
        case 1: t.amount = edge
        default: t.amount = edge == Self.max128 ? edge : edge + 1
        }
    }

    /// New ledger-3 accounts: `a` with large debits (pending and posted), `b` with large credits,
    /// `c` empty; then a batch of transfers among them at the overflow edges (spec §5.4
    /// steps 24–28): a→c exercises the debit side, c→b the credit side.
    private func overflowScenario() {
        let a = Account(id: 5000 + UInt128(prng.below(1_000_000)), ledger: 3, code: 1)
        var b = a
        b.id += 1
        var c = b
        c.id += 1
        submitAccounts([[a, b, c]])
        let ids = [a.id, b.id, c.id]
        guard !failed, ids.allSatisfy({ model.state.account($0)?.debitsPosted == 0 }) else { return }
        let quarter = Self.max128 / 4
        func large() -> UInt128 { quarter + UInt128(prng.below(1 << 60)) * (1 << 64) + UInt128(prng.below(1000)) }
        let setup = [
            Transfer(
                id: nextTransferId, debitAccountId: a.id, creditAccountId: b.id, amount: large(),
                ledger: 3, code: 1, flags: .pending),
            Transfer(id: nextTransferId + 1, debitAccountId: a.id, creditAccountId: b.id, amount: large(), ledger: 3, code: 1),
        ]
        nextTransferId += 2
        submitTransfers([setup])
        guard !failed else { return }
        let pairs = [(a.id, c.id), (c.id, b.id), (a.id, b.id), (b.id, a.id)]
        var batch: [Transfer] = []
        for _ in 0..<prng.int(in: 2...8) {
            let (dr, cr) = pairs.randomElement(using: &prng)!
            var t = Transfer(
                id: nextTransferId, debitAccountId: dr, creditAccountId: cr, ledger: 3, code: 1,
                flags: prng.chance(percent: 50) ? .pending : [])
            nextTransferId += 1
            boundaryAmount(&t, overflowOnly: true)
            batch.append(t)
        }
        submitTransfers([batch])
    }

    /// A pending transfer with a timeout, then the wall clock set so that a post/void's slot
    /// lands exactly on (or one before) its expiry: equality counts as expired (spec §5.6
    /// step 27, §7.3). Sometimes a pulse runs first, at the edge too.
    private func expiryEdgeScenario() {
        guard let accounts = usableAccountGroups().randomElement(using: &prng) else { return }
        let pair = Array(accounts.shuffled(using: &prng).prefix(2))
        let timeout = UInt32(prng.int(in: 1...2))
        let pending = Transfer(
            id: nextTransferId, debitAccountId: pair[0].id, creditAccountId: pair[1].id,
            amount: UInt128(prng.int(in: 1...9)), timeout: timeout, ledger: pair[0].ledger, code: 1, flags: .pending)
        nextTransferId += 1
        let results = submitTransfers([[pending]])
        guard !failed, results[0][0].status == .created else { return }
        let expiresAt = results[0][0].timestamp + UInt64(timeout) * ReferenceModel.nsPerSecond
        // The next single-event batch gets slot base + 1 = realtime + 1.
        let realtime = expiresAt - 1 - prng.below(2)
        guard realtime > model.host.realtime else { return }
        ledger.realtime = realtime
        model.host.realtime = realtime
        if prng.chance(percent: 30) { pulseIfNeeded() }
        guard !failed else { return }
        let isPost = prng.chance(percent: 50)
        let resolve = Transfer(
            id: nextTransferId, amount: isPost ? Self.max128 : 0, pendingId: pending.id,
            flags: isPost ? .postPendingTransfer : .voidPendingTransfer)
        nextTransferId += 1
        submitTransfers([[resolve]])
    }

    /// Open accounts without limit flags and with modest balances, grouped by ledger (groups of
    /// at least two): transfers among them of small amounts succeed.
    private func usableAccountGroups() -> [[Account]] {
        let usable = model.state.accounts.filter {
            $0.flags.intersection([.closed, .debitsMustNotExceedCredits, .creditsMustNotExceedDebits]).isEmpty
                && $0.debitsPending < (1 << 100) && $0.debitsPosted < (1 << 100)
                && $0.creditsPending < (1 << 100) && $0.creditsPosted < (1 << 100)
        }
        return Dictionary(grouping: usable, by: \.ledger).sorted { $0.key < $1.key }.map(\.value)
            .filter { $0.count >= 2 }
    }

    /// New accounts, then (without a pulse in between) an imported transfer batch whose
    /// timestamps fall before, between and after their creation: `…_must_postdate_*_account`.
    private func importScenario() {
        let ledgerId = UInt32(prng.int(in: 1...3))
        let old = model.state.accounts.filter {
            $0.ledger == ledgerId && $0.flags.intersection([.closed, .debitsMustNotExceedCredits]).isEmpty
        }
        guard let oldAccount = old.randomElement(using: &prng) else { return }
        var fresh: [Account] = []
        for _ in 0..<prng.int(in: 1...3) {
            fresh.append(Account(id: 5000 + UInt128(prng.below(1_000_000)), ledger: ledgerId, code: 1))
        }
        submitAccounts([fresh])
        guard !failed else { return }
        let new = fresh.compactMap { model.state.account($0.id) }.filter { $0.timestamp > oldAccount.timestamp }
        guard !new.isEmpty else { return }
        let count = prng.int(in: 1...5)
        let batchTimestamp = model.predictBatchTimestamps([count])[0]
        let state = model.state
        let low = max(state.transferTimestampMax, state.eventTimestampMax)
        var cursor = max(low, state.accountTimestampMax)
        var batch: [Transfer] = []
        for i in 0..<count {
            let slot = batchTimestamp - UInt64(count) + UInt64(i) + 1
            let newAccount = new.randomElement(using: &prng)!
            nextTransferId += 1
            var t = Transfer(
                id: nextTransferId - 1, debitAccountId: oldAccount.id, creditAccountId: newAccount.id,
                amount: UInt128(prng.int(in: 0...5)), ledger: ledgerId, code: 1, flags: .imported)
            if prng.chance(percent: 50) { swap(&t.debitAccountId, &t.creditAccountId) }
            switch prng.below(3) {
            case 0:  // Before the new account's creation (or at it: an account's timestamp).
                t.timestamp = low + 1 + prng.below(newAccount.timestamp - low)
            case 1:  // Between the old account and the new one.
                let from = max(low, oldAccount.timestamp)
                t.timestamp = newAccount.timestamp > from ? from + 1 + prng.below(newAccount.timestamp - from) : from
            default:
                cursor = min(cursor + 1 + prng.below(2), slot)
                t.timestamp = cursor
            }
            batch.append(t)
        }
        submitTransfers([batch])
    }

    private func singlePhaseTransfer(pending: Bool) -> Transfer {
        let dr = randomAccountId()
        var cr = randomAccountId()
        let drAccount = model.state.account(dr)
        if prng.chance(percent: 93), let d = drAccount {
            let candidates = model.state.accounts.filter { $0.ledger == d.ledger && $0.id != dr }
            if let c = candidates.randomElement(using: &prng) { cr = c.id }
        }
        let ledgerId = prng.chance(percent: 97) ? (drAccount?.ledger ?? 1) : UInt32(prng.int(in: 0...3))
        var t = Transfer(
            debitAccountId: dr, creditAccountId: cr, amount: randomAmount(ledger: ledgerId),
            userData128: UInt128(prng.below(3)), userData64: prng.below(3), userData32: UInt32(prng.below(3)),
            ledger: ledgerId, code: prng.chance(percent: 98) ? UInt16(prng.int(in: 1...3)) : 0)
        if prng.chance(percent: 14) { t.flags.insert(.balancingDebit) }
        if prng.chance(percent: 14) { t.flags.insert(.balancingCredit) }
        switch prng.below(100) {
        case 0: t.creditAccountId = 0
        case 1: t.creditAccountId = Self.max128
        case 2..<4: t.creditAccountId = 900 + UInt128(prng.below(50))  // Never an account.
        case 4: t.creditAccountId = t.debitAccountId
        default: break
        }
        if prng.chance(percent: 1) { t.pendingId = UInt128(prng.int(in: 1...50)) }
        if prng.chance(percent: drAccount?.ledger == 3 ? 30 : 10) { boundaryAmount(&t) }
        if pending {
            t.flags.insert(.pending)
            if prng.chance(percent: 5) { t.flags.insert(.closingDebit) }
            if prng.chance(percent: 5) { t.flags.insert(.closingCredit) }
            switch prng.below(100) {
            case 0..<50: t.timeout = 0
            case 50..<88: t.timeout = UInt32(prng.int(in: 1...3))
            case 88..<94: t.timeout = UInt32(prng.int(in: 4...10))
            default: t.timeout = UInt32(prng.int(in: 5_000...Int(UInt32.max)))
            }
        } else {
            if prng.chance(percent: 2) { t.timeout = UInt32(prng.int(in: 1...5)) }
            if prng.chance(percent: 1) { t.flags.insert(prng.chance(percent: 50) ? .closingDebit : .closingCredit) }
        }
        return t
    }

    /// A pending transfer to post or void: mostly still pending, sometimes resolved, sometimes one
    /// created earlier in the same batch, sometimes not a pending transfer at all.
    private func pendingTarget(batch: [Transfer]) -> (id: UInt128, pending: Transfer?) {
        let state = model.state
        let roll = prng.below(100)
        if roll < 70 {
            let open = state.transfers.indices.filter { state.pendingStatuses[$0] == .pending }
            if let i = open.randomElement(using: &prng) { return (state.transfers[i].id, state.transfers[i]) }
        }
        if roll < 80 {
            if let p = state.transfers.filter({ $0.flags.contains(.pending) }).randomElement(using: &prng) {
                return (p.id, p)
            }
        }
        if roll < 92 {
            if let p = batch.filter({ $0.flags.contains(.pending) }).randomElement(using: &prng) { return (p.id, p) }
        }
        switch prng.below(6) {
        case 0: return (0, nil)
        case 1: return (Self.max128, nil)
        case 2: return (model.failedTransferIds.sorted().randomElement(using: &prng) ?? 7, nil)
        case 3: return (nextTransferId, nil)  // The post/void's own id when fresh.
        default:
            let t = state.transfers.randomElement(using: &prng)
            return (t?.id ?? 3, t)
        }
    }

    private func postOrVoid(batch: [Transfer]) -> Transfer {
        let (pendingId, p) = pendingTarget(batch: batch)
        let isPost = prng.chance(percent: 50)
        var t = Transfer(pendingId: pendingId, flags: isPost ? .postPendingTransfer : .voidPendingTransfer)
        let pAmount = p?.amount ?? UInt128(prng.below(50))
        if isPost {
            switch prng.below(100) {
            case 0..<35: t.amount = Self.max128
            case 35..<55: t.amount = pAmount
            case 55..<70: t.amount = pAmount == 0 ? 0 : UInt128(prng.below(UInt64(truncatingIfNeeded: min(pAmount, 1 << 60))))
            case 70..<80: t.amount = 0
            case 80..<90: t.amount = pAmount &+ 1
            default: t.amount = randomAmount(ledger: p?.ledger ?? 1)
            }
        } else {
            switch prng.below(100) {
            case 0..<50: t.amount = 0
            case 50..<80: t.amount = pAmount
            default: t.amount = randomAmount(ledger: p?.ledger ?? 1)
            }
        }
        let roll = prng.below(100)
        if roll < 80 {
        } else if roll < 95 {
            t.debitAccountId = p?.debitAccountId ?? 0
            t.creditAccountId = p?.creditAccountId ?? 0
        } else {
            t.debitAccountId = prng.chance(percent: 50) ? randomAccountId() : 0
            t.creditAccountId = prng.chance(percent: 50) ? randomAccountId() : 0
        }
        let fields = prng.below(100)
        if fields >= 80 && fields < 95 {
            t.ledger = p?.ledger ?? 1
            t.code = p?.code ?? 1
        } else if fields >= 95 {
            t.ledger = prng.chance(percent: 50) ? UInt32(prng.int(in: 1...3)) : 0
            t.code = prng.chance(percent: 50) ? UInt16(prng.int(in: 1...3)) : 0
        }
        if prng.chance(percent: 30) { t.userData128 = UInt128(prng.below(3)) }
        if prng.chance(percent: 30) { t.userData64 = prng.below(3) }
        if prng.chance(percent: 30) { t.userData32 = UInt32(prng.below(3)) }
        if prng.chance(percent: 3) { t.timeout = UInt32(prng.int(in: 1...3)) }
        if prng.chance(percent: 5) {
            let conflicting: [TransferFlags] = [
                .pending, .balancingDebit, .balancingCredit, .closingDebit, .closingCredit,
                [.postPendingTransfer, .voidPendingTransfer],
            ]
            t.flags.formUnion(conflicting.randomElement(using: &prng)!)
        }
        return t
    }

    private func garbageTransfer() -> Transfer {
        Transfer(
            debitAccountId: randomAccountId(), creditAccountId: randomAccountId(),
            amount: randomAmount(ledger: 1), pendingId: UInt128(prng.below(4)),
            timeout: UInt32(prng.below(3)), ledger: UInt32(prng.below(4)), code: UInt16(prng.below(3)),
            flags: TransferFlags(rawValue: UInt16(prng.below(1 << 9)) & ~TransferFlags.imported.rawValue))
    }

    /// An existing transfer (stored, or earlier in this batch) sent again, sometimes changed.
    private func resubmittedTransfer(batch: [Transfer]) -> Transfer {
        var t: Transfer
        if !batch.isEmpty && prng.chance(percent: 25) {
            t = batch.randomElement(using: &prng)!
        } else if let stored = model.state.transfers.randomElement(using: &prng) {
            t = stored
            t.timestamp = 0
            if t.flags.contains(.postPendingTransfer) || t.flags.contains(.voidPendingTransfer) {
                // As a client would send it: optional fields zero or the stored values.
                if prng.chance(percent: 50) {
                    t.debitAccountId = 0
                    t.creditAccountId = 0
                    t.ledger = 0
                    t.code = 0
                }
                if prng.chance(percent: 30) { t.amount = t.flags.contains(.postPendingTransfer) ? Self.max128 : 0 }
            }
        } else {
            return singlePhaseTransfer(pending: false)
        }
        if prng.chance(percent: 45) {
            switch prng.below(12) {
            case 0: t.flags.formSymmetricDifference(TransferFlags(rawValue: 1 << UInt16(prng.int(in: 0...8))))
            case 1: t.pendingId &+= 1
            case 2: t.timeout &+= 1
            case 3: t.debitAccountId = randomAccountId()
            case 4: t.creditAccountId = randomAccountId()
            case 5: t.amount = prng.chance(percent: 50) ? t.amount &+ 1 : t.amount &- 1
            case 6: t.userData128 &+= 1
            case 7: t.userData64 &+= 1
            case 8: t.userData32 &+= 1
            case 9: t.ledger &+= 1
            case 10: t.code &+= 1
            default: t.amount = Self.max128
            }
        }
        return t
    }

    /// Imported events get user timestamps: mostly just above everything that exists (so that they
    /// can succeed), sometimes out of range, in the future, regressing or colliding.
    private func assignImportedTimestamps<Event: ImportableEvent>(_ batches: inout [[Event]]) {
        let batchTimestamps = model.predictBatchTimestamps(batches.map(\.count))
        let state = model.state
        var cursor = max(state.accountTimestampMax, state.transferTimestampMax, state.eventTimestampMax)
        for b in batches.indices {
            let n = batches[b].count
            let batchTimestamp = batchTimestamps[b]
            for i in 0..<n {
                let slot = batchTimestamp - UInt64(n) + UInt64(i) + 1
                guard batches[b][i].isImported else {
                    if prng.chance(percent: 1) { batches[b][i].timestamp = prng.below(1000) + 1 }
                    continue
                }
                let roll = prng.below(100)
                var timestamp: UInt64
                switch roll {
                case 0..<3: timestamp = 0
                case 3..<6: timestamp = prng.chance(percent: 50) ? UInt64.max : ReferenceModel.timestampMax + 1
                case 6..<10: timestamp = batchTimestamp + prng.below(3)
                case 10..<15: timestamp = slot < batchTimestamp - 1 ? slot + 1 + prng.below(batchTimestamp - slot - 1) : slot
                case 15..<20: timestamp = state.transfers.randomElement(using: &prng)?.timestamp ?? slot
                case 20..<25: timestamp = state.accounts.randomElement(using: &prng)?.timestamp ?? slot
                case 25..<30:
                    let low = state.accountTimestampMax
                    timestamp = cursor > low ? low + 1 + prng.below(cursor - low) : cursor
                case 30..<38:
                    // Just before (or at) one of its accounts' creation: must_postdate_*.
                    let accounts = batches[b][i].accountIds.compactMap { state.account($0) }
                    if let account = accounts.randomElement(using: &prng), account.timestamp > 1 {
                        timestamp = account.timestamp - prng.below(2)
                    } else {
                        timestamp = cursor
                    }
                case 38..<44:
                    // At or before an expiry newer than every transfer (Q2: must_not_regress).
                    let low = state.transferTimestampMax
                    let high = state.eventTimestampMax
                    timestamp = high > low ? low + 1 + prng.below(high - low) : cursor
                default:
                    cursor = min(cursor + 1 + prng.below(3), slot)
                    timestamp = cursor
                }
                batches[b][i].timestamp = timestamp
            }
        }
    }

    // MARK: Idempotency

    private func snapshot() -> StoreSnapshot { StoreSnapshot(ledger.store) }

    func checkAccountBatchIdempotency() {
        var events = randomAccounts(count: prng.int(in: 1...20))
        for i in events.indices { events[i].flags.remove(.linked) }
        var batches = [events]
        assignImportedTimestamps(&batches)
        events = batches[0]
        let results = submitAccounts([events])[0]
        guard !failed else { return }
        let created = events.indices.filter { results[$0].status == .created }
        guard !created.isEmpty else { return }
        let before = snapshot()
        let again = submitAccounts([created.map { events[$0] }])[0]
        guard !failed else { return }
        for (k, i) in created.enumerated() {
            guard
                check(
                    again[k].status == .exists && again[k].timestamp == results[i].timestamp,
                    "resubmitted account \(events[i].id): expected exists ts \(results[i].timestamp), got \(again[k])")
            else { return }
        }
        check(snapshot() == before, "resubmitting created accounts changed the state")
    }

    func checkTransferBatchIdempotency() {
        var events = randomTransfers(count: prng.int(in: 1...30))
        for i in events.indices { events[i].flags.remove(.linked) }
        var batches = [events]
        assignImportedTimestamps(&batches)
        events = batches[0]
        let results = submitTransfers([events])[0]
        guard !failed else { return }
        let created = events.indices.filter { results[$0].status == .created }
        guard !created.isEmpty else { return }
        let before = snapshot()
        let again = submitTransfers([created.map { events[$0] }])[0]
        guard !failed else { return }
        for (k, i) in created.enumerated() {
            guard
                check(
                    again[k].status == .exists && again[k].timestamp == results[i].timestamp,
                    "resubmitted transfer \(events[i].id): expected exists ts \(results[i].timestamp), got \(again[k])")
            else { return }
        }
        check(snapshot() == before, "resubmitting created transfers changed the state")
    }

    /// A batch of valid, unlinked transfers (all `created`), sent again as a whole: every event
    /// returns `exists` with its original timestamp and nothing changes. Returns whether it ran.
    func checkValidBatchIdempotency() -> Bool {
        guard var batch = validChain(length: prng.int(in: 1...25)) else { return false }
        for i in batch.indices { batch[i].flags.remove(.linked) }
        let results = submitTransfers([batch])[0]
        guard !failed else { return false }
        guard check(results.allSatisfy { $0.status == .created }, "a batch of valid transfers: \(results.map(\.status))")
        else { return false }
        let before = snapshot()
        let again = submitTransfers([batch])[0]
        guard !failed else { return false }
        for i in batch.indices {
            guard
                check(
                    again[i].status == .exists && again[i].timestamp == results[i].timestamp,
                    "resubmitted valid batch event \(i): expected exists ts \(results[i].timestamp), got \(again[i])")
            else { return false }
        }
        check(snapshot() == before, "resubmitting a valid batch changed the state")
        return true
    }

    /// Returns whether a successful chain was built and resubmitted.
    func checkChainIdempotency() -> Bool {
        guard let chain = validChain(length: prng.int(in: 2...6)) else { return false }
        let results = submitTransfers([chain])[0]
        guard !failed, results.allSatisfy({ $0.status == .created }) else { return false }
        let before = snapshot()
        let again = submitTransfers([chain])[0]
        guard !failed else { return false }
        guard
            check(
                again[0].status == .exists && again[0].timestamp == results[0].timestamp,
                "resubmitted chain: first result \(again[0]), expected exists ts \(results[0].timestamp)")
        else { return false }
        for i in 1..<chain.count {
            guard check(again[i].status == .linkedEventFailed, "resubmitted chain: result \(i) is \(again[i].status)")
            else { return false }
        }
        check(snapshot() == before, "resubmitting a chain changed the state")
        return true
    }

    /// A linked chain of transfers that should all succeed: small amounts between open accounts
    /// of one ledger without limits, some pending (with timeouts) and resolved inside the chain.
    private func validChain(length: Int) -> [Transfer]? {
        guard let accounts = usableAccountGroups().randomElement(using: &prng) else { return nil }
        var chain: [Transfer] = []
        for _ in 0..<length {
            let pair = Array(accounts.shuffled(using: &prng).prefix(2))
            nextTransferId += 1
            var t = Transfer(
                id: nextTransferId - 1, debitAccountId: pair[0].id, creditAccountId: pair[1].id,
                amount: UInt128(prng.int(in: 0...20)), ledger: pair[0].ledger, code: 1, flags: .linked)
            let pending = chain.filter { $0.flags.contains(.pending) && !chain.contains(where: { $0.pendingId == t.id }) }
            if let p = pending.randomElement(using: &prng), prng.chance(percent: 40),
                !chain.contains(where: { $0.pendingId == p.id })
            {
                let isPost = prng.chance(percent: 50)
                let amounts: [UInt128] = isPost ? [Self.max128, 0, p.amount] : [0, p.amount]
                t = Transfer(
                    id: t.id, amount: amounts.randomElement(using: &prng)!, pendingId: p.id,
                    flags: [.linked, isPost ? .postPendingTransfer : .voidPendingTransfer])
            } else if prng.chance(percent: 40) {
                t.flags.insert(.pending)
                t.timeout = UInt32(prng.int(in: 0...3))
            }
            chain.append(t)
        }
        chain[chain.count - 1].flags.remove(.linked)
        return chain
    }

    // MARK: Atomicity

    /// Returns whether a chain with a failing member was built and checked.
    func checkTransferChainAtomicity(round: Int) -> Bool {
        guard let chain = validChain(length: prng.int(in: 1...6)) else { return false }
        // The failing member: transient (burns its id) or not; `exists` breaks a chain too.
        let position = prng.int(in: 0...chain.count)
        nextTransferId += 1
        var failing = Transfer(
            id: nextTransferId - 1, debitAccountId: chain[0].debitAccountId == 0 ? 1 : chain[0].debitAccountId,
            creditAccountId: 1 << 64, amount: 1, ledger: 1, code: 1)
        let kind = round % 5
        switch kind {
        case 0: break  // credit_account_not_found (transient)
        case 1:
            failing.flags = .postPendingTransfer
            failing.pendingId = 1 << 65  // pending_transfer_not_found (transient)
            failing.debitAccountId = 0
            failing.creditAccountId = 0
        case 2: failing.creditAccountId = failing.debitAccountId  // accounts_must_be_different
        case 3: failing.ledger = 0; failing.creditAccountId = 2  // ledger_must_not_be_zero
        default:
            guard let stored = model.state.transfers.randomElement(using: &prng) else { return false }
            failing = stored  // exists…
            failing.timestamp = 0
            failing.flags.remove(.imported)
        }
        var events = chain
        for i in events.indices { events[i].flags.insert(.linked) }
        failing.flags.insert(.linked)
        events.insert(failing, at: position)
        events[events.count - 1].flags.remove(.linked)
        let before = snapshot()
        let results = submitTransfers([events])[0]
        guard !failed else { return false }
        for (i, result) in results.enumerated() {
            if i == position {
                guard check(result.status != .created && result.status != .linkedEventFailed, "failing member got \(result.status)")
                else { return false }
            } else {
                guard check(result.status == .linkedEventFailed, "chain member \(i) got \(result.status)") else { return false }
            }
        }
        guard check(snapshot() == before, "a failed chain changed the state (failing member at \(position), \(results[position].status))")
        else { return false }
        let transient = ReferenceModel.isTransient(results[position].status)
        guard check(ledger.store.transferFailed(id: failing.id) == transient, "burned id \(failing.id): \(transient) expected")
        else { return false }
        if transient {
            var retry = chain[0]
            retry.id = failing.id
            retry.flags = []
            retry.pendingId = 0
            retry.timeout = 0
            let again = submitTransfers([[retry]])[0]
            guard !failed else { return false }
            guard check(again[0].status == .idAlreadyFailed, "reused burned id \(failing.id): got \(again[0].status)")
            else { return false }
        }
        // The other members' ids were not burned: the chain without the failing member succeeds.
        let rerun = submitTransfers([chain])[0]
        guard !failed else { return false }
        check(rerun.allSatisfy { $0.status == .created }, "the chain without its failing member: \(rerun.map(\.status))")
        return true
    }

    func checkAccountChainAtomicity() {
        let length = prng.int(in: 1...5)
        let existingIds = Set(model.state.accounts.map(\.id))
        var chain: [Account] = []
        var id: UInt128 = 1000 + UInt128(prng.below(1_000_000))
        for _ in 0..<length {
            while existingIds.contains(id) || chain.contains(where: { $0.id == id }) { id += 1 }
            chain.append(Account(id: id, ledger: UInt32(prng.int(in: 1...3)), code: 1, flags: .linked))
        }
        chain[chain.count - 1].flags.remove(.linked)
        var failing = Account(id: id + 1, ledger: 0, code: 1, flags: .linked)  // ledger_must_not_be_zero
        if prng.chance(percent: 50), let stored = model.state.accounts.randomElement(using: &prng) {
            failing = stored  // exists… (balances are not compared)
            failing.timestamp = 0
            failing.flags.remove(.imported)
        }
        let position = prng.int(in: 0...chain.count)
        var events = chain
        for i in events.indices { events[i].flags.insert(.linked) }
        failing.flags.insert(.linked)
        events.insert(failing, at: position)
        events[events.count - 1].flags.remove(.linked)
        let before = snapshot()
        let results = submitAccounts([events])[0]
        guard !failed else { return }
        for (i, result) in results.enumerated() where i != position {
            guard check(result.status == .linkedEventFailed, "account chain member \(i) got \(result.status)") else { return }
        }
        guard check(results[position].status != .created, "failing account got \(results[position].status)") else { return }
        guard check(snapshot() == before, "a failed account chain changed the state") else { return }
        let rerun = submitAccounts([chain])[0]
        guard !failed else { return }
        check(rerun.allSatisfy { $0.status == .created }, "the account chain without its failing member: \(rerun.map(\.status))")
    }

    // MARK: Coverage

    /// Statuses the random workload must produce for every seed (the test would be vacuous otherwise).
    static let expectedTransferStatuses: [CreateTransferStatus] = CreateTransferStatus.allCases.filter {
        ![.deprecatedOk, .deprecated18].contains($0)
    }
    static let expectedAccountStatuses: [CreateAccountStatus] = CreateAccountStatus.allCases.filter {
        $0 != .deprecatedOk
    }
}

/// Accounts and transfers alike: an imported flag and a timestamp.
protocol ImportableEvent {
    var isImported: Bool { get }
    var timestamp: UInt64 { get set }
    /// The accounts an imported transfer must postdate.
    var accountIds: [UInt128] { get }
}

extension Account: ImportableEvent {
    var isImported: Bool { flags.contains(.imported) }
    var accountIds: [UInt128] { [] }
}

extension Transfer: ImportableEvent {
    var isImported: Bool { flags.contains(.imported) }
    var accountIds: [UInt128] { [debitAccountId, creditAccountId] }
}

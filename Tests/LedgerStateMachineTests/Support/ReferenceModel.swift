import LedgerKit
import LedgerStateMachine

// An independent reference model of the ledger state machine, written from the behavioural
// specification alone (/work/shared/specs/state-machine.md §2, §4, §5, §7, §10, §11) and the
// project's documented decisions (Q1–Q3), not from the implementation's create/pulse code. It is
// meant to be obviously correct rather than fast: plain arrays and dictionaries, linear scans,
// and a copy of the whole state as the savepoint of a linked chain.
//
// Decisions the model follows (docs/decisions.md):
// * Q1: an imported event whose timestamp is greater than its own slot `ts_i` (but below the
//   batch timestamp) and passes every other check gets `imported_event_timestamp_must_not_advance`
//   (checked last, just before success).
// * Q2: an imported transfer (including post/void) must be newer than every transfer *and* every
//   account event (expiries included), else `imported_event_timestamp_must_not_regress` (at the
//   spec's must_not_regress position, 5.4 step 20.1 / 5.6 step 28.1).
// * Q3: `pulse_next_timestamp` is not rolled back with a failed chain.

/// The host of spec §4.1: the reference prepare/commit timestamp formula over a wall clock.
struct ModelHost {
    var prepareTimestamp: UInt64 = 0
    var commitTimestamp: UInt64 = 0
    /// The wall clock in nanoseconds (kept equal to `TestLedger.realtime`).
    var realtime: UInt64 = 1_000_000_000

    /// The base the next operation will get.
    var nextBase: UInt64 { max(max(prepareTimestamp, commitTimestamp) + 1, realtime) }

    /// Assigns and commits the next operation timestamp `T = base + delta`.
    mutating func operation(delta: UInt64) -> UInt64 {
        let timestamp = nextBase + delta
        prepareTimestamp = timestamp
        commitTimestamp = timestamp
        return timestamp
    }
}

/// Everything a linked chain rolls back (spec §2: items 1, 2, 4, 5, 6 and the max timestamps,
/// which the model derives from the arrays).
struct ModelState {
    /// Accounts in creation order.
    var accounts: [Account] = []
    var accountIndexById: [UInt128: Int] = [:]
    /// Transfers in creation order.
    var transfers: [Transfer] = []
    var transferIndexById: [UInt128: Int] = [:]
    /// Parallel to `transfers`: `.none` for transfers that are not pending.
    var pendingStatuses: [PendingStatus] = []
    /// Scheduled expiries: pending transfers with a timeout whose status is still `pending`.
    var expiries: [ModelExpiry] = []
    /// The account-event log (spec §5.10), in append order.
    var events: [AccountEvent] = []

    func account(_ id: UInt128) -> Account? {
        accountIndexById[id].map { accounts[$0] }
    }

    func transfer(_ id: UInt128) -> Transfer? {
        transferIndexById[id].map { transfers[$0] }
    }

    var accountTimestampMax: UInt64 { accounts.map(\.timestamp).max() ?? 0 }
    var transferTimestampMax: UInt64 { transfers.map(\.timestamp).max() ?? 0 }
    var eventTimestampMax: UInt64 { events.map(\.timestamp).max() ?? 0 }

    func accountExists(timestamp: UInt64) -> Bool { accounts.contains { $0.timestamp == timestamp } }
    func transferExists(timestamp: UInt64) -> Bool { transfers.contains { $0.timestamp == timestamp } }
}

struct ModelExpiry: Equatable {
    var expiresAt: UInt64
    var transferTimestamp: UInt64
    var transferId: UInt128
}

/// The reference model: host timestamps, state, failed ids and the pulse schedule.
final class ReferenceModel {
    static let max128 = UInt128.max
    static let timestampMax = UInt64(Int64.max)
    static let nsPerSecond: UInt64 = 1_000_000_000
    /// The pulse's timestamp delta and selection limit (spec §7).
    static let pulseDelta: UInt64 = 8190
    static let pulseExpiriesMax = 8190

    var host = ModelHost()
    var state = ModelState()
    /// Transfer ids burned by a transient failure (not rolled back with a chain).
    var failedTransferIds: Set<UInt128> = []
    /// When the next pulse may be due; 1 = unknown (spec §7.1). Not rolled back (Q3).
    var pulseNextTimestamp: UInt64 = 1

    /// The timestamp of the last operation.
    var timestamp: UInt64 { host.commitTimestamp }

    // MARK: Requests

    func createAccounts(batches: [[Account]]) -> [[CreateAccountResult]] {
        let batchTimestamps = createOperation(batches.map(\.count))
        return zip(batches, batchTimestamps).map { executeAccountBatch($0, batchTimestamp: $1) }
    }

    func createTransfers(batches: [[Transfer]]) -> [[CreateTransferResult]] {
        let batchTimestamps = createOperation(batches.map(\.count))
        return zip(batches, batchTimestamps).map { executeTransferBatch($0, batchTimestamp: $1) }
    }

    /// Spec §4.1 and §4.2: the operation's timestamp, split into per-batch timestamps.
    private func createOperation(_ counts: [Int]) -> [UInt64] {
        let delta = UInt64(counts.reduce(0, +))
        let operationTimestamp = host.operation(delta: delta)
        var batchTimestamp = operationTimestamp - delta
        var result: [UInt64] = []
        for count in counts {
            batchTimestamp += UInt64(count)
            result.append(batchTimestamp)
        }
        precondition(batchTimestamp == operationTimestamp)
        return result
    }

    /// The batch timestamps the next create request with these batch sizes will get.
    func predictBatchTimestamps(_ counts: [Int]) -> [UInt64] {
        let delta = UInt64(counts.reduce(0, +))
        var batchTimestamp = host.nextBase
        var result: [UInt64] = []
        for count in counts {
            batchTimestamp += UInt64(count)
            result.append(batchTimestamp)
        }
        precondition(batchTimestamp == host.nextBase + delta)
        return result
    }

    func lookupAccounts(_ ids: [UInt128]) -> [Account] {
        _ = host.operation(delta: 0)
        return ids.compactMap { state.account($0) }
    }

    func lookupTransfers(_ ids: [UInt128]) -> [Transfer] {
        _ = host.operation(delta: 0)
        return ids.compactMap { state.transfer($0) }
    }

    func pendingStatus(transferId: UInt128) -> PendingStatus? {
        state.transferIndexById[transferId].map { state.pendingStatuses[$0] }
    }

    // MARK: Time and pulses (spec §7)

    /// Mirrors `TestLedger.advance(seconds:)`: `seconds` pass after the last operation (the wall
    /// clock first catches up with the last prepared timestamp). Returns whether a pulse ran.
    @discardableResult
    func advance(seconds: UInt64) -> Bool {
        host.realtime = max(host.realtime, host.prepareTimestamp) + seconds * Self.nsPerSecond
        return pulseIfNeeded()
    }

    /// Mirrors `TestLedger.pulseIfNeeded()`: the idle timer with `now = max(prepare, realtime)`.
    @discardableResult
    func pulseIfNeeded() -> Bool {
        let now = max(host.prepareTimestamp, host.realtime)
        guard pulseNextTimestamp <= now else { return false }
        pulse(timestamp: host.operation(delta: Self.pulseDelta))
        return true
    }

    private func pulse(timestamp pulseTimestamp: UInt64) {
        let ordered = state.expiries.sorted {
            ($0.expiresAt, $0.transferTimestamp) < ($1.expiresAt, $1.transferTimestamp)
        }
        let due = ordered.filter { $0.expiresAt <= pulseTimestamp }
        let selected = Array(due.prefix(Self.pulseExpiriesMax))
        let m = UInt64(selected.count)
        for (k, expiry) in selected.enumerated() {
            let eventTimestamp = pulseTimestamp - m + UInt64(k) + 1
            let pIndex = state.transferIndexById[expiry.transferId]!
            let p = state.transfers[pIndex]
            precondition(state.pendingStatuses[pIndex] == .pending)
            var dr = state.account(p.debitAccountId)!
            var cr = state.account(p.creditAccountId)!
            dr.debitsPending -= p.amount
            cr.creditsPending -= p.amount
            if p.flags.contains(.closingDebit) { dr.flags.remove(.closed) }
            if p.flags.contains(.closingCredit) { cr.flags.remove(.closed) }
            storeAccount(dr)
            storeAccount(cr)
            state.pendingStatuses[pIndex] = .expired
            state.events.append(
                AccountEvent(
                    timestamp: eventTimestamp, transferTimestamp: p.timestamp, amount: p.amount,
                    pendingId: p.id, debitAccount: AccountSnapshot(dr),
                    creditAccount: AccountSnapshot(cr), ledger: p.ledger, pendingStatus: .expired))
        }
        let expired = Set(selected.map(\.transferId))
        state.expiries.removeAll { expired.contains($0.transferId) }
        if selected.count == Self.pulseExpiriesMax {
            pulseNextTimestamp = selected.last!.expiresAt
        } else if let next = ordered.dropFirst(selected.count).first {
            pulseNextTimestamp = next.expiresAt
        } else {
            pulseNextTimestamp = Self.timestampMax
        }
    }

    // MARK: The create batch loop (spec §4.4), accounts

    private func executeAccountBatch(_ events: [Account], batchTimestamp: UInt64) -> [CreateAccountResult] {
        let n = events.count
        var results: [CreateAccountResult] = []
        var chainStart: Int? = nil
        var savepoint: ModelState? = nil
        var broken = false
        let batchImported = n > 0 && events[0].flags.contains(.imported)
        for i in 0..<n {
            let a = events[i]
            let slot = batchTimestamp - UInt64(n) + UInt64(i) + 1
            if a.flags.contains(.linked) && chainStart == nil {
                chainStart = i
                savepoint = state
            }
            let status: CreateAccountStatus
            var resultTimestamp = slot
            if a.flags.contains(.linked) && i == n - 1 {
                status = .linkedEventChainOpen
            } else if broken {
                status = .linkedEventFailed
            } else if a.flags.contains(.imported) != batchImported {
                status = a.flags.contains(.imported) ? .importedEventNotExpected : .importedEventExpected
            } else if a.flags.contains(.imported) && !Self.valid(a.timestamp) {
                status = .importedEventTimestampOutOfRange
            } else if a.flags.contains(.imported) && a.timestamp >= batchTimestamp {
                status = .importedEventTimestampMustNotAdvance
            } else if !a.flags.contains(.imported) && a.timestamp != 0 {
                status = .timestampMustBeZero
            } else {
                let outcome = createAccount(a, slot: slot)
                status = outcome.status
                if status == .created || status == .exists { resultTimestamp = outcome.timestamp }
            }
            if status != .created {
                if let start = chainStart, !broken {
                    broken = true
                    state = savepoint!
                    for j in start..<i { results[j].status = .linkedEventFailed }
                }
            }
            results.append(CreateAccountResult(timestamp: resultTimestamp, status: status))
            if chainStart != nil && (!a.flags.contains(.linked) || status == .linkedEventChainOpen) {
                chainStart = nil
                savepoint = nil
                broken = false
            }
        }
        return results
    }

    // MARK: create_account (spec §5.2)

    private func createAccount(_ a: Account, slot: UInt64) -> (status: CreateAccountStatus, timestamp: UInt64) {
        if a.reserved != 0 { return (.reservedField, slot) }
        if !a.flags.intersection(.padding).isEmpty { return (.reservedFlag, slot) }
        if a.id == 0 { return (.idMustNotBeZero, slot) }
        if a.id == Self.max128 { return (.idMustNotBeIntMax, slot) }
        if let e = state.account(a.id) {
            if a.flags != e.flags { return (.existsWithDifferentFlags, slot) }
            if a.userData128 != e.userData128 { return (.existsWithDifferentUserData128, slot) }
            if a.userData64 != e.userData64 { return (.existsWithDifferentUserData64, slot) }
            if a.userData32 != e.userData32 { return (.existsWithDifferentUserData32, slot) }
            if a.ledger != e.ledger { return (.existsWithDifferentLedger, slot) }
            if a.code != e.code { return (.existsWithDifferentCode, slot) }
            return (.exists, e.timestamp)
        }
        if a.flags.contains(.debitsMustNotExceedCredits) && a.flags.contains(.creditsMustNotExceedDebits) {
            return (.flagsAreMutuallyExclusive, slot)
        }
        if a.debitsPending != 0 { return (.debitsPendingMustBeZero, slot) }
        if a.debitsPosted != 0 { return (.debitsPostedMustBeZero, slot) }
        if a.creditsPending != 0 { return (.creditsPendingMustBeZero, slot) }
        if a.creditsPosted != 0 { return (.creditsPostedMustBeZero, slot) }
        if a.ledger == 0 { return (.ledgerMustNotBeZero, slot) }
        if a.code == 0 { return (.codeMustNotBeZero, slot) }
        let imported = a.flags.contains(.imported)
        if imported {
            if !state.accounts.isEmpty && a.timestamp <= state.accountTimestampMax {
                return (.importedEventTimestampMustNotRegress, slot)
            }
            if state.transferExists(timestamp: a.timestamp) {
                return (.importedEventTimestampMustNotRegress, slot)
            }
            if a.timestamp > slot { return (.importedEventTimestampMustNotAdvance, slot) }  // Q1
        }
        var stored = a
        stored.debitsPending = 0
        stored.debitsPosted = 0
        stored.creditsPending = 0
        stored.creditsPosted = 0
        stored.reserved = 0
        stored.timestamp = imported ? a.timestamp : slot
        state.accountIndexById[stored.id] = state.accounts.count
        state.accounts.append(stored)
        return (.created, stored.timestamp)
    }

    // MARK: The create batch loop (spec §4.4), transfers

    private func executeTransferBatch(_ events: [Transfer], batchTimestamp: UInt64) -> [CreateTransferResult] {
        let n = events.count
        var results: [CreateTransferResult] = []
        var chainStart: Int? = nil
        var savepoint: ModelState? = nil
        var broken = false
        let batchImported = n > 0 && events[0].flags.contains(.imported)
        for i in 0..<n {
            let t = events[i]
            let slot = batchTimestamp - UInt64(n) + UInt64(i) + 1
            if t.flags.contains(.linked) && chainStart == nil {
                chainStart = i
                savepoint = state
            }
            let status: CreateTransferStatus
            var resultTimestamp = slot
            if t.flags.contains(.linked) && i == n - 1 {
                status = .linkedEventChainOpen
            } else if broken {
                status = .linkedEventFailed
            } else if t.flags.contains(.imported) != batchImported {
                status = t.flags.contains(.imported) ? .importedEventNotExpected : .importedEventExpected
            } else if t.flags.contains(.imported) && !Self.valid(t.timestamp) {
                status = .importedEventTimestampOutOfRange
            } else if t.flags.contains(.imported) && t.timestamp >= batchTimestamp {
                status = .importedEventTimestampMustNotAdvance
            } else if !t.flags.contains(.imported) && t.timestamp != 0 {
                status = .timestampMustBeZero
            } else {
                let outcome = createTransfer(t, slot: slot)
                status = outcome.status
                if status == .created || status == .exists { resultTimestamp = outcome.timestamp }
            }
            if status != .created {
                if let start = chainStart, !broken {
                    broken = true
                    state = savepoint!
                    for j in start..<i { results[j].status = .linkedEventFailed }
                }
                if Self.isTransient(status) { failedTransferIds.insert(t.id) }
            }
            results.append(CreateTransferResult(timestamp: resultTimestamp, status: status))
            if chainStart != nil && (!t.flags.contains(.linked) || status == .linkedEventChainOpen) {
                chainStart = nil
                savepoint = nil
                broken = false
            }
        }
        return results
    }

    static func isTransient(_ status: CreateTransferStatus) -> Bool {
        switch status {
        case .debitAccountNotFound, .creditAccountNotFound, .pendingTransferNotFound,
            .exceedsCredits, .exceedsDebits, .debitAccountAlreadyClosed, .creditAccountAlreadyClosed:
            return true
        default:
            return false
        }
    }

    static func valid(_ timestamp: UInt64) -> Bool { timestamp >= 1 && timestamp <= timestampMax }

    // MARK: create_transfer (spec §5.3)

    private func createTransfer(_ t: Transfer, slot: UInt64) -> (status: CreateTransferStatus, timestamp: UInt64) {
        if !t.flags.intersection(.padding).isEmpty { return (.reservedFlag, slot) }
        if t.id == 0 { return (.idMustNotBeZero, slot) }
        if t.id == Self.max128 { return (.idMustNotBeIntMax, slot) }
        if let e = state.transfer(t.id) {
            let status = transferExists(t, e)
            return (status, status == .exists ? e.timestamp : slot)
        }
        if failedTransferIds.contains(t.id) { return (.idAlreadyFailed, slot) }
        if t.flags.contains(.postPendingTransfer) || t.flags.contains(.voidPendingTransfer) {
            return createPostOrVoid(t, slot: slot)
        }
        return createSingleOrPending(t, slot: slot)
    }

    // MARK: Idempotency (spec §5.7)

    private func transferExists(_ t: Transfer, _ e: Transfer) -> CreateTransferStatus {
        if t.flags != e.flags { return .existsWithDifferentFlags }
        if t.pendingId != e.pendingId { return .existsWithDifferentPendingId }
        if t.timeout != e.timeout { return .existsWithDifferentTimeout }
        let isPost = t.flags.contains(.postPendingTransfer)
        let isVoid = t.flags.contains(.voidPendingTransfer)
        if isPost || isVoid {
            // `e` resolved `p`, which existed before `e` and is never deleted.
            guard let p = state.transfer(t.pendingId) else {
                preconditionFailure("model: the pending transfer of an existing post/void exists")
            }
            if t.debitAccountId != 0 && t.debitAccountId != e.debitAccountId {
                return .existsWithDifferentDebitAccountId
            }
            if t.creditAccountId != 0 && t.creditAccountId != e.creditAccountId {
                return .existsWithDifferentCreditAccountId
            }
            if isVoid {
                let same = t.amount == 0 ? e.amount == p.amount : t.amount == e.amount
                if !same { return .existsWithDifferentAmount }
            } else {
                let same = t.amount == Self.max128 ? e.amount == p.amount : t.amount == e.amount
                if !same { return .existsWithDifferentAmount }
            }
            if !(t.userData128 == 0 ? e.userData128 == p.userData128 : t.userData128 == e.userData128) {
                return .existsWithDifferentUserData128
            }
            if !(t.userData64 == 0 ? e.userData64 == p.userData64 : t.userData64 == e.userData64) {
                return .existsWithDifferentUserData64
            }
            if !(t.userData32 == 0 ? e.userData32 == p.userData32 : t.userData32 == e.userData32) {
                return .existsWithDifferentUserData32
            }
            if t.ledger != 0 && t.ledger != e.ledger { return .existsWithDifferentLedger }
            if t.code != 0 && t.code != e.code { return .existsWithDifferentCode }
            return .exists
        }
        if t.debitAccountId != e.debitAccountId { return .existsWithDifferentDebitAccountId }
        if t.creditAccountId != e.creditAccountId { return .existsWithDifferentCreditAccountId }
        if t.flags.contains(.balancingDebit) || t.flags.contains(.balancingCredit) {
            if t.amount < e.amount { return .existsWithDifferentAmount }
        } else {
            if t.amount != e.amount { return .existsWithDifferentAmount }
        }
        if t.userData128 != e.userData128 { return .existsWithDifferentUserData128 }
        if t.userData64 != e.userData64 { return .existsWithDifferentUserData64 }
        if t.userData32 != e.userData32 { return .existsWithDifferentUserData32 }
        if t.ledger != e.ledger { return .existsWithDifferentLedger }
        if t.code != e.code { return .existsWithDifferentCode }
        return .exists
    }

    // MARK: Single-phase and pending transfers (spec §5.4, §5.5)

    private func createSingleOrPending(_ t: Transfer, slot: UInt64) -> (status: CreateTransferStatus, timestamp: UInt64) {
        let pending = t.flags.contains(.pending)
        let imported = t.flags.contains(.imported)
        if t.debitAccountId == 0 { return (.debitAccountIdMustNotBeZero, slot) }
        if t.debitAccountId == Self.max128 { return (.debitAccountIdMustNotBeIntMax, slot) }
        if t.creditAccountId == 0 { return (.creditAccountIdMustNotBeZero, slot) }
        if t.creditAccountId == Self.max128 { return (.creditAccountIdMustNotBeIntMax, slot) }
        if t.debitAccountId == t.creditAccountId { return (.accountsMustBeDifferent, slot) }
        if t.pendingId != 0 { return (.pendingIdMustBeZero, slot) }
        if !pending {
            if t.timeout != 0 { return (.timeoutReservedForPendingTransfer, slot) }
            if t.flags.contains(.closingDebit) || t.flags.contains(.closingCredit) {
                return (.closingTransferMustBePending, slot)
            }
        }
        if t.ledger == 0 { return (.ledgerMustNotBeZero, slot) }
        if t.code == 0 { return (.codeMustNotBeZero, slot) }
        guard var dr = state.account(t.debitAccountId) else { return (.debitAccountNotFound, slot) }
        guard var cr = state.account(t.creditAccountId) else { return (.creditAccountNotFound, slot) }
        if dr.ledger != cr.ledger { return (.accountsMustHaveTheSameLedger, slot) }
        if t.ledger != dr.ledger { return (.transferMustHaveTheSameLedgerAsAccounts, slot) }
        var ts = slot
        if imported {
            // Q2: newer than every transfer and every account event.
            if t.timestamp <= max(state.transferTimestampMax, state.eventTimestampMax) {
                return (.importedEventTimestampMustNotRegress, slot)
            }
            if state.accountExists(timestamp: t.timestamp) { return (.importedEventTimestampMustNotRegress, slot) }
            if t.timestamp <= dr.timestamp { return (.importedEventTimestampMustPostdateDebitAccount, slot) }
            if t.timestamp <= cr.timestamp { return (.importedEventTimestampMustPostdateCreditAccount, slot) }
            if t.timeout != 0 { return (.importedEventTimeoutMustBeZero, slot) }
            ts = t.timestamp
        }
        if dr.flags.contains(.closed) { return (.debitAccountAlreadyClosed, slot) }
        if cr.flags.contains(.closed) { return (.creditAccountAlreadyClosed, slot) }

        var amount = t.amount
        if t.flags.contains(.balancingDebit) {
            amount = min(amount, Self.satSub(dr.creditsPosted, Self.sum(dr.debitsPosted, dr.debitsPending)))
        }
        if t.flags.contains(.balancingCredit) {
            amount = min(amount, Self.satSub(cr.debitsPosted, Self.sum(cr.creditsPosted, cr.creditsPending)))
        }
        if pending {
            if Self.overflows(amount, dr.debitsPending) { return (.overflowsDebitsPending, slot) }
            if Self.overflows(amount, cr.creditsPending) { return (.overflowsCreditsPending, slot) }
        }
        if Self.overflows(amount, dr.debitsPosted) { return (.overflowsDebitsPosted, slot) }
        if Self.overflows(amount, cr.creditsPosted) { return (.overflowsCreditsPosted, slot) }
        if Self.overflows(amount, Self.sum(dr.debitsPending, dr.debitsPosted)) { return (.overflowsDebits, slot) }
        if Self.overflows(amount, Self.sum(cr.creditsPending, cr.creditsPosted)) { return (.overflowsCredits, slot) }
        let expiresAt = UInt128(ts) + UInt128(t.timeout) * UInt128(Self.nsPerSecond)
        if expiresAt > UInt128(Self.timestampMax) { return (.overflowsTimeout, slot) }
        if dr.flags.contains(.debitsMustNotExceedCredits)
            && UInt128Wide(dr.debitsPending) + UInt128Wide(dr.debitsPosted) + UInt128Wide(amount)
                > UInt128Wide(dr.creditsPosted)
        {
            return (.exceedsCredits, slot)
        }
        if cr.flags.contains(.creditsMustNotExceedDebits)
            && UInt128Wide(cr.creditsPending) + UInt128Wide(cr.creditsPosted) + UInt128Wide(amount)
                > UInt128Wide(cr.debitsPosted)
        {
            return (.exceedsDebits, slot)
        }
        if imported && t.timestamp > slot { return (.importedEventTimestampMustNotAdvance, slot) }  // Q1

        // Success (step 32).
        var stored = t
        stored.amount = amount
        stored.timestamp = ts
        if pending {
            dr.debitsPending += amount
            cr.creditsPending += amount
        } else {
            dr.debitsPosted += amount
            cr.creditsPosted += amount
        }
        if t.flags.contains(.closingDebit) { dr.flags.insert(.closed) }
        if t.flags.contains(.closingCredit) { cr.flags.insert(.closed) }
        storeAccount(dr)
        storeAccount(cr)
        state.transferIndexById[stored.id] = state.transfers.count
        state.transfers.append(stored)
        state.pendingStatuses.append(pending ? .pending : .none)
        state.events.append(
            AccountEvent(
                timestamp: ts, transferTimestamp: ts, amount: amount, pendingId: 0,
                debitAccount: AccountSnapshot(dr), creditAccount: AccountSnapshot(cr),
                ledger: stored.ledger, pendingStatus: pending ? .pending : .none))
        if t.timeout > 0 {
            let at = UInt64(expiresAt)
            state.expiries.append(ModelExpiry(expiresAt: at, transferTimestamp: ts, transferId: t.id))
            pulseNextTimestamp = min(pulseNextTimestamp, at)
        }
        return (.created, ts)
    }

    // MARK: Post / void (spec §5.6)

    private func createPostOrVoid(_ t: Transfer, slot: UInt64) -> (status: CreateTransferStatus, timestamp: UInt64) {
        let isPost = t.flags.contains(.postPendingTransfer)
        let isVoid = t.flags.contains(.voidPendingTransfer)
        let imported = t.flags.contains(.imported)
        if isPost && isVoid { return (.flagsAreMutuallyExclusive, slot) }
        if t.flags.contains(.pending) { return (.flagsAreMutuallyExclusive, slot) }
        if t.flags.contains(.balancingDebit) { return (.flagsAreMutuallyExclusive, slot) }
        if t.flags.contains(.balancingCredit) { return (.flagsAreMutuallyExclusive, slot) }
        if t.flags.contains(.closingDebit) { return (.flagsAreMutuallyExclusive, slot) }
        if t.flags.contains(.closingCredit) { return (.flagsAreMutuallyExclusive, slot) }
        if t.pendingId == 0 { return (.pendingIdMustNotBeZero, slot) }
        if t.pendingId == Self.max128 { return (.pendingIdMustNotBeIntMax, slot) }
        if t.pendingId == t.id { return (.pendingIdMustBeDifferent, slot) }
        if t.timeout != 0 { return (.timeoutReservedForPendingTransfer, slot) }
        guard let pIndex = state.transferIndexById[t.pendingId] else { return (.pendingTransferNotFound, slot) }
        let p = state.transfers[pIndex]
        if !p.flags.contains(.pending) { return (.pendingTransferNotPending, slot) }
        if t.debitAccountId != 0 && t.debitAccountId != p.debitAccountId {
            return (.pendingTransferHasDifferentDebitAccountId, slot)
        }
        if t.creditAccountId != 0 && t.creditAccountId != p.creditAccountId {
            return (.pendingTransferHasDifferentCreditAccountId, slot)
        }
        if t.ledger != 0 && t.ledger != p.ledger { return (.pendingTransferHasDifferentLedger, slot) }
        if t.code != 0 && t.code != p.code { return (.pendingTransferHasDifferentCode, slot) }
        let amount: UInt128
        if isVoid {
            amount = t.amount == 0 ? p.amount : t.amount
        } else {
            amount = t.amount == Self.max128 ? p.amount : t.amount
        }
        if amount > p.amount { return (.exceedsPendingTransferAmount, slot) }
        if isVoid && amount < p.amount { return (.pendingTransferHasDifferentAmount, slot) }
        switch state.pendingStatuses[pIndex] {
        case .posted: return (.pendingTransferAlreadyPosted, slot)
        case .voided: return (.pendingTransferAlreadyVoided, slot)
        case .expired: return (.pendingTransferExpired, slot)
        case .pending: break
        case .none: preconditionFailure("model: a pending transfer has a pending status")
        }
        let pExpiresAt = UInt128(p.timestamp) + UInt128(p.timeout) * UInt128(Self.nsPerSecond)
        if p.timeout > 0 && pExpiresAt <= UInt128(slot) { return (.pendingTransferExpired, slot) }
        var ts = slot
        if imported {
            // Q2: newer than every transfer and every account event.
            if t.timestamp <= max(state.transferTimestampMax, state.eventTimestampMax) {
                return (.importedEventTimestampMustNotRegress, slot)
            }
            if state.accountExists(timestamp: t.timestamp) { return (.importedEventTimestampMustNotRegress, slot) }
            ts = t.timestamp
        }
        var dr = state.account(p.debitAccountId)!
        var cr = state.account(p.creditAccountId)!
        if dr.flags.contains(.closed) && !isVoid { return (.debitAccountAlreadyClosed, slot) }
        if cr.flags.contains(.closed) && !isVoid { return (.creditAccountAlreadyClosed, slot) }
        if imported && t.timestamp > slot { return (.importedEventTimestampMustNotAdvance, slot) }  // Q1

        // Success (step 31).
        let stored = Transfer(
            id: t.id, debitAccountId: p.debitAccountId, creditAccountId: p.creditAccountId,
            amount: amount, pendingId: t.pendingId,
            userData128: t.userData128 != 0 ? t.userData128 : p.userData128,
            userData64: t.userData64 != 0 ? t.userData64 : p.userData64,
            userData32: t.userData32 != 0 ? t.userData32 : p.userData32,
            timeout: 0, ledger: p.ledger, code: p.code, flags: t.flags, timestamp: ts)
        if let scheduled = state.expiries.firstIndex(where: { $0.transferId == p.id }) {
            let at = state.expiries[scheduled].expiresAt
            state.expiries.remove(at: scheduled)
            if pulseNextTimestamp == at { pulseNextTimestamp = 1 }
        }
        state.pendingStatuses[pIndex] = isPost ? .posted : .voided
        dr.debitsPending -= p.amount
        cr.creditsPending -= p.amount
        if isPost {
            dr.debitsPosted += amount
            cr.creditsPosted += amount
        } else {
            if p.flags.contains(.closingDebit) { dr.flags.remove(.closed) }
            if p.flags.contains(.closingCredit) { cr.flags.remove(.closed) }
        }
        storeAccount(dr)
        storeAccount(cr)
        state.transferIndexById[stored.id] = state.transfers.count
        state.transfers.append(stored)
        state.pendingStatuses.append(.none)
        state.events.append(
            AccountEvent(
                timestamp: ts, transferTimestamp: ts, amount: amount, pendingId: p.id,
                debitAccount: AccountSnapshot(dr), creditAccount: AccountSnapshot(cr),
                ledger: p.ledger, pendingStatus: isPost ? .posted : .voided))
        return (.created, ts)
    }

    // MARK: Helpers

    private func storeAccount(_ account: Account) {
        state.accounts[state.accountIndexById[account.id]!] = account
    }

    /// `overflows128(x, y)`: `x + y > MAX128`, without wrapping.
    static func overflows(_ x: UInt128, _ y: UInt128) -> Bool { x.addingReportingOverflow(y).overflow }

    /// A sum that the invariants (spec §11.3) keep below 2^128; saturates defensively.
    static func sum(_ x: UInt128, _ y: UInt128) -> UInt128 {
        let (value, overflow) = x.addingReportingOverflow(y)
        return overflow ? max128 : value
    }

    static func satSub(_ x: UInt128, _ y: UInt128) -> UInt128 { x >= y ? x - y : 0 }
}

/// A wide unsigned sum for limit comparisons that must not wrap: (high carry, low).
struct UInt128Wide: Comparable {
    var high: UInt64
    var low: UInt128

    init(_ value: UInt128) {
        high = 0
        low = value
    }

    private init(high: UInt64, low: UInt128) {
        self.high = high
        self.low = low
    }

    static func + (a: UInt128Wide, b: UInt128Wide) -> UInt128Wide {
        let (low, carry) = a.low.addingReportingOverflow(b.low)
        return UInt128Wide(high: a.high + b.high + (carry ? 1 : 0), low: low)
    }

    static func < (a: UInt128Wide, b: UInt128Wide) -> Bool {
        (a.high, a.low) < (b.high, b.low)
    }
}

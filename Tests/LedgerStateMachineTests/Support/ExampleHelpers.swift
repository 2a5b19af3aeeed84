// Small shared helpers for the worked-example tests of state-machine spec §8.1–8.8
// (WorkedExamplesAccountTests.swift, WorkedExamplesTransferTests.swift). Every name is prefixed
// `ex`/`Ex` so that it cannot collide with other test helpers in this target.

import LedgerKit
import Testing

@testable import LedgerStateMachine

/// `MAX` of the spec's notation: MAX128.
let exMax = UInt128.max

/// Nanoseconds per second (`NS_PER_S`).
let exSecond = Constants.nanosecondsPerSecond

/// The four balances of an account, written `(dp, dpo, cp, cpo)` as in spec §8.
struct ExBalances: Equatable, CustomStringConvertible {
    var debitsPending: UInt128
    var debitsPosted: UInt128
    var creditsPending: UInt128
    var creditsPosted: UInt128

    init(_ dp: UInt128, _ dpo: UInt128, _ cp: UInt128, _ cpo: UInt128) {
        debitsPending = dp
        debitsPosted = dpo
        creditsPending = cp
        creditsPosted = cpo
    }

    init(_ account: Account) {
        self.init(
            account.debitsPending, account.debitsPosted, account.creditsPending,
            account.creditsPosted)
    }

    var description: String { "(\(debitsPending), \(debitsPosted), \(creditsPending), \(creditsPosted))" }
}

/// The balances of account `id` as `lookup_accounts` reports them, or nil if it does not exist.
func exBalances(_ ledger: TestLedger, _ id: UInt128) -> ExBalances? {
    ledger.lookupAccount(id).map(ExBalances.init)
}

/// Expects account `id` to exist with balances `(dp, dpo, cp, cpo)`.
func exExpectBalances(
    _ ledger: TestLedger, _ id: UInt128, _ expected: ExBalances, _ comment: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let actual = exBalances(ledger, id)
    #expect(
        actual == expected, "A\(id) balances \(comment): expected \(expected), got \(actual.map(\.description) ?? "no account")",
        sourceLocation: sourceLocation)
}

/// An account event with the spec's defaults (every unspecified field 0).
func exAccount(
    _ id: UInt128, ledger: UInt32 = 0, code: UInt16 = 0, flags: AccountFlags = [],
    ud128: UInt128 = 0, ud64: UInt64 = 0, ud32: UInt32 = 0,
    balances: ExBalances = ExBalances(0, 0, 0, 0), reserved: UInt32 = 0, timestamp: UInt64 = 0
) -> Account {
    Account(
        id: id, debitsPending: balances.debitsPending, debitsPosted: balances.debitsPosted,
        creditsPending: balances.creditsPending, creditsPosted: balances.creditsPosted,
        userData128: ud128, userData64: ud64, userData32: ud32, reserved: reserved,
        ledger: ledger, code: code, flags: flags, timestamp: timestamp)
}

/// A transfer event with the spec's defaults (every unspecified field 0).
func exTransfer(
    _ id: UInt128, dr: UInt128 = 0, cr: UInt128 = 0, amount: UInt128 = 0, pending: UInt128 = 0,
    ud128: UInt128 = 0, ud64: UInt64 = 0, ud32: UInt32 = 0, timeout: UInt32 = 0,
    ledger: UInt32 = 0, code: UInt16 = 0, flags: TransferFlags = [], timestamp: UInt64 = 0
) -> Transfer {
    Transfer(
        id: id, debitAccountId: dr, creditAccountId: cr, amount: amount, pendingId: pending,
        userData128: ud128, userData64: ud64, userData32: ud32, timeout: timeout,
        ledger: ledger, code: code, flags: flags, timestamp: timestamp)
}

/// The timestamp a result row must report.
enum ExTimestamp {
    /// The event's own slot timestamp `ts_i = T_b − n + i + 1` (failures, non-imported
    /// `created`, rolled-back chain members).
    case slot
    /// The slot timestamp of the row labelled so in the same batch (e.g. `exists` of an
    /// object created, or applied and rolled back, earlier in the batch).
    case slotOf(String)
    /// A known timestamp (e.g. `exists` of an object created by an earlier request).
    case exactly(UInt64)
}

/// One row of a worked-example table: the event, its expected status and result timestamp.
struct ExRow<Event, Status> {
    var label: String
    var event: Event
    var status: Status
    var timestamp: ExTimestamp

    init(_ label: String, _ event: Event, _ status: Status, _ timestamp: ExTimestamp = .slot) {
        self.label = label
        self.event = event
        self.status = status
        self.timestamp = timestamp
    }
}

typealias ExAccountRow = ExRow<Account, CreateAccountStatus>
typealias ExTransferRow = ExRow<Transfer, CreateTransferStatus>

/// Checks one batch's results positionally against its rows: status and result timestamp.
/// `batchTimestamp` is the batch timestamp `T_b` (the harness `timestamp` after a one-batch
/// request). Returns the slot timestamps of the rows, by label.
@discardableResult
func exCheckResults<Event, Status: Equatable & CustomStringConvertible>(
    _ rows: [ExRow<Event, Status>], _ results: [(timestamp: UInt64, status: Status)],
    batchTimestamp: UInt64, sourceLocation: SourceLocation = #_sourceLocation
) -> [String: UInt64] {
    let n = UInt64(rows.count)
    var slots: [String: UInt64] = [:]
    for (i, row) in rows.enumerated() {
        slots[row.label] = batchTimestamp - n + UInt64(i) + 1
    }
    #expect(results.count == rows.count, "one result per event", sourceLocation: sourceLocation)
    for (i, row) in rows.enumerated() where i < results.count {
        let actual = results[i]
        #expect(
            actual.status == row.status,
            "\(row.label): expected \(row.status), got \(actual.status)",
            sourceLocation: sourceLocation)
        let expectedTimestamp: UInt64?
        switch row.timestamp {
        case .slot: expectedTimestamp = slots[row.label]
        case .slotOf(let label): expectedTimestamp = slots[label]
        case .exactly(let value): expectedTimestamp = value
        }
        #expect(expectedTimestamp != nil, "\(row.label): unknown row in timestamp expectation")
        #expect(
            actual.timestamp == expectedTimestamp,
            "\(row.label): expected result timestamp \(expectedTimestamp ?? 0), got \(actual.timestamp) (\(actual.status))",
            sourceLocation: sourceLocation)
    }
    return slots
}

/// Submits `rows` as one `create_accounts` batch and checks every result. Returns the results.
@discardableResult
func exCreateAccounts(
    _ ledger: TestLedger, _ rows: [ExAccountRow], sourceLocation: SourceLocation = #_sourceLocation
) -> [CreateAccountResult] {
    let results = ledger.createAccounts(rows.map(\.event))
    exCheckResults(
        rows, results.map { ($0.timestamp, $0.status) }, batchTimestamp: ledger.timestamp,
        sourceLocation: sourceLocation)
    return results
}

/// Submits `rows` as one `create_transfers` batch and checks every result. Returns the results.
@discardableResult
func exCreateTransfers(
    _ ledger: TestLedger, _ rows: [ExTransferRow], sourceLocation: SourceLocation = #_sourceLocation
) -> [CreateTransferResult] {
    let results = ledger.createTransfers(rows.map(\.event))
    exCheckResults(
        rows, results.map { ($0.timestamp, $0.status) }, batchTimestamp: ledger.timestamp,
        sourceLocation: sourceLocation)
    return results
}

/// Creates accounts that the example's setup needs, expecting every one `created`.
func exSetupAccounts(
    _ ledger: TestLedger, _ accounts: [Account], sourceLocation: SourceLocation = #_sourceLocation
) {
    let results = ledger.createAccounts(accounts)
    #expect(
        results.map(\.status) == Array(repeating: .created, count: accounts.count),
        "setup accounts are created", sourceLocation: sourceLocation)
}

/// "One second passes and a pulse runs" (§8.6, §8.7): the wall clock moves forward one second
/// and the host's idle timer runs a pulse if one is due (`advance(seconds:)`). Because event
/// timestamps are a few nanoseconds past the clock reading at which they were created, an expiry
/// exactly one timeout later can fall just after that instant; the reference host's idle timer
/// fires again ~100 ms later, so one more tick follows.
func exOneSecondPassesAndPulse(_ ledger: TestLedger) {
    ledger.advance(seconds: 1)
    ledger.realtime += 100_000_000  // The idle timer's next tick (~100 ms).
    ledger.pulseIfNeeded()
}

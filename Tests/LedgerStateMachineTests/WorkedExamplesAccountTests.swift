// The worked examples of state-machine spec §8.1–8.3 (create_accounts), reproduced exactly:
// every row's status and result timestamp, and the lookups stated after each table.

import LedgerKit
import Testing

@testable import LedgerStateMachine

@Suite("Worked examples §8.1–8.3: accounts")
struct WorkedExamplesAccountTests {
    // MARK: §8.1 Account creation precedence

    @Test("§8.1 account creation precedence (single batch, empty ledger)")
    func example8_1() {
        _ = Self.runExample8_1()
    }

    static func runExample8_1() -> [CreateAccountStatus] {
        let ledger = TestLedger()
        let both: AccountFlags = [.debitsMustNotExceedCredits, .creditsMustNotExceedDebits]
        let bit6 = AccountFlags(rawValue: 1 << 6)
        let ones = ExBalances(1, 1, 1, 1)
        let e2 = exAccount(0, flags: both.union(bit6), balances: ones, reserved: 1, timestamp: 1)
        var e3 = e2
        e3.timestamp = 0
        var e4 = e3
        e4.reserved = 0
        var e5 = e4
        e5.flags = both
        var e6 = e5
        e6.id = exMax
        let dc: AccountFlags = .debitsMustNotExceedCredits

        let rows: [ExAccountRow] = [
            .init("E1", exAccount(1, ledger: 3, code: 4, ud128: 2, ud64: 2, ud32: 2), .created),
            .init("E2", e2, .timestampMustBeZero),
            .init("E3", e3, .reservedField),
            .init("E4", e4, .reservedFlag),
            .init("E5", e5, .idMustNotBeZero),
            .init("E6", e6, .idMustNotBeIntMax),
            .init("E7", exAccount(1, ledger: 9, code: 9, flags: dc, ud128: 1, ud64: 1, ud32: 1),
                  .existsWithDifferentFlags, .slot),
            .init("E8", exAccount(1, ledger: 9, code: 9, flags: .creditsMustNotExceedDebits,
                                  ud128: 1, ud64: 1, ud32: 1),
                  .existsWithDifferentFlags),
            .init("E9", exAccount(1, ledger: 9, code: 9, ud128: 1, ud64: 1, ud32: 1),
                  .existsWithDifferentUserData128),
            .init("E10", exAccount(1, ledger: 9, code: 9, ud128: 2, ud64: 1, ud32: 1),
                  .existsWithDifferentUserData64),
            .init("E11", exAccount(1, ledger: 9, code: 9, ud128: 2, ud64: 2, ud32: 1),
                  .existsWithDifferentUserData32),
            .init("E12", exAccount(1, ledger: 9, code: 9, ud128: 2, ud64: 2, ud32: 2),
                  .existsWithDifferentLedger),
            .init("E13", exAccount(1, ledger: 3, code: 9, ud128: 2, ud64: 2, ud32: 2),
                  .existsWithDifferentCode),
            .init("E14", exAccount(1, ledger: 3, code: 4, ud128: 2, ud64: 2, ud32: 2),
                  .exists, .slotOf("E1")),
            .init("E15", exAccount(2, ledger: 0, code: 0, flags: both, balances: ones),
                  .flagsAreMutuallyExclusive),
            .init("E16", exAccount(2, ledger: 9, code: 9, flags: dc, balances: ones),
                  .debitsPendingMustBeZero),
            .init("E17", exAccount(2, ledger: 9, code: 9, flags: dc, balances: ExBalances(0, 1, 1, 1)),
                  .debitsPostedMustBeZero),
            .init("E18", exAccount(2, ledger: 9, code: 9, flags: dc, balances: ExBalances(0, 0, 1, 1)),
                  .creditsPendingMustBeZero),
            .init("E19", exAccount(2, ledger: 9, code: 9, flags: dc, balances: ExBalances(0, 0, 0, 1)),
                  .creditsPostedMustBeZero),
            .init("E20", exAccount(2, ledger: 0, code: 0, flags: dc), .ledgerMustNotBeZero),
            .init("E21", exAccount(2, ledger: 9, code: 0, flags: dc), .codeMustNotBeZero),
        ]
        let results = exCreateAccounts(ledger, rows)
        let a1Timestamp = ledger.timestamp - UInt64(rows.count) + 1  // E1's slot.

        // lookup_accounts [MAX, A0, A1, A2] returns only A1, with zero balances.
        let found = ledger.lookupAccounts([exMax, 0, 1, 2])
        #expect(found.map(\.id) == [1], "§8.1 lookup returns only A1")
        #expect(
            found.first
                == Account(
                    id: 1, userData128: 2, userData64: 2, userData32: 2, ledger: 3, code: 4,
                    flags: [], timestamp: a1Timestamp),
            "A1 is stored as created by E1")
        exExpectBalances(ledger, 1, ExBalances(0, 0, 0, 0))

        // An account created with CLSD set is created and looks up with closed set.
        let closed = exCreateAccounts(
            ledger, [.init("CLSD", exAccount(3, ledger: 1, code: 1, flags: .closed), .created)])
        #expect(ledger.lookupAccount(3)?.flags == .closed, "A3 looks up with closed set")
        return results.map(\.status) + closed.map(\.status)
    }

    // MARK: §8.2 Linked accounts

    @Test("§8.2 linked accounts (one batch, empty ledger)")
    func example8_2() {
        _ = Self.runExample8_2()
    }

    static func runExample8_2() -> [CreateAccountStatus] {
        let ledger = TestLedger()
        func a(_ id: UInt128, _ flags: AccountFlags = [], ledger: UInt32 = 1, code: UInt16 = 1) -> Account {
            exAccount(id, ledger: ledger, code: code, flags: flags)
        }
        let rows: [ExAccountRow] = [
            .init("E22a", a(7), .created),
            .init("E22b", a(1, .linked), .linkedEventFailed),  // applied, then rolled back
            .init("E22c", a(2, .linked), .linkedEventFailed),  // applied, then rolled back
            .init("E22d", a(1, .linked), .exists, .slotOf("E22b")),  // A1 from E22b: breaks the chain
            .init("E22e", a(3), .linkedEventFailed),  // chain end, not evaluated
            .init("E22f", a(1), .created),  // the rolled-back A1 is gone
            .init("E22g", a(1, .linked, code: 2), .existsWithDifferentFlags),  // first member fails
            .init("E22h", a(2), .linkedEventFailed),
            .init("E22i", a(2), .created),
            .init("E22j", a(3, .linked), .linkedEventFailed),
            .init("E22k", a(1, ledger: 2), .existsWithDifferentLedger),  // last member fails
            .init("E22l", a(3, .linked), .created),  // chain of two succeeds
            .init("E22m", a(4), .created),
        ]
        let results = exCreateAccounts(ledger, rows)
        let batchTimestamp = ledger.timestamp  // Before any lookup consumes a timestamp.
        let slot = { (i: Int) in batchTimestamp - UInt64(rows.count) + UInt64(i) + 1 }

        // Final accounts: A7, A1, A2, A3, A4 exist, all zero balances.
        let found = ledger.lookupAccounts([1, 2, 3, 4, 5, 6, 7])
        #expect(found.map(\.id) == [1, 2, 3, 4, 7], "§8.2 final accounts")
        let expected: [UInt128: (flags: AccountFlags, timestamp: UInt64)] = [
            7: ([], slot(0)), 1: ([], slot(5)), 2: ([], slot(8)), 3: (.linked, slot(11)),
            4: ([], slot(12)),
        ]
        for account in found {
            #expect(ExBalances(account) == ExBalances(0, 0, 0, 0), "A\(account.id) zero balances")
            #expect(account.flags == expected[account.id]?.flags, "A\(account.id) flags as submitted")
            #expect(account.timestamp == expected[account.id]?.timestamp, "A\(account.id) timestamp")
            #expect(account.ledger == 1 && account.code == 1, "A\(account.id) L1 C1")
        }
        return results.map(\.status)
    }

    // MARK: §8.3 linked_event_chain_open

    @Test("§8.3 E23: a batch ending in a linked event")
    func example8_3_E23() {
        _ = Self.runExample8_3_E23()
    }

    static func runExample8_3_E23() -> [CreateAccountStatus] {
        let ledger = TestLedger()
        let rows: [ExAccountRow] = [
            .init("A1", exAccount(1, ledger: 1, code: 1, flags: .linked), .created),
            .init("A2", exAccount(2, ledger: 1, code: 1, flags: .linked), .created),
            .init("A3", exAccount(3, ledger: 1, code: 1), .created),
            .init("A4", exAccount(4, ledger: 1, code: 1, flags: .linked), .linkedEventFailed),
            .init("A5", exAccount(5, ledger: 1, code: 1, flags: .linked), .linkedEventChainOpen),
        ]
        let results = exCreateAccounts(ledger, rows)
        #expect(ledger.lookupAccounts([1, 2, 3, 4, 5]).map(\.id) == [1, 2, 3], "A4, A5 absent")
        return results.map(\.status)
    }

    @Test("§8.3 E24: an open chain that already failed")
    func example8_3_E24() {
        _ = Self.runExample8_3_E24()
    }

    static func runExample8_3_E24() -> [CreateAccountStatus] {
        let ledger = TestLedger()
        exSetupAccounts(ledger, [exAccount(1, ledger: 1, code: 1)])  // A1 exists (no flags).
        let a1Timestamp = ledger.timestamp
        let rows: [ExAccountRow] = [
            .init("A2", exAccount(2, ledger: 1, code: 1, flags: .linked), .linkedEventFailed),
            .init("A1", exAccount(1, ledger: 1, code: 1, flags: .linked), .existsWithDifferentFlags),
            .init("A3", exAccount(3, ledger: 1, code: 1, flags: .linked), .linkedEventChainOpen),
        ]
        let results = exCreateAccounts(ledger, rows)
        let found = ledger.lookupAccounts([1, 2, 3])
        #expect(found.map(\.id) == [1], "A2, A3 absent")
        #expect(found.first?.timestamp == a1Timestamp && found.first?.flags == [], "A1 unchanged")
        return results.map(\.status)
    }

    @Test("§8.3 E25: a batch of one linked event")
    func example8_3_E25() {
        _ = Self.runExample8_3_E25()
    }

    static func runExample8_3_E25() -> [CreateAccountStatus] {
        let ledger = TestLedger()
        let results = exCreateAccounts(
            ledger,
            [.init("A1", exAccount(1, ledger: 1, code: 1, flags: .linked), .linkedEventChainOpen)])
        #expect(ledger.lookupAccounts([1]).isEmpty, "A1 absent")
        return results.map(\.status)
    }

    // MARK: §8.17 coverage of §8.1–8.3

    /// §8.17: every CreateAccountStatus except `deprecated_ok` appears in §8.1–8.3 or §8.13;
    /// the imported-event codes are §8.13's. So §8.1–8.3 together must reach all the others.
    @Test("§8.17: §8.1–8.3 reach every account status that belongs to them")
    func accountStatusCoverage() {
        let reached = Set(
            Self.runExample8_1() + Self.runExample8_2() + Self.runExample8_3_E23()
                + Self.runExample8_3_E24() + Self.runExample8_3_E25())
        let ofExample8_13: Set<CreateAccountStatus> = [
            .importedEventExpected, .importedEventNotExpected, .importedEventTimestampOutOfRange,
            .importedEventTimestampMustNotAdvance, .importedEventTimestampMustNotRegress,
        ]
        let expected = Set(CreateAccountStatus.allCases)
            .subtracting([.deprecatedOk])
            .subtracting(ofExample8_13)
        #expect(expected.count == 22, "27 codes + created − deprecated_ok − 5 imported codes")
        let missing = expected.subtracting(reached)
        #expect(missing.isEmpty, "statuses never reached: \(missing.map(\.description).sorted())")
        let unexpected = reached.subtracting(expected)
        #expect(unexpected.isEmpty, "statuses outside §8.1–8.3: \(unexpected.map(\.description).sorted())")
    }
}

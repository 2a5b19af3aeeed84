// The worked examples of state-machine spec §8.4–8.8 (create_transfers), reproduced exactly:
// every row's status and result timestamp, and the balances and lookups stated after each table.

import LedgerKit
import Testing

@testable import LedgerStateMachine

@Suite("Worked examples §8.4–8.8: transfers")
struct WorkedExamplesTransferTests {
    // MARK: §8.4 Transfer precedence — single-phase/pending path

    /// Runs §8.4 on a new ledger and returns it (T5 exists afterwards). With `verify`, every
    /// row and lookup is checked; §8.5 replays it without checks as its setup.
    static func runExample8_4(verify: Bool) -> TestLedger {
        let ledger = TestLedger()
        exSetupAccounts(
            ledger,
            [
                exAccount(1, ledger: 1, code: 1),
                exAccount(2, ledger: 2, code: 1),
                exAccount(3, ledger: 1, code: 1),
                exAccount(4, ledger: 1, code: 1, flags: .debitsMustNotExceedCredits),
                exAccount(5, ledger: 1, code: 1, flags: .creditsMustNotExceedDebits),
            ])
        ledger.setBalances(1, 100, 200, 0, 0)
        ledger.setBalances(3, 0, 0, 110, 210)
        ledger.setBalances(4, 20, exMax - 700, 0, exMax - 500)
        ledger.setBalances(5, 0, exMax - 1000, 10, exMax - 1100)
        // The host clock is advanced to TS_MAX − 3 s (so a 999 s timeout overflows, 1 s does not).
        ledger.realtime = Constants.timestampMax - 3 * exSecond

        func submit(_ rows: [ExTransferRow]) {
            if verify {
                exCreateTransfers(ledger, rows)
            } else {
                _ = ledger.createTransfers(rows.map(\.event))
            }
        }

        // E37 "(or CCR)": the closing_credit variant, as its own request before T1 is burned.
        submit([
            .init(
                "E37/CCR", exTransfer(1, dr: 8, cr: 9, flags: .closingCredit),
                .closingTransferMustBePending)
        ])

        let padding9 = TransferFlags(rawValue: 1 << 9)
        let e26 = exTransfer(
            0, amount: 9, pending: 1, flags: [.pending, padding9], timestamp: 1)
        var e27 = e26
        e27.timestamp = 0
        var e28 = e27
        e28.flags = .pending
        var e29 = e28
        e29.id = exMax
        var e30 = e29
        e30.id = 1
        var e31 = e30
        e31.debitAccountId = exMax
        var e32 = e31
        e32.debitAccountId = 8
        var e33 = e32
        e33.creditAccountId = exMax
        var e34 = e33
        e34.creditAccountId = 8

        submit([
            .init("E26", e26, .timestampMustBeZero),
            .init("E27", e27, .reservedFlag),
            .init("E28", e28, .idMustNotBeZero),
            .init("E29", e29, .idMustNotBeIntMax),
            .init("E30", e30, .debitAccountIdMustNotBeZero),
            .init("E31", e31, .debitAccountIdMustNotBeIntMax),
            .init("E32", e32, .creditAccountIdMustNotBeZero),
            .init("E33", e33, .creditAccountIdMustNotBeIntMax),
            .init("E34", e34, .accountsMustBeDifferent),
            .init("E35", exTransfer(1, dr: 8, cr: 9, pending: 1, flags: .pending), .pendingIdMustBeZero),
            .init("E36", exTransfer(1, dr: 8, cr: 9, timeout: 1), .timeoutReservedForPendingTransfer),
            .init("E37", exTransfer(1, dr: 8, cr: 9, flags: .closingDebit), .closingTransferMustBePending),
            .init("E38", exTransfer(1, dr: 8, cr: 9, ledger: 0, flags: .pending), .ledgerMustNotBeZero),
            .init("E39", exTransfer(1, dr: 8, cr: 9, ledger: 9, code: 0, flags: .pending), .codeMustNotBeZero),
            .init("E40", exTransfer(1, dr: 8, cr: 9, ledger: 9, code: 1, flags: .pending), .debitAccountNotFound),
            .init("E41", exTransfer(1, dr: 1, cr: 3, amount: 123, ledger: 1, code: 1), .idAlreadyFailed),
            .init("E42", exTransfer(2, dr: 1, cr: 9, ledger: 9, code: 1, flags: .pending), .creditAccountNotFound),
            .init("E43", exTransfer(2, dr: 1, cr: 3, amount: 123, ledger: 1, code: 1), .idAlreadyFailed),
        ])

        // — new request — (all C1; L1 unless noted)
        func t(_ id: UInt128, _ dr: UInt128, _ cr: UInt128, _ amount: UInt128,
               ledger: UInt32 = 1, timeout: UInt32 = 0, flags: TransferFlags = []) -> Transfer {
            exTransfer(id, dr: dr, cr: cr, amount: amount, timeout: timeout, ledger: ledger, code: 1, flags: flags)
        }
        submit([
            .init("E47", t(3, 1, 2, 1, ledger: 9, flags: .pending), .accountsMustHaveTheSameLedger),
            .init("E48", t(3, 1, 3, 1, ledger: 9, flags: .pending), .transferMustHaveTheSameLedgerAsAccounts),
            .init("E49", t(3, 1, 3, exMax - 99, flags: .pending), .overflowsDebitsPending),
            .init("E50", t(3, 1, 3, exMax - 109, flags: .pending), .overflowsCreditsPending),
            .init("E51", t(3, 1, 3, exMax - 199, flags: .pending), .overflowsDebitsPosted),
            .init("E52", t(3, 1, 3, exMax - 209, flags: .pending), .overflowsCreditsPosted),
            .init("E53", t(3, 1, 3, exMax - 299, flags: .pending), .overflowsDebits),
            .init("E54", t(3, 1, 3, exMax - 319, flags: .pending), .overflowsCredits),
            .init("E55", t(3, 4, 5, 199, timeout: 999, flags: .pending), .overflowsTimeout),
            .init("E56", t(3, 4, 5, 199), .exceedsCredits),  // T3 burned
            .init("E57", t(3, 1, 3, 123), .idAlreadyFailed),
            .init("E58", t(4, 4, 5, 91), .exceedsDebits),  // T4 burned
            .init("E59", t(4, 1, 3, 123), .idAlreadyFailed),
            .init("E60", t(5, 1, 3, 123, timeout: 1, flags: .pending), .created),
        ])

        if verify {
            let t5Timestamp = ledger.timestamp  // E60 is the last event of its batch.
            // Burned and failed ids are not transfers; T5 is stored as submitted.
            let found = ledger.lookupTransfers([0, 1, 2, 3, 4, 5, exMax])
            #expect(found.map(\.id) == [5], "only T5 exists")
            #expect(
                found.first
                    == exTransfer(
                        5, dr: 1, cr: 3, amount: 123, timeout: 1, ledger: 1, code: 1,
                        flags: .pending, timestamp: t5Timestamp),
                "T5 stored as submitted")
            exExpectBalances(ledger, 1, ExBalances(223, 200, 0, 0), "after §8.4")
            exExpectBalances(ledger, 2, ExBalances(0, 0, 0, 0), "after §8.4")
            exExpectBalances(ledger, 3, ExBalances(0, 0, 233, 210), "after §8.4")
            exExpectBalances(ledger, 4, ExBalances(20, exMax - 700, 0, exMax - 500), "after §8.4")
            exExpectBalances(ledger, 5, ExBalances(0, exMax - 1000, 10, exMax - 1100), "after §8.4")
        }
        return ledger
    }

    @Test("§8.4 transfer precedence: single-phase/pending path")
    func example8_4() {
        _ = Self.runExample8_4(verify: true)
    }

    // MARK: §8.5 Transfer idempotency

    @Test("§8.5 transfer idempotency (continuing §8.4)")
    func example8_5() {
        let ledger = Self.runExample8_4(verify: false)
        guard let t5 = ledger.lookupTransfer(5) else {
            Issue.record("§8.4 did not create T5")
            return
        }
        let pen = TransferFlags.pending
        let rows: [ExTransferRow] = [
            .init("E61", exTransfer(5, dr: 1, cr: 3, amount: 123, timeout: 1, ledger: 2, code: 1, flags: pen),
                  .existsWithDifferentLedger),
            .init("E62", exTransfer(5, dr: 1, cr: 3, amount: exMax, ud128: 1, ud64: 1, ud32: 1,
                                    ledger: 1, code: 2),
                  .existsWithDifferentFlags),
            .init("E63", exTransfer(5, dr: 3, cr: 1, amount: exMax, ud128: 1, ud64: 1, ud32: 1,
                                    timeout: 1, ledger: 1, code: 2, flags: pen),
                  .existsWithDifferentDebitAccountId),
            .init("E64", exTransfer(5, dr: 1, cr: 4, amount: exMax, ud128: 1, ud64: 1, ud32: 1,
                                    timeout: 1, ledger: 1, code: 2, flags: pen),
                  .existsWithDifferentCreditAccountId),
            .init("E65", exTransfer(5, dr: 1, cr: 3, amount: exMax, ud128: 1, ud64: 1, ud32: 1,
                                    timeout: 1, ledger: 1, code: 1, flags: pen),
                  .existsWithDifferentAmount),
            .init("E66", exTransfer(5, dr: 1, cr: 3, amount: 123, ud128: 1, ud64: 1, ud32: 1,
                                    timeout: 1, ledger: 1, code: 1, flags: pen),
                  .existsWithDifferentUserData128),
            .init("E67", exTransfer(5, dr: 1, cr: 3, amount: 123, ud128: 0, ud64: 1, ud32: 1,
                                    timeout: 1, ledger: 1, code: 1, flags: pen),
                  .existsWithDifferentUserData64),
            .init("E68", exTransfer(5, dr: 1, cr: 3, amount: 123, ud32: 1,
                                    timeout: 1, ledger: 1, code: 1, flags: pen),
                  .existsWithDifferentUserData32),
            .init("E69", exTransfer(5, dr: 1, cr: 3, amount: 123, timeout: 2, ledger: 1, code: 2, flags: pen),
                  .existsWithDifferentTimeout),
            .init("E70", exTransfer(5, dr: 1, cr: 3, amount: 123, timeout: 1, ledger: 1, code: 2, flags: pen),
                  .existsWithDifferentCode),
            .init("E71", exTransfer(5, dr: 1, cr: 3, amount: 123, timeout: 1, ledger: 1, code: 1, flags: pen),
                  .exists, .exactly(t5.timestamp)),
            // Then in the same request:
            .init("T6", exTransfer(6, dr: 3, cr: 1, amount: 7, ledger: 1, code: 2), .created),
            .init("T7", exTransfer(7, dr: 1, cr: 3, amount: 3, ledger: 1, code: 1), .created),
            .init("T8", exTransfer(8, dr: 1, cr: 3, amount: 0, ledger: 1, code: 1), .created),
        ]
        exCreateTransfers(ledger, rows)

        #expect(ledger.lookupTransfer(5) == t5, "T5 unchanged by the re-submissions")
        #expect(ledger.lookupTransfer(8)?.amount == 0, "T8 is stored with amount 0")
        exExpectBalances(ledger, 1, ExBalances(223, 203, 0, 7), "after §8.5")
        exExpectBalances(ledger, 3, ExBalances(0, 7, 233, 213), "after §8.5")
    }

    // MARK: §8.6 Two-phase transfers: post, void, expire

    @Test("§8.6 two-phase transfers: post, void, expire")
    func example8_6() {
        let ledger = TestLedger()
        exSetupAccounts(ledger, [exAccount(1, ledger: 1, code: 1), exAccount(2, ledger: 1, code: 1)])

        // Request 1 (all created).
        func p(_ id: UInt128, _ amount: UInt128, timeout: UInt32 = 0, flags: TransferFlags = .pending,
               ud: (UInt128, UInt64, UInt32) = (0, 0, 0)) -> Transfer {
            exTransfer(
                id, dr: 1, cr: 2, amount: amount, ud128: ud.0, ud64: ud.1, ud32: ud.2,
                timeout: timeout, ledger: 1, code: 1, flags: flags)
        }
        exCreateTransfers(
            ledger,
            [
                .init("T1", p(1, 15, flags: []), .created),
                .init("T2", p(2, 15, timeout: 1000), .created),
                .init("T3", p(3, 15, timeout: 50), .created),
                .init("T4", p(4, 15, timeout: 1), .created),
                .init("T5", p(5, 7, timeout: 50, ud: (9, 9, 9)), .created),
                .init("T6", p(6, 1), .created),
                .init("T7", p(7, 1), .created),
            ])
        exExpectBalances(ledger, 1, ExBalances(54, 15, 0, 0), "after request 1")
        exExpectBalances(ledger, 2, ExBalances(0, 0, 54, 15), "after request 1")

        // 1 second passes and a pulse expires T4.
        exOneSecondPassesAndPulse(ledger)
        exExpectBalances(ledger, 1, ExBalances(39, 15, 0, 0), "after T4 expired")
        exExpectBalances(ledger, 2, ExBalances(0, 0, 39, 15), "after T4 expired")

        // Request 2.
        let ppv: TransferFlags = [.pending, .postPendingTransfer, .voidPendingTransfer]
        let pos = TransferFlags.postPendingTransfer
        let voi = TransferFlags.voidPendingTransfer
        let e73 = exTransfer(
            0, dr: 8, cr: 9, amount: 16, pending: 0, timeout: 50, ledger: 6, code: 7, flags: ppv,
            timestamp: 1)
        var e74 = e73
        e74.timestamp = 0
        var e75 = e74
        e75.id = exMax
        func t102(_ flags: TransferFlags, pending: UInt128 = 0) -> Transfer {
            exTransfer(102, dr: 8, cr: 9, pending: pending, timeout: 50, flags: flags)
        }
        let request2: [ExTransferRow] = [
            .init("E72", exTransfer(101, amount: 13, pending: 2, ud128: 1, ud64: 1, ud32: 1,
                                    ledger: 1, code: 1, flags: pos),
                  .created),
            .init("E73", e73, .timestampMustBeZero),
            .init("E74", e74, .idMustNotBeZero),
            .init("E75", e75, .idMustNotBeIntMax),
            .init("E76", exTransfer(101, amount: 15, pending: 3, flags: voi), .existsWithDifferentFlags),
            .init("E77", exTransfer(101, amount: 14, pending: 2, flags: pos), .existsWithDifferentAmount),
            .init("E78", exTransfer(101, amount: 0, pending: 2, flags: pos), .existsWithDifferentAmount),
            .init("E79", exTransfer(101, amount: 13, pending: 3, flags: pos), .existsWithDifferentPendingId),
            .init("E80", exTransfer(101, amount: 13, pending: 2, ud128: 2, ud64: 2, ud32: 2, flags: pos),
                  .existsWithDifferentUserData128),
            .init("E81", exTransfer(101, amount: 13, pending: 2, ud128: 1, ud64: 2, ud32: 2, flags: pos),
                  .existsWithDifferentUserData64),
            .init("E82", exTransfer(101, amount: 13, pending: 2, ud128: 1, ud64: 1, ud32: 2, flags: pos),
                  .existsWithDifferentUserData32),
            .init("E83", exTransfer(101, amount: 13, pending: 2, ud128: 1, ud64: 1, ud32: 1,
                                    ledger: 1, code: 1, flags: pos),
                  .exists, .slotOf("E72")),
            .init("E84", t102(ppv), .flagsAreMutuallyExclusive),
            // "(also with BDR, BCR combos)": each variant as its own event.
            .init("E84/BDR", t102(ppv.union(.balancingDebit)), .flagsAreMutuallyExclusive),
            .init("E84/BCR", t102(ppv.union(.balancingCredit)), .flagsAreMutuallyExclusive),
            .init("E84/BDR+BCR", t102(ppv.union([.balancingDebit, .balancingCredit])), .flagsAreMutuallyExclusive),
            .init("E85", t102([.pending, .voidPendingTransfer]), .flagsAreMutuallyExclusive),
            .init("E85/PEN+POS", t102([.pending, .postPendingTransfer]), .flagsAreMutuallyExclusive),
            .init("E86/VOI+BDR", t102([.voidPendingTransfer, .balancingDebit]), .flagsAreMutuallyExclusive),
            // "(or VOI+BCR, POS+BDR, POS+BCR, …)": each variant as its own event.
            .init("E86/VOI+BCR", t102([.voidPendingTransfer, .balancingCredit]), .flagsAreMutuallyExclusive),
            .init("E86/POS+BDR", t102([.postPendingTransfer, .balancingDebit]), .flagsAreMutuallyExclusive),
            .init("E86/POS+BCR", t102([.postPendingTransfer, .balancingCredit]), .flagsAreMutuallyExclusive),
            .init("E86/VOI+CDR", t102([.voidPendingTransfer, .closingDebit]), .flagsAreMutuallyExclusive),
            .init("E86/VOI+CCR", t102([.voidPendingTransfer, .closingCredit]), .flagsAreMutuallyExclusive),
            .init("E86/POS+CDR", t102([.postPendingTransfer, .closingDebit]), .flagsAreMutuallyExclusive),
            .init("E86/POS+CCR", t102([.postPendingTransfer, .closingCredit]), .flagsAreMutuallyExclusive),
            .init("E86/POS+VOI", t102([.postPendingTransfer, .voidPendingTransfer]), .flagsAreMutuallyExclusive),
            .init("E87", t102(voi, pending: 0), .pendingIdMustNotBeZero),
            .init("E88", t102(voi, pending: exMax), .pendingIdMustNotBeIntMax),
            .init("E89", t102(voi, pending: 102), .pendingIdMustBeDifferent),
            .init("E90", t102(voi, pending: 103), .timeoutReservedForPendingTransfer),
        ]
        exCreateTransfers(ledger, request2)
        let t101Timestamp = ledger.timestamp - UInt64(request2.count) + 1  // E72's slot.
        // Partial post of T2: A1 dp −15, dpo +13.
        exExpectBalances(ledger, 1, ExBalances(24, 28, 0, 0), "after request 2")
        exExpectBalances(ledger, 2, ExBalances(0, 0, 24, 28), "after request 2")

        // Request 3.
        exCreateTransfers(
            ledger,
            [
                .init("E91", exTransfer(102, dr: 8, cr: 9, amount: 16, pending: 103, flags: voi),
                      .pendingTransferNotFound),  // T102 burned
                .init("E92", exTransfer(102, dr: 1, cr: 2, amount: 13, ledger: 1, code: 1), .idAlreadyFailed),
                .init("E93", exTransfer(103, pending: 1, flags: voi), .pendingTransferNotPending),
                .init("E94", exTransfer(103, dr: 8, cr: 9, pending: 3, flags: voi),
                      .pendingTransferHasDifferentDebitAccountId),
                .init("E95", exTransfer(103, dr: 1, cr: 9, pending: 3, flags: voi),
                      .pendingTransferHasDifferentCreditAccountId),
                .init("E96", exTransfer(103, dr: 1, cr: 2, pending: 3, ledger: 6, flags: voi),
                      .pendingTransferHasDifferentLedger),
                .init("E97", exTransfer(103, dr: 1, cr: 2, pending: 3, ledger: 1, code: 7, flags: voi),
                      .pendingTransferHasDifferentCode),
                .init("E98", exTransfer(103, dr: 1, cr: 2, amount: 16, pending: 3, ledger: 1, code: 1, flags: voi),
                      .exceedsPendingTransferAmount),
                .init("E99", exTransfer(103, amount: 14, pending: 3, flags: voi),
                      .pendingTransferHasDifferentAmount),
                .init("E100", exTransfer(103, amount: 13, pending: 2, flags: pos),
                      .pendingTransferAlreadyPosted),
                .init("E101", exTransfer(103, amount: 15, pending: 3, ud128: 1, ud64: 1, ud32: 1, flags: voi),
                      .created),
                .init("E102", exTransfer(104, amount: 13, pending: 3, flags: pos),
                      .pendingTransferAlreadyVoided),
                .init("E103", exTransfer(104, amount: 15, pending: 4, flags: voi),
                      .pendingTransferExpired),  // expired by the pulse
            ])
        exExpectBalances(ledger, 1, ExBalances(9, 28, 0, 0), "after request 3 (A1 dp −15)")
        #expect(ledger.lookupTransfers([102, 104]).isEmpty, "T102 and T104 do not exist")

        // Request 4 (post/void with optional fields zero; pending T5 = 7, T6 = 1, T7 = 1).
        func post(_ id: UInt128, _ pending: UInt128, _ amount: UInt128,
                  ledger: UInt32 = 0, code: UInt16 = 0) -> Transfer {
            exTransfer(id, amount: amount, pending: pending, ledger: ledger, code: code, flags: pos)
        }
        exCreateTransfers(
            ledger,
            [
                .init("E104", post(101, 2, 14), .existsWithDifferentAmount),
                .init("E105", post(101, 2, 12), .existsWithDifferentAmount),
                .init("E106", post(105, 5, 8), .exceedsPendingTransferAmount),
                .init("E107", post(105, 5, exMax), .created),  // posts the full 7
                .init("E108", post(105, 5, 7, ledger: 1, code: 1), .exists, .slotOf("E107")),
                .init("E109", post(105, 5, 7, ledger: 0, code: 0), .exists, .slotOf("E107")),
                .init("E110", post(105, 5, exMax), .exists, .slotOf("E107")),
                .init("E111/8", post(105, 5, 8), .existsWithDifferentAmount),
                .init("E111/6", post(105, 5, 6), .existsWithDifferentAmount),
                .init("E111/0", post(105, 5, 0), .existsWithDifferentAmount),
                .init("E112", post(106, 6, exMax - 1), .exceedsPendingTransferAmount),
                .init("E113", post(106, 6, exMax), .created),  // amount 1
                .init("E114/MAX", post(106, 6, exMax), .exists, .slotOf("E113")),
                .init("E114/1", post(106, 6, 1), .exists, .slotOf("E113")),
                .init("E115/2", post(106, 6, 2), .existsWithDifferentAmount),
                .init("E115/0", post(106, 6, 0), .existsWithDifferentAmount),
                .init("E116", post(107, 7, 0), .created),  // posts zero; releases pending 1
                .init("E117/0", post(107, 7, 0), .exists, .slotOf("E116")),
                .init("E117/1", post(107, 7, 1), .existsWithDifferentAmount),
            ])

        exExpectBalances(ledger, 1, ExBalances(0, 36, 0, 0), "final")
        exExpectBalances(ledger, 2, ExBalances(0, 0, 0, 36), "final")
        let stored = ledger.lookupTransfers([101, 105, 106, 107])
        #expect(stored.map(\.id) == [101, 105, 106, 107], "post transfers exist")
        #expect(stored.map(\.amount) == [13, 7, 1, 0], "stored amounts T101 = 13, T105 = 7, T106 = 1, T107 = 0")
        // T101 is stored with the pending transfer's accounts, ledger and code (§5.6 step 31).
        #expect(
            ledger.lookupTransfer(101)
                == exTransfer(
                    101, dr: 1, cr: 2, amount: 13, pending: 2, ud128: 1, ud64: 1, ud32: 1,
                    ledger: 1, code: 1, flags: pos, timestamp: t101Timestamp),
            "T101 stored")
        // T105 inherits T5's user data (zero fields of a post take the pending transfer's).
        let t105 = ledger.lookupTransfer(105)
        #expect(
            t105?.userData128 == 9 && t105?.userData64 == 9 && t105?.userData32 == 9,
            "T105 takes T5's user data")
    }

    @Test("§8.6 posting MAX of a pending transfer of amount MAX")
    func example8_6_postMax() {
        let ledger = TestLedger()
        exSetupAccounts(ledger, [exAccount(1, ledger: 1, code: 1), exAccount(2, ledger: 1, code: 1)])
        exCreateTransfers(
            ledger,
            [
                .init("T1", exTransfer(1, dr: 1, cr: 2, amount: exMax, ledger: 1, code: 1, flags: .pending),
                      .created),
                .init("T2", exTransfer(2, amount: exMax, pending: 1, flags: .postPendingTransfer), .created),
                .init("T2 again", exTransfer(2, amount: exMax, pending: 1, flags: .postPendingTransfer),
                      .exists, .slotOf("T2")),
            ])
        exExpectBalances(ledger, 1, ExBalances(0, exMax, 0, 0))
        exExpectBalances(ledger, 2, ExBalances(0, 0, 0, exMax))
        #expect(ledger.lookupTransfer(2)?.amount == exMax, "T2 posted MAX")
    }

    // MARK: §8.7 Expiry timeline

    @Test("§8.7 expiry timeline")
    func example8_7() {
        let ledger = TestLedger()
        exSetupAccounts(ledger, [exAccount(1, ledger: 1, code: 1), exAccount(2, ledger: 1, code: 1)])
        func p(_ id: UInt128, _ amount: UInt128, timeout: UInt32) -> Transfer {
            exTransfer(id, dr: 1, cr: 2, amount: amount, timeout: timeout, ledger: 1, code: 1, flags: .pending)
        }
        // E118
        exCreateTransfers(
            ledger,
            [
                .init("T1", p(1, 10, timeout: 0), .created),
                .init("T2", p(2, 11, timeout: 1), .created),
                .init("T3", p(3, 12, timeout: 2), .created),
                .init("T4", p(4, 13, timeout: 3), .created),
            ])
        exExpectBalances(ledger, 1, ExBalances(46, 0, 0, 0), "E118")

        exOneSecondPassesAndPulse(ledger)
        exExpectBalances(ledger, 1, ExBalances(35, 0, 0, 0), "E119: T2 expired")
        exOneSecondPassesAndPulse(ledger)
        exExpectBalances(ledger, 1, ExBalances(23, 0, 0, 0), "E120: T3 expired")
        exOneSecondPassesAndPulse(ledger)
        exExpectBalances(ledger, 1, ExBalances(10, 0, 0, 0), "E121: T4 expired")

        // E122
        let pos = TransferFlags.postPendingTransfer
        exCreateTransfers(
            ledger,
            [
                .init("T101", exTransfer(101, amount: 10, pending: 1, flags: pos), .created),
                .init("T102", exTransfer(102, pending: 2, flags: pos), .pendingTransferExpired),
                .init("T103", exTransfer(103, pending: 3, flags: pos), .pendingTransferExpired),
                .init("T104", exTransfer(104, pending: 4, flags: pos), .pendingTransferExpired),
            ])
        exExpectBalances(ledger, 1, ExBalances(0, 10, 0, 0), "E122")
        exExpectBalances(ledger, 2, ExBalances(0, 0, 0, 10), "E122")
        #expect(ledger.lookupTransfers([101, 102, 103, 104]).map(\.id) == [101], "T102–T104 not stored")
        // The expired pending transfers themselves are unchanged (§7.3).
        #expect(
            ledger.lookupTransfers([2, 3, 4]).map(\.amount) == [11, 12, 13],
            "expired pending transfers are unchanged")
    }

    // MARK: §8.8 Linked transfer rollback

    @Test("§8.8 linked transfer rollback")
    func example8_8() {
        let ledger = TestLedger()
        exSetupAccounts(ledger, [exAccount(1, ledger: 1, code: 1), exAccount(2, ledger: 1, code: 1)])
        exCreateTransfers(
            ledger,
            [
                .init("T1", exTransfer(1, dr: 1, cr: 2, amount: 15, ledger: 1, code: 1, flags: .linked),
                      .linkedEventFailed),
                .init("T2", exTransfer(2, dr: 1, cr: 2, amount: 15, ledger: 0, code: 1),
                      .ledgerMustNotBeZero),
            ])
        exCreateTransfers(
            ledger,
            [
                .init("T3", exTransfer(3, dr: 1, cr: 2, amount: 15, timeout: 1, ledger: 1, code: 1,
                                       flags: [.pending, .linked]),
                      .linkedEventFailed),
                .init("T4", exTransfer(4, dr: 1, cr: 2, amount: 15, ledger: 0, code: 1),
                      .ledgerMustNotBeZero),
            ])
        exExpectBalances(ledger, 1, ExBalances(0, 0, 0, 0), "after rollbacks")
        exExpectBalances(ledger, 2, ExBalances(0, 0, 0, 0), "after rollbacks")
        #expect(ledger.lookupTransfers([1, 2, 3, 4]).isEmpty, "T1–T4 do not exist")
        // Not burned: they may be reused.
        exCreateTransfers(
            ledger,
            (1...4).map { id in
                .init("T\(id) reused", exTransfer(id, dr: 1, cr: 2, amount: 1, ledger: 1, code: 1), .created)
            })
        exExpectBalances(ledger, 1, ExBalances(0, 4, 0, 0), "after reusing T1–T4")

        // A batch whose last transfer has `linked` → linked_event_chain_open; nothing is stored.
        exCreateTransfers(
            ledger,
            [
                .init("T9", exTransfer(9, dr: 1, cr: 2, amount: 1, ledger: 1, code: 1, flags: .linked),
                      .linkedEventChainOpen)
            ])
        #expect(ledger.lookupTransfer(9) == nil, "T9 not stored")
        exExpectBalances(ledger, 1, ExBalances(0, 4, 0, 0), "after the open chain")
    }

    @Test("§8.8 a later event sees the rolled-back state")
    func example8_8_rolledBackState() {
        let ledger = TestLedger()
        exSetupAccounts(
            ledger,
            [
                exAccount(1, ledger: 1, code: 1, flags: .debitsMustNotExceedCredits),
                exAccount(2, ledger: 1, code: 1),
            ])
        ledger.setBalances(1, 0, 0, 0, 20)
        exCreateTransfers(
            ledger,
            [
                .init("T1", exTransfer(1, dr: 1, cr: 2, amount: 15, ledger: 1, code: 1, flags: .linked),
                      .linkedEventFailed),
                .init("T2", exTransfer(2, dr: 1, cr: 2, amount: 5, ledger: 0, code: 1),
                      .ledgerMustNotBeZero),
                .init("T3", exTransfer(3, dr: 1, cr: 2, amount: 15, ledger: 1, code: 1), .created),
            ])
        exExpectBalances(ledger, 1, ExBalances(0, 15, 0, 20))
        exExpectBalances(ledger, 2, ExBalances(0, 0, 0, 15))
        #expect(ledger.lookupTransfers([1, 2, 3]).map(\.id) == [3], "only T3 exists")
    }
}

import LedgerKit
import Testing

@testable import LedgerStateMachine

// The worked examples of state-machine spec §8.9–8.16, reproduced row by row: statuses and
// result timestamps, actual (stored) amounts, balances, query results, account balances,
// change events. The spec is the contract: expectations are copied from it, not from the code.

private typealias Status = CreateTransferStatus
private typealias AccountStatus = CreateAccountStatus

private let BDR = TransferFlags.balancingDebit
private let BCR = TransferFlags.balancingCredit
private let PEN = TransferFlags.pending
private let POS = TransferFlags.postPendingTransfer
private let VOI = TransferFlags.voidPendingTransfer
private let LNK = TransferFlags.linked
private let CDR = TransferFlags.closingDebit
private let CCR = TransferFlags.closingCredit
private let IMP = TransferFlags.imported
private let MAX = UInt128.max

private func advT(
    _ id: UInt128, _ debit: UInt128, _ credit: UInt128, _ amount: UInt128,
    _ flags: TransferFlags = [], timeout: UInt32 = 0, ledger: UInt32 = 1, code: UInt16 = 1,
    ud128: UInt128 = 0, ud64: UInt64 = 0, ud32: UInt32 = 0, ts: UInt64 = 0
) -> Transfer {
    AdvEx.transfer(
        id, debit, credit, amount, flags, timeout: timeout, ledger: ledger, code: code,
        userData128: ud128, userData64: ud64, userData32: ud32, timestamp: ts)
}

private func advA(
    _ id: UInt128, _ flags: AccountFlags = [], ledger: UInt32 = 1, code: UInt16 = 1,
    ud128: UInt128 = 0, ud64: UInt64 = 0, ud32: UInt32 = 0, ts: UInt64 = 0
) -> Account {
    AdvEx.account(
        id, flags, ledger: ledger, code: code, userData128: ud128, userData64: ud64,
        userData32: ud32, timestamp: ts)
}

@Suite("Worked examples §8.9–8.16")
struct WorkedExamplesAdvancedTests {
    // MARK: §8.9 Balancing transfers

    @Test("8.9 E123–E135: balancing clamps, idempotency of balancing transfers")
    func balancingTransfers() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([
            advA(1, .debitsMustNotExceedCredits), advA(2, .creditsMustNotExceedDebits), advA(3),
        ])
        ledger.setBalances(1, 1, 0, 0, 10)
        ledger.setBalances(2, 0, 10, 2, 0)

        ledger.advExCreateTransfers(
            [
                advT(1, 1, 3, 3, BDR, ledger: 2),  // E123
                advT(1, 1, 3, 3, BDR),  // E124
                advT(2, 1, 3, 13, BDR),  // E125
                advT(3, 3, 2, 3, BCR),  // E126
                advT(4, 3, 2, 13, BCR),  // E127
                advT(5, 1, 3, 1, BDR),  // E128
                advT(6, 1, 3, 1, [BDR, BCR]),  // E129
                advT(7, 3, 2, 1, BCR),  // E130
                advT(1, 1, 3, 2, BDR),  // E131
                advT(1, 1, 3, 0, BDR),  // E132
                advT(1, 1, 3, 3, BDR),  // E133 (3)
                advT(1, 1, 3, 4, BDR),  // E133 (4)
                advT(2, 1, 3, 6, BDR),  // E134
                advT(4, 3, 2, 5, BCR),  // E135 (5)
                advT(4, 3, 2, 6, BCR),  // E135 (6)
                advT(4, 3, 2, 0, BCR),  // E135 (0)
            ],
            expect: [
                .transferMustHaveTheSameLedgerAsAccounts,
                .created, .created, .created, .created, .created, .created, .created,
                .existsWithDifferentAmount, .existsWithDifferentAmount,
                .exists, .exists, .exists,
                .exists, .exists, .existsWithDifferentAmount,
            ])

        #expect(ledger.advExAmounts([1, 2, 3, 4, 5, 6, 7]) == [3, 6, 3, 5, 0, 0, 0])
        ledger.advExExpectAccount(1, 1, 9, 0, 10)
        ledger.advExExpectAccount(2, 0, 10, 2, 8)
        ledger.advExExpectAccount(3, 0, 8, 0, 9)
    }

    @Test(
        "8.9 balancing with no limit flags on the clamping account",
        arguments: [true, false])
    func balancingWithoutLimitFlags(limitFlags: Bool) {
        // The text reuses the §8.9 setup balances; A3 (no flags) is the account whose
        // balances clamp the first transfer. The result is the same whether A1/A2 carry their
        // §8.9 limit flags or none: the clamp applies regardless of flags (§5.5).
        let ledger = TestLedger()
        ledger.advExSetupAccounts([
            advA(1, limitFlags ? .debitsMustNotExceedCredits : []),
            advA(2, limitFlags ? .creditsMustNotExceedDebits : []),
            advA(3),
        ])
        ledger.setBalances(1, 1, 0, 0, 10)
        ledger.setBalances(2, 0, 10, 2, 0)

        ledger.advExCreateTransfers(
            [
                advT(1, 3, 1, 99, [BDR, BCR]),  // A3 has credits_posted 0 → 0
                advT(2, 1, 3, 99, BDR),  // 10 − (0 + 1) = 9
                advT(3, 3, 2, 99, BCR),  // 10 − (0 + 2) = 8
            ],
            expect: [.created, .created, .created])
        #expect(ledger.advExAmounts([1, 2, 3]) == [0, 9, 8])
        ledger.advExExpectAccount(1, 1, 9, 0, 10)
        ledger.advExExpectAccount(2, 0, 10, 2, 8)
        ledger.advExExpectAccount(3, 0, 8, 0, 9)
    }

    @Test("8.9 balancing amount MAX with balances near MAX")
    func balancingAmountMax() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([advA(1, .debitsMustNotExceedCredits), advA(2)])
        ledger.setBalances(1, 0, 0, 0, MAX - 1)
        ledger.advExCreateTransfers([advT(1, 1, 2, MAX, BDR)], expect: [.created])
        #expect(ledger.advExAmounts([1]) == [MAX - 1])
        ledger.advExExpectAccount(1, 0, MAX - 1, 0, MAX - 1)
        ledger.advExExpectAccount(2, 0, 0, 0, MAX - 1)
    }

    @Test("8.9 balancing with both flags: the tighter side limits")
    func balancingBothFlags() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([
            advA(1, .debitsMustNotExceedCredits), advA(2, .creditsMustNotExceedDebits), advA(3),
        ])
        ledger.setBalances(1, 0, 0, 0, 20)
        ledger.setBalances(2, 0, 10, 0, 0)
        ledger.setBalances(3, 0, 99, 0, 0)
        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 1, [BDR, BCR]),
                advT(2, 1, 2, 12, [BDR, BCR]),
                advT(3, 1, 2, 1, [BDR, BCR]),
                advT(4, 1, 3, 12, [BDR, BCR]),
                advT(5, 1, 3, 1, [BDR, BCR]),
            ],
            expect: [.created, .created, .created, .created, .created])
        #expect(ledger.advExAmounts([1, 2, 3, 4, 5]) == [1, 9, 0, 10, 0])
        ledger.advExExpectAccount(1, 0, 20, 0, 20)
        ledger.advExExpectAccount(2, 0, 10, 0, 10)
        ledger.advExExpectAccount(3, 0, 99, 0, 10)
    }

    @Test("8.9 pending + balancing: pending amounts count against the limit; partial posts")
    func balancingPending() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([advA(1, .debitsMustNotExceedCredits), advA(2, .creditsMustNotExceedDebits)])
        ledger.setBalances(1, 0, 0, 0, 10)
        ledger.setBalances(2, 0, 10, 0, 0)
        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 3, [PEN, BDR]),
                advT(2, 1, 2, 13, [PEN, BDR]),
                advT(3, 1, 2, 1, [PEN, BDR]),
            ],
            expect: [.created, .created, .created])
        #expect(ledger.advExAmounts([1, 2, 3]) == [3, 7, 0])
        ledger.advExExpectAccount(1, 10, 0, 0, 10)
        ledger.advExExpectAccount(2, 0, 10, 10, 0)

        ledger.advExCreateTransfers(
            [AdvEx.resolve(4, pending: 1, 3, POS), AdvEx.resolve(5, pending: 2, 5, POS)],
            expect: [.created, .created])
        #expect(ledger.advExAmounts([4, 5]) == [3, 5])
        ledger.advExExpectAccount(1, 0, 8, 0, 10)
        ledger.advExExpectAccount(2, 0, 10, 0, 8)
    }

    // MARK: §8.10 Balancing combined with exceeds_*

    @Test("8.10 E136–E139: balancing combined with exceeds_credits / exceeds_debits")
    func balancingWithExceeds() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([
            advA(1, .debitsMustNotExceedCredits), advA(2), advA(3, .creditsMustNotExceedDebits), advA(4),
        ])
        ledger.setBalances(1, 0, 0, 0, 4)
        ledger.setBalances(2, 0, 5, 0, 0)
        ledger.setBalances(3, 0, 4, 0, 0)
        ledger.setBalances(4, 0, 0, 0, 5)

        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 10, BCR),  // E136
                advT(2, 1, 2, 10, BDR),  // E137
                advT(3, 4, 3, 10, BDR),  // E138
                advT(4, 4, 3, 10, BCR),  // E139
            ],
            expect: [.exceedsCredits, .created, .exceedsDebits, .created])
        #expect(ledger.advExAmounts([1, 2, 3, 4]) == [nil, 4, nil, 4])
        ledger.advExExpectAccount(1, 0, 4, 0, 4)
        ledger.advExExpectAccount(2, 0, 5, 0, 4)
        ledger.advExExpectAccount(3, 0, 4, 0, 4)
        ledger.advExExpectAccount(4, 0, 4, 0, 5)
        // exceeds_* are transient (§1.7): T1 and T3 are burned.
        ledger.advExCreateTransfers(
            [advT(1, 2, 4, 1), advT(3, 2, 4, 1)], expect: [.idAlreadyFailed, .idAlreadyFailed])
    }

    // MARK: §8.11 Multi-debit with a linked chain

    private func multiDebitLedger(a3Credits: UInt128) -> TestLedger {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([
            advA(1, .debitsMustNotExceedCredits), advA(2, .debitsMustNotExceedCredits),
            advA(3, .debitsMustNotExceedCredits), advA(4), advA(5, .debitsMustNotExceedCredits), advA(6),
        ])
        ledger.setBalances(1, 0, 0, 0, 40)
        ledger.setBalances(2, 0, 0, 0, 40)
        ledger.setBalances(3, 0, 0, 0, a3Credits)
        return ledger
    }

    private var multiDebitBatch: [Transfer] {
        [
            advT(1, 4, 5, 100, LNK),
            advT(2, 1, 4, 100, [LNK, BDR, BCR]),
            advT(3, 2, 4, 100, [LNK, BDR, BCR]),
            advT(4, 3, 4, 100, [LNK, BDR, BCR]),
            advT(5, 4, 6, 100, LNK),
            advT(6, 5, 4, MAX, BCR),
        ]
    }

    @Test("8.11 multi-debit with a linked chain: all created")
    func multiDebitChain() {
        let ledger = multiDebitLedger(a3Credits: 21)
        ledger.advExCreateTransfers(multiDebitBatch, expect: Array(repeating: .created, count: 6))
        #expect(ledger.advExAmounts([1, 2, 3, 4, 5, 6]) == [100, 40, 40, 20, 100, 100])
        ledger.advExExpectAccount(1, 0, 40, 0, 40)
        ledger.advExExpectAccount(2, 0, 40, 0, 40)
        ledger.advExExpectAccount(3, 0, 20, 0, 21)
        ledger.advExExpectAccount(4, 0, 200, 0, 200)
        ledger.advExExpectAccount(5, 0, 100, 0, 100)
        ledger.advExExpectAccount(6, 0, 0, 0, 100)
    }

    @Test("8.11 E140: A3 credits 19 → T6 clamps to 101, A5 rejects, the chain rolls back")
    func multiDebitChainRollback() {
        let ledger = multiDebitLedger(a3Credits: 19)
        ledger.advExCreateTransfers(
            multiDebitBatch,
            expect: Array(repeating: .linkedEventFailed, count: 5) + [.exceedsCredits])
        #expect(ledger.advExAmounts([1, 2, 3, 4, 5, 6]) == [nil, nil, nil, nil, nil, nil])
        ledger.advExExpectAccount(1, 0, 0, 0, 40)
        ledger.advExExpectAccount(2, 0, 0, 0, 40)
        ledger.advExExpectAccount(3, 0, 0, 0, 19)
        ledger.advExExpectAccount(4, 0, 0, 0, 0)
        ledger.advExExpectAccount(5, 0, 0, 0, 0)
        ledger.advExExpectAccount(6, 0, 0, 0, 0)
    }

    // MARK: §8.12 Transient errors inside chains

    @Test("8.12 E141–E147: transient errors inside chains burn the id despite the rollback")
    func transientErrorsInChains() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([advA(1), advA(2), advA(3, .creditsMustNotExceedDebits)])
        ledger.setBalances(2, 0, 40, 0, 0)

        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 41, LNK),  // E141
                advT(2, 2, 3, 1, [PEN, BDR, LNK]),  // E142
                AdvEx.resolve(3, pending: 2, 0, VOI),  // E143
            ],
            expect: [.linkedEventFailed, .exceedsDebits, .linkedEventFailed])
        #expect(ledger.advExAmounts([1, 2, 3]) == [nil, nil, nil])
        ledger.advExExpectAccount(1, 0, 0, 0, 0)
        ledger.advExExpectAccount(2, 0, 40, 0, 0)
        ledger.advExExpectAccount(3, 0, 0, 0, 0)

        ledger.advExCreateTransfers(
            [advT(1, 1, 2, 0), advT(2, 2, 3, 0), advT(3, 2, 3, 0)],  // E144–E146
            expect: [.created, .idAlreadyFailed, .created])

        ledger.advExCreateTransfers(
            [
                advT(4, 1, 2, 40, LNK),
                advT(5, 2, 3, 1, [PEN, BDR, LNK]),
                AdvEx.resolve(6, pending: 5, 0, VOI),
            ],  // E147
            expect: [.created, .created, .created])
        #expect(ledger.advExAmounts([1, 2, 3, 4, 5, 6]) == [0, nil, 0, 40, 0, 0])
        ledger.advExExpectAccount(1, 0, 40, 0, 0)
        ledger.advExExpectAccount(2, 0, 40, 0, 40)
        ledger.advExExpectAccount(3, 0, 0, 0, 0)
    }

    // MARK: §8.13 Imported events

    @Test("8.13 E148–E166: imported timestamps (exact batch timestamps 18, 24, 35, 40)")
    func importedTimestamps() {
        let ledger = TestLedger()
        let IMPA = AccountFlags.imported
        // Fresh ledger: prepare = commit = 0, so base = max(0 + 1, realtime) = 11 and the
        // first request's batch timestamp is 11 + 7 = 18 (slots 12…18).
        ledger.realtime = 11

        ledger.advExCreateAccounts(
            [
                advA(1, IMPA, ts: 0),  // E148
                advA(1, IMPA, ts: UInt64.max - 1),  // E149: 2^64 − 2
                advA(1, IMPA, ts: 99),  // E150
                advA(1, IMPA, ts: 2),  // E151
                advA(2, IMPA, ts: 1),  // E152
                advA(2, IMPA, ts: 3),  // E153
                advA(3, IMPA, ts: 9),  // E154
            ],
            expect: [
                .importedEventTimestampOutOfRange, .importedEventTimestampOutOfRange,
                .importedEventTimestampMustNotAdvance, .created,
                .importedEventTimestampMustNotRegress, .created, .created,
            ],
            timestamps: [12, 13, 14, 2, 16, 3, 9])
        #expect(ledger.timestamp == 18, "batch timestamp 18")

        // Batch timestamp 24 = 19 + 5 events. The spec's table lists four rows (E155, E156 ×3);
        // the reference test it is taken from also re-submits A3 (ts 9 → exists), which is what
        // makes the batch timestamp 24.
        ledger.advExCreateAccounts(
            [
                advA(2, IMPA, ts: 99),  // E155
                advA(2, IMPA, ts: 1),  // E156
                advA(2, IMPA, ts: 3),
                advA(2, IMPA, ts: 4),
                advA(3, IMPA, ts: 9),
            ],
            expect: [.importedEventTimestampMustNotAdvance, .exists, .exists, .exists, .exists],
            timestamps: [20, 3, 3, 3, 9])
        #expect(ledger.timestamp == 24, "batch timestamp 24")

        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 3, IMP, ts: 0),  // E156a
                advT(1, 1, 2, 3, IMP, ts: UInt64.max - 1),  // E156a
                advT(1, 1, 2, 3, IMP, ts: 99),  // E156b
                advT(1, 1, 2, 3, IMP, ts: 2),  // E157
                advT(1, 1, 2, 3, IMP, ts: 3),  // E158
                advT(1, 3, 2, 3, IMP, ts: 4),  // E159
                advT(1, 1, 3, 3, IMP, ts: 4),  // E160
                advT(1, 1, 2, 3, IMP, ts: 4),  // E161
                advT(2, 1, 2, 3, IMP, ts: 3),  // E162
                advT(2, 1, 2, 3, IMP, ts: 5),  // E163
            ],
            expect: [
                .importedEventTimestampOutOfRange, .importedEventTimestampOutOfRange,
                .importedEventTimestampMustNotAdvance,
                .importedEventTimestampMustNotRegress, .importedEventTimestampMustNotRegress,
                .importedEventTimestampMustPostdateDebitAccount,
                .importedEventTimestampMustPostdateCreditAccount,
                .created, .importedEventTimestampMustNotRegress, .created,
            ],
            timestamps: [26, 27, 28, 29, 30, 31, 32, 4, 34, 5])
        #expect(ledger.timestamp == 35, "batch timestamp 35")

        ledger.advExCreateTransfers(
            [
                advT(2, 1, 2, 3, IMP, ts: 99),  // E164a
                advT(2, 1, 2, 3, IMP, ts: 4),  // E164
                advT(2, 1, 2, 3, IMP, ts: 5),
                advT(2, 1, 2, 3, IMP, ts: 6),
            ],
            expect: [.importedEventTimestampMustNotAdvance, .exists, .exists, .exists],
            timestamps: [37, 5, 5, 5])
        #expect(ledger.timestamp == 40, "batch timestamp 40")

        ledger.advExCreateTransfers([advT(3, 1, 2, 3, IMP, ts: 10)], expect: [.created], timestamps: [10])  // E165
        #expect(ledger.timestamp == 42, "base 41 + 1 event")
        ledger.advExCreateAccounts(
            [advA(4, IMPA, ts: 10)], expect: [.importedEventTimestampMustNotRegress], timestamps: [44])  // E166
        #expect(ledger.timestamp == 44, "base 43 + 1 event")

        #expect(ledger.lookupAccounts([1, 2, 3, 4]).map(\.timestamp) == [2, 3, 9])
        #expect(ledger.lookupTransfers([1, 2, 3]).map(\.timestamp) == [4, 5, 10])
        #expect(ledger.advExAmounts([1, 2, 3]) == [3, 3, 3])
        ledger.advExExpectAccount(1, 0, 9, 0, 0)
        ledger.advExExpectAccount(2, 0, 0, 0, 9)
        ledger.advExExpectAccount(3, 0, 0, 0, 0)
    }

    @Test("8.13 mixing imported and non-imported events in one batch")
    func importedMixing() {
        let ledger = TestLedger()
        let IMPA = AccountFlags.imported
        ledger.advExCreateAccounts(
            [advA(1, IMPA, ts: 1), advA(2), advA(2, IMPA, ts: 2)],
            expect: [.created, .importedEventExpected, .created])
        ledger.advExCreateAccounts(
            [advA(3), advA(4, IMPA, ts: 3)], expect: [.created, .importedEventNotExpected])
        #expect(ledger.lookupAccounts([1, 2, 3, 4]).map(\.id) == [1, 2, 3])

        // "Same for transfers."
        ledger.advExCreateTransfers(
            [advT(1, 1, 2, 3, IMP, ts: 10), advT(2, 1, 2, 3), advT(3, 1, 2, 3, IMP, ts: 11)],
            expect: [.created, .importedEventExpected, .created])
        ledger.advExCreateTransfers(
            [advT(4, 1, 2, 3), advT(5, 1, 2, 3, IMP, ts: 12)],
            expect: [.created, .importedEventNotExpected])
        #expect(ledger.lookupTransfers([1, 2, 3, 4, 5]).map(\.id) == [1, 3, 4])
        #expect(ledger.lookupTransfers([1, 3]).map(\.timestamp) == [10, 11])
    }

    @Test("8.13 imported pending transfers: no timeout; imported post")
    func importedPending() {
        let ledger = TestLedger()
        let IMPA = AccountFlags.imported
        ledger.advExCreateAccounts(
            [advA(1, IMPA, ts: 1), advA(2, IMPA, ts: 2)], expect: [.created, .created])
        ledger.advExCreateTransfers(
            [
                advT(2, 1, 2, 4, [PEN, IMP], timeout: 1, ts: 4),
                advT(2, 1, 2, 4, [PEN, IMP], timeout: 0, ts: 4),
            ],
            expect: [.importedEventTimeoutMustBeZero, .created])
        ledger.advExExpectAccount(1, 4, 0, 0, 0)
        ledger.advExExpectAccount(2, 0, 0, 4, 0)
        ledger.advExCreateTransfers([AdvEx.resolve(3, pending: 2, 4, [POS, IMP], timestamp: 5)], expect: [.created])
        #expect(ledger.lookupTransfers([2, 3]).map(\.timestamp) == [4, 5])
        #expect(ledger.advExAmounts([2, 3]) == [4, 4])
        ledger.advExExpectAccount(1, 0, 4, 0, 0)
        ledger.advExExpectAccount(2, 0, 0, 0, 4)
    }

    @Test("8.13 imported chain: rolled-back members keep their imported timestamps")
    func importedChain() {
        let ledger = TestLedger()
        let IMPA = AccountFlags.imported
        let LNKA = AccountFlags.linked
        let failing = ledger.advExCreateAccounts(
            [advA(1, [LNKA, IMPA], ts: 1), advA(2, [LNKA, IMPA], ts: 2), advA(3, IMPA, ts: 0)],
            expect: [.linkedEventFailed, .linkedEventFailed, .importedEventTimestampOutOfRange],
            timestamps: [1, 2, nil])
        #expect(failing.map(\.timestamp).prefix(2) == [1, 2])
        #expect(ledger.lookupAccounts([1, 2, 3]).isEmpty, "nothing stored")
        ledger.advExCreateAccounts(
            [advA(1, [LNKA, IMPA], ts: 1), advA(2, [LNKA, IMPA], ts: 2), advA(3, IMPA, ts: 3)],
            expect: [.created, .created, .created])
        #expect(ledger.lookupAccounts([1, 2, 3]).map(\.timestamp) == [1, 2, 3])

        // The same for transfers (the reference test's continuation).
        ledger.advExCreateTransfers(
            [advT(1, 1, 2, 3, [LNK, IMP], ts: 4), advT(2, 1, 2, 3, [LNK, IMP], ts: 5), advT(3, 1, 2, 3, IMP, ts: 0)],
            expect: [.linkedEventFailed, .linkedEventFailed, .importedEventTimestampOutOfRange],
            timestamps: [4, 5, nil])
        #expect(ledger.lookupTransfers([1, 2, 3]).isEmpty, "nothing stored")
        ledger.advExCreateTransfers(
            [advT(1, 1, 2, 3, [LNK, IMP], ts: 4), advT(2, 1, 2, 3, [LNK, IMP], ts: 5), advT(3, 1, 2, 3, IMP, ts: 6)],
            expect: [.created, .created, .created])
        #expect(ledger.lookupTransfers([1, 2, 3]).map(\.timestamp) == [4, 5, 6])
        ledger.advExExpectAccount(1, 0, 9, 0, 0)
        ledger.advExExpectAccount(2, 0, 0, 0, 9)
    }

    // MARK: §8.14 Closing accounts

    @Test("8.14 E167–E184: closing accounts, voids and expiries reopen them")
    func closingAccounts() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([advA(1), advA(2), advA(3)])

        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 15),  // E167
                advT(2, 1, 2, 0, CDR),  // E168
                advT(2, 1, 2, 0, [PEN, CDR]),  // E169
                advT(2, 1, 2, 0, [PEN, CDR]),  // E170
                advT(3, 1, 2, 5),  // E171
                advT(4, 2, 1, 5),  // E172
                AdvEx.resolve(5, pending: 2, 0, POS),  // E173
                AdvEx.resolve(6, pending: 2, 0, VOI),  // E174
                advT(7, 1, 2, 5),  // E175
            ],
            expect: [
                .created, .closingTransferMustBePending, .created, .exists,
                .debitAccountAlreadyClosed, .creditAccountAlreadyClosed, .debitAccountAlreadyClosed,
                .created, .created,
            ])
        ledger.advExExpectAccount(1, 0, 20, 0, 0, closed: false)
        ledger.advExExpectAccount(2, 0, 0, 0, 20, closed: false)

        ledger.advExCreateTransfers(
            [
                advT(8, 1, 2, 10, PEN, timeout: 1),  // E176
                advT(9, 1, 2, 10, PEN),
                advT(10, 1, 2, 0, [PEN, CCR], timeout: 2),
            ],
            expect: [.created, .created, .created])
        ledger.advExExpectAccount(1, 20, 20, 0, 0, closed: false)
        ledger.advExExpectAccount(2, 0, 0, 20, 20, closed: true)

        ledger.advExCreateTransfers(
            [AdvEx.resolve(11, pending: 9, 10, POS), AdvEx.resolve(12, pending: 9, 10, VOI)],  // E177, E178
            expect: [.creditAccountAlreadyClosed, .created])
        ledger.advExExpectAccount(1, 10, 20, 0, 0, closed: false)
        ledger.advExExpectAccount(2, 0, 0, 10, 20, closed: true)

        ledger.advExOneSecondLater()  // E179: T8 expires although A2 is closed.
        ledger.advExExpectAccount(1, 0, 20, 0, 0, closed: false)
        ledger.advExExpectAccount(2, 0, 0, 0, 20, closed: true)

        ledger.advExOneSecondLater()  // E180: T10 expires → A2 reopened.
        ledger.advExExpectAccount(1, 0, 20, 0, 0, closed: false)
        ledger.advExExpectAccount(2, 0, 0, 0, 20, closed: false)

        ledger.advExCreateTransfers([advT(13, 1, 2, 0, [PEN, CDR, CCR])], expect: [.created])  // E181
        ledger.advExExpectAccount(1, 0, 20, 0, 0, closed: true)
        ledger.advExExpectAccount(2, 0, 0, 0, 20, closed: true)

        ledger.advExCreateTransfers(
            [
                advT(14, 1, 3, 5), advT(15, 3, 2, 5),  // E182
                advT(16, 1, 3, 0, [PEN, CDR]),  // E183
                advT(17, 3, 2, 0, [PEN, CCR]),  // E184
            ],
            expect: [
                .debitAccountAlreadyClosed, .creditAccountAlreadyClosed,
                .debitAccountAlreadyClosed, .creditAccountAlreadyClosed,
            ])

        // Stored amounts and the ids burned by *_already_closed (transient).
        #expect(ledger.advExAmounts([1, 2, 6, 7, 8, 9, 10, 12, 13]) == [15, 0, 0, 5, 10, 10, 0, 10, 0])
        #expect(ledger.lookupTransfers([3, 4, 5, 11, 14, 15, 16, 17]).isEmpty)
        ledger.advExCreateTransfers(
            [3, 4, 5, 11, 14, 15, 16, 17].map { advT($0, 2, 3, 1) },
            expect: Array(repeating: .idAlreadyFailed, count: 8))
        ledger.advExExpectAccount(3, 0, 0, 0, 0, closed: false)
    }

    // MARK: §8.15 Queries

    /// A1, A2 (HIST or not) and T1…T4 of §8.15; returns the transfers' timestamps.
    private func queryLedger(history: Bool = true) -> (TestLedger, [UInt64]) {
        let ledger = TestLedger()
        let flags: AccountFlags = history ? .history : []
        ledger.advExSetupAccounts([advA(1, flags), advA(2, flags)])
        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 10, code: 1, ud128: 1000, ud64: 10, ud32: 1),
                advT(2, 2, 1, 11, code: 2, ud128: 1001, ud64: 10, ud32: 2),
                advT(3, 1, 2, 12, code: 1, ud128: 1000, ud64: 20, ud32: 2),
                advT(4, 2, 1, 13, code: 2, ud128: 1001, ud64: 20, ud32: 1),
            ],
            expect: [.created, .created, .created, .created])
        let timestamps = ledger.lookupTransfers([1, 2, 3, 4]).map(\.timestamp)
        #expect(timestamps.count == 4)
        return (ledger, timestamps)
    }

    private func accountTransferIds(_ ledger: TestLedger, _ filter: AccountFilter) -> [UInt128] {
        ledger.getAccountTransfers(filter).map(\.id)
    }

    @Test("8.15 E185–E191: get_account_transfers")
    func getAccountTransfersExamples() {
        let (ledger, ts) = queryLedger()
        let both: AccountFilterFlags = [.debits, .credits]
        func ids(_ filter: AccountFilter) -> [UInt128] { accountTransferIds(ledger, filter) }

        #expect(ids(AccountFilter(accountId: 1, limit: 10, flags: both)) == [1, 2, 3, 4])  // E185
        #expect(ids(AccountFilter(accountId: 1, limit: 2, flags: both)) == [1, 2])  // E186
        #expect(ids(AccountFilter(accountId: 1, limit: 10, flags: [.debits, .credits, .reversed])) == [4, 3, 2, 1])  // E187
        #expect(ids(AccountFilter(accountId: 1, limit: 10, flags: .debits)) == [1, 3])  // E188
        #expect(ids(AccountFilter(accountId: 1, limit: 10, flags: .credits)) == [2, 4])
        #expect(ids(AccountFilter(accountId: 1, userData128: 1001, limit: 10, flags: both)) == [2, 4])  // E189
        #expect(ids(AccountFilter(accountId: 1, userData64: 10, limit: 10, flags: both)) == [1, 2])
        #expect(ids(AccountFilter(accountId: 1, userData32: 1, limit: 10, flags: both)) == [1, 4])
        #expect(ids(AccountFilter(accountId: 1, code: 1, limit: 10, flags: both)) == [1, 3])
        #expect(
            ids(AccountFilter(accountId: 1, timestampMin: ts[1], timestampMax: ts[2], limit: 10, flags: both))
                == [2, 3])  // E190
        #expect(
            ids(
                AccountFilter(
                    accountId: 1, userData128: 1000, userData64: 10, userData32: 1, code: 1,
                    timestampMin: ts[0], timestampMax: ts[2], limit: 10, flags: .debits)) == [1])  // E191
        #expect(
            ids(
                AccountFilter(
                    accountId: 2, userData128: 1000, userData64: 10, userData32: 1, code: 1,
                    timestampMin: ts[0], timestampMax: ts[2], limit: 10, flags: .credits)) == [1])
        // The full records come back.
        let full = ledger.getAccountTransfers(AccountFilter(accountId: 1, limit: 10, flags: both))
        #expect(full == ledger.lookupTransfers([1, 2, 3, 4]))
    }

    @Test("8.15 E192: invalid filters return empty results (each)")
    func invalidFiltersAreEmpty() {
        let (ledger, ts) = queryLedger()
        let both: AccountFilterFlags = [.debits, .credits]
        let tsMax = Constants.timestampMax
        var invalid: [(String, AccountFilter)] = [
            ("account A3 (nonexistent)", AccountFilter(accountId: 3, limit: 10, flags: both)),
            ("no debits/credits flag", AccountFilter(accountId: 1, limit: 10, flags: [])),
            ("reversed only", AccountFilter(accountId: 1, limit: 10, flags: .reversed)),
            ("min > max", AccountFilter(accountId: 1, timestampMin: ts[2], timestampMax: ts[1], limit: 10, flags: both)),
            ("limit 0", AccountFilter(accountId: 1, limit: 0, flags: both)),
            ("account 0", AccountFilter(accountId: 0, limit: 10, flags: both)),
            ("account MAX", AccountFilter(accountId: MAX, limit: 10, flags: both)),
            ("min > TS_MAX", AccountFilter(accountId: 1, timestampMin: tsMax + 1, limit: 10, flags: both)),
            ("max > TS_MAX", AccountFilter(accountId: 1, timestampMax: tsMax + 1, limit: 10, flags: both)),
            ("padding flag", AccountFilter(accountId: 1, limit: 10, flags: [.debits, .credits, AccountFilterFlags(rawValue: 1 << 3)])),
        ]
        var reservedHead = AccountFilter(accountId: 1, limit: 10, flags: both)
        reservedHead.reservedHead = 1
        invalid.append(("reserved head", reservedHead))
        var reservedTail = AccountFilter(accountId: 1, limit: 10, flags: both)
        reservedTail.reservedTail.word6 = 1
        invalid.append(("reserved tail", reservedTail))
        for (name, filter) in invalid {
            #expect(ledger.getAccountTransfers(filter).isEmpty, "get_account_transfers: \(name)")
            #expect(ledger.getAccountBalances(filter).isEmpty, "get_account_balances: \(name)")
        }
        // Sanity: the valid filter next to them is not empty; a max of exactly TS_MAX is valid.
        #expect(ledger.getAccountTransfers(AccountFilter(accountId: 1, limit: 10, flags: both)).count == 4)
        #expect(
            ledger.getAccountTransfers(AccountFilter(accountId: 1, timestampMin: 1, timestampMax: tsMax, limit: 10, flags: both))
                .count == 4)

        var invalidQueries: [(String, QueryFilter)] = [
            ("limit 0", QueryFilter(limit: 0)),
            ("min > max", QueryFilter(timestampMin: ts[2], timestampMax: ts[1], limit: 10)),
            ("min > TS_MAX", QueryFilter(timestampMin: tsMax + 1, limit: 10)),
            ("max > TS_MAX", QueryFilter(timestampMax: tsMax + 1, limit: 10)),
            ("padding flag", QueryFilter(limit: 10, flags: QueryFilterFlags(rawValue: 1 << 1))),
        ]
        var queryReserved = QueryFilter(limit: 10)
        queryReserved.reservedTail = 1
        invalidQueries.append(("reserved", queryReserved))
        for (name, filter) in invalidQueries {
            #expect(ledger.queryAccounts(filter).isEmpty, "query_accounts: \(name)")
            #expect(ledger.queryTransfers(filter).isEmpty, "query_transfers: \(name)")
        }
        #expect(ledger.queryTransfers(QueryFilter(limit: 10)).map(\.id) == [1, 2, 3, 4])
        #expect(ledger.queryAccounts(QueryFilter(limit: 10)).map(\.id) == [1, 2])

        var invalidEvents: [(String, ChangeEventsFilter)] = [
            ("limit 0", ChangeEventsFilter(limit: 0)),
            ("min > max", ChangeEventsFilter(timestampMin: ts[2], timestampMax: ts[1], limit: 10)),
            ("min > TS_MAX", ChangeEventsFilter(timestampMin: tsMax + 1, limit: 10)),
            ("max > TS_MAX", ChangeEventsFilter(timestampMax: tsMax + 1, limit: 10)),
        ]
        var eventsReserved = ChangeEventsFilter(limit: 10)
        eventsReserved.reservedTail.word4 = 1
        invalidEvents.append(("reserved", eventsReserved))
        for (name, filter) in invalidEvents {
            #expect(ledger.getChangeEvents(filter).isEmpty, "get_change_events: \(name)")
        }
        #expect(ledger.getChangeEvents(ChangeEventsFilter(limit: 10)).map(\.transferId) == [1, 2, 3, 4])
    }

    @Test("8.15 E193–E194: get_account_balances")
    func getAccountBalancesExamples() {
        let (ledger, ts) = queryLedger()
        let balances = ledger.getAccountBalances(AccountFilter(accountId: 1, limit: 10, flags: [.debits, .credits]))
        #expect(
            balances == [
                AccountBalance(debitsPending: 0, debitsPosted: 10, creditsPending: 0, creditsPosted: 0, timestamp: ts[0]),
                AccountBalance(debitsPending: 0, debitsPosted: 10, creditsPending: 0, creditsPosted: 11, timestamp: ts[1]),
                AccountBalance(debitsPending: 0, debitsPosted: 22, creditsPending: 0, creditsPosted: 11, timestamp: ts[2]),
                AccountBalance(debitsPending: 0, debitsPosted: 22, creditsPending: 0, creditsPosted: 24, timestamp: ts[3]),
            ])  // E193
        let a2 = ledger.getAccountBalances(
            AccountFilter(
                accountId: 2, userData128: 1000, userData64: 10, userData32: 1, code: 1,
                timestampMin: ts[0], timestampMax: ts[2], limit: 10, flags: .credits))
        #expect(
            a2 == [AccountBalance(debitsPending: 0, debitsPosted: 0, creditsPending: 0, creditsPosted: 10, timestamp: ts[0])])  // E194
        // Same selection, ordering and limit as get_account_transfers.
        let reversed = ledger.getAccountBalances(
            AccountFilter(accountId: 1, limit: 2, flags: [.debits, .credits, .reversed]))
        #expect(reversed.map(\.timestamp) == [ts[3], ts[2]])
        #expect(reversed.map(\.creditsPosted) == [24, 11])
    }

    @Test("8.15 E195: get_account_balances for an account without HIST is empty")
    func getAccountBalancesWithoutHistory() {
        let (ledger, _) = queryLedger(history: false)
        let filter = AccountFilter(accountId: 1, limit: 10, flags: [.debits, .credits])
        #expect(ledger.getAccountTransfers(filter).map(\.id) == [1, 2, 3, 4])
        #expect(ledger.getAccountBalances(filter).isEmpty)
        #expect(ledger.getAccountBalances(AccountFilter(accountId: 2, limit: 10, flags: [.debits, .credits])).isEmpty)
    }

    @Test("8.15 E196: get_account_balances for a two-phase transfer")
    func getAccountBalancesTwoPhase() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([advA(1, .history), advA(2, .history)])
        ledger.advExCreateTransfers(
            [advT(1, 1, 2, 1, PEN), AdvEx.resolve(2, pending: 1, 1, POS)], expect: [.created, .created])
        let ts = ledger.lookupTransfers([1, 2]).map(\.timestamp)
        #expect(ts.count == 2)
        guard ts.count == 2 else { return }
        #expect(
            ledger.getAccountBalances(AccountFilter(accountId: 1, limit: 10, flags: [.debits, .credits])) == [
                AccountBalance(debitsPending: 1, debitsPosted: 0, creditsPending: 0, creditsPosted: 0, timestamp: ts[0]),
                AccountBalance(debitsPending: 0, debitsPosted: 1, creditsPending: 0, creditsPosted: 0, timestamp: ts[1]),
            ])
        #expect(
            ledger.getAccountBalances(AccountFilter(accountId: 2, limit: 10, flags: .credits)) == [
                AccountBalance(debitsPending: 0, debitsPosted: 0, creditsPending: 1, creditsPosted: 0, timestamp: ts[0]),
                AccountBalance(debitsPending: 0, debitsPosted: 0, creditsPending: 0, creditsPosted: 1, timestamp: ts[1]),
            ])
    }

    /// (ud128, ud64, ud32, ledger, code) of A1…A8 / T1…T8 in the query_accounts example.
    private static let queryFields: [(UInt128, UInt64, UInt32, UInt32, UInt16)] = [
        (1000, 10, 1, 1, 1), (1000, 11, 2, 2, 2), (1000, 10, 3, 3, 3), (1000, 11, 4, 4, 4),
        (2000, 10, 1, 3, 5), (2000, 11, 2, 2, 6), (2000, 10, 3, 1, 7), (1000, 10, 1, 1, 1),
    ]

    /// The query_accounts example's queries, run through `query` with `ts` = the timestamps of
    /// objects 1…8.
    private func checkQueryExample(
        _ ts: [UInt64], _ query: (QueryFilter) -> [UInt128],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        func check(_ filter: QueryFilter, _ expected: [UInt128], _ name: String) {
            #expect(query(filter) == expected, "\(name)", sourceLocation: sourceLocation)
        }
        check(QueryFilter(userData128: 1000, limit: 10), [1, 2, 3, 4, 8], "ud128=1000")
        check(QueryFilter(userData128: 1000, limit: 10, flags: .reversed), [8, 4, 3, 2, 1], "ud128=1000 reversed")
        check(QueryFilter(userData64: 10, userData32: 3, limit: 10), [3, 7], "ud64=10 ∧ ud32=3")
        check(QueryFilter(userData64: 11, userData32: 2, ledger: 2, limit: 10), [2, 6], "ud64=11 ∧ ud32=2 ∧ ledger=2")
        check(
            QueryFilter(userData128: 1000, timestampMin: ts[1], timestampMax: ts[3], limit: 10), [2, 3, 4],
            "ud128=1000 ∧ range [ts(2), ts(4)]")
        check(QueryFilter(timestampMin: ts[1], limit: 3), [2, 3, 4], "all zero, limit 3, min ts(2)")
        check(QueryFilter(limit: 1, flags: .reversed), [8], "limit 1 reversed")
        check(QueryFilter(limit: 0), [], "limit 0")
        check(QueryFilter(userData128: 1000, code: 5, limit: 10), [], "ud128=1000 ∧ code=5")
    }

    @Test("8.15 query_accounts example")
    func queryAccountsExample() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts(
            Self.queryFields.enumerated().map { index, f in
                advA(UInt128(index + 1), ledger: f.3, code: f.4, ud128: f.0, ud64: f.1, ud32: f.2)
            })
        let ts = ledger.lookupAccounts(Array(1...8)).map(\.timestamp)
        #expect(ts.count == 8)
        guard ts.count == 8 else { return }
        checkQueryExample(ts) { ledger.queryAccounts($0).map(\.id) }
        // Accounts come back with their current balances.
        ledger.setBalances(3, 1, 2, 3, 4)
        let a3 = ledger.queryAccounts(QueryFilter(userData64: 10, userData32: 3, limit: 1))
        #expect(a3.map(\.id) == [3])
        #expect(a3.first.map { [$0.debitsPending, $0.debitsPosted, $0.creditsPending, $0.creditsPosted] } == [1, 2, 3, 4])
    }

    @Test("8.15 query_transfers behaves identically over transfers")
    func queryTransfersExample() {
        let ledger = TestLedger()
        // Two accounts per ledger 1…4 (ids 10·L + 1, 10·L + 2) for T1…T8 to move between.
        var accounts: [Account] = []
        for l in UInt32(1)...4 {
            let base = UInt128(10 * l)
            accounts.append(advA(base + 1, ledger: l))
            accounts.append(advA(base + 2, ledger: l))
        }
        ledger.advExSetupAccounts(accounts)
        var transfers: [Transfer] = []
        for (index, f) in Self.queryFields.enumerated() {
            let base = UInt128(10 * f.3)
            transfers.append(
                advT(
                    UInt128(index + 1), base + 1, base + 2, 1, ledger: f.3, code: f.4,
                    ud128: f.0, ud64: f.1, ud32: f.2))
        }
        ledger.advExCreateTransfers(transfers, expect: Array(repeating: .created, count: 8))
        let ts = ledger.lookupTransfers(Array(1...8)).map(\.timestamp)
        #expect(ts.count == 8)
        guard ts.count == 8 else { return }
        checkQueryExample(ts) { ledger.queryTransfers($0).map(\.id) }
    }

    @Test("§6.2 limit clamping: 8189 query results, 2730 change events")
    func limitClamping() {
        let count = Constants.queryResultsMax + 6  // 8195 transfers, 8195 accounts
        let ledger = TestLedger(accounts: 1 << 14, transfers: 1 << 14)
        let accounts = (1...count).map { advA(UInt128($0), $0 == 1 ? .history : []) }
        let half = count / 2
        // One message holds at most 8189 events: two requests.
        let accountResults = ledger.createAccounts(Array(accounts[..<half])) + ledger.createAccounts(Array(accounts[half...]))
        #expect(accountResults.count == count && accountResults.allSatisfy { $0.status == .created })
        let transfers = (1...count).map { advT(UInt128($0), 1, 2, 1) }
        let transferResults = ledger.createTransfers(Array(transfers[..<half])) + ledger.createTransfers(Array(transfers[half...]))
        #expect(transferResults.count == count && transferResults.allSatisfy { $0.status == .created })

        let resultsMax = Constants.queryResultsMax
        #expect(resultsMax == 8189)
        let expectedIds = (1...resultsMax).map { UInt128($0) }
        let expectedReversed = (count - resultsMax + 1...count).reversed().map { UInt128($0) }
        for limit in [UInt32(resultsMax + 1), UInt32.max] {
            let filter = AccountFilter(accountId: 1, limit: limit, flags: [.debits, .credits])
            #expect(ledger.getAccountTransfers(filter).map(\.id) == expectedIds, "limit \(limit)")
            var reversed = filter
            reversed.flags.insert(.reversed)
            #expect(ledger.getAccountTransfers(reversed).map(\.id) == expectedReversed, "limit \(limit)")
            let balances = ledger.getAccountBalances(filter)
            #expect(balances.count == resultsMax)
            #expect(balances.last?.debitsPosted == UInt128(resultsMax))
            #expect(ledger.queryTransfers(QueryFilter(limit: limit)).map(\.id) == expectedIds)
            #expect(ledger.queryTransfers(QueryFilter(limit: limit, flags: .reversed)).map(\.id) == expectedReversed)
            #expect(ledger.queryAccounts(QueryFilter(limit: limit)).map(\.id) == expectedIds)
            #expect(ledger.queryAccounts(QueryFilter(limit: limit, flags: .reversed)).map(\.id) == expectedReversed)
        }
        // Exactly the limit when it is below the maximum.
        #expect(ledger.queryTransfers(QueryFilter(limit: 7)).count == 7)

        #expect(Constants.changeEventsMax == 2730)
        let events = ledger.getChangeEvents(ChangeEventsFilter(limit: UInt32.max))
        #expect(events.map(\.transferId) == (1...2730).map { UInt128($0) })
        #expect(ledger.getChangeEvents(ChangeEventsFilter(limit: 2731)).count == 2730)
        #expect(ledger.getChangeEvents(ChangeEventsFilter(limit: 5)).count == 5)
    }

    // MARK: §8.16 Change events

    @Test("8.16 change events: pending, expired, posted, voided; closed flags as of the event")
    func changeEvents() {
        let ledger = TestLedger()
        ledger.advExSetupAccounts([advA(1), advA(2), advA(3), advA(4)])
        ledger.advExCreateTransfers(
            [
                advT(1, 1, 2, 10),
                advT(2, 1, 2, 11, PEN),
                advT(3, 1, 2, 12, PEN, timeout: 1),
                advT(4, 1, 2, 13, PEN, timeout: 2),
                advT(5, 1, 2, 14, PEN, timeout: 2),
                advT(6, 3, 1, 0, [PEN, CDR]),
                advT(7, 1, 4, 0, [PEN, CCR]),
            ],
            expect: Array(repeating: .created, count: 7))
        ledger.advExOneSecondLater()  // The pulse expires T3.
        let pulseTimestamp = ledger.timestamp
        ledger.advExExpectAccount(1, 38, 10, 0, 0)
        ledger.advExExpectAccount(2, 0, 0, 38, 10)

        ledger.advExCreateTransfers(
            [
                AdvEx.resolve(14, pending: 4, MAX, POS),
                AdvEx.resolve(15, pending: 5, 0, VOI),
                AdvEx.resolve(16, pending: 6, 0, VOI),
                AdvEx.resolve(17, pending: 7, 0, VOI),
            ],
            expect: [.created, .created, .created, .created])
        #expect(ledger.advExAmounts([14, 15, 16, 17]) == [13, 14, 0, 0])

        var ts: [UInt128: UInt64] = [:]
        for transfer in ledger.lookupTransfers([1, 2, 3, 4, 5, 6, 7, 14, 15, 16, 17]) { ts[transfer.id] = transfer.timestamp }
        var accountTs: [UInt128: UInt64] = [:]
        for account in ledger.lookupAccounts([1, 2, 3, 4]) { accountTs[account.id] = account.timestamp }
        #expect(ts.count == 11 && accountTs.count == 4)
        guard ts.count == 11, accountTs.count == 4 else { return }

        let events = ledger.getChangeEvents(ChangeEventsFilter(timestampMin: ts[6]!, limit: AdvEx.max32))
        #expect(events.count == 7)
        guard events.count == 7 else { return }
        ledger.advExExpectChangeEvent(
            events[0], .twoPhasePending, transfer: 6, amount: 0, pending: 0,
            debit: AdvExSide(3, 0, 0, 0, 0, closed: true), credit: AdvExSide(1, 50, 10, 0, 0))
        ledger.advExExpectChangeEvent(
            events[1], .twoPhasePending, transfer: 7, amount: 0, pending: 0,
            debit: AdvExSide(1, 50, 10, 0, 0), credit: AdvExSide(4, 0, 0, 0, 0, closed: true))
        ledger.advExExpectChangeEvent(
            events[2], .twoPhaseExpired, transfer: 3, amount: 12, pending: 0,
            debit: AdvExSide(1, 38, 10, 0, 0), credit: AdvExSide(2, 0, 0, 38, 10))
        ledger.advExExpectChangeEvent(
            events[3], .twoPhasePosted, transfer: 14, amount: 13, pending: 4,
            debit: AdvExSide(1, 25, 23, 0, 0), credit: AdvExSide(2, 0, 0, 25, 23))
        ledger.advExExpectChangeEvent(
            events[4], .twoPhaseVoided, transfer: 15, amount: 14, pending: 5,
            debit: AdvExSide(1, 11, 23, 0, 0), credit: AdvExSide(2, 0, 0, 11, 23))
        ledger.advExExpectChangeEvent(
            events[5], .twoPhaseVoided, transfer: 16, amount: 0, pending: 6,
            debit: AdvExSide(3, 0, 0, 0, 0), credit: AdvExSide(1, 11, 23, 0, 0))
        ledger.advExExpectChangeEvent(
            events[6], .twoPhaseVoided, transfer: 17, amount: 0, pending: 7,
            debit: AdvExSide(1, 11, 23, 0, 0), credit: AdvExSide(4, 0, 0, 0, 0))

        // Timestamps: transfers' own; the expiry's is its slot in the pulse (the pulse's only
        // expiry, so the pulse timestamp), with the pending transfer's creation time as
        // transfer_timestamp.
        #expect(events.map(\.timestamp) == [ts[6]!, ts[7]!, pulseTimestamp, ts[14]!, ts[15]!, ts[16]!, ts[17]!])
        #expect(events.map(\.transferTimestamp) == [ts[6]!, ts[7]!, ts[3]!, ts[14]!, ts[15]!, ts[16]!, ts[17]!])
        #expect(events[2].transferTimestamp < events[2].timestamp)
        #expect(events[2].transferTimeout == 1, "the expired pending transfer's own fields")
        #expect(events[2].transferFlags == PEN)
        #expect(events[0].transferFlags == [PEN, CDR])
        #expect(events[6].transferFlags == VOI)
        for event in events {
            #expect(event.debitAccountTimestamp == accountTs[event.debitAccountId])
            #expect(event.creditAccountTimestamp == accountTs[event.creditAccountId])
            #expect(event.debitAccountCode == 1 && event.creditAccountCode == 1)
        }

        let first = ledger.getChangeEvents(ChangeEventsFilter(timestampMax: ts[6]!, limit: 5))
        #expect(first.count == 5)
        guard first.count == 5 else { return }
        ledger.advExExpectChangeEvent(
            first[0], .singlePhase, transfer: 1, amount: 10, pending: 0,
            debit: AdvExSide(1, 0, 10, 0, 0), credit: AdvExSide(2, 0, 0, 0, 10))
        for (index, (id, amount, dp)) in [(UInt128(2), UInt128(11), UInt128(11)), (3, 12, 23), (4, 13, 36), (5, 14, 50)].enumerated() {
            ledger.advExExpectChangeEvent(
                first[index + 1], .twoPhasePending, transfer: id, amount: amount, pending: 0,
                debit: AdvExSide(1, dp, 10, 0, 0), credit: AdvExSide(2, 0, 0, dp, 10))
        }
        #expect(first.map(\.timestamp) == [ts[1]!, ts[2]!, ts[3]!, ts[4]!, ts[5]!])
    }
}

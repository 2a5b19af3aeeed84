import LedgerKit
import Testing

@testable import LedgerStateMachine

/// Builders for the worked examples of state-machine spec §8.9–8.16 (namespace, so that no
/// generic top-level names collide with the §8.1–8.8 helpers).
enum AdvEx {
    /// `A<id>`: ledger 1, code 1 unless stated (spec §8 notation).
    static func account(
        _ id: UInt128, _ flags: AccountFlags = [], ledger: UInt32 = 1, code: UInt16 = 1,
        userData128: UInt128 = 0, userData64: UInt64 = 0, userData32: UInt32 = 0,
        timestamp: UInt64 = 0
    ) -> Account {
        Account(
            id: id, userData128: userData128, userData64: userData64, userData32: userData32,
            ledger: ledger, code: code, flags: flags, timestamp: timestamp)
    }

    /// `T<id> A<dr>→A<cr> amount`: ledger 1, code 1 unless stated.
    static func transfer(
        _ id: UInt128, _ debit: UInt128, _ credit: UInt128, _ amount: UInt128,
        _ flags: TransferFlags = [], timeout: UInt32 = 0, ledger: UInt32 = 1, code: UInt16 = 1,
        userData128: UInt128 = 0, userData64: UInt64 = 0, userData32: UInt32 = 0,
        timestamp: UInt64 = 0
    ) -> Transfer {
        Transfer(
            id: id, debitAccountId: debit, creditAccountId: credit, amount: amount,
            userData128: userData128, userData64: userData64, userData32: userData32,
            timeout: timeout, ledger: ledger, code: code, flags: flags, timestamp: timestamp)
    }

    /// `T<id> POS/VOI T<pending> amount`: every optional field zero (inherited from the
    /// pending transfer).
    static func resolve(
        _ id: UInt128, pending: UInt128, _ amount: UInt128, _ flags: TransferFlags,
        timestamp: UInt64 = 0
    ) -> Transfer {
        Transfer(id: id, amount: amount, pendingId: pending, flags: flags, timestamp: timestamp)
    }

    static let max128 = UInt128.max
    static let max32 = UInt32.max
}

/// One expected side of a change event: account id, balances after the event, `closed`.
struct AdvExSide: Equatable, CustomStringConvertible {
    var id: UInt128
    var dp: UInt128
    var dpo: UInt128
    var cp: UInt128
    var cpo: UInt128
    var closed: Bool

    init(_ id: UInt128, _ dp: UInt128, _ dpo: UInt128, _ cp: UInt128, _ cpo: UInt128, closed: Bool = false) {
        self.id = id
        self.dp = dp
        self.dpo = dpo
        self.cp = cp
        self.cpo = cpo
        self.closed = closed
    }

    var description: String { "A\(id) (\(dp),\(dpo),\(cp),\(cpo))\(closed ? " CLSD" : "")" }
}

extension TestLedger {
    /// Slot timestamps of the single-batch create request of `count` events that ran last
    /// (spec §4.3). Call it before any other operation: reads also consume a timestamp.
    func advExSlots(count: Int) -> [UInt64] {
        (0..<count).map { timestamp - UInt64(count) + UInt64($0) + 1 }
    }

    /// Runs one single-batch `create_transfers` request and checks every result's status and
    /// timestamp: `created` → the stored timestamp (the user's if imported, else the slot);
    /// `exists` → the existing transfer's timestamp; anything else → the slot, unless
    /// `timestamps` overrides (non-nil entries win).
    @discardableResult
    func advExCreateTransfers(
        _ events: [Transfer], expect expected: [CreateTransferStatus],
        timestamps overrides: [UInt64?]? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [CreateTransferResult] {
        let results = createTransfers(events)
        let slots = advExSlots(count: events.count)
        #expect(results.count == events.count, "one result per event", sourceLocation: sourceLocation)
        #expect(results.map(\.status) == expected, sourceLocation: sourceLocation)
        guard results.count == events.count, expected.count == events.count else { return results }
        for (index, result) in results.enumerated() {
            var timestamp = slots[index]
            if let overrides, let value = overrides[index] {
                timestamp = value
            } else if result.status == .created, expected[index] == .created {
                let event = events[index]
                if event.flags.contains(.imported) { timestamp = event.timestamp }
            } else if result.status == .exists, expected[index] == .exists {
                timestamp = lookupTransfer(events[index].id)?.timestamp ?? 0
            }
            #expect(
                result.timestamp == timestamp,
                "event \(index) (T\(events[index].id), \(result.status)): result timestamp",
                sourceLocation: sourceLocation)
            #expect(result.reserved == 0, sourceLocation: sourceLocation)
        }
        return results
    }

    /// `create_accounts` counterpart of `advExCreateTransfers`.
    @discardableResult
    func advExCreateAccounts(
        _ events: [Account], expect expected: [CreateAccountStatus],
        timestamps overrides: [UInt64?]? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [CreateAccountResult] {
        let results = createAccounts(events)
        let slots = advExSlots(count: events.count)
        #expect(results.count == events.count, "one result per event", sourceLocation: sourceLocation)
        #expect(results.map(\.status) == expected, sourceLocation: sourceLocation)
        guard results.count == events.count, expected.count == events.count else { return results }
        for (index, result) in results.enumerated() {
            var timestamp = slots[index]
            if let overrides, let value = overrides[index] {
                timestamp = value
            } else if result.status == .created, expected[index] == .created {
                let event = events[index]
                if event.flags.contains(.imported) { timestamp = event.timestamp }
            } else if result.status == .exists, expected[index] == .exists {
                timestamp = lookupAccount(events[index].id)?.timestamp ?? 0
            }
            #expect(
                result.timestamp == timestamp,
                "event \(index) (A\(events[index].id), \(result.status)): result timestamp",
                sourceLocation: sourceLocation)
            #expect(result.reserved == 0, sourceLocation: sourceLocation)
        }
        return results
    }

    /// Creates accounts that must all be `created`.
    func advExSetupAccounts(_ events: [Account], sourceLocation: SourceLocation = #_sourceLocation) {
        let results = createAccounts(events)
        #expect(
            results.map(\.status) == Array(repeating: .created, count: events.count),
            "setup accounts", sourceLocation: sourceLocation)
    }

    /// Checks an account's balances `(dp, dpo, cp, cpo)` and, if given, its `closed` bit.
    func advExExpectAccount(
        _ id: UInt128, _ dp: UInt128, _ dpo: UInt128, _ cp: UInt128, _ cpo: UInt128,
        closed: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let account = lookupAccount(id) else {
            Issue.record("A\(id) does not exist", sourceLocation: sourceLocation)
            return
        }
        #expect(
            [account.debitsPending, account.debitsPosted, account.creditsPending, account.creditsPosted]
                == [dp, dpo, cp, cpo],
            "A\(id) balances (dp, dpo, cp, cpo)", sourceLocation: sourceLocation)
        if let closed {
            #expect(
                account.flags.contains(.closed) == closed, "A\(id) closed", sourceLocation: sourceLocation)
        }
    }

    /// The stored (actual) amount of each transfer, nil for a transfer that does not exist.
    func advExAmounts(_ ids: [UInt128]) -> [UInt128?] {
        ids.map { lookupTransfer($0)?.amount }
    }

    /// The timestamp of an existing transfer (0 if missing, which the caller's checks expose).
    func advExTimestamp(ofTransfer id: UInt128) -> UInt64 {
        lookupTransfer(id)?.timestamp ?? 0
    }

    func advExTimestamp(ofAccount id: UInt128) -> UInt64 {
        lookupAccount(id)?.timestamp ?? 0
    }

    /// "+1 s, pulse" of the worked examples: one second after the last operation, then the
    /// host's idle-timer pulse if one is due. The harness's wall clock may lag the operation
    /// timestamps (every slot is > the wall clock when it was assigned), so `advance(seconds:)`
    /// alone would land *before* a transfer created "1 s ago" expires; we first catch the
    /// wall clock up with the last prepared timestamp.
    func advExOneSecondLater() {
        realtime = max(realtime, machine.prepareTimestamp)
        advance(seconds: 1)
    }

    /// Checks one change event against a row of the §8.16 table.
    func advExExpectChangeEvent(
        _ event: ChangeEvent, _ type: ChangeEventType, transfer: UInt128, amount: UInt128,
        pending: UInt128, debit: AdvExSide, credit: AdvExSide,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(event.type == type, "T\(transfer) type", sourceLocation: sourceLocation)
        #expect(event.transferId == transfer, "transfer id", sourceLocation: sourceLocation)
        #expect(event.transferAmount == amount, "T\(transfer) amount", sourceLocation: sourceLocation)
        #expect(event.transferPendingId == pending, "T\(transfer) pending id", sourceLocation: sourceLocation)
        let debitActual = AdvExSide(
            event.debitAccountId, event.debitAccountDebitsPending, event.debitAccountDebitsPosted,
            event.debitAccountCreditsPending, event.debitAccountCreditsPosted,
            closed: event.debitAccountFlags.contains(.closed))
        let creditActual = AdvExSide(
            event.creditAccountId, event.creditAccountDebitsPending, event.creditAccountDebitsPosted,
            event.creditAccountCreditsPending, event.creditAccountCreditsPosted,
            closed: event.creditAccountFlags.contains(.closed))
        #expect(debitActual == debit, "T\(transfer) debit account", sourceLocation: sourceLocation)
        #expect(creditActual == credit, "T\(transfer) credit account", sourceLocation: sourceLocation)
        #expect(event.ledger == 1, "T\(transfer) ledger", sourceLocation: sourceLocation)
        #expect(
            event.reserved0 == 0 && event.reserved1 == 0 && event.reserved2 == 0
                && event.reserved3 == Padding32(),
            "T\(transfer) reserved", sourceLocation: sourceLocation)
    }
}
